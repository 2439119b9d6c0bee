/* tun_linux.c: the TUN tunnel device: creates and configures a Linux TUN interface (name, MTU,
 * IPv4/IPv6 addresses, up) and moves IP packets between it and braid. Needs CAP_NET_ADMIN. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/log.h"
#include "tundev.h"

const char tundev_kind[] = "tun";

#define TUN_PATH "/dev/net/tun"
#define TUN_READS_PER_CB 64
#define TUN_BUF 65536

/* The kernel's struct in6_ifreq (linux/ipv6.h), which cannot be included with netinet/in.h. */
struct tun_in6_ifreq {
    struct in6_addr addr;
    uint32_t prefixlen;
    int ifindex;
};

struct tundev {
    struct ev_loop *loop;
    tundev_rx_fn rx;
    void *ctx;
    int fd;
    unsigned mtu;
    char name[IFNAMSIZ];
    ev_io read_w;
    struct tundev_stats st;
    struct log_limit lim_read, lim_big, lim_write, lim_drop;
    uint8_t buf[TUN_BUF];
};

/* What to do about a failed privileged operation. */
static const char *perm_hint(int e)
{
    if (e == EPERM || e == EACCES)
        return ": run braid as root or give it CAP_NET_ADMIN (setcap cap_net_admin+ep), or use "
               "the notun build";
    return "";
}

/* Parse "a.b.c.d/len" (family AF_INET) or "x::y/len" (AF_INET6). Returns 0 or -1. */
static int parse_prefix(const char *s, int family, void *addr, unsigned *plen)
{
    char ip[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(s, '/');
    if (!slash || (size_t)(slash - s) >= sizeof ip || slash == s) return -1;
    memcpy(ip, s, (size_t)(slash - s));
    ip[slash - s] = '\0';
    const char *p = slash + 1;
    unsigned max = family == AF_INET ? 32 : 128;
    unsigned v = 0;
    if (*p == '\0' || strlen(p) > 3) return -1;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (unsigned)(*p - '0');
    }
    if (v > max) return -1;
    if (inet_pton(family, ip, addr) != 1) return -1;
    *plen = v;
    return 0;
}

static int ifreq_call(int sock, unsigned long req, struct ifreq *ifr, const char *what,
                      const char *name, char *err, size_t errlen)
{
    if (ioctl(sock, req, ifr) == 0) return 0;
    int e = errno;
    snprintf(err, errlen, "tun %s: cannot %s: %s%s", name, what, strerror(e), perm_hint(e));
    return -1;
}

static int set_ipv4(const char *name, const char *spec, char *err, size_t errlen)
{
    struct in_addr a;
    unsigned plen;
    if (parse_prefix(spec, AF_INET, &a, &plen) < 0 || plen == 0) {
        snprintf(err, errlen,
                 "tunnel address \"%s\": expected a.b.c.d/len (len 1..32), e.g. "
                 "\"198.18.0.1/30\"",
                 spec);
        return -1;
    }
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) {
        snprintf(err, errlen, "tun %s: cannot create an IPv4 socket: %s", name, strerror(errno));
        return -1;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr = a};
    memcpy(&ifr.ifr_addr, &sin, sizeof sin);
    char what[96];
    snprintf(what, sizeof what, "set address %s", spec);
    int rc = ifreq_call(sock, SIOCSIFADDR, &ifr, what, name, err, errlen);
    if (rc == 0) {
        sin.sin_addr.s_addr = htonl(plen == 32 ? 0xffffffffu : ~(0xffffffffu >> plen));
        memcpy(&ifr.ifr_netmask, &sin, sizeof sin);
        rc = ifreq_call(sock, SIOCSIFNETMASK, &ifr, "set the netmask", name, err, errlen);
    }
    close(sock);
    return rc;
}

