/* udp.c: the slave's direct UDP link: a connected UDP socket toward the master, bound to a
 * source address and/or an interface; goes down when they vanish and reopens when they return. */
#include "udp.h"

#include <errno.h>
#include <stdarg.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/log.h"
#include "sock.h"

#define RX_BUFSZ 65536
#define RX_MAX_PER_EVENT 64

struct udp_link {
    struct link base;
    struct ev_loop *loop;
    struct udp_link_config cfg;
    char ifname[IFNAMSIZ];
    int fd;
    unsigned ifindex;
    struct addr local;
    char master_host[256];
    struct resolve_req *rq;
    bool resolved;
    ev_io rio;
    ev_timer check;
    char last_err[160];
    uint8_t buf[RX_BUFSZ];
};

static void udp_close(struct udp_link *u)
{
    if (u->fd >= 0) {
        ev_io_stop(u->loop, &u->rio);
        close(u->fd);
        u->fd = -1;
    }
}

/* Log a failure once (until the link has been up again), take the link down. */
static void udp_fail(struct udp_link *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void udp_fail(struct udp_link *u, const char *fmt, ...)
{
    char msg[sizeof u->last_err];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    udp_close(u);
    if (strcmp(msg, u->last_err) != 0) {
        LOGW("link %s: down: %s; retrying every %.1f s", u->base.name, msg, u->cfg.retry_s);
        snprintf(u->last_err, sizeof u->last_err, "%s", msg);
    }
    link_report_state(&u->base, false);
}

/* The interface's index if it exists and is administratively up, else 0 (reason in why). */
static unsigned iface_usable(const char *name, const char **why)
{
    unsigned idx = if_nametoindex(name);
    if (idx == 0) {
        *why = "not present";
        return 0;
    }
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return idx;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
    int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
    close(s);
    if (rc == 0 && !(ifr.ifr_flags & IFF_UP)) {
        *why = "down";
        return 0;
    }
    return idx;
}

static void udp_read(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct udp_link *u = w->data;
    for (int i = 0; i < RX_MAX_PER_EVENT && u->fd >= 0; i++) {
        ssize_t n = recv(u->fd, u->buf, sizeof u->buf, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
            if (errno == ECONNREFUSED) { /* ICMP port unreachable: master not listening */
                u->base.c.rx_dropped++;
                continue;
            }
            if (sock_error_is_fatal(errno)) {
                udp_fail(u, "receive failed: %s", strerror(errno));
                return;
            }
            u->base.c.rx_dropped++;
            continue;
        }
        if ((size_t)n > sizeof u->buf) { /* truncated: cannot be a valid datagram */
            u->base.c.rx_dropped++;
            continue;
        }
        u->base.c.rx_packets++;
        u->base.c.rx_bytes += (uint64_t)n;
        if (u->base.h.rx)
            u->base.h.rx(u->base.h.ctx, &u->base, u->buf, (size_t)n,
                         (struct sockaddr *)&u->cfg.master.ss, u->cfg.master.len);
    }
}

static void udp_open_resolved(struct udp_link *u);

static void master_resolved(void *ctx, bool ok, const struct addr *a, const char *err)
{
    struct udp_link *u = ctx;
    u->rq = NULL;
    if (!ok) {
        udp_fail(u, "the master's name \"%s\" does not resolve: %s", u->master_host, err);
        return;
    }
    u->cfg.master = *a;
    addr_unmap(&u->cfg.master);
    u->resolved = true;
    udp_open_resolved(u);
}

/* Open the socket; with a master name, resolve it first (every time: it may have moved). */
static void udp_open(struct udp_link *u)
{
    if (u->rq) return; /* resolving */
    if (u->master_host[0] && u->cfg.resolver) {
        int fam = u->cfg.has_bind ? u->cfg.bind.ss.ss_family : AF_UNSPEC;
        u->rq = resolve_start(u->cfg.resolver, u->master_host, u->cfg.master_port, fam,
                              master_resolved, u);
        if (!u->rq) udp_fail(u, "cannot resolve the master: out of memory");
        return;
    }
    udp_open_resolved(u);
}

static void udp_open_resolved(struct udp_link *u)
{
    char as[ADDR_STRLEN];
    unsigned idx = 0;
    if (u->ifname[0]) {
        const char *why = "";
        idx = iface_usable(u->ifname, &why);
        if (!idx) {
            udp_fail(u, "interface %s is %s", u->ifname, why);
            return;
        }
    }
    int fd = socket(u->cfg.master.ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        udp_fail(u, "cannot create UDP socket: %s", strerror(errno));
        return;
    }
    u->fd = fd; /* so that udp_fail closes it */
    if (u->ifname[0] &&
        setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, u->ifname, (socklen_t)strlen(u->ifname)) < 0) {
        udp_fail(u, "cannot bind to interface %s: %s%s", u->ifname, strerror(errno),
                 errno == EPERM ? " (binding to an interface needs root or CAP_NET_RAW)" : "");
        return;
    }
    if (u->cfg.has_bind) {
        if (u->cfg.bind.ss.ss_family != u->cfg.master.ss.ss_family) {
            udp_fail(u, "bind address %s and master address are not the same IP version",
                     addr_str((struct sockaddr *)&u->cfg.bind.ss, as, sizeof as));
            return;
        }
        if (bind(fd, (struct sockaddr *)&u->cfg.bind.ss, u->cfg.bind.len) < 0) {
            udp_fail(u, "cannot bind to %s: %s",
                     addr_str((struct sockaddr *)&u->cfg.bind.ss, as, sizeof as),
                     strerror(errno));
            return;
        }
    }
    sock_set_buffers(fd, u->cfg.sndbuf ? u->cfg.sndbuf : 4 << 20);
    if (connect(fd, (struct sockaddr *)&u->cfg.master.ss, u->cfg.master.len) < 0) {
        udp_fail(u, "cannot reach master %s: %s",
                 addr_str((struct sockaddr *)&u->cfg.master.ss, as, sizeof as), strerror(errno));
        return;
    }
    u->local.len = sizeof u->local.ss;
    getsockname(fd, (struct sockaddr *)&u->local.ss, &u->local.len);
    u->ifindex = idx;
    ev_io_init(&u->rio, udp_read, fd, EV_READ);
    u->rio.data = u;
    ev_io_start(u->loop, &u->rio);
    u->last_err[0] = '\0';
    char desc[160];
    u->base.ops->describe(&u->base, desc, sizeof desc);
    LOGI("link %s: transport up (%s)", u->base.name, desc);
    link_report_state(&u->base, true);
}

