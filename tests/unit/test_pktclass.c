/* test_pktclass.c: unit tests of the tunnel packet classifier (mux/pktclass.c): pings, pure TCP
 * ACKs, SYNs and DNS may overtake; data, FIN/RST, other UDP, fragments and every malformed
 * header may not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../mux/pktclass.h"

/* An IPv4 packet: 20-byte header, protocol proto, l4 of l4len bytes (copied). */
static size_t ip4(uint8_t *p, uint8_t proto, const uint8_t *l4, size_t l4len)
{
    memset(p, 0, 20);
    p[0] = 0x45;
    p[2] = (uint8_t)((20 + l4len) >> 8);
    p[3] = (uint8_t)(20 + l4len);
    p[6] = 0x40; /* DF */
    p[8] = 64;
    p[9] = proto;
    memcpy(p + 20, l4, l4len);
    return 20 + l4len;
}

static size_t ip6(uint8_t *p, uint8_t next, const uint8_t *l4, size_t l4len)
{
    memset(p, 0, 40);
    p[0] = 0x60;
    p[4] = (uint8_t)(l4len >> 8);
    p[5] = (uint8_t)l4len;
    p[6] = next;
    p[7] = 64;
    memcpy(p + 40, l4, l4len);
    return 40 + l4len;
}

/* a TCP header with doff 32-bit words, flags, then payload bytes of zeros */
static size_t tcp(uint8_t *t, unsigned doff, uint8_t flags, size_t payload)
{
    memset(t, 0, doff * 4 + payload);
    t[12] = (uint8_t)(doff << 4);
    t[13] = flags;
    return doff * 4 + payload;
}

static void test_pure_ack_v4_v6(void **state)
{
    (void)state;
    uint8_t t[128], p[256];
    size_t n = tcp(t, 5, 0x10, 0);
    assert_true(pkt_reorder_safe(p, ip4(p, 6, t, n)));
    assert_true(pkt_reorder_safe(p, ip6(p, 6, t, n)));
    n = tcp(t, 8, 0x10, 0); /* with SACK/timestamp options */
    assert_true(pkt_reorder_safe(p, ip4(p, 6, t, n)));
    n = tcp(t, 5, 0x10 | 0x08, 0); /* PSH without payload: still an ACK */
    assert_true(pkt_reorder_safe(p, ip4(p, 6, t, n)));
}

static void test_tcp_not_safe(void **state)
{
    (void)state;
    uint8_t t[128], p[256];
    assert_false(pkt_reorder_safe(p, ip4(p, 6, t, tcp(t, 5, 0x18, 1))));  /* 1 byte of data */
    assert_false(pkt_reorder_safe(p, ip6(p, 6, t, tcp(t, 5, 0x18, 60)))); /* data */
    assert_false(pkt_reorder_safe(p, ip4(p, 6, t, tcp(t, 5, 0x02, 4))));  /* SYN with data */
    assert_false(pkt_reorder_safe(p, ip4(p, 6, t, tcp(t, 5, 0x03, 0))));  /* SYN+FIN */
    assert_false(pkt_reorder_safe(p, ip4(p, 6, t, tcp(t, 5, 0x11, 0))));  /* FIN+ACK */
    assert_false(pkt_reorder_safe(p, ip4(p, 6, t, tcp(t, 5, 0x14, 0))));  /* RST+ACK */
    assert_false(pkt_reorder_safe(p, ip4(p, 6, t, tcp(t, 5, 0x00, 0))));  /* no ACK */
}

/* A connection's first segment each way: nothing of its flow can be queued before it. */
static void test_syn(void **state)
{
    (void)state;
    uint8_t t[128], p[256];
    assert_true(pkt_reorder_safe(p, ip4(p, 6, t, tcp(t, 10, 0x02, 0)))); /* SYN, options */
    assert_true(pkt_reorder_safe(p, ip6(p, 6, t, tcp(t, 8, 0x12, 0))));  /* SYN+ACK */
}

/* a UDP header, ports sport -> dport, then payload bytes of zeros */
static size_t udp(uint8_t *u, unsigned sport, unsigned dport, size_t payload)
{
    memset(u, 0, 8 + payload);
    u[0] = (uint8_t)(sport >> 8), u[1] = (uint8_t)sport;
    u[2] = (uint8_t)(dport >> 8), u[3] = (uint8_t)dport;
    u[4] = (uint8_t)((8 + payload) >> 8), u[5] = (uint8_t)(8 + payload);
    return 8 + payload;
}

