/* test_tun.c: unit tests for the TUN tunnel device (tundev/tun_linux.c), root only, inside a
 * private network namespace: interface setup, packets from and to the kernel, clear errors. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

/* The test binaries link the notun implementation; compile the TUN one into this file under
 * other names so both can coexist. */
#define tundev_open tuntest_open
#define tundev_write tuntest_write
#define tundev_stats tuntest_stats
#define tundev_describe tuntest_describe
#define tundev_listen_addr tuntest_listen_addr
#define tundev_ifname tuntest_ifname
#define tundev_close tuntest_close
#define tundev_kind tuntest_kind
#include "../../tundev/tun_linux.c"

#include "../../common/util.h"

#define IFNAME "braidt0"
#define DEADLINE_S 5.0

static const char *skip_reason; /* set when this machine cannot run the tests */

#define NEED_ROOT()                                                                                \
    do {                                                                                           \
        if (skip_reason) {                                                                         \
            print_message("SKIP: %s\n", skip_reason);                                              \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* ---- packets seen by the rx upcall ---- */

struct seen {
    size_t n;
    bool found;
    uint8_t want_ver;     /* 4 or 6 */
    uint8_t want_dst[16]; /* destination address */
    uint16_t want_dport;
    const uint8_t *want_payload;
    size_t want_len;
};

static void on_rx(void *ctx, const uint8_t *p, size_t len)
{
    struct seen *s = ctx;
    s->n++;
    if (len < 1 || (p[0] >> 4) != s->want_ver) return;
    size_t l4;
    if (s->want_ver == 4) {
        if (len < 28 || p[9] != 17 || memcmp(p + 16, s->want_dst, 4) != 0) return;
        l4 = (size_t)(p[0] & 15) * 4;
    } else {
        if (len < 48 || p[6] != 17 || memcmp(p + 24, s->want_dst, 16) != 0) return;
        l4 = 40;
    }
    if (len < l4 + 8 || get_be16(p + l4 + 2) != s->want_dport) return;
    if (len - l4 - 8 != s->want_len || memcmp(p + l4 + 8, s->want_payload, s->want_len) != 0)
        return;
    s->found = true;
}

/* ---- run the loop until a condition holds, or a deadline ---- */

typedef bool (*cond_fn)(void *arg);
struct waiter {
    cond_fn cond;
    void *arg;
};

static void prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)revents;
    struct waiter *wt = w->data;
    if (wt->cond(wt->arg)) ev_break(loop, EVBREAK_ONE);
}

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ONE);
}

static bool run_until(struct ev_loop *loop, cond_fn cond, void *arg)
{
    struct waiter wt = {cond, arg};
    ev_prepare p;
    ev_timer d;
    ev_prepare_init(&p, prepare_cb);
    p.data = &wt;
    ev_timer_init(&d, deadline_cb, DEADLINE_S, 0.);
    ev_prepare_start(loop, &p);
    ev_timer_start(loop, &d);
    ev_run(loop, 0);
    ev_prepare_stop(loop, &p);
    ev_timer_stop(loop, &d);
    return cond(arg);
}

static bool seen_found(void *arg)
{
    return ((struct seen *)arg)->found;
}

struct stat_cond {
    const uint64_t *counter;
    uint64_t want;
};
static bool stat_reached(void *arg)
{
    struct stat_cond *c = arg;
    return *c->counter >= c->want;
}

/* ---- helpers ---- */

static int ifreq_get(unsigned long req, const char *name, struct ifreq *ifr)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    memset(ifr, 0, sizeof *ifr);
    snprintf(ifr->ifr_name, sizeof ifr->ifr_name, "%s", name);
    int rc = ioctl(s, req, ifr);
    close(s);
    return rc;
}

static int link_up(const char *name)
{
    struct ifreq ifr;
    if (ifreq_get(SIOCGIFFLAGS, name, &ifr) < 0) return -1;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    ifr.ifr_flags |= IFF_UP;
    int rc = ioctl(s, SIOCSIFFLAGS, &ifr);
    close(s);
    return rc;
}

static struct tundev *open_tun(struct ev_loop *loop, const char *name, const char *a4,
                               const char *a6, unsigned mtu, struct seen *s, char *err,
                               size_t errlen)
{
    struct tundev_config cfg = {.name = name, .address = a4, .address6 = a6, .mtu = mtu};
    return tuntest_open(loop, &cfg, on_rx, s, err, errlen);
}

