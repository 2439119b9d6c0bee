/* hooks.c: runs the admin's hook commands: fork, the variables in the child's environment,
 * /bin/sh -c; synchronously with a time limit (tunnel up and down) or reaped by the event loop
 * (link events). */
#include "hooks.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static pid_t spawn(const char *what, const char *cmd, const struct hook_var *vars, int nvars)
{
    pid_t pid = fork();
    if (pid < 0) {
        LOGW("%s: cannot start it: %s", what, strerror(errno));
        return -1;
    }
    if (pid == 0) {
        setsid(); /* its own process group: a timeout kills what it started too */
        signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        for (int i = 0; i < nvars; i++)
            if (vars[i].value) setenv(vars[i].name, vars[i].value, 1);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void report(const char *what, int status)
{
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
    if (WIFEXITED(status))
        LOGW("%s exited with status %d%s", what, WEXITSTATUS(status),
             WEXITSTATUS(status) == 127 ? " (command not found?)" : "");
    else if (WIFSIGNALED(status))
        LOGW("%s was killed by signal %d", what, WTERMSIG(status));
}

int hook_run(const char *what, const char *cmd, const struct hook_var *vars, int nvars,
             double timeout_s)
{
    pid_t pid = spawn(what, cmd, vars, nvars);
    if (pid < 0) return -1;
    struct timespec t0, now, nap = {0, 5000000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            report(what, status);
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        if (r < 0 && errno != EINTR) {
            LOGW("%s: lost track of it: %s", what, strerror(errno));
            return -1;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        double el = (double)(now.tv_sec - t0.tv_sec) + (now.tv_nsec - t0.tv_nsec) / 1e9;
        if (el > timeout_s) {
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            LOGW("%s did not finish in %.0f s: killed", what, timeout_s);
            return -1;
        }
        nanosleep(&nap, NULL);
    }
}

struct running {
    ev_child w;
    char what[64];
    struct running *next;
};
static struct running *running;
static int nrunning;

static void reaped(struct ev_loop *loop, ev_child *w, int revents)
{
    (void)revents;
    struct running *r = w->data;
    ev_child_stop(loop, w);
    report(r->what, w->rstatus);
    for (struct running **pp = &running; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    nrunning--;
    free(r);
}

void hook_start(struct ev_loop *loop, const char *what, const char *cmd,
                const struct hook_var *vars, int nvars)
{
    if (nrunning >= HOOK_MAX_RUNNING) {
        LOGW("%s: skipped: %d hook commands still running", what, nrunning);
        return;
    }
    struct running *r = calloc(1, sizeof *r);
    if (!r) return;
    pid_t pid = spawn(what, cmd, vars, nvars);
    if (pid < 0) {
        free(r);
        return;
    }
    snprintf(r->what, sizeof r->what, "%s", what);
    ev_child_init(&r->w, reaped, pid, 0);
    r->w.data = r;
    ev_child_start(loop, &r->w);
    r->next = running;
    running = r;
    nrunning++;
}

void hook_forget_all(struct ev_loop *loop)
{
    while (running) {
        struct running *r = running;
        running = r->next;
        ev_child_stop(loop, &r->w);
        free(r);
    }
    nrunning = 0;
}
