/* dial.c: the master's side of a lane OPEN: a non-blocking connect to the destination with a
 * time limit, its outcome told as an OPENED status (refused, unreachable, timeout). */
#include "lane.h"

#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct lane_dial {
    struct ev_loop *loop;
    int fd;
    ev_io io;
    ev_timer t;
    lane_dial_fn cb;
    void *ctx;
    int early; /* an outcome connect() gave at once (told from the loop), or -1 */
};

int lane_dial_status_of(int err)
{
    switch (err) {
    case 0: return LANE_OPEN_OK;
    case ECONNREFUSED:
    case ECONNRESET: return LANE_OPEN_REFUSED;
    case ETIMEDOUT: return LANE_OPEN_TIMEOUT;
    default: return LANE_OPEN_UNREACHABLE; /* ENETUNREACH, EHOSTUNREACH, EACCES ... */
    }
}

static void finish(struct lane_dial *d, int status)
{
    ev_io_stop(d->loop, &d->io);
    ev_timer_stop(d->loop, &d->t);
    int fd = d->fd;
    if (status != LANE_OPEN_OK) {
        close(fd);
        fd = -1;
    }
    lane_dial_fn cb = d->cb;
    void *ctx = d->ctx;
    free(d);
    cb(ctx, fd, status);
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct lane_dial *d = w->data;
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0) err = errno;
    finish(d, lane_dial_status_of(err));
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct lane_dial *d = w->data;
    finish(d, d->early >= 0 ? d->early : LANE_OPEN_TIMEOUT);
}

struct lane_dial *lane_dial_start(struct ev_loop *loop, int family, const uint8_t addr[16],
                                  uint16_t port, double timeout_s, lane_dial_fn cb, void *ctx)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    if (family == 4) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        memcpy(&a->sin_addr, addr, 4);
        a->sin_port = htons(port);
        sl = sizeof *a;
    } else if (family == 6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        memcpy(&a->sin6_addr, addr, 16);
        a->sin6_port = htons(port);
        sl = sizeof *a;
    } else {
        return NULL;
    }
    struct lane_dial *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (d->fd < 0) {
        free(d);
        return NULL;
    }
    d->loop = loop;
    d->cb = cb;
    d->ctx = ctx;
    ev_io_init(&d->io, on_writable, d->fd, EV_WRITE);
    d->io.data = d;
    ev_timer_init(&d->t, on_timeout, timeout_s, 0.);
    d->t.data = d;
    d->early = -1;
    if (connect(d->fd, (struct sockaddr *)&ss, sl) != 0 && errno != EINPROGRESS) {
        /* refused or unreachable at once: told from the loop, like every outcome */
        d->early = lane_dial_status_of(errno);
        ev_timer_set(&d->t, 0., 0.);
        ev_timer_start(loop, &d->t);
        return d;
    }
    ev_io_start(loop, &d->io);
    ev_timer_start(loop, &d->t);
    return d;
}

void lane_dial_cancel(struct lane_dial *d)
{
    if (!d) return;
    ev_io_stop(d->loop, &d->io);
    ev_timer_stop(d->loop, &d->t);
    close(d->fd);
    free(d);
}