static struct tundev *open_ok(struct ev_loop *loop, const char *a6, struct seen *s)
{
    char err[512] = "";
    struct tundev *t = open_tun(loop, IFNAME, "198.18.200.1/30", a6, 1400, s, err, sizeof err);
    if (!t) fail_msg("tundev_open: %s", err);
    return t;
}

static uint16_t ip_checksum(const uint8_t *p, size_t len)
{
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += get_be16(p + i);
    if (len & 1) sum += (uint32_t)p[len - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* ---- tests ---- */

static void test_open_configures_interface(void **state)
{
    (void)state;
    NEED_ROOT();
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct seen s = {0};
    struct tundev *t = open_ok(loop, NULL, &s);
    assert_string_equal(tuntest_kind, "tun");
    assert_null(tuntest_listen_addr(t));
    char d[64];
    tuntest_describe(t, d, sizeof d);
    assert_string_equal(d, "tun " IFNAME);

    struct ifreq ifr;
    assert_int_equal(ifreq_get(SIOCGIFFLAGS, IFNAME, &ifr), 0);
    assert_true(ifr.ifr_flags & IFF_UP);
    assert_int_equal(ifreq_get(SIOCGIFMTU, IFNAME, &ifr), 0);
    assert_int_equal(ifr.ifr_mtu, 1400);
    assert_int_equal(ifreq_get(SIOCGIFADDR, IFNAME, &ifr), 0);
    struct sockaddr_in sin;
    memcpy(&sin, &ifr.ifr_addr, sizeof sin);
    assert_int_equal(sin.sin_family, AF_INET);
    assert_int_equal(ntohl(sin.sin_addr.s_addr), 0xC612C801u); /* 198.18.200.1 */
    assert_int_equal(ifreq_get(SIOCGIFNETMASK, IFNAME, &ifr), 0);
    memcpy(&sin, &ifr.ifr_netmask, sizeof sin);
    assert_int_equal(ntohl(sin.sin_addr.s_addr), 0xFFFFFFFCu); /* /30 */

    tuntest_close(t);
    /* not persistent: the interface is gone once closed */
    assert_int_equal(if_nametoindex(IFNAME), 0);
    ev_loop_destroy(loop);
}

static void test_rx_from_kernel(void **state)
{
    (void)state;
    NEED_ROOT();
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    static const uint8_t payload[] = "braid tun rx test";
    struct seen s = {
        .want_ver = 4, .want_dport = 9, .want_payload = payload, .want_len = sizeof payload};
    inet_pton(AF_INET, "198.18.200.2", s.want_dst);
    struct tundev *t = open_ok(loop, NULL, &s);

    int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(u >= 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9)};
    inet_pton(AF_INET, "198.18.200.2", &to.sin_addr);
    assert_int_equal(sendto(u, payload, sizeof payload, 0, (struct sockaddr *)&to, sizeof to),
                     sizeof payload);
    assert_true(run_until(loop, seen_found, &s));
    const struct tundev_stats *st = tuntest_stats(t);
    assert_true(st->rx_packets >= 1);
    assert_true(st->rx_bytes >= 20 + 8 + sizeof payload);

    /* a packet larger than the configured MTU (someone raised it behind braid's back) is
     * rejected and counted, not passed on */
    struct ifreq ifr;
    assert_int_equal(ifreq_get(SIOCGIFMTU, IFNAME, &ifr), 0);
    int c = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(c >= 0);
    ifr.ifr_mtu = 1500;
    assert_int_equal(ioctl(c, SIOCSIFMTU, &ifr), 0);
    close(c);
    uint8_t big[1450];
    memset(big, 0x5a, sizeof big);
    assert_int_equal(sendto(u, big, sizeof big, 0, (struct sockaddr *)&to, sizeof to), sizeof big);
    struct stat_cond sc = {&st->rx_rejected, 1};
    assert_true(run_until(loop, stat_reached, &sc));
    assert_int_equal(st->rx_rejected, 1);
    close(u);
    tuntest_close(t);
    ev_loop_destroy(loop);
}

static void test_tx_to_kernel(void **state)
{
    (void)state;
    NEED_ROOT();
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct seen s = {0};
    struct tundev *t = open_ok(loop, NULL, &s);

    int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(u >= 0);
    struct sockaddr_in me = {.sin_family = AF_INET};
    inet_pton(AF_INET, "198.18.200.1", &me.sin_addr);
    assert_int_equal(bind(u, (struct sockaddr *)&me, sizeof me), 0);
    socklen_t sl = sizeof me;
    assert_int_equal(getsockname(u, (struct sockaddr *)&me, &sl), 0);

    static const uint8_t payload[] = "from the tunnel to the host";
    uint8_t pkt[20 + 8 + sizeof payload];
    memset(pkt, 0, sizeof pkt);
    pkt[0] = 0x45;
    put_be16(pkt + 2, sizeof pkt);
    put_be16(pkt + 4, 0x1234);
    pkt[8] = 64;
    pkt[9] = 17;
    inet_pton(AF_INET, "198.18.200.2", pkt + 12);
    inet_pton(AF_INET, "198.18.200.1", pkt + 16);
    put_be16(pkt + 10, ip_checksum(pkt, 20));
    assert_int_equal(ip_checksum(pkt, 20), 0); /* the header now sums correctly */
    put_be16(pkt + 20, 4444);
    put_be16(pkt + 22, ntohs(me.sin_port));
    put_be16(pkt + 24, 8 + sizeof payload);
    /* UDP checksum 0: none */
    memcpy(pkt + 28, payload, sizeof payload);
    assert_int_equal(tuntest_write(t, pkt, sizeof pkt), 0);
    assert_int_equal(tuntest_stats(t)->tx_packets, 1);
    assert_int_equal(tuntest_stats(t)->tx_bytes, sizeof pkt);

    struct pollfd pfd = {.fd = u, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, (int)(DEADLINE_S * 1000)), 1);
    uint8_t buf[256];
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(u, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
    assert_int_equal(n, sizeof payload);
    assert_memory_equal(buf, payload, sizeof payload);
    assert_int_equal(ntohs(from.sin_port), 4444);
    assert_int_equal(ntohl(from.sin_addr.s_addr), 0xC612C802u); /* 198.18.200.2 */

    /* unwritable sizes are dropped and counted */
    assert_int_equal(tuntest_write(t, pkt, 0), -1);
    assert_int_equal(tuntest_stats(t)->tx_dropped, 1);
    close(u);
    tuntest_close(t);
    ev_loop_destroy(loop);
}

static bool has_addr6(const char *name, const char *addr, unsigned plen)
{
    struct ifaddrs *ifa, *i;
    struct in6_addr want;
    assert_int_equal(inet_pton(AF_INET6, addr, &want), 1);
    assert_int_equal(getifaddrs(&ifa), 0);
    bool found = false;
    for (i = ifa; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET6 || strcmp(i->ifa_name, name))
            continue;
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)i->ifa_addr;
        const struct sockaddr_in6 *m = (const struct sockaddr_in6 *)i->ifa_netmask;
        if (memcmp(&a->sin6_addr, &want, sizeof want) != 0 || !m) continue;
        unsigned bits = 0;
        for (int b = 0; b < 16; b++)
            bits += (unsigned)__builtin_popcount(m->sin6_addr.s6_addr[b]);
        found = bits == plen;
    }
    freeifaddrs(ifa);
    return found;
}

