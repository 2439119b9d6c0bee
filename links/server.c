/* server.c: the master's UDP socket and the per-link-id peer links that send through it.
 * Peer links follow the source address of the link's latest authenticated datagram. */
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/log.h"
#include "sock.h"

#define RX_BATCH 16
#define RX_BUFSZ 65536
#define RX_MAX_PER_EVENT 256

struct udp_server {
    struct ev_loop *loop;
    int fd;
    ev_io rio;
    struct addr local;
    udp_server_rx_fn rx;
    void *ctx;
    uint8_t *bufs; /* RX_BATCH * RX_BUFSZ */
    struct mmsghdr msgs[RX_BATCH];
    struct iovec iov[RX_BATCH];
    struct sockaddr_storage from[RX_BATCH];
    struct log_limit lim_err;
};

struct peer_link {
    struct link base;
    struct udp_server *s;
    bool has_addr;
    struct addr peer;
};

static void server_read(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct udp_server *s = w->data;
    int total = 0;
    while (total < RX_MAX_PER_EVENT) {
        for (int i = 0; i < RX_BATCH; i++) {
            s->iov[i].iov_base = s->bufs + (size_t)i * RX_BUFSZ;
            s->iov[i].iov_len = RX_BUFSZ;
            memset(&s->msgs[i].msg_hdr, 0, sizeof s->msgs[i].msg_hdr);
            s->msgs[i].msg_hdr.msg_iov = &s->iov[i];
            s->msgs[i].msg_hdr.msg_iovlen = 1;
            s->msgs[i].msg_hdr.msg_name = &s->from[i];
            s->msgs[i].msg_hdr.msg_namelen = sizeof s->from[i];
        }
        int n = recvmmsg(s->fd, s->msgs, RX_BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                log_limited(&s->lim_err, LOG_WARN, "master socket: receive error: %s",
                            strerror(errno));
            return;
        }
        for (int i = 0; i < n; i++) {
            /* A datagram larger than the buffer cannot be valid; MSG_TRUNC marks it. */
            if (s->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) continue;
            s->rx(s->ctx, s->iov[i].iov_base, s->msgs[i].msg_len,
                  (struct sockaddr *)&s->from[i], s->msgs[i].msg_hdr.msg_namelen);
        }
        total += n;
        if (n < RX_BATCH) return;
    }
}

struct udp_server *udp_server_new(struct ev_loop *loop, const struct addr *listen, int bufsize,
                                  udp_server_rx_fn rx, void *ctx, char *err, size_t errlen)
{
    char as[ADDR_STRLEN];
    addr_str((const struct sockaddr *)&listen->ss, as, sizeof as);
    int fd = socket(listen->ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create UDP socket for %s: %s", as, strerror(errno));
        return NULL;
    }
    sock_set_buffers(fd, bufsize);
    if (bind(fd, (const struct sockaddr *)&listen->ss, listen->len) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot listen on UDP %s: %s%s", as, strerror(e),
                 e == EADDRINUSE    ? " (another program, or another braid-master, uses it)"
                 : e == EADDRNOTAVAIL ? " (this host has no such address)"
                                      : "");
        close(fd);
        return NULL;
    }
    struct udp_server *s = calloc(1, sizeof *s);
    uint8_t *bufs = malloc((size_t)RX_BATCH * RX_BUFSZ);
    if (!s || !bufs) {
        free(s);
        free(bufs);
        close(fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->loop = loop;
    s->fd = fd;
    s->bufs = bufs;
    s->rx = rx;
    s->ctx = ctx;
    s->local.len = sizeof s->local.ss;
    getsockname(fd, (struct sockaddr *)&s->local.ss, &s->local.len);
    ev_io_init(&s->rio, server_read, fd, EV_READ);
    s->rio.data = s;
    ev_io_start(loop, &s->rio);
    return s;
}

void udp_server_free(struct udp_server *s)
{
    if (!s) return;
    ev_io_stop(s->loop, &s->rio);
    close(s->fd);
    free(s->bufs);
    free(s);
}

const struct addr *udp_server_local(const struct udp_server *s)
{
    return &s->local;
}

int udp_server_sendto(struct udp_server *s, const uint8_t *buf, size_t len,
                      const struct sockaddr *to, socklen_t tolen)
{
    if (sendto(s->fd, buf, len, 0, to, tolen) < 0) {
        if (errno != EAGAIN && errno != ENOBUFS) {
            char as[ADDR_STRLEN];
            log_limited(&s->lim_err, LOG_WARN, "master socket: send to %s failed: %s",
                        addr_str(to, as, sizeof as), strerror(errno));
        }
        return -1;
    }
    return 0;
}

static int peer_send(struct link *l, const uint8_t *buf, size_t len)
{
    struct peer_link *p = (struct peer_link *)l;
    if (!p->has_addr) {
        l->c.tx_dropped++;
        return 0;
    }
    if (sendto(p->s->fd, buf, len, 0, (struct sockaddr *)&p->peer.ss, p->peer.len) < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
            l->c.tx_dropped++;
        else
            l->c.tx_errors++;
        /* The shared socket stays usable: never a reason to take the link down. */
        return 0;
    }
    l->c.tx_packets++;
    l->c.tx_bytes += len;
    return 0;
}

static void peer_seen(struct link *l, const struct sockaddr *from, socklen_t fromlen)
{
    struct peer_link *p = (struct peer_link *)l;
    if (p->has_addr && addr_equal((struct sockaddr *)&p->peer.ss, from)) return;
    char was[ADDR_STRLEN] = "none", now[ADDR_STRLEN];
    if (p->has_addr) addr_str((struct sockaddr *)&p->peer.ss, was, sizeof was);
    addr_str(from, now, sizeof now);
    if (fromlen > sizeof p->peer.ss) return;
    memcpy(&p->peer.ss, from, fromlen);
    p->peer.len = fromlen;
    if (p->has_addr)
        LOGI("link %u: slave address changed %s -> %s (following it)", l->id, was, now);
    else
        LOGI("link %u: slave address %s", l->id, now);
    p->has_addr = true;
}

static void peer_describe(const struct link *l, char *buf, size_t len)
{
    const struct peer_link *p = (const struct peer_link *)l;
    char as[ADDR_STRLEN] = "(no address yet)";
    if (p->has_addr) addr_str((const struct sockaddr *)&p->peer.ss, as, sizeof as);
    snprintf(buf, len, "peer %s", as);
}

static void peer_destroy(struct link *l)
{
    free(l);
}

static const struct link_ops peer_ops = {
    .kind = "peer",
    .send = peer_send,
    .peer_seen = peer_seen,
    .describe = peer_describe,
    .destroy = peer_destroy,
};

struct link *udp_server_peer_new(struct udp_server *s, uint8_t id)
{
    struct peer_link *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->base.ops = &peer_ops;
    p->base.id = id;
    snprintf(p->base.name, sizeof p->base.name, "link%u", id);
    p->base.up = true;
    p->s = s;
    return &p->base;
}
