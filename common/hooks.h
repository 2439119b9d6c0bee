/* hooks.h: the admin's commands (up_command, down_command, link_command) run through /bin/sh
 * with braid's facts in their environment (BRAID_EVENT, BRAID_INTERFACE, ...). */
#ifndef BRAID_HOOKS_H
#define BRAID_HOOKS_H

#include <ev.h>

/* One environment variable for a hook. */
struct hook_var {
    const char *name;
    const char *value;
};

/* Run cmd, wait for it at most timeout_s (then kill it); a failure is logged with what (e.g.
 * "up_command"). Returns the command's exit status, or -1 when it could not run, was killed
 * or timed out. */
int hook_run(const char *what, const char *cmd, const struct hook_var *vars, int nvars,
             double timeout_s);
/* Start cmd without waiting for it (link events must not stall the packets); the loop reaps it
 * and logs a failure. At most HOOK_MAX_RUNNING at once: more are skipped (logged). */
#define HOOK_MAX_RUNNING 8
void hook_start(struct ev_loop *loop, const char *what, const char *cmd,
                const struct hook_var *vars, int nvars);
/* Stop watching the commands still running (at exit; they are not killed). */
void hook_forget_all(struct ev_loop *loop);

#endif