static void test_ipv6_addresses(void **state)
{
    (void)state;
    NEED_ROOT();
    if (access("/proc/sys/net/ipv6", F_OK) != 0) {
        print_message("SKIP: IPv6 is disabled in this kernel\n");
        skip();
    }
    /* no duplicate address detection in this private namespace: addresses usable at once */
    int fd = open("/proc/sys/net/ipv6/conf/default/accept_dad", O_WRONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "0\n", 2), 2);
    close(fd);

    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    static const uint8_t payload[] = "braid tun ipv6";
    struct seen s = {
        .want_ver = 6, .want_dport = 9, .want_payload = payload, .want_len = sizeof payload};
    inet_pton(AF_INET6, "2001:2::2", s.want_dst);
    char err[512] = "";
    /* benchmarking prefix 2001:2::/48 (RFC 5180), the IPv6 counterpart of 198.18.0.0/15 */
    struct tundev *t =
        open_tun(loop, IFNAME, "2001:2:0:1::1/64", "2001:2::1/64", 1400, &s, err, sizeof err);
    if (!t) fail_msg("tundev_open: %s", err);
    assert_true(has_addr6(IFNAME, "2001:2::1", 64));
    assert_true(has_addr6(IFNAME, "2001:2:0:1::1", 64));

    int u = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(u >= 0);
    struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_port = htons(9)};
    inet_pton(AF_INET6, "2001:2::2", &to.sin6_addr);
    assert_int_equal(sendto(u, payload, sizeof payload, 0, (struct sockaddr *)&to, sizeof to),
                     sizeof payload);
    assert_true(run_until(loop, seen_found, &s));
    close(u);
    tuntest_close(t);
    ev_loop_destroy(loop);
}

