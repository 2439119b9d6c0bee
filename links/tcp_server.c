/* tcp_server.c: the master's TCP listener, on the address and port of its UDP socket. It greets
 * every connection ("BRL" ‖ 1 ‖ 16 random bytes, PROTOCOL section 11) and reads its first four
 * bytes. "BRD" ‖ 1 makes a datagram connection, kept here: its frames are datagrams from a
 * stream address (common/addr.h) into the UDP server's listener, and a peer link following that
 * address sends its datagrams back as frames. Anything else goes, with the greeting's random
 * bytes, to the stream handler (the TCP lane), or is closed when there is none. */
#include "tcp_server.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/frame.h"
#include "../common/log.h"
#include "sock.h"

#define PENDING_MAX 128           /* connections greeted, first bytes not read yet */
#define DCONN_MAX 256             /* datagram connections at once (64 KiB each to read) */
#define OPENING_S 10.0            /* to send the first bytes; and a datagram connection to
                                   * bring an authenticated datagram */
#define IDLE_S 60.0               /* a datagram connection that brings nothing is closed */
#define SWEEP_S 2.0
#define UNSENT_MAX (64 * 1024)    /* a datagram waits behind at most this much in the kernel */
#define RBUF 65536

struct tcp_pending {
    struct tcp_server *t;
    int fd;
    ev_io io;
    ev_timer timer;
    uint8_t challenge[LINK_TCP_CHALLENGE_LEN];
    uint8_t first[4];
    size_t len;
    struct tcp_pending *next, *prev;
};

struct dconn {
    struct tcp_server *t;
    uint32_t id; /* slot in the low byte */
    int fd;
    ev_io rio, wio;
    struct addr_stream from;
    bool authed, dead;
    ev_tstamp opened, last_rx;
    struct frame_dec *dec;
    uint8_t *wbuf;
    size_t wlen;
    const char *why; /* why it is closing */
};

struct tcp_server {
    struct ev_loop *loop;
    int fd;
    ev_io io;
    ev_timer sweep;
    struct udp_server *udp;
    struct listener *ls; /* the UDP server's: datagrams go to its rx */
    bool dgrams;         /* datagram connections accepted */
    tcp_stream_fn handler;
    void *hctx;
    struct tcp_pending *pending;
    int npending, ndconn;
    uint32_t seq;
    struct dconn *slot[DCONN_MAX];
    struct tcp_server_stats st;
    struct log_limit lim;
    uint8_t rbuf[RBUF];
    uint8_t dg[FRAME_MAX_LEN]; /* a frame, writable, for the listener */
    struct dconn *feeding;     /* the connection whose bytes are being decoded */
};

static void pending_free(struct tcp_pending *q)
{
    struct tcp_server *t = q->t;
    ev_io_stop(t->loop, &q->io);
    ev_timer_stop(t->loop, &q->timer);
    if (q->fd >= 0) close(q->fd);
    if (q->prev) q->prev->next = q->next;
    else t->pending = q->next;
    if (q->next) q->next->prev = q->prev;
    t->npending--;
    free(q);
}

static void dconn_free(struct dconn *c)
{
    struct tcp_server *t = c->t;
    ev_io_stop(t->loop, &c->rio);
    ev_io_stop(t->loop, &c->wio);
    if (c->fd >= 0) close(c->fd);
    t->slot[c->id & (DCONN_MAX - 1)] = NULL;
    t->ndconn--;
    free(c->dec);
    free(c->wbuf);
    free(c);
}

/* Close it (freed at once, or after the frames being decoded when it is that connection). */
static void dconn_kill(struct dconn *c, const char *why)
{
    if (c->dead) return;
    c->dead = true;
    char as[ADDR_STRLEN];
    addr_str((const struct sockaddr *)&c->from, as, sizeof as);
    if (c->authed) LOGI("datagram connection from %s closed: %s", as, why);
    else log_limited(&c->t->lim, LOG_INFO, "datagram connection from %s closed: %s", as, why);
    c->t->st.dgram_closed++;
    if (c->t->feeding == c) {
        ev_io_stop(c->t->loop, &c->rio);
        ev_io_stop(c->t->loop, &c->wio);
        return;
    }
    dconn_free(c);
}

