/* notun.c: the notun tunnel device: IP packets as length-prefixed frames over one TCP client.
 * No root needed; used by the demo and the tests. One client at a time; all buffers bounded. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"
#include "../common/frame.h"
#include "tundev.h"

const char tundev_kind[] = "notun";

#define NOTUN_DEFAULT_QUEUE (4u << 20)
#define NOTUN_RBUF 65536
#define NOTUN_READS_PER_CB 16
#define NOTUN_ACCEPT_RETRY_S 1.0

struct tundev {
    struct ev_loop *loop;
    tundev_rx_fn rx;
    void *ctx;
    unsigned mtu;
    size_t max_queue;
    struct addr listen_addr;
    char listen_str[ADDR_STRLEN];
    int lfd;
    ev_io accept_w;
    ev_timer accept_retry;
    /* the connected client, cfd -1 when none */
    int cfd;
    char client_str[ADDR_STRLEN];
    ev_io read_w, write_w;
    /* output queue: frames in q[qoff .. qoff+qlen); the head frame (body head_len bytes) may be
     * partly sent and has head_rem bytes left; qpkts frames are queued in all */
    uint8_t *q;
    size_t qcap, qoff, qlen, head_len, head_rem, qpkts;
    struct tundev_stats st;
    struct log_limit lim_reject, lim_nocl, lim_full, lim_refuse, lim_accept, lim_bad;
    uint8_t rbuf[NOTUN_RBUF];
    struct frame_dec dec; /* last: large */
};

static void on_frame(void *ctx, const uint8_t *pkt, size_t len)
{
    struct tundev *t = ctx;
    t->st.rx_packets++;
    t->st.rx_bytes += len;
    t->rx(t->ctx, pkt, len);
}

static void on_reject(void *ctx, size_t len)
{
    struct tundev *t = ctx;
    t->st.rx_rejected++;
    log_limited(&t->lim_reject, LOG_WARN,
                "notun: frame client %s sent a frame of %zu bytes; frames must hold one packet of "
                "1..%u bytes (the tunnel MTU): frame skipped",
                t->client_str, len, t->mtu);
}

static void discard_queue(struct tundev *t)
{
    t->st.tx_dropped += t->qpkts;
    free(t->q);
    t->q = NULL;
    t->qcap = t->qoff = t->qlen = t->head_len = t->head_rem = t->qpkts = 0;
}

static void drop_client(struct tundev *t, const char *why)
{
    if (t->cfd < 0) return;
    LOGI("notun: frame client %s %s%s; %zu queued packet(s) discarded; waiting for the next "
         "client on %s",
         t->client_str, why, frame_dec_at_boundary(&t->dec) ? "" : " in the middle of a frame",
         t->qpkts, t->listen_str);
    ev_io_stop(t->loop, &t->read_w);
    ev_io_stop(t->loop, &t->write_w);
    close(t->cfd);
    t->cfd = -1;
    snprintf(t->client_str, sizeof t->client_str, "none");
    frame_dec_reset(&t->dec);
    discard_queue(t);
}

/* Read the client's bytes, at most reads times; a short read ends it unless to_end (then only
 * EAGAIN does). The client is dropped at its end of stream or an error. */
