/* test_socks5.c: unit tests of the SOCKS5 codec (links/socks5_proto.c) with valid, truncated,
 * split and hostile input, byte-exact against RFC 1928/1929, and of the retry backoff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "../../links/sock.h"
#include "../../links/socks5_proto.h"

#define UA SOCKS5_CMD_UDP_ASSOCIATE /* (the replies below answer one) */

static struct addr ip(const char *s, unsigned port)
{
    struct addr a;
    assert_int_equal(addr_parse_ip(s, port, &a), 0);
    return a;
}

static void test_greeting(void **state)
{
    (void)state;
    uint8_t g[4];
    assert_int_equal(socks5_build_greeting(g, false), 3);
    assert_memory_equal(g, "\x05\x01\x00", 3);
    assert_int_equal(socks5_build_greeting(g, true), 4);
    assert_memory_equal(g, "\x05\x02\x00\x02", 4);
}

static char err[200];

/* socks5_parse_method on a literal, the message in err */
static int method(const char *bytes, size_t n, bool with_auth, uint8_t *m)
{
    return socks5_parse_method((const uint8_t *)bytes, n, with_auth, m, err, sizeof err);
}

static void test_method_reply(void **state)
{
    (void)state;
    uint8_t m = 0xaa;
    assert_int_equal(method("", 0, false, &m), SOCKS5_NEED_MORE);
    assert_int_equal(method("\x05", 1, false, &m), SOCKS5_NEED_MORE);
    assert_int_equal(method("\x05\x00", 2, false, &m), 2);
    assert_int_equal(m, 0);
    /* username/password only when offered */
    assert_int_equal(method("\x05\x02", 2, true, &m), 2);
    assert_int_equal(m, 2);
    assert_int_equal(method("\x05\x02", 2, false, &m), SOCKS5_ERROR);
    assert_non_null(strstr(err, "did not offer"));
    /* GSSAPI was never offered */
    assert_int_equal(method("\x05\x01", 2, true, &m), SOCKS5_ERROR);
    assert_non_null(strstr(err, "GSSAPI"));
    /* no acceptable method: say that a login is needed */
    assert_int_equal(method("\x05\xff", 2, false, &m), SOCKS5_ERROR);
    assert_non_null(strstr(err, "set username and password"));
    /* SOCKS4 and HTTP proxies */
    assert_int_equal(method("\x04\x5a", 2, false, &m), SOCKS5_ERROR);
    assert_non_null(strstr(err, "version byte 0x04"));
    assert_int_equal(method("HTTP/1.1", 8, false, &m), SOCKS5_ERROR);
    assert_non_null(strstr(err, "version byte 0x48"));
}

static void test_auth(void **state)
{
    (void)state;
    uint8_t b[600];
    size_t n = socks5_build_auth(b, sizeof b, "braid", "s3cret");
    assert_int_equal(n, 3 + 5 + 6);
    assert_memory_equal(b, "\x01\x05" "braid" "\x06" "s3cret", n);
    /* limits */
    char u255[256], u256[257];
    memset(u255, 'u', 255);
    u255[255] = '\0';
    memset(u256, 'u', 256);
    u256[256] = '\0';
    assert_int_equal(socks5_build_auth(b, sizeof b, u255, u255), 3 + 255 + 255);
    assert_int_equal(b[1], 255);
    assert_int_equal(b[2 + 255], 255);
    assert_int_equal(socks5_build_auth(b, sizeof b, u256, "p"), 0);
    assert_int_equal(socks5_build_auth(b, sizeof b, "", "p"), 0);
    assert_int_equal(socks5_build_auth(b, sizeof b, "u", ""), 0);
    assert_int_equal(socks5_build_auth(b, 10, "braid", "s3cret"), 0); /* no room */

    assert_int_equal(socks5_parse_auth_reply((const uint8_t *)"\x01", 1, err, sizeof err),
                     SOCKS5_NEED_MORE);
    assert_int_equal(socks5_parse_auth_reply((const uint8_t *)"\x01\x00", 2, err, sizeof err), 2);
    assert_int_equal(socks5_parse_auth_reply((const uint8_t *)"\x05\x00", 2, err, sizeof err), 2);
    assert_int_equal(socks5_parse_auth_reply((const uint8_t *)"\x01\x01", 2, err, sizeof err),
                     SOCKS5_ERROR);
    assert_non_null(strstr(err, "rejected the username/password"));
    assert_int_equal(socks5_parse_auth_reply((const uint8_t *)"\x02\x00", 2, err, sizeof err),
                     SOCKS5_ERROR);
}