static void on_frame(void *ctx, const uint8_t *frame, size_t len)
{
    struct dconn *c = ctx;
    struct tcp_server *t = c->t;
    if (c->dead || !t->ls->rx) return;
    c->last_rx = ev_now(t->loop);
    t->st.dgram_rx++;
    memcpy(t->dg, frame, len);
    struct addr_stream from = c->from;
    t->ls->rx(t->ls->ctx, t->dg, len, (const struct sockaddr *)&from, sizeof from);
}

static void on_reject(void *ctx, size_t len)
{
    (void)len;
    dconn_kill(ctx, "a frame of length 0 (not braid's datagram framing)");
}

static bool flush(struct dconn *c)
{
    int rc = sock_frame_flush(c->fd, c->wbuf, &c->wlen);
    if (rc < 0) {
        dconn_kill(c, strerror(errno));
        return false;
    }
    if (rc) ev_io_stop(c->t->loop, &c->wio);
    else ev_io_start(c->t->loop, &c->wio);
    return true;
}

static void on_dconn(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct dconn *c = w->data;
    struct tcp_server *t = c->t;
    if (revents & EV_WRITE && !flush(c)) return;
    if (!(revents & EV_READ)) return;
    for (int i = 0; i < 8; i++) {
        ssize_t n = recv(c->fd, t->rbuf, sizeof t->rbuf, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
        if (n <= 0) {
            dconn_kill(c, n == 0 ? "the slave closed it" : strerror(errno));
            return;
        }
        t->feeding = c;
        frame_dec_feed(c->dec, t->rbuf, (size_t)n);
        t->feeding = NULL;
        if (c->dead) {
            dconn_free(c);
            return;
        }
        if ((size_t)n < sizeof t->rbuf) return;
    }
}

static void become_dconn(struct tcp_pending *q)
{
    struct tcp_server *t = q->t;
    if (!t->dgrams) {
        log_limited(&t->lim, LOG_WARN, "a datagram connection (a link of type \"socks5-tcp\") "
                    "refused: this master has tcp_links = false");
        t->st.refused++;
        pending_free(q);
        return;
    }
    int s = -1, oldest = -1;
    for (int i = 0; i < DCONN_MAX && s < 0; i++) {
        if (!t->slot[i]) s = i;
        else if (!t->slot[i]->authed &&
                 (oldest < 0 || t->slot[i]->opened < t->slot[oldest]->opened))
            oldest = i;
    }
    if (s < 0 && oldest >= 0) { /* full: the oldest that never proved anything makes room */
        dconn_kill(t->slot[oldest], "room needed for a newer connection");
        s = oldest;
    }
    struct dconn *c = s < 0 ? NULL : calloc(1, sizeof *c);
    if (c) {
        c->dec = malloc(sizeof *c->dec);
        c->wbuf = malloc(SOCK_FRAME_WBUF);
    }
    if (!c || !c->dec || !c->wbuf) {
        if (c) {
            free(c->dec);
            free(c->wbuf);
            free(c);
        }
        if (s < 0)
            log_limited(&t->lim, LOG_WARN, "a datagram connection refused: this master holds "
                        "%d authenticated ones already", DCONN_MAX);
        else
            log_limited(&t->lim, LOG_WARN, "a datagram connection refused: out of memory");
        t->st.refused++;
        pending_free(q);
        return;
    }
    struct sockaddr_storage peer;
    socklen_t pl = sizeof peer;
    memset(&peer, 0, sizeof peer);
    getpeername(q->fd, (struct sockaddr *)&peer, &pl);
    c->from.family = ADDR_FAMILY_STREAM;
    if (peer.ss_family == AF_INET6) {
        memcpy(&c->from.peer, &peer, sizeof c->from.peer);
    } else if (peer.ss_family == AF_INET) {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)&peer;
        c->from.peer.sin6_family = AF_INET6;
        c->from.peer.sin6_port = a4->sin_port;
        c->from.peer.sin6_addr.s6_addr[10] = c->from.peer.sin6_addr.s6_addr[11] = 0xff;
        memcpy(&c->from.peer.sin6_addr.s6_addr[12], &a4->sin_addr, 4);
    }
    t->seq++;
    c->id = t->seq << 8 | (uint32_t)s;
    c->from.conn = c->id;
    c->t = t;
    c->fd = q->fd;
    q->fd = -1;
    pending_free(q);
    t->slot[s] = c;
    t->ndconn++;
    t->st.dgram_opened++;
    c->opened = c->last_rx = ev_now(t->loop);
    frame_dec_init(c->dec, FRAME_MAX_LEN, on_frame, on_reject, c);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ev_io_init(&c->rio, on_dconn, c->fd, EV_READ);
    ev_io_init(&c->wio, on_dconn, c->fd, EV_WRITE);
    c->rio.data = c->wio.data = c;
    ev_io_start(t->loop, &c->rio);
}

