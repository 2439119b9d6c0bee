/* relay.c: the master's endpoints of the TCP lane: for each stream the slave opens, the real
 * connection to the destination (dial.c), its bytes pumped both ways between the socket and
 * the stream, half-close and reset passed on. */
#include "lane.h"

#include <errno.h>
#include <ev.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/log.h"

#define DIAL_TIMEOUT_S 10.0
#define READ_CHUNK 65536

struct relay_conn {
    struct lane_relay *r;
    struct lane_stream *s;
    struct lane_dial *dial;
    int fd;
    ev_io rio, wio;
    bool rd_eof, wr_eof; /* the destination's FIN read; ours sent to it */
    bool peer_eof;       /* the slave's FIN heard */
    struct relay_conn *next, *prev;
};

struct lane_relay {
    struct ev_loop *loop;
    struct relay_conn *conns;
    uint8_t buf[READ_CHUNK];
};

static void conn_free(struct relay_conn *c)
{
    struct lane_relay *r = c->r;
    if (c->dial) lane_dial_cancel(c->dial);
    ev_io_stop(r->loop, &c->rio);
    ev_io_stop(r->loop, &c->wio);
    if (c->fd >= 0) close(c->fd);
    if (c->prev) c->prev->next = c->next;
    else r->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    free(c);
}

static void maybe_done(struct relay_conn *c)
{
    if (!c->rd_eof || !c->wr_eof) return;
    lane_stream_release(c->s);
    conn_free(c);
}

static void pump_in(struct relay_conn *c)
{
    struct lane_relay *r = c->r;
    for (int rounds = 0; rounds < 4; rounds++) {
        size_t room = lane_stream_room(c->s);
        if (room == 0) {
            ev_io_stop(r->loop, &c->rio); /* (until the slave acknowledges: room()) */
            return;
        }
        if (room > sizeof r->buf) room = sizeof r->buf;
        ssize_t n = recv(c->fd, r->buf, room, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            /* reset by the destination (or another error): the client hears a reset */
            struct lane_stream *s = c->s;
            conn_free(c);
            lane_stream_reset(s, LANE_RST_PEER);
            return;
        }
        if (n == 0) {
            c->rd_eof = true;
            ev_io_stop(r->loop, &c->rio);
            lane_stream_shutdown(c->s);
            maybe_done(c);
            return;
        }
        lane_stream_write(c->s, r->buf, (size_t)n);
        if ((size_t)n < room) return;
    }
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct relay_conn *c = w->data;
    if (revents & EV_WRITE) {
        ev_io_stop(c->r->loop, &c->wio);
        lane_stream_resume(c->s);
        return;
    }
    pump_in(c);
}

static void on_dialed(void *ctx, int fd, int status)
{
    struct relay_conn *c = ctx;
    c->dial = NULL;
    if (status != LANE_OPEN_OK) {
        struct lane_stream *s = c->s;
        conn_free(c);
        lane_stream_opened(s, NULL, status);
        return;
    }
    c->fd = fd;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    ev_io_init(&c->rio, on_io, fd, EV_READ);
    ev_io_init(&c->wio, on_io, fd, EV_WRITE);
    c->rio.data = c->wio.data = c;
    ev_io_start(c->r->loop, &c->rio);
    lane_stream_opened(c->s, c, LANE_OPEN_OK);
}

static void relay_open(void *ctx, struct lane_stream *s, int family,
                     const uint8_t addr[16], uint16_t port)
{
    struct lane_relay *r = ctx;
    struct relay_conn *c = calloc(1, sizeof *c);
    if (!c) {
        lane_stream_opened(s, NULL, LANE_OPEN_LIMIT);
        return;
    }
    c->r = r;
    c->s = s;
    c->fd = -1;
    c->next = r->conns;
    if (r->conns) r->conns->prev = c;
    r->conns = c;
    c->dial = lane_dial_start(r->loop, family, addr, port, DIAL_TIMEOUT_S, on_dialed, c);
    if (!c->dial) {
        conn_free(c);
        lane_stream_opened(s, NULL, LANE_OPEN_UNREACHABLE);
    }
}

static size_t relay_deliver(void *ctx, void *owner, const uint8_t *data, size_t len)
{
    struct lane_relay *r = ctx;
    struct relay_conn *c = owner;
    size_t done = 0;
    while (done < len) {
        ssize_t n = send(c->fd, data + done, len - done, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                ev_io_start(r->loop, &c->wio);
                break;
            }
            struct lane_stream *s = c->s;
            conn_free(c);
            lane_stream_reset(s, LANE_RST_PEER);
            return 0; /* (the stream is gone: the lane looks no further) */
        }
        done += (size_t)n;
    }
    return done;
}

static void relay_eof(void *ctx, void *owner)
{
    (void)ctx;
    struct relay_conn *c = owner;
    c->wr_eof = true;
    shutdown(c->fd, SHUT_WR);
    maybe_done(c);
}

static void relay_room(void *ctx, void *owner)
{
    struct lane_relay *r = ctx;
    struct relay_conn *c = owner;
    if (!c->rd_eof && !ev_is_active(&c->rio)) {
        ev_io_start(r->loop, &c->rio);
        pump_in(c); /* (data may wait already: level-triggered, but read now) */
    }
}

static void relay_reset(void *ctx, void *owner, int reason)
{
    (void)ctx;
    (void)reason;
    struct relay_conn *c = owner;
    /* a reset to the destination: SO_LINGER 0 makes close() send it */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    if (c->fd >= 0) setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    conn_free(c);
}

struct lane_relay *lane_relay_new(struct ev_loop *loop)
{
    struct lane_relay *r = calloc(1, sizeof *r);
    if (r) r->loop = loop;
    return r;
}

void lane_relay_callbacks(struct lane_relay *r, struct lane_peer_cb *cb)
{
    memset(cb, 0, sizeof *cb);
    cb->open = relay_open;
    cb->deliver = relay_deliver;
    cb->eof = relay_eof;
    cb->room = relay_room;
    cb->reset = relay_reset;
    cb->ctx = r;
}

void lane_relay_free(struct lane_relay *r)
{
    if (!r) return;
    while (r->conns) conn_free(r->conns);
    free(r);
}
