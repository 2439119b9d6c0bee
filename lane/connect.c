/* connect.c: the slave's side of opening a lane link connection: a TCP connection along the
 * link (bound like it) to the master, directly or through the link's SOCKS5 proxy (CONNECT,
 * RFC 1928, with RFC 1929 login), the master's challenge, the HELLO, the WELCOME; then the
 * connection joins the peer. One attempt per call; the caller retries. */
#include "lane.h"

#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/log.h"
#include "../links/tcp_server.h"
#include "../links/socks5_proto.h"

#define OPENING_TIMEOUT_S 10.0
#define WELCOME_LEN (LANE_FRAME_HDR + 18 + LANE_TAG_LEN)

enum { C_CONNECT, C_S5_METHOD, C_S5_AUTH, C_S5_REPLY, C_CHALLENGE, C_WELCOME };

struct lane_connect {
    struct ev_loop *loop;
    struct lane_peer *peer;
    uint8_t id;
    int fd, state;
    ev_io io;
    ev_timer timer;
    struct lane_keys keys;
    uint32_t index;
    uint8_t tx[32], rx[32];
    uint8_t buf[512];
    size_t len;
    lane_connect_fn done;
    void *ctx;
    struct lane_connect_target t;
    char err[192];
};

static bool send_all(int fd, const uint8_t *p, size_t n)
{
    return send(fd, p, n, MSG_NOSIGNAL) == (ssize_t)n; /* (small, on a fresh connection) */
}

/* Consume n bytes from the front of the buffer. */
static void eat(struct lane_connect *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* The SOCKS5 steps on what was read so far: 1 more is needed, 0 the proxy connected us to the
 * master, -1 an error (in c->err). */
static int socks5_step(struct lane_connect *c)
{
    char e[160];
    for (;;) {
        if (c->state == C_S5_METHOD) {
            uint8_t method;
            bool auth = c->t.user[0] != 0;
            int n = socks5_parse_method(c->buf, c->len, auth, &method, e, sizeof e);
            if (n == SOCKS5_NEED_MORE) return 1;
            if (n < 0) goto fail;
            eat(c, (size_t)n);
            if (method == SOCKS5_METHOD_USERPASS) {
                uint8_t req[520];
                size_t rl = socks5_build_auth(req, sizeof req, c->t.user, c->t.pass);
                if (!rl || !send_all(c->fd, req, rl)) {
                    snprintf(e, sizeof e, "cannot send the login");
                    goto fail;
                }
                c->state = C_S5_AUTH;
                continue;
            }
            c->state = C_S5_REPLY;
            goto request;
        }
        if (c->state == C_S5_AUTH) {
            int n = socks5_parse_auth_reply(c->buf, c->len, e, sizeof e);
            if (n == SOCKS5_NEED_MORE) return 1;
            if (n < 0) goto fail;
            eat(c, (size_t)n);
            c->state = C_S5_REPLY;
            goto request;
        }
        if (c->state == C_S5_REPLY) {
            struct socks5_reply rep;
            int n = socks5_parse_reply(c->buf, c->len, SOCKS5_CMD_CONNECT, &rep, e, sizeof e);
            if (n == SOCKS5_NEED_MORE) return 1;
            if (n < 0) goto fail;
            eat(c, (size_t)n);
            c->state = C_CHALLENGE;
            return 0;
        }
        return 0;
    request: {
        uint8_t req[32];
        size_t rl = socks5_build_request(req, sizeof req, SOCKS5_CMD_CONNECT,
                                         (const struct sockaddr *)&c->t.to);
        if (!rl || !send_all(c->fd, req, rl)) {
            snprintf(e, sizeof e, "cannot send the CONNECT request");
            goto fail;
        }
        if (c->len) continue; /* (a proxy that answered ahead: parse it) */
        return 1;
    }
    }
fail:
    snprintf(c->err, sizeof c->err, "SOCKS5 proxy: %s", e);
    return -1;
}

static void finish(struct lane_connect *c, const char *err)
{
    ev_io_stop(c->loop, &c->io);
    ev_timer_stop(c->loop, &c->timer);
    int fd = c->fd;
    c->fd = -1;
    if (!err) {
        if (lane_peer_add_link(c->peer, fd, c->id, &c->keys, c->buf, c->len) != 0)
            err = "out of memory";
        else if (c->t.proxylen)
            lane_peer_link_proxied(c->peer, c->id);
    } else if (fd >= 0) {
        close(fd);
    }
    lane_connect_fn done = c->done;
    void *ctx = c->ctx;
    uint8_t id = c->id;
    sodium_memzero(c, sizeof *c);
    free(c);
    done(ctx, id, err);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct lane_connect *c = w->data;
    if (c->state == C_CONNECT) {
        int e = 0;
        socklen_t el = sizeof e;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
        if (e) {
            static char msg[128];
            snprintf(msg, sizeof msg, "connect: %s", strerror(e));
            finish(c, msg);
            return;
        }
        c->state = C_CHALLENGE;
        if (c->t.proxylen) { /* first the proxy: method negotiation */
            uint8_t g[4];
            size_t gl = socks5_build_greeting(g, c->t.user[0] != 0);
            if (!send_all(c->fd, g, gl)) {
                finish(c, "cannot send to the SOCKS5 proxy");
                return;
            }
            c->state = C_S5_METHOD;
        }
        ev_io_stop(loop, &c->io);
        ev_io_set(&c->io, c->fd, EV_READ);
        ev_io_start(loop, &c->io);
        return;
    }
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) {
        finish(c, n == 0 ? "the master closed the connection (no session for this link, or "
                           "an older master without the TCP lane)"
                         : strerror(errno));
        return;
    }
    c->len += (size_t)n;
    if (c->state == C_S5_METHOD || c->state == C_S5_AUTH || c->state == C_S5_REPLY) {
        int rc = socks5_step(c);
        if (rc < 0) {
            finish(c, c->err);
            return;
        }
        if (rc > 0 || c->len == 0) return;
    }
    if (c->state == C_CHALLENGE) {
        uint8_t challenge[LANE_CHALLENGE_LEN];
        int rc = link_tcp_greeting_parse(c->buf, c->len, challenge);
        if (rc < 0) {
            finish(c, "the master's port answered with something else than braid's lane");
            return;
        }
        if (rc > 0) return;
        lane_keys_derive(c->tx, c->rx, challenge, &c->keys);
        uint8_t hello[64];
        int hl = lane_hello_put(hello, sizeof hello, c->index, c->id, &c->keys.tx);
        if (hl < 0 || send(c->fd, hello, (size_t)hl, MSG_NOSIGNAL) != hl) {
            finish(c, "cannot send the HELLO");
            return;
        }
        memmove(c->buf, c->buf + LINK_TCP_GREETING_LEN, c->len - LINK_TCP_GREETING_LEN);
        c->len -= LINK_TCP_GREETING_LEN;
        c->state = C_WELCOME;
    }
    if (c->len < WELCOME_LEN) return;
    size_t blen = (size_t)c->buf[0] << 8 | c->buf[1];
    if (blen != WELCOME_LEN - LANE_FRAME_HDR ||
        lane_welcome_check(c->buf + LANE_FRAME_HDR, blen, &c->keys.rx) != 0) {
        finish(c, "the master's WELCOME does not prove the session's keys");
        return;
    }
    memmove(c->buf, c->buf + WELCOME_LEN, c->len - WELCOME_LEN);
    c->len -= WELCOME_LEN;
    finish(c, NULL);
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    finish(w->data, "no answer in time");
}