static void expect_error(const char *name, const char *a4, const char *a6, unsigned mtu,
                         const char *want)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct seen s = {0};
    char err[512] = "";
    struct tundev *t = open_tun(loop, name, a4, a6, mtu, &s, err, sizeof err);
    if (t) fail_msg("tundev_open(%s, %s, %s, %u) succeeded", name, a4, a6, mtu);
    if (!strstr(err, want)) fail_msg("error \"%s\" does not contain \"%s\"", err, want);
    /* a failed open leaves no interface behind */
    if (name[0]) assert_int_equal(if_nametoindex(name), 0);
    ev_loop_destroy(loop);
}

static void test_errors(void **state)
{
    (void)state;
    NEED_ROOT();
    expect_error(IFNAME, "198.18.200.1", NULL, 1400,
                 "tunnel address \"198.18.200.1\": expected a.b.c.d/len");
    expect_error(IFNAME, "198.18.200.1/33", NULL, 1400, "expected a.b.c.d/len");
    expect_error(IFNAME, "198.18.200.1/0", NULL, 1400, "expected a.b.c.d/len");
    expect_error(IFNAME, "198.18.200.1/", NULL, 1400, "expected a.b.c.d/len");
    expect_error(IFNAME, "198.18.200.1/3x", NULL, 1400, "expected a.b.c.d/len");
    expect_error(IFNAME, "198.18.300.1/30", NULL, 1400, "expected a.b.c.d/len");
    expect_error(IFNAME, "/30", NULL, 1400, "expected a.b.c.d/len");
    expect_error(IFNAME, "198.18.200.1/30", "2001:2::1/129", 1400, "expected an IPv6 address");
    expect_error(IFNAME, "198.18.200.1/30", "2001:2::1", 1400, "expected an IPv6 address");
    expect_error(IFNAME, "198.18.200.1/30", "2001:2::g/64", 1400, "expected an IPv6 address");
    expect_error("braid-name-too-long", NULL, NULL, 1400, "is too long");
    expect_error(IFNAME, NULL, NULL, 20, "mtu 20 is out of range");
    expect_error(IFNAME, NULL, NULL, 70000, "mtu 70000 is out of range");
    if (access("/proc/sys/net/ipv6", F_OK) == 0)
        expect_error(IFNAME, NULL, "2001:2::1/64", 1000, "IPv6 needs a tunnel mtu of 1280 or more");

    /* the name is in use by another open TUN: busy */
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct seen s = {0};
    struct tundev *t = open_ok(loop, NULL, &s);
    char err[512] = "";
    assert_null(open_tun(loop, IFNAME, NULL, NULL, 1400, &s, err, sizeof err));
    assert_non_null(strstr(err, "cannot create tunnel interface \"" IFNAME "\""));
    assert_non_null(strstr(err, "choose another tunnel name"));
    assert_true(if_nametoindex(IFNAME) != 0); /* the first one is untouched */
    tuntest_close(t);
    ev_loop_destroy(loop);
}

static void test_kernel_picks_name(void **state)
{
    (void)state;
    NEED_ROOT();
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct seen s = {0};
    char err[512] = "";
    struct tundev *t = open_tun(loop, "", NULL, NULL, 1280, &s, err, sizeof err);
    if (!t) fail_msg("tundev_open: %s", err);
    char d[64];
    tuntest_describe(t, d, sizeof d);
    assert_string_equal(d, "tun braid0"); /* the first braid%d in a fresh namespace */
    struct ifreq ifr;
    assert_int_equal(ifreq_get(SIOCGIFMTU, "braid0", &ifr), 0);
    assert_int_equal(ifr.ifr_mtu, 1280);
    tuntest_close(t);
    ev_loop_destroy(loop);
}

int main(void)
{
    if (geteuid() != 0) {
        skip_reason = "needs root";
    } else if (access("/dev/net/tun", R_OK | W_OK) != 0) {
        skip_reason = "needs root and /dev/net/tun (modprobe tun)";
    } else if (unshare(CLONE_NEWNET) != 0) {
        skip_reason = "needs root allowed to create a network namespace (unshare CLONE_NEWNET)";
    } else if (link_up("lo") != 0) {
        fprintf(stderr, "test_tun: cannot bring lo up in the new namespace: %s\n", strerror(errno));
        return 1;
    }
    if (skip_reason) fprintf(stderr, "test_tun: SKIP: %s\n", skip_reason);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_configures_interface),
        cmocka_unit_test(test_rx_from_kernel),
        cmocka_unit_test(test_tx_to_kernel),
        cmocka_unit_test(test_ipv6_addresses),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_kernel_picks_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