static void on_pending(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct tcp_pending *q = w->data;
    struct tcp_server *t = q->t;
    ssize_t n = recv(q->fd, q->first + q->len, sizeof q->first - q->len, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) {
        t->st.refused++;
        log_limited(&t->lim, LOG_INFO, "a TCP connection closed before it said what it is: %s",
                    n == 0 ? "closed" : strerror(errno));
        pending_free(q);
        return;
    }
    q->len += (size_t)n;
    if (q->len < sizeof q->first) return;
    if (memcmp(q->first, LINK_TCP_DGRAM_MAGIC, 4) == 0) {
        become_dconn(q);
        return;
    }
    if (!t->handler) {
        t->st.refused++;
        log_limited(&t->lim, LOG_WARN, "a TCP lane connection refused: this master's tcp_lane "
                    "is \"off\" (set it to \"auto\" on both ends, or \"off\" on the slave)");
        pending_free(q);
        return;
    }
    int fd = q->fd;
    q->fd = -1;
    uint8_t challenge[LINK_TCP_CHALLENGE_LEN], first[4];
    memcpy(challenge, q->challenge, sizeof challenge);
    memcpy(first, q->first, sizeof first);
    pending_free(q);
    t->st.handed++;
    t->handler(t->hctx, fd, challenge, first, sizeof first);
}

static void on_pending_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct tcp_pending *q = w->data;
    q->t->st.refused++;
    log_limited(&q->t->lim, LOG_INFO, "a TCP connection refused: it said nothing in %.0f s",
                OPENING_S);
    pending_free(q);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct tcp_server *t = w->data;
    for (int i = 0; i < 16; i++) {
        int fd = accept4(t->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        if (t->npending >= PENDING_MAX) {
            close(fd);
            t->st.refused++;
            log_limited(&t->lim, LOG_WARN, "%d TCP connections are opening at once: refused "
                        "another", PENDING_MAX);
            continue;
        }
        struct tcp_pending *q = calloc(1, sizeof *q);
        if (!q) {
            close(fd);
            continue;
        }
        q->t = t;
        q->fd = fd;
        q->next = t->pending;
        if (t->pending) t->pending->prev = q;
        t->pending = q;
        t->npending++;
        t->st.accepted++;
        uint8_t g[LINK_TCP_GREETING_LEN];
        randombytes_buf(q->challenge, sizeof q->challenge);
        link_tcp_greeting_put(g, q->challenge);
        if (send(fd, g, sizeof g, MSG_NOSIGNAL) != (ssize_t)sizeof g) {
            t->st.refused++;
            pending_free(q);
            continue;
        }
        ev_io_init(&q->io, on_pending, fd, EV_READ);
        q->io.data = q;
        ev_io_start(loop, &q->io);
        ev_timer_init(&q->timer, on_pending_timeout, OPENING_S, 0);
        q->timer.data = q;
        ev_timer_start(loop, &q->timer);
    }
}

