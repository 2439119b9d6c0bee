/* test_resolve.c: unit tests of links/resolve.c (c-ares in the libev loop) against a DNS
 * responder of the test's own on loopback: literals, /etc/hosts, answers, NXDOMAIN, cancel. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../links/resolve.h"

/* ---- a DNS responder: "phone.braid.test" A 198.18.7.7, NXDOMAIN for anything else ---- */

struct dns {
    int fd;
    ev_io w;
    int queries;
    char last[256];
};

static void dns_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct dns *d = w->data;
    uint8_t q[512], r[600];
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(d->fd, q, sizeof q, 0, (struct sockaddr *)&from, &fl);
    if (n < 17) return;
    size_t i = 12, o = 0;
    while (i < (size_t)n && q[i] != 0 && o + q[i] + 1 < sizeof d->last) {
        if (o) d->last[o++] = '.';
        memcpy(d->last + o, q + i + 1, q[i]);
        o += q[i];
        i += 1 + (size_t)q[i];
    }
    d->last[o] = '\0';
    size_t qend = i + 5; /* root label, QTYPE, QCLASS */
    if (qend > (size_t)n) return;
    uint16_t qtype = (uint16_t)(q[i + 1] << 8 | q[i + 2]);
    d->queries++;
    memcpy(r, q, qend);
    r[2] = 0x84 | (q[2] & 1); /* QR, AA, RD copied */
    r[3] = 0x80;              /* RA, RCODE 0 */
    r[6] = r[7] = r[8] = r[9] = r[10] = r[11] = 0;
    size_t rl = qend;
    if (strcmp(d->last, "phone.braid.test") != 0) {
        r[3] = 0x83; /* NXDOMAIN */
    } else if (qtype == 1) {
        r[7] = 1;
        const uint8_t ans[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 7, 7};
        memcpy(r + rl, ans, sizeof ans);
        rl += sizeof ans;
    }
    sendto(d->fd, r, rl, 0, (struct sockaddr *)&from, fl);
}

static struct ev_loop *loop;
static struct dns dns;
static struct resolver *res;

static int setup(void **state)
{
    (void)state;
    loop = ev_loop_new(EVFLAG_AUTO);
    memset(&dns, 0, sizeof dns);
    dns.fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(dns.fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    getsockname(dns.fd, (struct sockaddr *)&a, &al);
    ev_io_init(&dns.w, dns_cb, dns.fd, EV_READ);
    dns.w.data = &dns;
    ev_io_start(loop, &dns.w);
    char servers[64], err[200];
    snprintf(servers, sizeof servers, "127.0.0.1:%u", ntohs(a.sin_port));
    res = resolver_new(loop, servers, err, sizeof err);
    assert_non_null(res);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    resolver_free(res);
    ev_io_stop(loop, &dns.w);
    close(dns.fd);
    ev_loop_destroy(loop);
    return 0;
}

struct result {
    int calls;
    bool ok;
    char addr[ADDR_STRLEN];
    char err[128];
};

static void cb(void *ctx, bool ok, const struct addr *a, const char *err)
{
    struct result *r = ctx;
    r->calls++;
    r->ok = ok;
    if (ok) addr_str((const struct sockaddr *)&a->ss, r->addr, sizeof r->addr);
    snprintf(r->err, sizeof r->err, "%s", ok ? "" : err);
}

static void run_until(struct result *r, double timeout_s)
{
    double end = ev_time() + timeout_s;
    while (r->calls == 0 && ev_time() < end) ev_run(loop, EVRUN_ONCE);
}

static void test_literals(void **state)
{
    (void)state;
    struct result r4 = {0}, r6 = {0}, bad = {0};
    assert_non_null(resolve_start(res, "192.168.43.1", 1080, AF_UNSPEC, cb, &r4));
    assert_non_null(resolve_start(res, "2001:db8::1", 7000, AF_UNSPEC, cb, &r6));
    assert_non_null(resolve_start(res, "192.168.43.1", 1080, AF_INET6, cb, &bad));
    /* never inside resolve_start */
    assert_int_equal(r4.calls + r6.calls + bad.calls, 0);
    run_until(&bad, 2);
    assert_int_equal(r4.calls, 1);
    assert_true(r4.ok);
    assert_string_equal(r4.addr, "192.168.43.1:1080");
    assert_true(r6.ok);
    assert_string_equal(r6.addr, "[2001:db8::1]:7000");
    assert_false(bad.ok);
    assert_non_null(strstr(bad.err, "not an IPv6 address"));
    assert_int_equal(dns.queries, 0); /* no DNS round trip for literals */
}

static void test_hosts_file(void **state)
{
    (void)state;
    struct result r = {0};
    assert_non_null(resolve_start(res, "localhost", 80, AF_INET, cb, &r));
    assert_int_equal(r.calls, 0);
    run_until(&r, 5);
    assert_int_equal(r.calls, 1);
    assert_true(r.ok);
    assert_string_equal(r.addr, "127.0.0.1:80");
    assert_int_equal(dns.queries, 0);
}

static void test_dns_answer_and_nxdomain(void **state)
{
    (void)state;
    struct result ok = {0}, nx = {0};
    assert_non_null(resolve_start(res, "phone.braid.test", 1080, AF_INET, cb, &ok));
    assert_non_null(resolve_start(res, "nosuch.braid.test", 1080, AF_UNSPEC, cb, &nx));
    run_until(&ok, 5);
    run_until(&nx, 5);
    assert_true(ok.ok);
    assert_string_equal(ok.addr, "198.18.7.7:1080");
    assert_false(nx.ok);
    assert_non_null(strstr(nx.err, "not found"));
    assert_true(dns.queries >= 2);
    /* IPv6 asked of a name with only an A record: no address, said so */
    struct result v6 = {0};
    assert_non_null(resolve_start(res, "phone.braid.test", 1080, AF_INET6, cb, &v6));
    run_until(&v6, 5);
    assert_int_equal(v6.calls, 1);
    assert_false(v6.ok);
}

static void test_cancel(void **state)
{
    (void)state;
    struct result a = {0}, b = {0}, lit = {0};
    struct resolve_req *qa = resolve_start(res, "phone.braid.test", 1, AF_INET, cb, &a);
    struct resolve_req *ql = resolve_start(res, "10.0.0.1", 1, AF_UNSPEC, cb, &lit);
    assert_non_null(resolve_start(res, "phone.braid.test", 2, AF_INET, cb, &b));
    resolve_cancel(qa);
    resolve_cancel(ql);
    run_until(&b, 5);
    assert_true(b.ok);
    for (int i = 0; i < 20; i++) ev_run(loop, EVRUN_NOWAIT);
    assert_int_equal(a.calls, 0);
    assert_int_equal(lit.calls, 0);
}

static void test_free_with_pending(void **state)
{
    (void)state;
    /* pending queries and deferred literals are released without callbacks (ASan checks) */
    struct result a = {0}, l = {0};
    assert_non_null(resolve_start(res, "phone.braid.test", 1, AF_INET, cb, &a));
    assert_non_null(resolve_start(res, "10.0.0.1", 1, AF_UNSPEC, cb, &l));
    resolver_free(res);
    char err[100];
    res = resolver_new(loop, "127.0.0.1:9", err, sizeof err);
    assert_non_null(res);
    assert_int_equal(a.calls + l.calls, 0);
}

static void test_bad_servers(void **state)
{
    (void)state;
    char err[200];
    struct resolver *r = resolver_new(loop, "not an address", err, sizeof err);
    assert_null(r);
    assert_non_null(strstr(err, "DNS servers"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_literals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hosts_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dns_answer_and_nxdomain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_servers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