static void test_request(void **state)
{
    (void)state;
    uint8_t b[32];
    struct addr a = ip("192.168.43.7", 0x1234);
    assert_int_equal(socks5_build_request(b, sizeof b, SOCKS5_CMD_UDP_ASSOCIATE,
                                          (struct sockaddr *)&a.ss),
                     10);
    assert_memory_equal(b, "\x05\x03\x00\x01\xc0\xa8\x2b\x07\x12\x34", 10);
    a = ip("2001:db8::1", 80);
    assert_int_equal(socks5_build_request(b, sizeof b, 3, (struct sockaddr *)&a.ss), 22);
    assert_memory_equal(b, "\x05\x03\x00\x04\x20\x01\x0d\xb8", 8);
    assert_int_equal(b[19], 1);
    assert_memory_equal(b + 20, "\x00\x50", 2);
    assert_int_equal(socks5_build_request(b, 21, 3, (struct sockaddr *)&a.ss), 0);
    struct sockaddr_storage un = {.ss_family = AF_UNIX};
    assert_int_equal(socks5_build_request(b, sizeof b, 3, (struct sockaddr *)&un), 0);
}

static void test_reply_ipv4_and_every_prefix(void **state)
{
    (void)state;
    const uint8_t r4[] = {5, 0, 0, 1, 127, 0, 0, 1, 0xd0, 0xd4};
    struct socks5_reply r;
    /* every strict prefix needs more; the whole is consumed exactly */
    for (size_t n = 0; n < sizeof r4; n++)
        assert_int_equal(socks5_parse_reply(r4, n, UA, &r, err, sizeof err), SOCKS5_NEED_MORE);
    assert_int_equal(socks5_parse_reply(r4, sizeof r4, UA, &r, err, sizeof err), 10);
    assert_int_equal(r.rep, 0);
    assert_int_equal(r.atyp, SOCKS5_ATYP_IPV4);
    assert_int_equal(r.port, 0xd0d4);
    char s[ADDR_STRLEN];
    assert_string_equal(addr_str((struct sockaddr *)&r.addr.ss, s, sizeof s), "127.0.0.1:53460");
    /* trailing bytes are left alone */
    uint8_t more[14];
    memcpy(more, r4, 10);
    memset(more + 10, 0xee, 4);
    assert_int_equal(socks5_parse_reply(more, sizeof more, UA, &r, err, sizeof err), 10);
}

static void test_reply_ipv6_domain_unspecified(void **state)
{
    (void)state;
    struct socks5_reply r;
    char s[ADDR_STRLEN];
    uint8_t r6[22] = {5, 0, 0, 4};
    r6[4 + 15] = 1; /* ::1 */
    r6[20] = 0x04;
    r6[21] = 0x38;
    assert_int_equal(socks5_parse_reply(r6, 21, UA, &r, err, sizeof err), SOCKS5_NEED_MORE);
    assert_int_equal(socks5_parse_reply(r6, 22, UA, &r, err, sizeof err), 22);
    assert_string_equal(addr_str((struct sockaddr *)&r.addr.ss, s, sizeof s), "[::1]:1080");

    const uint8_t rd[] = {5, 0, 0, 3, 9, 'r', 'e', 'l', 'a', 'y', '.', 'l', 'a', 'n', 0x10, 0x00};
    for (size_t n = 0; n < sizeof rd; n++)
        assert_int_equal(socks5_parse_reply(rd, n, UA, &r, err, sizeof err), SOCKS5_NEED_MORE);
    assert_int_equal(socks5_parse_reply(rd, sizeof rd, UA, &r, err, sizeof err), (int)sizeof rd);
    assert_int_equal(r.atyp, SOCKS5_ATYP_DOMAIN);
    assert_string_equal(r.domain, "relay.lan");
    assert_int_equal(r.port, 4096);

    const uint8_t r0[] = {5, 0, 0, 1, 0, 0, 0, 0, 0x04, 0x38};
    assert_int_equal(socks5_parse_reply(r0, sizeof r0, UA, &r, err, sizeof err), 10);
    assert_true(addr_is_unspecified((struct sockaddr *)&r.addr.ss));
    assert_int_equal(r.port, 1080);
}