static void read_client(struct tundev *t, int reads, bool to_end)
{
    for (int i = 0; i < reads && t->cfd >= 0; i++) {
        ssize_t n = read(t->cfd, t->rbuf, sizeof t->rbuf);
        if (n > 0) {
            frame_dec_feed(&t->dec, t->rbuf, (size_t)n);
            if (!to_end && (size_t)n < sizeof t->rbuf) break;
        } else if (n == 0) {
            drop_client(t, "disconnected");
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else {
            char why[128];
            snprintf(why, sizeof why, "failed: read: %s", strerror(errno));
            drop_client(t, why);
        }
    }
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    read_client(w->data, NOTUN_READS_PER_CB, false);
}

/* n bytes of the queue were sent: advance, counting the frames whose last byte went out. */
static void queue_advance(struct tundev *t, size_t n)
{
    while (n > 0) {
        size_t step = n < t->head_rem ? n : t->head_rem;
        t->qoff += step;
        t->qlen -= step;
        t->head_rem -= step;
        n -= step;
        if (t->head_rem == 0) {
            t->st.tx_packets++;
            t->st.tx_bytes += t->head_len;
            t->qpkts--;
            t->head_len = t->qlen > 0 ? get_be16(t->q + t->qoff) : 0;
            t->head_rem = t->qlen > 0 ? FRAME_HDR_LEN + t->head_len : 0;
        }
    }
    if (t->qlen == 0) t->qoff = 0;
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct tundev *t = w->data;
    while (t->qlen > 0) {
        ssize_t n = send(t->cfd, t->q + t->qoff, t->qlen, MSG_NOSIGNAL);
        if (n > 0) {
            queue_advance(t, (size_t)n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        } else {
            char why[128];
            snprintf(why, sizeof why, "failed: send: %s", n < 0 ? strerror(errno) : "no progress");
            drop_client(t, why);
            return;
        }
    }
    ev_io_stop(loop, &t->write_w);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct tundev *t = w->data;
    for (int i = 0; i < 8; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(t->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            log_limited(&t->lim_accept, LOG_WARN,
                        "notun: accept on %s failed: %s; retrying in %.0f s (if this is \"Too "
                        "many open files\", raise the limit with ulimit -n)",
                        t->listen_str, strerror(errno), NOTUN_ACCEPT_RETRY_S);
            ev_io_stop(loop, &t->accept_w);
            ev_timer_set(&t->accept_retry, NOTUN_ACCEPT_RETRY_S, 0.);
            ev_timer_start(loop, &t->accept_retry);
            return;
        }
        char peer[ADDR_STRLEN];
        addr_str((struct sockaddr *)&ss, peer, sizeof peer);
        /* The client held may have closed a moment ago, its end of stream not read yet (a
         * client that reconnects at once): take what it sent, and let it go if it is gone. */
        if (t->cfd >= 0) read_client(t, NOTUN_READS_PER_CB, true);
        if (t->cfd >= 0) {
            log_limited(&t->lim_refuse, LOG_WARN,
                        "notun: refused frame client %s: %s is already connected to %s (one "
                        "client at a time)",
                        peer, t->client_str, t->listen_str);
            close(fd);
            continue;
        }
        int one = 1;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
            LOGW("notun: TCP_NODELAY on client %s: %s (continuing)", peer, strerror(errno));
        t->cfd = fd;
        snprintf(t->client_str, sizeof t->client_str, "%s", peer);
        frame_dec_reset(&t->dec);
        ev_io_set(&t->read_w, fd, EV_READ);
        ev_io_set(&t->write_w, fd, EV_WRITE);
        ev_io_start(loop, &t->read_w);
        LOGI("notun: frame client %s connected to %s", peer, t->listen_str);
    }
}

static void accept_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct tundev *t = w->data;
    ev_io_start(loop, &t->accept_w);
}

struct tundev *tundev_open(struct ev_loop *loop, const struct tundev_config *cfg, tundev_rx_fn rx,
                           void *ctx, char *err, size_t errlen)
{
    char where[ADDR_STRLEN];
    if (!cfg || !rx) {
        snprintf(err, errlen, "notun: internal error: no configuration or packet callback");
        return NULL;
    }
    if (cfg->mtu == 0 || cfg->mtu > FRAME_MAX_LEN) {
        snprintf(err, errlen, "notun: tunnel mtu %u is out of range: use 1..65535", cfg->mtu);
        return NULL;
    }
    const struct sockaddr *sa = (const struct sockaddr *)&cfg->listen.ss;
    if (cfg->listen.len == 0 || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)) {
        snprintf(err, errlen,
                 "notun: no listen address for the frame client: set notun_listen, e.g. "
                 "\"127.0.0.1:7100\"");
        return NULL;
    }
    addr_str(sa, where, sizeof where);
    struct tundev *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "notun: out of memory");
        return NULL;
    }
    t->loop = loop;
    t->rx = rx;
    t->ctx = ctx;
    t->mtu = cfg->mtu;
    t->max_queue = cfg->max_queue ? cfg->max_queue : NOTUN_DEFAULT_QUEUE;
    if (t->max_queue < FRAME_HDR_LEN + FRAME_MAX_LEN) t->max_queue = FRAME_HDR_LEN + FRAME_MAX_LEN;
    t->cfd = -1;
    snprintf(t->client_str, sizeof t->client_str, "none");
    frame_dec_init(&t->dec, cfg->mtu, on_frame, on_reject, t);

    t->lfd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (t->lfd < 0) {
        snprintf(err, errlen, "notun: cannot create a TCP socket for %s: %s", where,
                 strerror(errno));
        free(t);
        return NULL;
    }
    int one = 1;
    setsockopt(t->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(t->lfd, sa, cfg->listen.len) < 0) {
        int e = errno;
        const char *hint = e == EADDRINUSE      ? ": another program uses this port; stop it or "
                                                  "choose another notun_listen port"
                           : e == EADDRNOTAVAIL ? ": this host has no such address; use one of "
                                                  "its addresses, e.g. 127.0.0.1"
                           : e == EACCES        ? ": ports below 1024 need root; use a higher port"
                                                : "";
        snprintf(err, errlen, "notun: cannot listen on %s: %s%s", where, strerror(e), hint);
        close(t->lfd);
        free(t);
        return NULL;
    }
    if (listen(t->lfd, 4) < 0) {
        snprintf(err, errlen, "notun: cannot listen on %s: %s", where, strerror(errno));
        close(t->lfd);
        free(t);
        return NULL;
    }
    t->listen_addr.len = sizeof t->listen_addr.ss;
    if (getsockname(t->lfd, (struct sockaddr *)&t->listen_addr.ss, &t->listen_addr.len) < 0) {
        memcpy(&t->listen_addr, &cfg->listen, sizeof t->listen_addr);
    }
    addr_str((struct sockaddr *)&t->listen_addr.ss, t->listen_str, sizeof t->listen_str);

    ev_io_init(&t->accept_w, accept_cb, t->lfd, EV_READ);
    t->accept_w.data = t;
    ev_timer_init(&t->accept_retry, accept_retry_cb, NOTUN_ACCEPT_RETRY_S, 0.);
    t->accept_retry.data = t;
    ev_io_init(&t->read_w, read_cb, -1, EV_READ);
    t->read_w.data = t;
    ev_io_init(&t->write_w, write_cb, -1, EV_WRITE);
    t->write_w.data = t;
    ev_io_start(loop, &t->accept_w);
    LOGI("notun: waiting for a frame client on %s (mtu %u)", t->listen_str, t->mtu);
    return t;
}