static void test_dns(void **state)
{
    (void)state;
    uint8_t u[128], p[256];
    assert_true(pkt_reorder_safe(p, ip4(p, 17, u, udp(u, 40000, 53, 40))));  /* query */
    assert_true(pkt_reorder_safe(p, ip6(p, 17, u, udp(u, 53, 40000, 90))));  /* answer */
    assert_false(pkt_reorder_safe(p, ip4(p, 17, u, udp(u, 40000, 5353, 40)))); /* mDNS */
    assert_false(pkt_reorder_safe(p, ip4(p, 17, u, udp(u, 443, 40000, 90)))); /* QUIC */
    size_t n = udp(u, 40000, 53, 40);
    u[4] = 0, u[5] = 7; /* UDP length below its header */
    assert_false(pkt_reorder_safe(p, ip4(p, 17, u, n)));
    u[4] = 0, u[5] = 49; /* beyond the IP payload */
    assert_false(pkt_reorder_safe(p, ip4(p, 17, u, n)));
    assert_false(pkt_reorder_safe(p, ip4(p, 17, u, 7))); /* truncated header */
}

static void test_echo(void **state)
{
    (void)state;
    uint8_t e[64] = {8, 0}, p[128];
    assert_true(pkt_reorder_safe(p, ip4(p, 1, e, 64)));
    e[0] = 0; /* reply */
    assert_true(pkt_reorder_safe(p, ip4(p, 1, e, 8)));
    e[0] = 3; /* unreachable: carries a quoted packet, let it keep its place */
    assert_false(pkt_reorder_safe(p, ip4(p, 1, e, 36)));
    e[0] = 128;
    assert_true(pkt_reorder_safe(p, ip6(p, 58, e, 16)));
    e[0] = 129;
    assert_true(pkt_reorder_safe(p, ip6(p, 58, e, 8)));
    e[0] = 8; /* the IPv4 type number under ICMPv6 */
    assert_false(pkt_reorder_safe(p, ip6(p, 58, e, 8)));
    e[0] = 8;
    assert_false(pkt_reorder_safe(p, ip4(p, 1, e, 7))); /* truncated ICMP */
}

static void test_other_protocols(void **state)
{
    (void)state;
    uint8_t u[64] = {0}, p[128];
    assert_false(pkt_reorder_safe(p, ip4(p, 17, u, 8)));  /* UDP */
    assert_false(pkt_reorder_safe(p, ip6(p, 17, u, 8)));
    assert_false(pkt_reorder_safe(p, ip6(p, 0, u, 48)));  /* hop-by-hop extension header */
    assert_false(pkt_reorder_safe(p, ip4(p, 47, u, 24))); /* GRE */
}

/* Hostile headers: every inconsistency or truncation says "not safe", never reads past len
 * (the ASan build catches a read beyond the exact-size copies). */
static void test_hostile(void **state)
{
    (void)state;
    uint8_t t[64], p[128];
    size_t n = ip4(p, 6, t, tcp(t, 5, 0x10, 0));
    assert_false(pkt_reorder_safe(NULL, 40));
    assert_false(pkt_reorder_safe(p, 0));
    for (size_t cut = 0; cut < n; cut++) {
        uint8_t *c = malloc(cut ? cut : 1);
        assert_non_null(c);
        memcpy(c, p, cut);
        assert_false(pkt_reorder_safe(c, cut)); /* total length > what is there */
        free(c);
    }
    uint8_t q[128];
    memcpy(q, p, n);
    q[0] = 0x44; /* IHL 16 bytes */
    assert_false(pkt_reorder_safe(q, n));
    q[0] = 0x4f; /* IHL 60 > total 40 */
    assert_false(pkt_reorder_safe(q, n));
    memcpy(q, p, n);
    q[2] = 0, q[3] = 19; /* total below the header */
    assert_false(pkt_reorder_safe(q, n));
    memcpy(q, p, n);
    q[6] = 0x20; /* more fragments */
    assert_false(pkt_reorder_safe(q, n));
    memcpy(q, p, n);
    q[7] = 1; /* a fragment offset */
    assert_false(pkt_reorder_safe(q, n));
    memcpy(q, p, n);
    q[20 + 12] = 0x40; /* TCP data offset 16 bytes */
    assert_false(pkt_reorder_safe(q, n));
    q[20 + 12] = 0xf0; /* data offset 60 > segment */
    assert_false(pkt_reorder_safe(q, n));
    memcpy(q, p, n);
    q[0] = 0x55; /* version 5 */
    assert_false(pkt_reorder_safe(q, n));
    /* IPv6 whose payload length exceeds the packet, and a truncated one */
    n = ip6(p, 6, t, tcp(t, 5, 0x10, 0));
    memcpy(q, p, n);
    q[5] = 21;
    assert_false(pkt_reorder_safe(q, n));
    assert_false(pkt_reorder_safe(p, 39));
    /* a trailing byte after the IPv4 packet is not part of it */
    n = ip4(p, 6, t, tcp(t, 5, 0x10, 0));
    p[n] = 0xff;
    assert_true(pkt_reorder_safe(p, n + 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pure_ack_v4_v6), cmocka_unit_test(test_tcp_not_safe),
        cmocka_unit_test(test_echo),           cmocka_unit_test(test_other_protocols),
        cmocka_unit_test(test_syn),            cmocka_unit_test(test_dns),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