static void test_reply_hostile(void **state)
{
    (void)state;
    struct socks5_reply r;
    /* REP != 0 is an error as soon as it is known, with the RFC's words */
    assert_int_equal(socks5_parse_reply((const uint8_t *)"\x05\x07", 2, UA, &r, err, sizeof err),
                     SOCKS5_ERROR);
    assert_int_equal(r.rep, 7);
    assert_non_null(strstr(err, "refused UDP ASSOCIATE: command not supported (REP=7)"));
    assert_non_null(strstr(err, "type = \"socks5-tcp\""));
    /* the same to a CONNECT (a socks5-tcp link, the TCP lane) names that command */
    assert_int_equal(socks5_parse_reply((const uint8_t *)"\x05\x05", 2, SOCKS5_CMD_CONNECT, &r,
                                        err, sizeof err),
                     SOCKS5_ERROR);
    assert_non_null(strstr(err, "refused CONNECT: connection refused (REP=5)"));
    for (unsigned rep = 1; rep < 256; rep++) {
        uint8_t b[2] = {5, (uint8_t)rep};
        assert_int_equal(socks5_parse_reply(b, 2, UA, &r, err, sizeof err), SOCKS5_ERROR);
        assert_non_null(strstr(err, "REP="));
    }
    assert_int_equal(socks5_parse_reply((const uint8_t *)"\x04\x00", 2, UA, &r, err, sizeof err),
                     SOCKS5_ERROR);
    assert_non_null(strstr(err, "version byte 0x04"));
    /* unknown ATYP */
    assert_int_equal(socks5_parse_reply((const uint8_t *)"\x05\x00\x00\x02\x00\x00", 6, UA, &r, err,
                                        sizeof err),
                     SOCKS5_ERROR);
    assert_non_null(strstr(err, "unknown address type 2"));
    /* empty domain */
    assert_int_equal(socks5_parse_reply((const uint8_t *)"\x05\x00\x00\x03\x00\x00\x50", 7, UA,
                                        &r, err, sizeof err),
                     SOCKS5_ERROR);
    /* a domain that is not a host name (binary, spaces, NUL) */
    uint8_t bad[4 + 1 + 255 + 2] = {5, 0, 0, 3, 255};
    memset(bad + 5, 0x01, 255);
    assert_int_equal(socks5_parse_reply(bad, sizeof bad, UA, &r, err, sizeof err), SOCKS5_ERROR);
    assert_non_null(strstr(err, "not a host name"));
    memset(bad + 5, 'a', 255);
    bad[5 + 100] = '\0';
    assert_int_equal(socks5_parse_reply(bad, sizeof bad, UA, &r, err, sizeof err), SOCKS5_ERROR);
    /* the longest valid domain fits the buffer and is NUL-terminated */
    memset(bad + 5, 'a', 255);
    bad[5 + 255] = 0;
    bad[5 + 256] = 80;
    assert_int_equal(socks5_parse_reply(bad, sizeof bad, UA, &r, err, sizeof err), (int)sizeof bad);
    assert_int_equal(strlen(r.domain), 255);
    /* a domain length pointing past what arrived: need more, never a read past the end */
    assert_int_equal(socks5_parse_reply(bad, 100, UA, &r, err, sizeof err), SOCKS5_NEED_MORE);
    /* port 0 */
    assert_int_equal(socks5_parse_reply((const uint8_t *)"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x00",
                                        10, UA, &r, err, sizeof err),
                     SOCKS5_ERROR);
    assert_non_null(strstr(err, "port 0"));
    /* random bytes never crash and never claim more than they were given */
    srand(7);
    uint8_t rnd[64];
    for (int i = 0; i < 20000; i++) {
        size_t n = (size_t)(rand() % (int)sizeof rnd);
        for (size_t j = 0; j < n; j++) rnd[j] = (uint8_t)rand();
        if (n > 0 && (i & 1)) rnd[0] = 5;
        if (n > 1 && (i & 2)) rnd[1] = 0;
        int rc = socks5_parse_reply(rnd, n, UA, &r, err, sizeof err);
        assert_true(rc >= SOCKS5_ERROR && rc <= (int)n);
    }
}

