/* server.c: the master's UDP socket and the per-link-id peer links that send through it.
 * Peer links follow the source address of the link's latest authenticated datagram, and (on a
 * socket bound to the wildcard address) answer from the address that datagram reached. */
#include "server.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
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

/* The local address a datagram reached (IP_PKTINFO / IPV6_PKTINFO), to answer from it: a
 * master listening on 0.0.0.0 or :: with several addresses must not let routing pick another
 * source, or the slave's connected socket drops the answer. */
struct local_addr {
    bool valid;
    bool v6; /* the address below is IPv6 (or v4-mapped on an IPv6 socket) */
    struct in_addr a4;
    struct in6_addr a6;
    int ifindex; /* IPv6 link-local only; 0 = let routing choose */
};

/* Room for one IPv6 or IPv4 packet-info message. */
#define CTL_LEN (CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo)))

struct udp_server {
    struct listener ls; /* first: the link layer's view of it */
    struct ev_loop *loop;
    int fd;
    ev_io rio;
    struct addr local;
    bool pktinfo; /* bound to a wildcard address: datagrams carry their local address */
    bool v6sock;
    uint8_t *bufs; /* RX_BATCH * RX_BUFSZ */
    struct mmsghdr msgs[RX_BATCH];
    struct iovec iov[RX_BATCH];
    struct sockaddr_storage from[RX_BATCH];
    union {
        char buf[CTL_LEN];
        struct cmsghdr align;
    } ctl[RX_BATCH];
    /* during an rx upcall: where the datagram being handled arrived (peer_seen and
     * the reply op read it) */
    struct local_addr cur;
    struct log_limit lim_err;
    struct stream_carrier carrier; /* datagram connections over TCP (send NULL: none) */
};

struct peer_link {
    struct link base;
    struct udp_server *s;
    bool has_addr;
    struct addr peer;
    struct local_addr local; /* answer from here (when valid) */
};

/* The destination address of a received datagram, from its control messages. */
static void local_from_msg(const struct udp_server *s, struct msghdr *mh, struct local_addr *la)
{
    memset(la, 0, sizeof *la);
    if (mh->msg_flags & MSG_CTRUNC) return;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO &&
            c->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo))) {
            struct in6_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof pi);
            if (IN6_IS_ADDR_MULTICAST(&pi.ipi6_addr)) return;
            la->valid = true;
            la->v6 = true;
            la->a6 = pi.ipi6_addr;
            la->ifindex = IN6_IS_ADDR_LINKLOCAL(&pi.ipi6_addr) ? (int)pi.ipi6_ifindex : 0;
            return;
        }
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO &&
            c->cmsg_len >= CMSG_LEN(sizeof(struct in_pktinfo))) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof pi);
            uint32_t a = ntohl(pi.ipi_addr.s_addr);
            if ((a >> 28) == 0xe || a == 0xffffffffu) return; /* multicast, broadcast */
            la->valid = true;
            if (s->v6sock) { /* an IPv4 datagram on a dual-stack socket: answer v4-mapped */
                la->v6 = true;
                memset(&la->a6, 0, sizeof la->a6);
                la->a6.s6_addr[10] = la->a6.s6_addr[11] = 0xff;
                memcpy(&la->a6.s6_addr[12], &pi.ipi_addr, 4);
            } else {
                la->a4 = pi.ipi_addr;
            }
            /* no return: an IPV6_PKTINFO later in the list is preferred on an IPv6 socket */
        }
    }
}

/* sendto, from the given local address when there is one. */
static ssize_t send_from(struct udp_server *s, const uint8_t *buf, size_t len,
                         const struct sockaddr *to, socklen_t tolen, const struct local_addr *la)
{
    if (!la || !la->valid) return sendto(s->fd, buf, len, 0, to, tolen);
    union {
        char buf[CTL_LEN];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr mh = {.msg_name = (void *)to, .msg_namelen = tolen, .msg_iov = &iov,
                        .msg_iovlen = 1, .msg_control = ctl.buf};
    struct cmsghdr *c = (struct cmsghdr *)ctl.buf;
    if (la->v6) {
        struct in6_pktinfo pi = {.ipi6_addr = la->a6, .ipi6_ifindex = (unsigned)la->ifindex};
        c->cmsg_level = IPPROTO_IPV6;
        c->cmsg_type = IPV6_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof pi);
        memcpy(CMSG_DATA(c), &pi, sizeof pi);
        mh.msg_controllen = CMSG_SPACE(sizeof pi);
    } else {
        struct in_pktinfo pi = {.ipi_spec_dst = la->a4};
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof pi);
        memcpy(CMSG_DATA(c), &pi, sizeof pi);
        mh.msg_controllen = CMSG_SPACE(sizeof pi);
    }
    ssize_t r = sendmsg(s->fd, &mh, 0);
    if (r < 0 && (errno == EINVAL || errno == EADDRNOTAVAIL)) /* the address is gone */
        r = sendto(s->fd, buf, len, 0, to, tolen);
    return r;
}

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
            if (s->pktinfo) {
                s->msgs[i].msg_hdr.msg_control = s->ctl[i].buf;
                s->msgs[i].msg_hdr.msg_controllen = sizeof s->ctl[i].buf;
            }
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
            if (!s->ls.rx) continue; /* no owner yet */
            if (s->pktinfo) local_from_msg(s, &s->msgs[i].msg_hdr, &s->cur);
            s->ls.rx(s->ls.ctx, s->iov[i].iov_base, s->msgs[i].msg_len,
                     (struct sockaddr *)&s->from[i], s->msgs[i].msg_hdr.msg_namelen);
            s->cur.valid = false;
        }
        total += n;
        if (n < RX_BATCH) return;
    }
}