struct lane_connect *lane_connect_start(struct ev_loop *loop, struct lane_peer *peer, uint8_t id,
                                        const struct lane_connect_target *t, uint32_t index,
                                        const uint8_t tx[32], const uint8_t rx[32],
                                        lane_connect_fn done, void *ctx, char *err,
                                        size_t errlen)
{
    const struct sockaddr_storage *first = t->proxylen ? &t->proxy : &t->to;
    socklen_t firstlen = t->proxylen ? t->proxylen : t->tolen;
    int fd = socket(first->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return NULL;
    }
    if (t->ifname[0] &&
        setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, t->ifname, (socklen_t)strlen(t->ifname))) {
        snprintf(err, errlen, "cannot bind to interface %s: %s", t->ifname, strerror(errno));
        close(fd);
        return NULL;
    }
    if (t->bindlen) {
        struct sockaddr_storage b = t->bind;
        if (b.ss_family == AF_INET) ((struct sockaddr_in *)&b)->sin_port = 0;
        else if (b.ss_family == AF_INET6) ((struct sockaddr_in6 *)&b)->sin6_port = 0;
        if (bind(fd, (struct sockaddr *)&b, t->bindlen) != 0) {
            snprintf(err, errlen, "cannot bind: %s", strerror(errno));
            close(fd);
            return NULL;
        }
    }
    if (connect(fd, (const struct sockaddr *)first, firstlen) != 0 && errno != EINPROGRESS) {
        snprintf(err, errlen, "connect: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    struct lane_connect *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->loop = loop;
    c->peer = peer;
    c->id = id;
    c->fd = fd;
    c->index = index;
    memcpy(c->tx, tx, 32);
    memcpy(c->rx, rx, 32);
    c->done = done;
    c->ctx = ctx;
    c->t = *t;
    ev_io_init(&c->io, on_io, fd, EV_WRITE);
    c->io.data = c;
    ev_io_start(loop, &c->io);
    ev_timer_init(&c->timer, on_timeout, OPENING_TIMEOUT_S, 0);
    c->timer.data = c;
    ev_timer_start(loop, &c->timer);
    return c;
}

void lane_connect_cancel(struct lane_connect *c)
{
    if (!c) return;
    ev_io_stop(c->loop, &c->io);
    ev_timer_stop(c->loop, &c->timer);
    if (c->fd >= 0) close(c->fd);
    sodium_memzero(c, sizeof *c);
    free(c);
}
