/* control.c: the daemons' UNIX control socket: one command line in, the answer out, close.
 * Also the client side used by "braid-master status" and the tests. */
#include "control.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

#define MAX_CLIENTS 4
#define CMD_MAX 128

struct control_client {
    struct control *c;
    int fd;
    ev_io io;
    ev_timer to;
    char cmd[CMD_MAX];
    size_t len;
};

struct control {
    struct ev_loop *loop;
    int fd;
    ev_io io;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    control_fn fn;
    void *ctx;
    struct control_client *clients[MAX_CLIENTS];
};

static void client_close(struct control_client *cl)
{
    struct control *c = cl->c;
    ev_io_stop(c->loop, &cl->io);
    ev_timer_stop(c->loop, &cl->to);
    close(cl->fd);
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (c->clients[i] == cl) c->clients[i] = NULL;
    free(cl);
}

static void client_answer(struct control_client *cl)
{
    cl->cmd[cl->len] = '\0';
    char *nl = strpbrk(cl->cmd, "\r\n");
    if (nl) *nl = '\0';
    struct strbuf sb;
    sb_init(&sb);
    cl->c->fn(cl->c->ctx, cl->cmd, &sb);
    /* The answer is small (a few KiB); waiting up to a second for socket room keeps this simple. */
    size_t off = 0;
    while (off < sb.len) {
        ssize_t n = send(cl->fd, sb.buf + off, sb.len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* the client is slow to read: wait a little for room */
            fd_set w;
            FD_ZERO(&w);
            FD_SET(cl->fd, &w);
            struct timeval t = {1, 0};
            if (select(cl->fd + 1, NULL, &w, NULL, &t) <= 0) break;
            continue;
        }
        if (n <= 0) break;
        off += (size_t)n;
    }
    sb_free(&sb);
    client_close(cl);
}

static void client_read(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct control_client *cl = w->data;
    ssize_t n = recv(cl->fd, cl->cmd + cl->len, CMD_MAX - 1 - cl->len, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) { /* EOF: answer what we have */
        if (cl->len == 0) {
            client_close(cl);
            return;
        }
        client_answer(cl);
        return;
    }
    cl->len += (size_t)n;
    if (memchr(cl->cmd, '\n', cl->len) || cl->len >= CMD_MAX - 1) client_answer(cl);
}

static void client_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    client_close(w->data);
}

static void control_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct control *c = w->data;
    int fd = accept4(c->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    int slot = -1;
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (!c->clients[i]) slot = i;
    struct control_client *cl = slot >= 0 ? calloc(1, sizeof *cl) : NULL;
    if (!cl) {
        close(fd);
        return;
    }
    cl->c = c;
    cl->fd = fd;
    c->clients[slot] = cl;
    ev_io_init(&cl->io, client_read, fd, EV_READ);
    cl->io.data = cl;
    ev_io_start(loop, &cl->io);
    ev_timer_init(&cl->to, client_timeout, 2.0, 0);
    cl->to.data = cl;
    ev_timer_start(loop, &cl->to);
}

struct control *control_open(struct ev_loop *loop, const char *path, control_fn fn, void *ctx,
                             char *err, size_t errlen)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "control socket path \"%s\" is too long (at most %zu bytes)", path,
                 sizeof sa.sun_path - 1);
        return NULL;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create control socket: %s", strerror(errno));
        return NULL;
    }
    unlink(path); /* a stale socket from an earlier run */
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 8) < 0) {
        snprintf(err, errlen, "cannot listen on control socket %s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    struct control *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        unlink(path);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->loop = loop;
    c->fd = fd;
    c->fn = fn;
    c->ctx = ctx;
    strcpy(c->path, path);
    ev_io_init(&c->io, control_accept, fd, EV_READ);
    c->io.data = c;
    ev_io_start(loop, &c->io);
    return c;
}

void control_close(struct control *c)
{
    if (!c) return;
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (c->clients[i]) client_close(c->clients[i]);
    ev_io_stop(c->loop, &c->io);
    close(c->fd);
    unlink(c->path);
    free(c);
}

int control_query(const char *path, const char *cmd, FILE *out)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path) {
        fprintf(stderr, "control socket path \"%s\" is too long\n", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        fprintf(stderr, "cannot connect to %s: %s (is the daemon running with control_socket = \"%s\"?)\n",
                path, strerror(errno), path);
        if (fd >= 0) close(fd);
        return -1;
    }
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char line[CMD_MAX];
    int n = snprintf(line, sizeof line, "%s\n", cmd);
    if (send(fd, line, (size_t)n, MSG_NOSIGNAL) != n) {
        fprintf(stderr, "cannot send to %s: %s\n", path, strerror(errno));
        close(fd);
        return -1;
    }
    char buf[4096];
    ssize_t r;
    while ((r = recv(fd, buf, sizeof buf, 0)) > 0) fwrite(buf, 1, (size_t)r, out);
    close(fd);
    if (r < 0) {
        fprintf(stderr, "no answer from %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}