static int set_ipv6(const char *name, const char *spec, unsigned mtu, char *err, size_t errlen)
{
    struct tun_in6_ifreq r;
    memset(&r, 0, sizeof r);
    unsigned plen;
    if (parse_prefix(spec, AF_INET6, &r.addr, &plen) < 0 || plen == 0) {
        snprintf(err, errlen,
                 "tunnel address \"%s\": expected an IPv6 address x::y/len (len "
                 "1..128), e.g. \"fd00::1/64\"",
                 spec);
        return -1;
    }
    r.prefixlen = plen;
    r.ifindex = (int)if_nametoindex(name);
    if (r.ifindex == 0) {
        snprintf(err, errlen, "tun %s: interface vanished while configuring it: %s", name,
                 strerror(errno));
        return -1;
    }
    int sock = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) {
        int e = errno;
        snprintf(err, errlen, "tun %s: cannot set IPv6 address %s: %s%s", name, spec, strerror(e),
                 e == EAFNOSUPPORT ? ": IPv6 is disabled on this host; remove address6 or enable "
                                     "IPv6"
                                   : "");
        return -1;
    }
    int rc = 0;
    if (ioctl(sock, SIOCSIFADDR, &r) < 0) {
        int e = errno;
        const char *hint = e == EACCES || e == EPERM ? perm_hint(e)
                           : mtu < 1280              ? ": IPv6 needs a tunnel mtu of 1280 or more"
                           : e == ENODEV || e == EADDRNOTAVAIL || e == EINVAL
                               ? ": is IPv6 disabled on this interface (sysctl "
                                 "net.ipv6.conf.all.disable_ipv6)?"
                               : "";
        snprintf(err, errlen, "tun %s: cannot set IPv6 address %s: %s%s", name, spec, strerror(e),
                 hint);
        rc = -1;
    }
    close(sock);
    return rc;
}

static int configure(const struct tundev *t, const struct tundev_config *cfg, char *err,
                     size_t errlen)
{
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) {
        snprintf(err, errlen, "tun %s: cannot create a control socket: %s", t->name,
                 strerror(errno));
        return -1;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", t->name);
    ifr.ifr_mtu = (int)cfg->mtu;
    if (ioctl(sock, SIOCSIFMTU, &ifr) < 0) {
        int e = errno;
        snprintf(err, errlen, "tun %s: cannot set mtu %u: %s%s", t->name, cfg->mtu, strerror(e),
                 e == EINVAL ? ": use an mtu from 68 to 65535 (1280 or more for IPv6)"
                             : perm_hint(e));
        close(sock);
        return -1;
    }
    close(sock);
    if (cfg->address && cfg->address[0]) {
        int rc = strchr(cfg->address, ':') ? set_ipv6(t->name, cfg->address, cfg->mtu, err, errlen)
                                           : set_ipv4(t->name, cfg->address, err, errlen);
        if (rc < 0) return -1;
    }
    if (cfg->address6 && cfg->address6[0] &&
        set_ipv6(t->name, cfg->address6, cfg->mtu, err, errlen) < 0)
        return -1;
    sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) {
        snprintf(err, errlen, "tun %s: cannot create a control socket: %s", t->name,
                 strerror(errno));
        return -1;
    }
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", t->name);
    int rc = ifreq_call(sock, SIOCGIFFLAGS, &ifr, "read the interface flags", t->name, err, errlen);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP;
        rc = ifreq_call(sock, SIOCSIFFLAGS, &ifr, "bring the interface up", t->name, err, errlen);
    }
    close(sock);
    return rc;
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct tundev *t = w->data;
    for (int i = 0; i < TUN_READS_PER_CB; i++) {
        ssize_t n = read(t->fd, t->buf, sizeof t->buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            log_limited(&t->lim_read, LOG_WARN, "tun %s: read failed: %s", t->name,
                        strerror(errno));
            return;
        }
        if (n == 0 || (size_t)n > t->mtu) {
            t->st.rx_rejected++;
            log_limited(&t->lim_big, LOG_WARN,
                        "tun %s: read a packet of %zd bytes, larger than the tunnel mtu %u (was "
                        "the mtu changed outside braid?): dropped",
                        t->name, n, t->mtu);
            continue;
        }
        t->st.rx_packets++;
        t->st.rx_bytes += (uint64_t)n;
        t->rx(t->ctx, t->buf, (size_t)n);
    }
}

