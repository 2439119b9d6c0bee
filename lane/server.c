/* server.c: the master's TCP listener for lane link connections: each accepted connection gets
 * the challenge, and its HELLO is checked against the session its index names (the owner finds
 * it) before the connection joins that session's peer. Nothing else is read before that. */
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
    int fd;
    ev_io io;
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

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct lane_server *srv = w->data;
    for (int i = 0; i < 16; i++) {
        int fd = accept4(srv->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        if (srv->npending >= PENDING_MAX) {
            close(fd);
            srv->refused++;
            log_limited(&srv->lim, LOG_WARN, "TCP lane: %d link connections are opening at "
                        "once: refused another", PENDING_MAX);
            continue;
        }
        struct pending *q = calloc(1, sizeof *q);
        if (!q) {
            close(fd);
            continue;
        }
        q->srv = srv;
        q->fd = fd;
        randombytes_buf(q->challenge, sizeof q->challenge);
        uint8_t msg[LANE_CHALLENGE_MSG];
        lane_challenge_put(msg, q->challenge);
        q->next = srv->pending;
        if (srv->pending) srv->pending->prev = q;
        srv->pending = q;
        srv->npending++;
        srv->accepted++;
        if (send(fd, msg, sizeof msg, MSG_NOSIGNAL) != (ssize_t)sizeof msg) {
            refuse(q, "cannot send the challenge");
            continue;
        }
        ev_io_init(&q->io, on_pending, fd, EV_READ);
        q->io.data = q;
        ev_io_start(loop, &q->io);
        ev_timer_init(&q->timer, on_pending_timeout, OPENING_TIMEOUT_S, 0);
        q->timer.data = q;
        ev_timer_start(loop, &q->timer);
    }
}

struct lane_server *lane_server_new(struct ev_loop *loop, const struct sockaddr *addr,
                                    socklen_t alen, const struct lane_server_cb *cb, char *err,
                                    size_t errlen)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "TCP lane: socket: %s", strerror(errno));
        return NULL;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (addr->sa_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &(int){0}, sizeof(int));
    lane_apply_congestion(fd); /* (accepted link connections inherit it) */
    if (bind(fd, addr, alen) != 0 || listen(fd, 64) != 0) {
        snprintf(err, errlen, "TCP lane: cannot listen on the listen address's TCP port: %s "
                 "(another program has it? tcp_lane = \"off\" turns the lane off)",
                 strerror(errno));
        close(fd);
        return NULL;
    }
    struct lane_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->loop = loop;
    srv->fd = fd;
    srv->cb = *cb;
    ev_io_init(&srv->io, on_accept, fd, EV_READ);
    srv->io.data = srv;
    ev_io_start(loop, &srv->io);
    return srv;
}

void lane_server_free(struct lane_server *srv)
{
    if (!srv) return;
    while (srv->pending) pending_free(srv->pending);
    ev_io_stop(srv->loop, &srv->io);
    close(srv->fd);
    free(srv);
}