/* Make room for need more bytes at the end of the queue (need <= max_queue - qlen). */
static int queue_reserve(struct tundev *t, size_t need)
{
    if (t->qoff + t->qlen + need <= t->qcap) return 0;
    if (t->qoff > 0) {
        memmove(t->q, t->q + t->qoff, t->qlen);
        t->qoff = 0;
        if (t->qlen + need <= t->qcap) return 0;
    }
    size_t cap = t->qcap ? t->qcap : 65536;
    while (cap < t->qlen + need)
        cap *= 2;
    if (cap > t->max_queue) cap = t->max_queue;
    uint8_t *nq = realloc(t->q, cap);
    if (!nq) return -1;
    t->q = nq;
    t->qcap = cap;
    return 0;
}

int tundev_write(struct tundev *t, const uint8_t *pkt, size_t len)
{
    if (len == 0 || len > FRAME_MAX_LEN) {
        t->st.tx_dropped++;
        log_limited(&t->lim_bad, LOG_WARN,
                    "notun: cannot frame a packet of %zu bytes (frames hold 1..65535): dropped",
                    len);
        return -1;
    }
    if (t->cfd < 0) {
        t->st.tx_dropped++;
        log_limited(&t->lim_nocl, LOG_INFO,
                    "notun: no frame client connected to %s: dropping packets toward the host",
                    t->listen_str);
        return -1;
    }
    size_t need = FRAME_HDR_LEN + len;
    if (t->qlen + need > t->max_queue || queue_reserve(t, need) < 0) {
        t->st.tx_dropped++;
        log_limited(&t->lim_full, LOG_WARN,
                    "notun: frame client %s is not reading fast enough (%zu bytes queued, limit "
                    "%zu): dropping packets",
                    t->client_str, t->qlen, t->max_queue);
        return -1;
    }
    uint8_t *p = t->q + t->qoff + t->qlen;
    frame_put_header(p, len);
    memcpy(p + FRAME_HDR_LEN, pkt, len);
    if (t->qlen == 0) {
        t->head_len = len;
        t->head_rem = need;
    }
    t->qlen += need;
    t->qpkts++;
    if (!ev_is_active(&t->write_w)) ev_io_start(t->loop, &t->write_w);
    return 0;
}

const struct tundev_stats *tundev_stats(const struct tundev *t)
{
    return &t->st;
}

void tundev_describe(const struct tundev *t, char *buf, size_t len)
{
    if (t->cfd >= 0)
        snprintf(buf, len, "notun %s (client %s)", t->listen_str, t->client_str);
    else
        snprintf(buf, len, "notun %s (no client)", t->listen_str);
}

const char *tundev_ifname(const struct tundev *t)
{
    (void)t;
    return "";
}

const struct addr *tundev_listen_addr(const struct tundev *t)
{
    return &t->listen_addr;
}

void tundev_close(struct tundev *t)
{
    if (!t) return;
    ev_io_stop(t->loop, &t->read_w);
    ev_io_stop(t->loop, &t->write_w);
    ev_io_stop(t->loop, &t->accept_w);
    ev_timer_stop(t->loop, &t->accept_retry);
    if (t->cfd >= 0) close(t->cfd);
    close(t->lfd);
    free(t->q);
    free(t);
}