struct tundev *tundev_open(struct ev_loop *loop, const struct tundev_config *cfg, tundev_rx_fn rx,
                           void *ctx, char *err, size_t errlen)
{
    if (!cfg || !rx) {
        snprintf(err, errlen, "tun: internal error: no configuration or packet callback");
        return NULL;
    }
    const char *name = cfg->name ? cfg->name : "";
    if (strlen(name) >= IFNAMSIZ) {
        snprintf(err, errlen, "tunnel name \"%s\" is too long: at most %d characters", name,
                 IFNAMSIZ - 1);
        return NULL;
    }
    if (cfg->mtu < 68 || cfg->mtu > 65535) {
        snprintf(err, errlen, "tunnel mtu %u is out of range: use 68..65535", cfg->mtu);
        return NULL;
    }
    struct tundev *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "tun: out of memory");
        return NULL;
    }
    t->loop = loop;
    t->rx = rx;
    t->ctx = ctx;
    t->mtu = cfg->mtu;
    t->fd = open(TUN_PATH, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (t->fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot open %s: %s%s", TUN_PATH, strerror(e),
                 e == ENOENT || e == ENODEV || e == ENXIO
                     ? ": load the tun module (modprobe tun) or create the device node "
                       "(mkdir -p /dev/net && mknod /dev/net/tun c 10 200), or use the notun build"
                     : perm_hint(e));
        free(t);
        return NULL;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name[0] ? name : "braid%d");
    if (ioctl(t->fd, TUNSETIFF, &ifr) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot create tunnel interface \"%s\": %s%s", ifr.ifr_name,
                 strerror(e),
                 e == EBUSY ? ": another program (another braid?) uses an interface of that name; "
                              "stop it or choose another tunnel name"
                 : e == EINVAL ? ": an interface of that name exists and is not a TUN device, or "
                                 "the name is invalid; choose another tunnel name"
                               : perm_hint(e));
        close(t->fd);
        free(t);
        return NULL;
    }
    snprintf(t->name, sizeof t->name, "%s", ifr.ifr_name);
    if (configure(t, cfg, err, errlen) < 0) {
        close(t->fd); /* the interface is not persistent: closing removes it */
        free(t);
        return NULL;
    }
    ev_io_init(&t->read_w, read_cb, t->fd, EV_READ);
    t->read_w.data = t;
    ev_io_start(loop, &t->read_w);
    bool a4 = cfg->address && cfg->address[0], a6 = cfg->address6 && cfg->address6[0];
    LOGI("tun %s: up, mtu %u%s%s%s%s", t->name, t->mtu, a4 ? ", address " : "",
         a4 ? cfg->address : "", a6 ? ", address " : "", a6 ? cfg->address6 : "");
    return t;
}

int tundev_write(struct tundev *t, const uint8_t *pkt, size_t len)
{
    if (len == 0 || len > TUN_BUF - 1) {
        t->st.tx_dropped++;
        log_limited(&t->lim_write, LOG_WARN, "tun %s: cannot write a packet of %zu bytes: dropped",
                    t->name, len);
        return -1;
    }
    for (;;) {
        ssize_t n = write(t->fd, pkt, len);
        if (n == (ssize_t)len) {
            t->st.tx_packets++;
            t->st.tx_bytes += len;
            return 0;
        }
        if (n < 0 && errno == EINTR) continue;
        t->st.tx_dropped++;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
            log_limited(&t->lim_drop, LOG_DEBUG, "tun %s: kernel queue full: packet dropped",
                        t->name);
        } else {
            log_limited(&t->lim_write, LOG_WARN,
                        "tun %s: writing a packet of %zu bytes failed: %s: dropped", t->name, len,
                        n < 0 ? strerror(errno) : "short write");
        }
        return -1;
    }
}

const struct tundev_stats *tundev_stats(const struct tundev *t)
{
    return &t->st;
}

void tundev_describe(const struct tundev *t, char *buf, size_t len)
{
    snprintf(buf, len, "tun %s", t->name);
}

const char *tundev_ifname(const struct tundev *t)
{
    return t->name;
}

const struct addr *tundev_listen_addr(const struct tundev *t)
{
    (void)t;
    return NULL;
}

void tundev_close(struct tundev *t)
{
    if (!t) return;
    ev_io_stop(t->loop, &t->read_w);
    close(t->fd);
    free(t);
}
