/* test_lane_stack.c: the slave's TCP terminator (lwIP in the event loop) with segments crafted
 * in memory: a client's connection to any address is answered from that address, accepted
 * with its destination, its bytes received, bytes sent back, closed both ways; a refused
 * connection is reset; what is not a TCP connection of its own is left to the packet path;
 * malformed packets change nothing; IPv6 the same. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ev.h>

#include "../../lane/lane.h"

/* ---- what the stack gives its owner ---- */
static uint8_t outq[16][2048];
static size_t outlen[16];
static int nout;
static struct lane_conn *conn;
static uint8_t got[4096];
static size_t ngot;
static int fins, closes, accepts;
static bool refuse, hold;
static uint8_t last_dst[16];
static int last_family;
static uint16_t last_port;

static void on_output(void *ctx, const uint8_t *pkt, size_t len)
{
    (void)ctx;
    assert_true(nout < 16 && len <= sizeof outq[0]);
    memcpy(outq[nout], pkt, len);
    outlen[nout++] = len;
}
static void *on_accept(void *ctx, struct lane_conn *c, int family, const uint8_t dst[16],
                       uint16_t port)
{
    (void)ctx;
    last_family = family;
    memcpy(last_dst, dst, 16);
    last_port = port;
    accepts++;
    if (refuse) return NULL;
    conn = c;
    if (!hold) lane_conn_proceed(c, 0);
    return &conn; /* any non-NULL context */
}
static size_t on_recv(void *ctx, void *owner, const uint8_t *data, size_t len)
{
    (void)ctx;
    assert_ptr_equal(owner, &conn);
    if (len == 0) {
        fins++;
        return 0;
    }
    memcpy(got + ngot, data, len);
    ngot += len;
    return len;
}
static void on_closed(void *ctx, void *owner, bool reset)
{
    (void)ctx;
    (void)owner;
    (void)reset;
    closes++;
}

/* ---- segments ---- */
static uint16_t csum(const uint8_t *p, size_t len, uint32_t acc)
{
    for (size_t i = 0; i + 1 < len; i += 2) acc += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (len & 1) acc += (uint32_t)(p[len - 1] << 8);
    while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
    return (uint16_t)~acc;
}

/* An IPv4 TCP segment from 198.18.0.2:40000 to dst:dport. */
static size_t seg(uint8_t *p, const char *dst, uint16_t dport, uint32_t seq, uint32_t ack,
                  uint8_t flags, const char *payload)
{
    size_t plen = payload ? strlen(payload) : 0, len = 20 + 20 + plen;
    memset(p, 0, len);
    p[0] = 0x45;
    p[2] = (uint8_t)(len >> 8);
    p[3] = (uint8_t)len;
    p[8] = 64;
    p[9] = 6;
    inet_pton(AF_INET, "198.18.0.2", p + 12);
    inet_pton(AF_INET, dst, p + 16);
    uint8_t *t = p + 20;
    t[0] = 40000 >> 8;
    t[1] = 40000 & 0xff;
    t[2] = (uint8_t)(dport >> 8);
    t[3] = (uint8_t)dport;
    for (int i = 0; i < 4; i++) {
        t[4 + i] = (uint8_t)(seq >> (24 - 8 * i));
        t[8 + i] = (uint8_t)(ack >> (24 - 8 * i));
    }
    t[12] = 5 << 4;
    t[13] = flags;
    t[14] = 0xff; /* window 65535 */
    t[15] = 0xff;
    if (plen) memcpy(t + 20, payload, plen);
    uint16_t c = csum(p, 20, 0);
    p[10] = (uint8_t)(c >> 8);
    p[11] = (uint8_t)c;
    uint32_t acc = 6 + (uint32_t)(20 + plen);
    for (int i = 12; i < 20; i += 2) acc += (uint32_t)(p[i] << 8 | p[i + 1]);
    c = csum(t, 20 + plen, acc);
    t[16] = (uint8_t)(c >> 8);
    t[17] = (uint8_t)c;
    return len;
}

/* An IPv6 TCP segment from 2001:2::2:40000 to dst:dport (2001:2::/48 is for benchmarks, and
 * these never leave the process). */