static void udp_check(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct udp_link *u = w->data;
    if (u->fd < 0) {
        udp_open(u);
        return;
    }
    if (u->ifname[0]) {
        const char *why = "";
        unsigned idx = iface_usable(u->ifname, &why);
        if (idx == 0)
            udp_fail(u, "interface %s is %s", u->ifname, why);
        else if (idx != u->ifindex)
            udp_fail(u, "interface %s was replaced", u->ifname); /* reopen on the next check */
    }
}

static int udp_send(struct link *l, const uint8_t *buf, size_t len)
{
    struct udp_link *u = (struct udp_link *)l;
    if (u->fd < 0) return -1;
    if (send(u->fd, buf, len, MSG_DONTWAIT) < 0) {
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) {
            l->c.tx_dropped++;
            return 0;
        }
        if (sock_error_is_fatal(e)) {
            l->c.tx_errors++;
            udp_fail(u, "send failed: %s", strerror(e));
            return -1;
        }
        l->c.tx_errors++; /* ECONNREFUSED and the like: an ICMP report of an earlier datagram */
        return 0;
    }
    l->c.tx_packets++;
    l->c.tx_bytes += len;
    return 0;
}

/* Silence on the link: a fresh socket gets a fresh source port, which is what a NAT that has
 * dropped the old mapping needs. */
static void udp_stale(struct link *l)
{
    struct udp_link *u = (struct udp_link *)l;
    if (u->fd < 0) return;
    LOGI("link %s: nothing heard from the master for a while; reopening the socket (a new "
         "source port, in case a NAT dropped the old one's mapping)", l->name);
    udp_close(u);
    udp_open(u);
}

static void udp_describe(const struct link *l, char *buf, size_t len)
{
    const struct udp_link *u = (const struct udp_link *)l;
    char a[ADDR_STRLEN] = "-", b[260];
    if (u->fd >= 0) addr_str((const struct sockaddr *)&u->local.ss, a, sizeof a);
    if (u->master_host[0] && !u->resolved) snprintf(b, sizeof b, "%s", u->master_host);
    else addr_str((const struct sockaddr *)&u->cfg.master.ss, b, sizeof b);
    snprintf(buf, len, "udp %s -> %s%s%s", a, b, u->ifname[0] ? " dev " : "", u->ifname);
}

static void udp_destroy(struct link *l)
{
    struct udp_link *u = (struct udp_link *)l;
    udp_close(u);
    if (u->rq) resolve_cancel(u->rq);
    ev_timer_stop(u->loop, &u->check);
    free(u);
}

static int udp_stream_target(const struct link *l, struct link_stream_target *t)
{
    const struct udp_link *u = (const struct udp_link *)l;
    if (u->fd < 0 || !l->up) return -1;
    memset(t, 0, sizeof *t);
    t->to = u->cfg.master.ss;
    t->tolen = u->cfg.master.len;
    if (u->cfg.has_bind) {
        t->bind = u->cfg.bind.ss;
        t->bindlen = u->cfg.bind.len;
    }
    snprintf(t->ifname, sizeof t->ifname, "%s", u->ifname);
    return 0;
}

static const struct link_ops udp_ops = {
    .stream_target = udp_stream_target,
    .kind = "udp",
    .send = udp_send,
    .peer_seen = NULL,
    .stale = udp_stale,
    .describe = udp_describe,
    .destroy = udp_destroy,
};

struct link *udp_link_new(struct ev_loop *loop, const struct udp_link_config *cfg)
{
    struct udp_link *u = calloc(1, sizeof *u);
    if (!u) return NULL;
    u->base.ops = &udp_ops;
    u->base.id = cfg->id;
    snprintf(u->base.name, sizeof u->base.name, "%s", cfg->name ? cfg->name : "link");
    u->loop = loop;
    u->cfg = *cfg;
    if (u->cfg.retry_s <= 0) u->cfg.retry_s = 1.0;
    if (cfg->interface) snprintf(u->ifname, sizeof u->ifname, "%s", cfg->interface);
    u->cfg.interface = NULL; /* the copy lives in ifname */
    if (cfg->master_host) snprintf(u->master_host, sizeof u->master_host, "%s", cfg->master_host);
    u->cfg.master_host = NULL;
    u->cfg.name = NULL;
    u->fd = -1;
    ev_timer_init(&u->check, udp_check, u->cfg.retry_s, u->cfg.retry_s);
    u->check.data = u;
    return &u->base;
}

void udp_link_start(struct link *l)
{
    struct udp_link *u = (struct udp_link *)l;
    ev_timer_start(u->loop, &u->check);
    udp_open(u);
}