static const struct listener_ops server_ops;

struct udp_server *udp_server_new(struct ev_loop *loop, const struct addr *listen, int bufsize,
                                  char *err, size_t errlen)
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
    s->ls.ops = &server_ops;
    s->local.len = sizeof s->local.ss;
    getsockname(fd, (struct sockaddr *)&s->local.ss, &s->local.len);
    s->v6sock = listen->ss.ss_family == AF_INET6;
    if (addr_is_unspecified((const struct sockaddr *)&listen->ss)) {
        int on = 1;
        int rc = s->v6sock ? setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on)
                           : setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on);
        if (s->v6sock) setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on); /* v4 on [::] */
        if (rc == 0)
            s->pktinfo = true;
        else
            LOGW("master socket on %s: cannot learn datagrams' local addresses (%s): answers "
                 "leave from the address routing picks, which a slave that reached another "
                 "address of this host drops; listen on one address instead",
                 as, strerror(errno));
    }
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

void udp_server_set_carrier(struct udp_server *s, const struct stream_carrier *c)
{
    if (c)
        s->carrier = *c;
    else
        memset(&s->carrier, 0, sizeof s->carrier);
}

static int stream_send(struct udp_server *s, uint32_t conn, const uint8_t *buf, size_t len)
{
    return s->carrier.send ? s->carrier.send(s->carrier.ctx, conn, buf, len) : -1;
}

static uint32_t stream_conn(const struct sockaddr *a)
{
    return ((const struct addr_stream *)a)->conn;
}

static int server_reply(struct listener *ls, const uint8_t *buf, size_t len,
                        const struct sockaddr *to, socklen_t tolen)
{
    struct udp_server *s = (struct udp_server *)ls;
    if (to->sa_family == ADDR_FAMILY_STREAM)
        return stream_send(s, stream_conn(to), buf, len);
    if (send_from(s, buf, len, to, tolen, &s->cur) < 0) {
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
    if (p->peer.ss.ss_family == ADDR_FAMILY_STREAM) { /* a datagram connection */
        if (stream_send(p->s, stream_conn((struct sockaddr *)&p->peer.ss), buf, len) < 0)
            l->c.tx_dropped++;
        else {
            l->c.tx_packets++;
            l->c.tx_bytes += len;
        }
        return 0;
    }
    if (send_from(p->s, buf, len, (struct sockaddr *)&p->peer.ss, p->peer.len, &p->local) < 0) {
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
    if (from->sa_family == ADDR_FAMILY_STREAM && p->s->carrier.seen)
        p->s->carrier.seen(p->s->carrier.ctx, stream_conn(from));
    if (p->s->cur.valid) p->local = p->s->cur; /* answer from where the slave sent to */
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
    char as[ADDR_STRLEN] = "(no address yet)", ls[INET6_ADDRSTRLEN + 8] = "";
    if (p->has_addr) addr_str((const struct sockaddr *)&p->peer.ss, as, sizeof as);
    if (p->local.valid) {
        char ip[INET6_ADDRSTRLEN];
        if (p->local.v6) inet_ntop(AF_INET6, &p->local.a6, ip, sizeof ip);
        else inet_ntop(AF_INET, &p->local.a4, ip, sizeof ip);
        snprintf(ls, sizeof ls, " to %s", ip);
    }
    snprintf(buf, len, "peer %s%s", as, ls);
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

static struct link *server_peer_new(struct listener *ls, uint8_t id)
{
    struct udp_server *s = (struct udp_server *)ls;
    struct peer_link *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->base.ops = &peer_ops;
    p->base.id = id;
    snprintf(p->base.name, sizeof p->base.name, "link%u", id);
    p->base.up = true;
    p->s = s;
    return &p->base;
}

static const struct listener_ops server_ops = {.peer_new = server_peer_new, .reply = server_reply};

struct listener *udp_server_listener(struct udp_server *s)
{
    return &s->ls;
}
