/* test_prefix.c: unit tests of common/prefix.c: prefix parsing (good and hostile text), the
 * longest-prefix-match table against a brute-force reference, and a packet's addresses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <sys/socket.h>

#include "../../common/prefix.h"

static void test_parse_good(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } ok[] = {
        {"10.1.0.0/24", "10.1.0.0/24"},     {"0.0.0.0/0", "0.0.0.0/0"},
        {"198.18.0.10", "198.18.0.10/32"},  {"255.255.255.255/32", "255.255.255.255/32"},
        {"fd00:1::/64", "fd00:1::/64"},     {"::/0", "::/0"},
        {"::1", "::1/128"},                 {"10.0.0.0/08", "10.0.0.0/8"},
        {"2001:db8::/32", "2001:db8::/32"}, {"::ffff:10.0.0.0/104", "::ffff:10.0.0.0/104"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct prefix p;
        char why[256] = "", out[PREFIX_STRLEN];
        if (prefix_parse(ok[i].in, &p, why, sizeof why) != 0) fail_msg("%s: %s", ok[i].in, why);
        assert_string_equal(prefix_str(&p, out, sizeof out), ok[i].out);
    }
}

static void test_parse_hostile(void **state)
{
    (void)state;
    static const struct {
        const char *in, *why;
    } bad[] = {
        {"", "is not an IP prefix"},
        {"/", "is not an IP prefix"},
        {"10.1.0.0/", "the prefix length must be a number from 0 to 32"},
        {"10.1.0.0/33", "from 0 to 32"},
        {"fd00::/129", "from 0 to 128"},
        {"10.1.0.0/4294967320", "from 0 to 32"}, /* would wrap to 24 in 32 bits */
        {"10.1.0.0/ 24", "must be a number"},
        {"10.1.0.0/24 ", "must be a number"},
        {"10.1.0.0/+24", "must be a number"},
        {"10.1.0.0/24/24", "must be a number"},
        {"10.1.0.5/24", "has address bits set after /24; did you mean \"10.1.0.0/24\"?"},
        {"fd00::1/64", "did you mean \"fd00::/64\"?"},
        {"10.1.0/24", "\"10.1.0\" is not an IP address"},
        {"10.1.0.256/32", "is not an IP address"},
        {"host.example/24", "is not an IP address"},
        {" 10.1.0.0/24", "is not an IP address"},
        {"1234567890123456789012345678901234567890123456789/8", "is not an IP prefix"},
        {"::ffff:1.2.3.4.5/128", "is not an IP address"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct prefix p;
        char why[256] = "";
        if (prefix_parse(bad[i].in, &p, why, sizeof why) == 0)
            fail_msg("\"%s\" was accepted", bad[i].in);
        if (!strstr(why, bad[i].why)) fail_msg("\"%s\": \"%s\" lacks \"%s\"", bad[i].in, why, bad[i].why);
    }
    /* a message that does not fit is cut, not overrun */
    struct prefix p;
    char tiny[8];
    assert_int_equal(prefix_parse("10.1.0.5/24", &p, tiny, sizeof tiny), -1);
    assert_int_equal(strlen(tiny), 7);
}

static struct prefix pfx(const char *s)
{
    struct prefix p;
    char why[256];
    if (prefix_parse(s, &p, why, sizeof why) != 0) fail_msg("%s: %s", s, why);
    return p;
}

static void test_table_longest_match(void **state)
{
    (void)state;
    struct ptable *t = ptable_new();
    assert_non_null(t);
    struct prefix a = pfx("10.0.0.0/8"), b = pfx("10.1.0.0/16"), c = pfx("10.1.2.3"),
                  d = pfx("fd00::/16"), e = pfx("fd00:1::/64");
    uint32_t old = 99;
    assert_int_equal(ptable_insert(t, &a, 1, &old), 0);
    assert_int_equal(ptable_insert(t, &b, 2, &old), 0);
    assert_int_equal(ptable_insert(t, &c, 3, &old), 0);
    assert_int_equal(ptable_insert(t, &d, 4, &old), 0);
    assert_int_equal(ptable_insert(t, &e, 5, &old), 0);
    assert_int_equal(ptable_insert(t, &b, 7, &old), 1); /* already there: kept */
    assert_int_equal(old, 2);
    static const struct {
        int af;
        const char *ip;
        int want; /* -1: none */
    } q[] = {
        {AF_INET, "10.9.9.9", 1},  {AF_INET, "10.1.9.9", 2},     {AF_INET, "10.1.2.3", 3},
        {AF_INET, "10.1.2.4", 2},  {AF_INET, "11.0.0.0", -1},    {AF_INET, "9.255.255.255", -1},
        {AF_INET6, "fd00::1", 4},  {AF_INET6, "fd00:1::9", 5},   {AF_INET6, "fd01::", -1},
        {AF_INET6, "::a01:203", -1}, /* the IPv4 prefixes are not IPv6 ones */
    };
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        uint8_t addr[16];
        assert_int_equal(inet_pton(q[i].af, q[i].ip, addr), 1);
        uint32_t v = 0;
        int rc = ptable_lookup(t, q[i].af, addr, &v);
        if (q[i].want < 0) assert_int_equal(rc, -1);
        else {
            assert_int_equal(rc, 0);
            assert_int_equal(v, (uint32_t)q[i].want);
        }
    }
    uint8_t z[16] = {0};
    uint32_t v;
    assert_int_equal(ptable_lookup(t, AF_UNIX, z, &v), -1);
    /* a default route catches the rest */
    struct prefix all = pfx("0.0.0.0/0");
    assert_int_equal(ptable_insert(t, &all, 9, NULL), 0);
    assert_int_equal(ptable_lookup(t, AF_INET, z, &v), 0);
    assert_int_equal(v, 9);
    assert_true(ptable_bytes(t) > 0);
    ptable_free(t);
    ptable_free(NULL);
}