static void test_udp_header(void **state)
{
    (void)state;
    uint8_t h[SOCKS5_UDP_HDR_V6];
    struct addr m4 = ip("203.0.113.5", 7000), m6 = ip("2001:db8::5", 7000);
    assert_int_equal(socks5_udp_header(h, (struct sockaddr *)&m4.ss), SOCKS5_UDP_HDR_V4);
    assert_memory_equal(h, "\x00\x00\x00\x01\xcb\x00\x71\x05\x1b\x58", 10);
    assert_int_equal(socks5_udp_header(h, (struct sockaddr *)&m6.ss), SOCKS5_UDP_HDR_V6);
    assert_memory_equal(h, "\x00\x00\x00\x04\x20\x01\x0d\xb8", 8);
    assert_memory_equal(h + 20, "\x1b\x58", 2);

    /* round trip with a payload behind it */
    uint8_t d[64];
    size_t hl = socks5_udp_header(d, (struct sockaddr *)&m4.ss);
    memcpy(d + hl, "payload", 7);
    struct socks5_udp_src src;
    size_t got = 0;
    assert_int_equal(socks5_udp_parse(d, hl + 7, &src, &got), SOCKS5_UDP_OK);
    assert_int_equal(got, 10);
    assert_true(addr_equal((struct sockaddr *)&src.addr.ss, (struct sockaddr *)&m4.ss));
    /* an empty payload is a valid header (the mux rejects the empty datagram) */
    assert_int_equal(socks5_udp_parse(d, hl, &src, &got), SOCKS5_UDP_OK);
    /* every truncation is short */
    for (size_t n = 0; n < hl; n++)
        assert_int_equal(socks5_udp_parse(d, n, &src, &got), SOCKS5_UDP_SHORT);
    /* FRAG, RSV, ATYP */
    d[2] = 1;
    assert_int_equal(socks5_udp_parse(d, hl + 7, &src, &got), SOCKS5_UDP_FRAG);
    d[2] = 0x80; /* end-of-sequence fragment: still a fragment */
    assert_int_equal(socks5_udp_parse(d, hl + 7, &src, &got), SOCKS5_UDP_FRAG);
    d[2] = 0;
    d[1] = 1;
    assert_int_equal(socks5_udp_parse(d, hl + 7, &src, &got), SOCKS5_UDP_RSV);
    d[1] = 0;
    d[3] = 9;
    assert_int_equal(socks5_udp_parse(d, hl + 7, &src, &got), SOCKS5_UDP_ATYP);
    /* domain source */
    const uint8_t dd[] = {0, 0, 0, 3, 4, 'h', 'o', 's', 't', 0, 80, 'x'};
    assert_int_equal(socks5_udp_parse(dd, sizeof dd, &src, &got), SOCKS5_UDP_OK);
    assert_int_equal(got, 11);
    assert_string_equal(src.domain, "host");
    assert_int_equal(socks5_udp_parse(dd, 10, &src, &got), SOCKS5_UDP_SHORT);
    const uint8_t d0[] = {0, 0, 0, 3, 0, 0, 80};
    assert_int_equal(socks5_udp_parse(d0, sizeof d0, &src, &got), SOCKS5_UDP_ATYP);
    /* a domain with a NUL in it (found by fuzz_socks_udp) */
    const uint8_t dn[] = {0, 0, 0, 3, 4, 0, 0, 0, 'h', 0, 80, 'x'};
    assert_int_equal(socks5_udp_parse(dn, sizeof dn, &src, &got), SOCKS5_UDP_ATYP);
    assert_string_equal(socks5_udp_result_str(SOCKS5_UDP_FRAG), "a SOCKS5 fragment (FRAG != 0)");
}

static void test_backoff(void **state)
{
    (void)state;
    /* 0.5 s doubling to 30 s; jitter spans 0.75x to 1.25x */
    assert_true(sock_backoff_s(0.5, 30, 0, 0.5) == 0.5);
    assert_true(sock_backoff_s(0.5, 30, 1, 0.5) == 1.0);
    assert_true(sock_backoff_s(0.5, 30, 2, 0.5) == 2.0);
    assert_true(sock_backoff_s(0.5, 30, 5, 0.5) == 16.0);
    assert_true(sock_backoff_s(0.5, 30, 6, 0.5) == 30.0);
    assert_true(sock_backoff_s(0.5, 30, 4000000000u, 0.5) == 30.0);
    assert_true(sock_backoff_s(0.5, 30, 0, 0.0) == 0.375);
    assert_true(sock_backoff_s(0.5, 30, 0, 1.0) == 0.625);
    assert_true(sock_backoff_s(0.5, 30, 9, 1.0) == 37.5);
    assert_true(sock_backoff_s(0.5, 30, 0, -3) == 0.375);
    /* never shrinks as failures grow */
    for (unsigned f = 0; f < 40; f++)
        assert_true(sock_backoff_s(0.5, 30, f + 1, 0.5) >= sock_backoff_s(0.5, 30, f, 0.5));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greeting),
        cmocka_unit_test(test_method_reply),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_request),
        cmocka_unit_test(test_reply_ipv4_and_every_prefix),
        cmocka_unit_test(test_reply_ipv6_domain_unspecified),
        cmocka_unit_test(test_reply_hostile),
        cmocka_unit_test(test_udp_header),
        cmocka_unit_test(test_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
