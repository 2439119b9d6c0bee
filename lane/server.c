/* server.c: the master's side of opening lane link connections: the TCP listener (links/
 * tcp_server.c) greeted each with the challenge and hands it over; its HELLO is checked against
 * the session its index names (the owner finds it) before the connection joins that session's
 * peer. Nothing else is read before that. */
#include "lane.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/log.h"

#define PENDING_MAX 128          /* connections in their opening at once */
#define OPENING_TIMEOUT_S 10.0
#define HELLO_LEN (LANE_HELLO_HDR + LANE_FRAME_HDR + 17 + LANE_TAG_LEN)

struct pending {
    struct lane_server *srv;
    int fd;
    ev_io io;
    ev_timer timer;
    uint8_t challenge[LANE_CHALLENGE_LEN];
    uint8_t buf[HELLO_LEN + 64];
    size_t len;
    struct pending *next, *prev;
};

struct lane_server {
    struct ev_loop *loop;
    struct lane_server_cb cb;
    struct pending *pending;
    int npending;
    uint64_t accepted, refused, joined;
    struct log_limit lim;
};

static void pending_free(struct pending *q)
{
    struct lane_server *srv = q->srv;
    ev_io_stop(srv->loop, &q->io);
    ev_timer_stop(srv->loop, &q->timer);
    if (q->fd >= 0) close(q->fd);
    if (q->prev) q->prev->next = q->next;
    else srv->pending = q->next;
    if (q->next) q->next->prev = q->prev;
    srv->npending--;
    sodium_memzero(q->buf, sizeof q->buf);
    free(q);
}

static void refuse(struct pending *q, const char *why)
{
    q->srv->refused++;
    log_limited(&q->srv->lim, LOG_INFO, "TCP lane: a link connection refused: %s", why);
    pending_free(q);
}

static void on_pending(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct pending *q = w->data;
    struct lane_server *srv = q->srv;
    ssize_t n = recv(q->fd, q->buf + q->len, HELLO_LEN - q->len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) {
        refuse(q, n == 0 ? "closed before its HELLO" : strerror(errno));
        return;
    }
    q->len += (size_t)n;
    uint32_t index;
    uint8_t link_id;
    size_t blen;
    int rc = lane_hello_parse(q->buf, q->len, &index, &link_id, &blen);
    if (rc < 0) {
        refuse(q, "not a HELLO");
        return;
    }
    if (rc > 0 || q->len < HELLO_LEN) return;
    uint8_t tx[32], rx[32];
    struct lane_peer *peer = srv->cb.session(srv->cb.ctx, index, tx, rx);
    if (!peer) {
        refuse(q, "its HELLO names no session");
        return;
    }
    struct lane_keys keys;
    lane_keys_derive(tx, rx, q->challenge, &keys);
    sodium_memzero(tx, sizeof tx);
    sodium_memzero(rx, sizeof rx);
    if (lane_hello_check(q->buf + LANE_HELLO_HDR + LANE_FRAME_HDR, blen, link_id, &keys.rx) != 0) {
        sodium_memzero(&keys, sizeof keys);
        refuse(q, "its HELLO does not prove the session's keys");
        return;
    }
    uint8_t welcome[LANE_FRAME_HDR + 64];
    int wl = lane_welcome_put(welcome, sizeof welcome, &keys.tx);
    if (wl < 0 || send(q->fd, welcome, (size_t)wl, MSG_NOSIGNAL) != wl) {
        sodium_memzero(&keys, sizeof keys);
        refuse(q, "cannot send the WELCOME");
        return;
    }
    int fd = q->fd;
    q->fd = -1;
    pending_free(q);
    srv->joined++;
    if (lane_peer_add_link(peer, fd, link_id, &keys, NULL, 0) != 0) close(fd);
    sodium_memzero(&keys, sizeof keys);
}

static void on_pending_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    refuse(w->data, "no HELLO in time");
}

void lane_server_adopt(void *ctx, int fd, const uint8_t challenge[LANE_CHALLENGE_LEN],
                       const uint8_t *first, size_t nfirst)
{
    struct lane_server *srv = ctx;
    if (srv->npending >= PENDING_MAX || nfirst > HELLO_LEN) {
        close(fd);
        srv->refused++;
        log_limited(&srv->lim, LOG_WARN, "TCP lane: %d link connections are opening at once: "
                    "refused another", PENDING_MAX);
        return;
    }
    struct pending *q = calloc(1, sizeof *q);
    if (!q) {
        close(fd);
        return;
    }
    q->srv = srv;
    q->fd = fd;
    memcpy(q->challenge, challenge, sizeof q->challenge);
    memcpy(q->buf, first, nfirst);
    q->len = nfirst;
    q->next = srv->pending;
    if (srv->pending) srv->pending->prev = q;
    srv->pending = q;
    srv->npending++;
    srv->accepted++;
    ev_io_init(&q->io, on_pending, fd, EV_READ);
    q->io.data = q;
    ev_io_start(srv->loop, &q->io);
    ev_timer_init(&q->timer, on_pending_timeout, OPENING_TIMEOUT_S, 0);
    q->timer.data = q;
    ev_timer_start(srv->loop, &q->timer);
}

struct lane_server *lane_server_new(struct ev_loop *loop, const struct lane_server_cb *cb)
{
    struct lane_server *srv = calloc(1, sizeof *srv);
    if (!srv) return NULL;
    srv->loop = loop;
    srv->cb = *cb;
    return srv;
}

void lane_server_free(struct lane_server *srv)
{
    if (!srv) return;
    while (srv->pending) pending_free(srv->pending);
    free(srv);
}