/* Random prefixes and addresses: the table agrees with a scan for the longest match. */
static void test_table_against_scan(void **state)
{
    (void)state;
    srand(7);
    for (int round = 0; round < 20; round++) {
        struct ptable *t = ptable_new();
        assert_non_null(t);
        struct prefix ps[200];
        int n = 0;
        for (int i = 0; i < 200; i++) {
            struct prefix p = {.family = AF_INET, .len = (unsigned)(rand() % 33)};
            uint32_t a = (uint32_t)rand() << 1 ^ (uint32_t)rand();
            a &= p.len ? ~0u << (32 - p.len) : 0;
            /* concentrate them so that they nest */
            a = (a & 0x00ffffffu) | 0x0a000000u;
            if (p.len < 8) p.len = 8;
            a &= ~0u << (32 - p.len);
            uint32_t be = htonl(a);
            memcpy(p.addr, &be, 4);
            int dup = 0;
            for (int k = 0; k < n; k++)
                if (ps[k].len == p.len && memcmp(ps[k].addr, p.addr, 4) == 0) dup = 1;
            if (dup) continue;
            assert_int_equal(ptable_insert(t, &p, (uint32_t)n, NULL), 0);
            ps[n++] = p;
        }
        for (int i = 0; i < 2000; i++) {
            uint32_t a = ((uint32_t)rand() << 1 ^ (uint32_t)rand()) & 0x00ffffffu;
            a |= (rand() % 8) ? 0x0a000000u : 0x0b000000u;
            uint32_t be = htonl(a);
            int best = -1;
            unsigned bestlen = 0;
            for (int k = 0; k < n; k++) {
                uint32_t net;
                memcpy(&net, ps[k].addr, 4);
                uint32_t mask = ps[k].len ? ~0u << (32 - ps[k].len) : 0;
                if ((a & mask) == ntohl(net) && (best < 0 || ps[k].len > bestlen)) {
                    best = k;
                    bestlen = ps[k].len;
                }
            }
            uint32_t v = 0;
            int rc = ptable_lookup(t, AF_INET, (const uint8_t *)&be, &v);
            if (best < 0) assert_int_equal(rc, -1);
            else {
                assert_int_equal(rc, 0);
                assert_int_equal(v, (uint32_t)best);
            }
        }
        ptable_free(t);
    }
}

static void test_packet_addresses(void **state)
{
    (void)state;
    uint8_t p[64] = {0};
    const uint8_t *src = NULL, *dst = NULL;
    p[0] = 0x45;
    p[12] = 198, p[13] = 18, p[14] = 0, p[15] = 10;
    p[16] = 198, p[17] = 18, p[18] = 0, p[19] = 1;
    assert_int_equal(ip_pkt_addrs(p, 20, &src, &dst), AF_INET);
    assert_ptr_equal(src, p + 12);
    assert_ptr_equal(dst, p + 16);
    assert_int_equal(ip_pkt_addrs(p, 19, &src, &dst), 0);  /* too short */
    p[0] = 0x44;                                              /* IHL below 5 */
    assert_int_equal(ip_pkt_addrs(p, 20, &src, &dst), 0);
    p[0] = 0x60;
    assert_int_equal(ip_pkt_addrs(p, 40, &src, &dst), AF_INET6);
    assert_ptr_equal(src, p + 8);
    assert_ptr_equal(dst, p + 24);
    assert_int_equal(ip_pkt_addrs(p, 39, &src, &dst), 0);
    for (int v = 0; v < 16; v++) {
        if (v == 4 || v == 6) continue;
        p[0] = (uint8_t)(v << 4 | 5);
        assert_int_equal(ip_pkt_addrs(p, sizeof p, &src, &dst), 0);
    }
    assert_int_equal(ip_pkt_addrs(p, 0, &src, &dst), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_hostile),
        cmocka_unit_test(test_table_longest_match),
        cmocka_unit_test(test_table_against_scan),
        cmocka_unit_test(test_packet_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