static size_t seg6(uint8_t *p, const char *dst, uint16_t dport, uint32_t seq, uint32_t ack,
                   uint8_t flags, const char *payload)
{
    size_t plen = payload ? strlen(payload) : 0, len = 40 + 20 + plen;
    memset(p, 0, len);
    p[0] = 0x60;
    p[4] = (uint8_t)((20 + plen) >> 8);
    p[5] = (uint8_t)(20 + plen);
    p[6] = 6;
    p[7] = 64;
    inet_pton(AF_INET6, "2001:2::2", p + 8);
    inet_pton(AF_INET6, dst, p + 24);
    uint8_t *t = p + 40;
    t[0] = 40000 >> 8;
    t[1] = 40000 & 0xff;
    t[2] = (uint8_t)(dport >> 8);
    t[3] = (uint8_t)dport;
    for (int i = 0; i < 4; i++) {
        t[4 + i] = (uint8_t)(seq >> (24 - 8 * i));
        t[8 + i] = (uint8_t)(ack >> (24 - 8 * i));
    }
    t[12] = 5 << 4;
    t[13] = flags;
    t[14] = 0xff;
    t[15] = 0xff;
    if (plen) memcpy(t + 20, payload, plen);
    uint32_t acc = 6 + (uint32_t)(20 + plen);
    for (int i = 8; i < 40; i += 2) acc += (uint32_t)(p[i] << 8 | p[i + 1]);
    uint16_t c = csum(t, 20 + plen, acc);
    t[16] = (uint8_t)(c >> 8);
    t[17] = (uint8_t)c;
    return len;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Check an output packet: from src:sport to the client, checksums right; its flags, seq, ack,
 * payload length. */
static void check_out(int i, const char *src, uint16_t sport, uint8_t *flags, uint32_t *seq,
                      uint32_t *ack, size_t *plen)
{
    const uint8_t *p = outq[i];
    size_t len = outlen[i];
    assert_true(len >= 40);
    assert_int_equal(p[9], 6);
    uint8_t a[4];
    inet_pton(AF_INET, src, a);
    assert_memory_equal(p + 12, a, 4);
    inet_pton(AF_INET, "198.18.0.2", a);
    assert_memory_equal(p + 16, a, 4);
    assert_int_equal(csum(p, 20, 0), 0); /* a header with its checksum sums to 0 */
    const uint8_t *t = p + 20;
    assert_int_equal(t[0] << 8 | t[1], sport);
    assert_int_equal(t[2] << 8 | t[3], 40000);
    uint32_t acc = 6 + (uint32_t)(len - 20);
    for (int k = 12; k < 20; k += 2) acc += (uint32_t)(p[k] << 8 | p[k + 1]);
    assert_int_equal(csum(t, len - 20, acc), 0);
    *flags = t[13];
    *seq = be32(t + 4);
    *ack = be32(t + 8);
    *plen = len - 20 - (size_t)(t[12] >> 4) * 4;
}

/* The Internet checksum over p (0 when a checksum inside it is right). */
static uint16_t inet_sum(const uint8_t *p, size_t len)
{
    uint32_t acc = 0;
    for (size_t i = 0; i + 1 < len; i += 2) acc += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (len & 1) acc += (uint32_t)(p[len - 1] << 8);
    while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
    return (uint16_t)~acc;
}

static struct lane_stack *fresh(struct ev_loop *loop)
{
    nout = 0;
    ngot = 0;
    fins = closes = accepts = 0;
    refuse = hold = false;
    conn = NULL;
    struct lane_stack_cb cb = {.output = on_output, .accept = on_accept, .recv = on_recv,
                               .closed = on_closed};
    char err[128];
    struct lane_stack *s = lane_stack_new(loop, &cb, err, sizeof err);
    assert_non_null(s);
    return s;
}

#define SYN 0x02
#define ACK 0x10
#define PSH 0x08
#define FIN 0x01
#define RST 0x04

static void test_a_connection_to_any_address(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct lane_stack *s = fresh(loop);
    uint8_t p[2048];
    uint8_t fl;
    uint32_t sq, ak;
    size_t pl;
    /* SYN to 198.18.50.7:80: the owner hears of it with its destination and lets it go on at
     * once (lane_conn_proceed in accept): the SYN-ACK comes from there */
    assert_true(lane_stack_input(s, p, seg(p, "198.18.50.7", 80, 1000, 0, SYN, NULL)));
    assert_int_equal(accepts, 1);
    uint8_t want[4];
    inet_pton(AF_INET, "198.18.50.7", want);
    assert_memory_equal(last_dst, want, 4);
    assert_int_equal(last_port, 80);
    assert_int_equal(nout, 1);
    check_out(0, "198.18.50.7", 80, &fl, &sq, &ak, &pl);
    assert_int_equal(fl, SYN | ACK);
    assert_int_equal(ak, 1001);
    uint32_t iss = sq;
    /* the handshake's ACK */
    assert_true(lane_stack_input(s, p, seg(p, "198.18.50.7", 80, 1001, iss + 1, ACK, NULL)));
    assert_int_equal(accepts, 1);
    /* the client's bytes */
    assert_true(lane_stack_input(s, p, seg(p, "198.18.50.7", 80, 1001, iss + 1, PSH | ACK,
                                           "hello")));
    assert_int_equal(ngot, 5);
    assert_memory_equal(got, "hello", 5);
    /* bytes back to the client, from the destination's address */
    nout = 0;
    assert_int_equal(lane_conn_send(conn, (const uint8_t *)"world!", 6), 6);
    assert_true(nout >= 1);
    check_out(nout - 1, "198.18.50.7", 80, &fl, &sq, &ak, &pl);
    assert_int_equal(pl, 6);
    assert_int_equal(sq, iss + 1);
    assert_int_equal(ak, 1006);
    assert_memory_equal(outq[nout - 1] + 40, "world!", 6);
    /* the client's FIN, then ours: closed both ways */
    assert_true(lane_stack_input(s, p, seg(p, "198.18.50.7", 80, 1006, iss + 7, FIN | ACK, NULL)));
    assert_int_equal(fins, 1);
    nout = 0;
    lane_conn_shutdown(conn);
    assert_true(nout >= 1);
    check_out(nout - 1, "198.18.50.7", 80, &fl, &sq, &ak, &pl);
    assert_true(fl & FIN);
    assert_int_equal(closes, 1);
    const struct lane_stack_counters *c = lane_stack_counters(s);
    assert_int_equal(c->accepted, 1);
    assert_true(c->out_dropped == 0);
    lane_stack_free(s);
    ev_loop_destroy(loop);
}

static void test_refused_and_not_ours(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct lane_stack *s = fresh(loop);
    uint8_t p[2048];
    uint8_t fl;
    uint32_t sq, ak;
    size_t pl;
    /* a connection the owner does not take: left to the packet path, nothing answered */
    refuse = true;
    assert_false(lane_stack_input(s, p, seg(p, "198.18.60.9", 443, 5000, 0, SYN, NULL)));
    assert_int_equal(nout, 0);
    refuse = false;
    /* held SYNs: nothing answers until the owner says; the client's SYN again is swallowed */
    hold = true;
    assert_true(lane_stack_input(s, p, seg(p, "198.18.60.9", 443, 5000, 0, SYN, NULL)));
    assert_true(lane_stack_input(s, p, seg(p, "198.18.60.9", 443, 5000, 0, SYN, NULL)));
    assert_int_equal(accepts, 2);
    assert_int_equal(nout, 0);
    /* the far end refused: a RST (with the ACK of the SYN) from the destination */
    lane_conn_proceed(conn, 1);
    assert_int_equal(nout, 1);
    check_out(0, "198.18.60.9", 443, &fl, &sq, &ak, &pl);
    assert_int_equal(fl, RST | ACK);
    assert_int_equal(ak, 5001);
    /* the far end unreachable: an ICMP host unreachable quoting the SYN's header and ports */
    nout = 0;
    size_t sl = seg(p, "198.18.60.10", 8443, 7000, 0, SYN, NULL);
    assert_true(lane_stack_input(s, p, sl));
    lane_conn_proceed(conn, 2);
    assert_int_equal(nout, 1);
    const uint8_t *o = outq[0];
    assert_int_equal(outlen[0], 20 + 8 + 28);
    assert_int_equal(o[9], 1);                       /* ICMP */
    assert_int_equal(o[20], 3);                      /* destination unreachable */
    assert_int_equal(o[21], 1);                      /* host unreachable */
    assert_memory_equal(o + 12, p + 16, 4);          /* from the destination */
    assert_memory_equal(o + 16, p + 12, 4);          /* to the client */
    assert_memory_equal(o + 28, p, 28);              /* the SYN's header and ports */
    assert_int_equal(inet_sum(o, 20), 0);            /* checksums right */
    assert_int_equal(inet_sum(o + 20, outlen[0] - 20), 0);
    /* a held SYN the far end took: the handshake goes on */
    nout = 0;
    assert_true(lane_stack_input(s, p, seg(p, "198.18.60.11", 25, 9000, 0, SYN, NULL)));
    assert_int_equal(nout, 0);
    lane_conn_proceed(conn, 0);
    assert_int_equal(nout, 1);
    check_out(0, "198.18.60.11", 25, &fl, &sq, &ak, &pl);
    assert_int_equal(fl, SYN | ACK);
    assert_int_equal(ak, 9001);
    hold = false;
    /* not ours: a segment of no connection it knows (not a SYN), a UDP datagram, a fragment */
    assert_false(lane_stack_input(s, p, seg(p, "198.18.70.1", 22, 1, 1, ACK, NULL)));
    size_t n = seg(p, "198.18.70.1", 53, 1, 0, SYN, NULL);
    p[9] = 17;
    assert_false(lane_stack_input(s, p, n));
    n = seg(p, "198.18.70.1", 80, 1, 0, SYN, NULL);
    p[6] = 0x20; /* more fragments */
    assert_false(lane_stack_input(s, p, n));
    /* a damaged segment (its checksum wrong) is taken and dropped, never given to lwIP */
    nout = 0;
    n = seg(p, "198.18.70.1", 80, 1, 0, SYN, NULL);
    p[38] ^= 1;
    assert_true(lane_stack_input(s, p, n));
    assert_int_equal(nout, 0);
    assert_true(lane_stack_counters(s)->in_dropped >= 1);
    /* malformed: every truncation, a wrong total length, a short data offset */
    n = seg(p, "198.18.70.1", 80, 1, 0, SYN, NULL);
    for (size_t k = 0; k < n; k++) assert_false(lane_stack_input(s, p, k));
    p[3]++;
    assert_false(lane_stack_input(s, p, n));
    n = seg(p, "198.18.70.1", 80, 1, 0, SYN, NULL);
    p[32] = 4 << 4;
    assert_false(lane_stack_input(s, p, n));
    lane_stack_free(s);
    ev_loop_destroy(loop);
}

/* The same over IPv6: answered from the destination, checksums right, bytes both ways. */
static void test_ipv6(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct lane_stack *s = fresh(loop);
    uint8_t p[2048];
    assert_true(lane_stack_input(s, p, seg6(p, "2001:2:0:50::7", 80, 1000, 0, SYN, NULL)));
    assert_int_equal(nout, 1);
    const uint8_t *o = outq[0];
    size_t len = outlen[0];
    assert_int_equal(o[0] >> 4, 6);
    uint8_t a[16];
    inet_pton(AF_INET6, "2001:2:0:50::7", a);
    assert_memory_equal(o + 8, a, 16); /* from the destination */
    inet_pton(AF_INET6, "2001:2::2", a);
    assert_memory_equal(o + 24, a, 16);
    uint32_t acc = 6 + (uint32_t)(len - 40);
    for (int i = 8; i < 40; i += 2) acc += (uint32_t)(o[i] << 8 | o[i + 1]);
    assert_int_equal(csum(o + 40, len - 40, acc), 0);
    assert_int_equal(o[40 + 13], SYN | ACK);
    uint32_t iss = be32(o + 44);
    assert_int_equal(be32(o + 48), 1001);
    assert_true(lane_stack_input(s, p, seg6(p, "2001:2:0:50::7", 80, 1001, iss + 1, ACK, NULL)));
    assert_int_equal(accepts, 1);
    assert_int_equal(last_family, 6);
    inet_pton(AF_INET6, "2001:2:0:50::7", a);
    assert_memory_equal(last_dst, a, 16);
    assert_true(lane_stack_input(s, p, seg6(p, "2001:2:0:50::7", 80, 1001, iss + 1, PSH | ACK,
                                            "six")));
    assert_int_equal(ngot, 3);
    assert_memory_equal(got, "six", 3);
    nout = 0;
    assert_int_equal(lane_conn_send(conn, (const uint8_t *)"ok", 2), 2);
    assert_true(nout >= 1);
    assert_memory_equal(outq[nout - 1] + 60, "ok", 2);
    lane_stack_free(s);
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_connection_to_any_address),
        cmocka_unit_test(test_refused_and_not_ours),
        cmocka_unit_test(test_ipv6),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