static void on_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct tcp_server *t = w->data;
    ev_tstamp now = ev_now(loop);
    for (int i = 0; i < DCONN_MAX; i++) {
        struct dconn *c = t->slot[i];
        if (!c) continue;
        if (!c->authed && now - c->opened > OPENING_S)
            dconn_kill(c, "no authenticated datagram in 10 s");
        else if (now - c->last_rx > IDLE_S)
            dconn_kill(c, "nothing from the slave for 60 s");
    }
}

static int send_dgram(void *ctx, uint32_t conn, const uint8_t *buf, size_t len);
static void dgram_seen(void *ctx, uint32_t conn);

struct tcp_server *tcp_server_new(struct ev_loop *loop, struct udp_server *udp, bool dgrams,
                                  char *err, size_t errlen)
{
    const struct addr *a = udp_server_local(udp);
    char as[ADDR_STRLEN];
    addr_str((const struct sockaddr *)&a->ss, as, sizeof as);
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a TCP socket for %s: %s", as, strerror(errno));
        return NULL;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (a->ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &(int){0}, sizeof(int));
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) != 0 || listen(fd, 64) != 0) {
        snprintf(err, errlen, "cannot listen on TCP %s: %s", as, strerror(errno));
        close(fd);
        return NULL;
    }
    struct tcp_server *t = calloc(1, sizeof *t);
    if (!t) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->loop = loop;
    t->fd = fd;
    t->udp = udp;
    t->ls = udp_server_listener(udp);
    t->dgrams = dgrams;
    ev_io_init(&t->io, on_accept, fd, EV_READ);
    t->io.data = t;
    ev_io_start(loop, &t->io);
    ev_timer_init(&t->sweep, on_sweep, SWEEP_S, SWEEP_S);
    t->sweep.data = t;
    ev_timer_start(loop, &t->sweep);
    udp_server_set_carrier(udp, &(struct stream_carrier){send_dgram, dgram_seen, t});
    return t;
}

void tcp_server_free(struct tcp_server *t)
{
    if (!t) return;
    udp_server_set_carrier(t->udp, NULL); /* (its links send nothing on connections from now) */
    while (t->pending) pending_free(t->pending);
    for (int i = 0; i < DCONN_MAX; i++)
        if (t->slot[i]) dconn_free(t->slot[i]);
    ev_io_stop(t->loop, &t->io);
    ev_timer_stop(t->loop, &t->sweep);
    close(t->fd);
    free(t);
}

int tcp_server_fd(const struct tcp_server *t)
{
    return t->fd;
}

void tcp_server_set_stream_handler(struct tcp_server *t, tcp_stream_fn fn, void *ctx)
{
    t->handler = fn;
    t->hctx = ctx;
}

const struct tcp_server_stats *tcp_server_stats(const struct tcp_server *t)
{
    return &t->st;
}

static struct dconn *find(struct tcp_server *t, uint32_t id)
{
    struct dconn *c = t ? t->slot[id & (DCONN_MAX - 1)] : NULL;
    return c && c->id == id && !c->dead ? c : NULL;
}

/* The UDP server's stream carrier: a datagram on connection conn (0, or -1: gone or full, the
 * datagram dropped); an authenticated datagram came on it. */
static int send_dgram(void *ctx, uint32_t conn, const uint8_t *buf, size_t len)
{
    struct tcp_server *t = ctx;
    struct dconn *c = find(t, conn);
    if (!c) return -1;
    int rc = sock_frame_send(c->fd, c->wbuf, &c->wlen, SOCK_FRAME_WBUF, UNSENT_MAX, buf, len);
    if (rc < 0) {
        dconn_kill(c, strerror(errno));
        return -1;
    }
    if (rc == 0) { /* like a full UDP socket: late is worse than lost */
        t->st.dgram_dropped++;
        return -1;
    }
    if (c->wlen) ev_io_start(t->loop, &c->wio);
    t->st.dgram_tx++;
    return 0;
}

static void dgram_seen(void *ctx, uint32_t conn)
{
    struct tcp_server *t = ctx;
    struct dconn *c = find(t, conn);
    if (c && !c->authed) {
        c->authed = true;
        char as[ADDR_STRLEN];
        LOGI("datagram connection from %s: authenticated",
             addr_str((const struct sockaddr *)&c->from, as, sizeof as));
    }
}
