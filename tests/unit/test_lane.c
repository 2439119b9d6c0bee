/* test_lane.c: the TCP lane's record codec (hostile input included) and its reassembly of a
 * stream from pieces that arrive over several links: gaps, duplicates, overlaps, the window,
 * FIN, offsets near 2^64, and a random model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>
#include <sodium.h>

#include "../../links/tcp_server.h"
#include "../../lane/lane.h"

static struct lane_rec R[64];

static void test_record_roundtrip(void **state)
{
    (void)state;
    uint8_t buf[40000], data[LANE_DATA_MAX];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 7);
    struct lane_rec in[] = {
        {.type = LANE_OPEN, .conn = 1, .family = 4, .addr = {198, 18, 50, 7}, .port = 443},
        {.type = LANE_OPEN, .conn = 2, .family = 6, .addr = {0x20, 1, 2, [15] = 7}, .port = 80},
        {.type = LANE_OPENED, .conn = 1, .status = LANE_OPEN_OK},
        {.type = LANE_OPENED, .conn = 2, .status = LANE_OPEN_REFUSED},
        {.type = LANE_DATA, .conn = 1, .offset = 0, .data = data, .len = 1},
        {.type = LANE_DATA, .conn = 1, .offset = UINT64_MAX - LANE_DATA_MAX, .data = data,
         .len = LANE_DATA_MAX},
        {.type = LANE_FIN, .conn = 1, .offset = 123456789012ull},
        {.type = LANE_RST, .conn = 0xffffffffu, .status = LANE_RST_SHUTDOWN},
        {.type = LANE_ACK, .conn = 7, .offset = 99, .received = 1ull << 40},
    };
    size_t pos = 0;
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
        assert_int_equal(lane_rec_put(buf, sizeof buf, &pos, &in[i]), 0);
    int n = lane_rec_decode(buf, pos, R, 64);
    assert_int_equal(n, (int)(sizeof in / sizeof in[0]));
    for (int i = 0; i < n; i++) {
        assert_int_equal(R[i].type, in[i].type);
        assert_int_equal(R[i].conn, in[i].conn);
        assert_int_equal(R[i].family, in[i].family);
        assert_memory_equal(R[i].addr, in[i].addr, 16);
        assert_int_equal(R[i].port, in[i].port);
        assert_int_equal(R[i].status, in[i].status);
        assert_true(R[i].offset == in[i].offset);
        assert_true(R[i].received == in[i].received);
        assert_int_equal(R[i].len, in[i].len);
        if (in[i].len) assert_memory_equal(R[i].data, in[i].data, in[i].len);
    }
    assert_int_equal(buf[0], LANE_OPEN);
    assert_int_equal(buf[1] * 256 + buf[2], 4 + 1 + 4 + 2); /* the body's length */
}

static void test_record_put_refuses(void **state)
{
    (void)state;
    uint8_t buf[64], d[LANE_DATA_MAX + 1] = {0};
    size_t pos = 0;
    struct lane_rec bad[] = {
        {.type = LANE_DATA, .conn = 0, .data = d, .len = 1},                  /* conn 0 */
        {.type = LANE_DATA, .conn = 1, .data = d, .len = 0},                  /* empty */
        {.type = LANE_DATA, .conn = 1, .data = d, .len = LANE_DATA_MAX + 1},  /* too long */
        {.type = LANE_DATA, .conn = 1, .offset = UINT64_MAX, .data = d, .len = 1}, /* wraps */
        {.type = LANE_ACK, .conn = 1, .offset = 5, .received = 4},           /* held < delivered */
        {.type = LANE_OPEN, .conn = 1, .family = 5, .port = 1},               /* family */
        {.type = LANE_OPEN, .conn = 1, .family = 4, .port = 0},               /* port 0 */
        {.type = LANE_OPENED, .conn = 1, .status = LANE_OPEN_ERROR_MAX + 1},
        {.type = LANE_RST, .conn = 1, .status = LANE_RST_REASON_MAX + 1},
        {.type = 9, .conn = 1},                                                /* type */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(lane_rec_put(buf, sizeof buf, &pos, &bad[i]), -1);
        assert_int_equal(pos, 0);
    }
    struct lane_rec ok = {.type = LANE_ACK, .conn = 1};
    assert_int_equal(lane_rec_put(buf, LANE_REC_HDR + 19, &pos, &ok), -1); /* no room */
    assert_int_equal(lane_rec_put(buf, LANE_REC_HDR + 20, &pos, &ok), 0);
    pos = 100;
    assert_int_equal(lane_rec_put(buf, sizeof buf, &pos, &ok), -1); /* pos past cap */
}

/* Decode from an exact-size heap copy so ASan catches any over-read. */
static int decode(const uint8_t *p, size_t len)
{
    uint8_t *c = malloc(len ? len : 1);
    assert_non_null(c);
    memcpy(c, p, len);
    int n = lane_rec_decode(c, len, R, 64);
    free(c);
    return n;
}

static void test_record_hostile(void **state)
{
    (void)state;
    uint8_t buf[256];
    size_t pos = 0;
    static const uint8_t d[20] = {1, 2, 3};
    struct lane_rec a = {.type = LANE_DATA, .conn = 3, .offset = 5, .data = d, .len = 20};
    struct lane_rec b = {.type = LANE_FIN, .conn = 3, .offset = 25};
    assert_int_equal(lane_rec_put(buf, sizeof buf, &pos, &a), 0);
    size_t cut = pos;
    assert_int_equal(lane_rec_put(buf, sizeof buf, &pos, &b), 0);
    for (size_t len = 0; len <= pos; len++) { /* every truncation */
        int n = decode(buf, len);
        if (len == 0) assert_int_equal(n, 0);
        else if (len == cut) assert_int_equal(n, 1);
        else if (len == pos) assert_int_equal(n, 2);
        else assert_int_equal(n, -1);
    }
    assert_int_equal(lane_rec_decode(buf, pos, R, 1), -1); /* more than max */
    /* known types with bodies they do not allow */
    const uint8_t data0[] = {LANE_DATA, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(decode(data0, sizeof data0), -1); /* no data */
    const uint8_t conn0[] = {LANE_ACK, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9,
                             0, 0, 0, 0, 0, 0, 0, 9};
    assert_int_equal(decode(conn0, sizeof conn0), -1);
    const uint8_t ack12[] = {LANE_ACK, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9};
    assert_int_equal(decode(ack12, sizeof ack12), -1); /* no second offset */
    const uint8_t ackback[] = {LANE_ACK, 0, 20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9,
                               0, 0, 0, 0, 0, 0, 0, 8};
    assert_int_equal(decode(ackback, sizeof ackback), -1); /* held below delivered */
    const uint8_t fin11[] = {LANE_FIN, 0, 11, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(decode(fin11, sizeof fin11), -1);
    const uint8_t open5[] = {LANE_OPEN, 0, 11, 0, 0, 0, 1, 5, 1, 2, 3, 4, 0, 80};
    assert_int_equal(decode(open5, sizeof open5), -1); /* family 5 */
    const uint8_t open6short[] = {LANE_OPEN, 0, 11, 0, 0, 0, 1, 6, 1, 2, 3, 4, 0, 80};
    assert_int_equal(decode(open6short, sizeof open6short), -1); /* IPv6 with 4 bytes */
    const uint8_t openport0[] = {LANE_OPEN, 0, 11, 0, 0, 0, 1, 4, 1, 2, 3, 4, 0, 0};
    assert_int_equal(decode(openport0, sizeof openport0), -1);
    const uint8_t opened9[] = {LANE_OPENED, 0, 5, 0, 0, 0, 1, 9};
    assert_int_equal(decode(opened9, sizeof opened9), -1);
    const uint8_t short3[] = {LANE_RST, 0, 3, 0, 0, 1};
    assert_int_equal(decode(short3, sizeof short3), -1); /* no room for conn */
    uint8_t wrap[3 + 12 + 2] = {LANE_DATA, 0, 14, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff,
                                0xff, 0xff, 0xff, 0xff, 7, 7};
    assert_int_equal(decode(wrap, sizeof wrap), -1); /* offset + 2 beyond 2^64 - 1 */
    uint8_t toolong[3 + 12 + LANE_DATA_MAX + 1] = {LANE_DATA, (12 + LANE_DATA_MAX + 1) >> 8,
                                                   (12 + LANE_DATA_MAX + 1) & 0xff, 0, 0, 0, 1};
    assert_int_equal(decode(toolong, sizeof toolong), -1);
    const uint8_t past[] = {LANE_ACK, 0xff, 0xff, 0, 0, 0, 1};
    assert_int_equal(decode(past, sizeof past), -1); /* length past the end */
    /* RCVD (7): 8 bytes, no connection id; any other length is malformed */
    const uint8_t rcvd[] = {LANE_RCVD, 0, 8, 0, 0, 0, 0, 0, 1, 0, 2};
    assert_int_equal(decode(rcvd, sizeof rcvd), 1);
    assert_int_equal(R[0].type, LANE_RCVD);
    assert_int_equal(R[0].conn, 0);
    assert_true(R[0].received == 0x10002);
    const uint8_t rcvd4[] = {LANE_RCVD, 0, 4, 0, 0, 0, 1};
    assert_int_equal(decode(rcvd4, sizeof rcvd4), -1);
    const uint8_t rcvd9[] = {LANE_RCVD, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1, 0};
    assert_int_equal(decode(rcvd9, sizeof rcvd9), -1);
    uint8_t rb[32];
    size_t rpos = 0;
    struct lane_rec rr = {.type = LANE_RCVD, .received = 77};
    assert_int_equal(lane_rec_put(rb, sizeof rb, &rpos, &rr), 0);
    assert_int_equal(rpos, 11);
    assert_int_equal(decode(rb, rpos), 1);
    assert_true(R[0].received == 77);
    rr.conn = 5; /* (an RCVD is of the connection, not of a stream) */
    assert_int_equal(lane_rec_put(rb, sizeof rb, &rpos, &rr), -1);
    /* unknown types (0, 8, 255) are skipped, with any body */
    const uint8_t unknown[] = {0, 0, 0, 8, 0, 2, 9, 9, 255, 0, 1, 1,
                               LANE_ACK, 0, 20, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3,
                               0, 0, 0, 0, 0, 0, 0, 5};
    assert_int_equal(decode(unknown, sizeof unknown), 1);
    assert_int_equal(R[0].type, LANE_ACK);
    assert_int_equal(R[0].conn, 2);
    assert_true(R[0].offset == 3);
    assert_true(R[0].received == 5);
}

/* ---- reassembly ---- */

static size_t read_all(struct lane_reasm *r, uint8_t *out)
{
    size_t n = 0, k;
    while ((k = lane_reasm_read(r, out + n, 3)) > 0) n += k; /* small reads on purpose */
    return n;
}

static void test_reasm_order_gaps_dups(void **state)
{
    (void)state;
    struct lane_reasm r;
    assert_int_equal(lane_reasm_init(&r, 16), 0);
    const uint8_t *s = (const uint8_t *)"abcdefghijklmnopqrstuvwxyz";
    uint8_t out[64];
    assert_int_equal(lane_reasm_add(&r, 4, s + 4, 4), LANE_REASM_OK); /* a gap before it */
    assert_int_equal(lane_reasm_ready(&r), 0);
    assert_int_equal(lane_reasm_add(&r, 4, s + 4, 4), LANE_REASM_DUP); /* the same again */
    assert_int_equal(lane_reasm_add(&r, 2, s + 2, 4), LANE_REASM_OK);  /* overlapping */
    assert_int_equal(r.nranges, 1);
    assert_int_equal(lane_reasm_add(&r, 0, s, 2), LANE_REASM_OK);      /* the gap filled */
    assert_int_equal(lane_reasm_ready(&r), 8);
    assert_int_equal(read_all(&r, out), 8);
    assert_memory_equal(out, s, 8);
    assert_int_equal(lane_reasm_add(&r, 0, s, 8), LANE_REASM_DUP); /* delivered already */
    assert_int_equal(lane_reasm_add(&r, 6, s + 6, 6), LANE_REASM_OK); /* half delivered */
    assert_int_equal(read_all(&r, out), 4);
    assert_memory_equal(out, s + 8, 4);
    /* the window: 16 bytes past what was read (12), so nothing may end after 28 */
    assert_int_equal(lane_reasm_add(&r, 20, s + 20, 9), LANE_REASM_WINDOW);
    assert_int_equal(lane_reasm_add(&r, 12, s + 12, 17), LANE_REASM_WINDOW);
    assert_int_equal(r.nranges, 0); /* (a refused piece leaves nothing behind) */
    assert_int_equal(lane_reasm_add(&r, 12, s + 12, 14), LANE_REASM_OK); /* 12..26 */
    assert_int_equal(lane_reasm_fin(&r, 26), LANE_REASM_OK);
    assert_int_equal(lane_reasm_fin(&r, 26), LANE_REASM_DUP);
    assert_int_equal(lane_reasm_fin(&r, 27), LANE_REASM_BAD); /* a second, other FIN */
    assert_int_equal(lane_reasm_add(&r, 25, s + 25, 2), LANE_REASM_BAD); /* past the FIN */
    assert_false(lane_reasm_done(&r));
    assert_int_equal(read_all(&r, out), 14);
    assert_memory_equal(out, s + 12, 14);
    assert_true(lane_reasm_done(&r));
    assert_true(r.dup_bytes >= 4 + 8 + 2);
    lane_reasm_free(&r);
}

static void test_reasm_fin_rules_and_wrap(void **state)
{
    (void)state;
    struct lane_reasm r;
    uint8_t out[8], d[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_int_equal(lane_reasm_init(&r, 8), 0);
    assert_int_equal(lane_reasm_add(&r, 2, d, 4), LANE_REASM_OK);
    assert_int_equal(lane_reasm_fin(&r, 5), LANE_REASM_BAD); /* data held beyond it */
    assert_int_equal(lane_reasm_fin(&r, 6), LANE_REASM_OK);
    assert_int_equal(lane_reasm_add(&r, 0, d, 0), LANE_REASM_BAD); /* empty */
    lane_reasm_free(&r);
    /* a stream that starts near 2^64 (a hostile offset): never wraps, never overflows */
    assert_int_equal(lane_reasm_init(&r, 8), 0);
    r.next = UINT64_MAX - 4;
    assert_int_equal(lane_reasm_add(&r, UINT64_MAX - 4, d, 4), LANE_REASM_OK);
    assert_int_equal(lane_reasm_add(&r, UINT64_MAX - 1, d, 2), LANE_REASM_BAD); /* > 2^64-1 */
    assert_int_equal(lane_reasm_add(&r, UINT64_MAX, d, 1), LANE_REASM_BAD);
    assert_int_equal(lane_reasm_read(&r, out, sizeof out), 4);
    assert_memory_equal(out, d, 4);
    assert_int_equal(lane_reasm_fin(&r, 3), LANE_REASM_BAD); /* before what was read */
    lane_reasm_free(&r);
    assert_int_equal(lane_reasm_init(&r, 0), -1);
}

static void test_reasm_too_many_pieces(void **state)
{
    (void)state;
    struct lane_reasm r;
    uint8_t d = 7;
    assert_int_equal(lane_reasm_init(&r, 1u << 20), 0);
    int rc = 0, i;
    for (i = 0; i < 5000 && rc == 0; i++) rc = lane_reasm_add(&r, 1 + 2 * (uint64_t)i, &d, 1);
    assert_int_equal(rc, LANE_REASM_BAD); /* one byte every other offset: refused, not grown */
    assert_true(i > 1000);
    lane_reasm_free(&r);
}

static uint32_t lcg(uint32_t *x)
{
    *x = *x * 1103515245u + 12345u;
    return *x >> 8;
}

/* Pieces of a 20,000-byte stream, some twice, overlapping, out of order within the window,
 * with reads in between: what comes out is the stream, once. */
static void test_reasm_random_model(void **state)
{
    (void)state;
    enum { LEN = 20000, CAP = 4096 };
    static uint8_t stream[LEN], got[LEN + 64];
    uint32_t x = 4242;
    for (int i = 0; i < LEN; i++) stream[i] = (uint8_t)lcg(&x);
    for (int round = 0; round < 20; round++) {
        struct lane_reasm r;
        assert_int_equal(lane_reasm_init(&r, CAP), 0);
        size_t n = 0;
        int guard = 0;
        while (n < LEN && guard++ < 200000) {
            uint64_t off = r.next + lcg(&x) % CAP;
            size_t len = 1 + lcg(&x) % 600;
            if (lcg(&x) % 4 == 0 && r.next > 0) off = r.next - 1 - lcg(&x) % (r.next < 900 ? r.next : 900);
            if (off >= LEN) continue;
            if (off + len > r.next + CAP) len = (size_t)(r.next + CAP - off); /* the window */
            if (off + len > LEN) len = LEN - (size_t)off;
            if (len == 0) continue;
            int rc = lane_reasm_add(&r, off, stream + off, len);
            assert_true(rc == LANE_REASM_OK || rc == LANE_REASM_DUP);
            if (lcg(&x) % 3 == 0) n += lane_reasm_read(&r, got + n, 1 + lcg(&x) % 2000);
        }
        int frc = lane_reasm_fin(&r, LEN);
        if (frc != LANE_REASM_OK)
            fail_msg("fin: %d, next %llu, ranges %d, last end %llu, n %zu", frc,
                     (unsigned long long)r.next, r.nranges,
                     r.nranges ? (unsigned long long)r.ranges[r.nranges - 1].end : 0ull, n);
        while (!lane_reasm_done(&r)) {
            size_t k = lane_reasm_read(&r, got + n, 700);
            if (k == 0) { /* fill what is missing, in order */
                size_t len = LEN - (size_t)r.next < 500 ? LEN - (size_t)r.next : 500;
                int rc = lane_reasm_add(&r, r.next, stream + r.next, len);
                if (rc < 0) fail_msg("fill at %llu+%zu: %d (ranges %d, next %llu)",
                                     (unsigned long long)r.next, len, rc, r.nranges,
                                     (unsigned long long)r.next);
            }
            n += k;
        }
        assert_int_equal(n, LEN);
        assert_memory_equal(got, stream, LEN);
        lane_reasm_free(&r);
    }
}

/* ---- sealing ---- */

/* The derivation against Python's hashlib.blake2b (another implementation): key 00..1f,
 * challenge 100..115: blake2b(b"braid lane v1" + challenge, key=key, digest_size=32). */
static void test_seal_derivation_vector(void **state)
{
    (void)state;
    uint8_t k[32], ch[LANE_CHALLENGE_LEN];
    for (int i = 0; i < 32; i++) k[i] = (uint8_t)i;
    for (int i = 0; i < LANE_CHALLENGE_LEN; i++) ch[i] = (uint8_t)(100 + i);
    static const uint8_t want[32] = {
        0x5e, 0xe2, 0x92, 0x7f, 0x35, 0xc9, 0xa1, 0x5f, 0x36, 0x9a, 0x4b, 0x32, 0x49, 0xef, 0x2c, 0xd2,
        0xed, 0xc6, 0x26, 0xde, 0x60, 0xd6, 0xea, 0x22, 0xbf, 0x12, 0x22, 0x9c, 0x2d, 0xab, 0x8b, 0xbf};
    struct lane_keys lk;
    lane_keys_derive(k, k, ch, &lk);
    assert_memory_equal(lk.tx.key, want, 32);
    assert_true(lk.tx.counter == 0);
}

/* Two ends of a connection: the slave's tx is the master's rx. */
static void ends(struct lane_keys *slave, struct lane_keys *master, uint8_t challenge_last)
{
    uint8_t a[32], b[32], ch[LANE_CHALLENGE_LEN] = {0};
    memset(a, 0xa1, 32);
    memset(b, 0xb2, 32);
    ch[15] = challenge_last;
    lane_keys_derive(a, b, ch, slave);
    lane_keys_derive(b, a, ch, master);
}

static void test_seal_roundtrip_and_attacks(void **state)
{
    (void)state;
    struct lane_keys s, m;
    ends(&s, &m, 1);
    assert_memory_not_equal(s.tx.key, s.rx.key, 32);
    uint8_t plain[LANE_PLAIN_MAX], f1[LANE_FRAME_HDR + LANE_FRAME_MAX], f2[200], f3[200];
    for (size_t i = 0; i < sizeof plain; i++) plain[i] = (uint8_t)(i * 13);
    /* slave -> master, three frames */
    int n1 = lane_seal(&s.tx, plain, 100, f1, sizeof f1);
    int n2 = lane_seal(&s.tx, plain + 1, 50, f2, sizeof f2);
    int n3 = lane_seal(&s.tx, plain, 0, f3, sizeof f3); /* empty: still a frame */
    assert_int_equal(n1, 2 + 100 + 16);
    assert_int_equal(n2, 2 + 50 + 16);
    assert_int_equal(n3, 2 + 16);
    assert_int_equal(f1[0] * 256 + f1[1], 116);
    uint8_t c[200];
    /* out of order: the second frame first does not open (and the counter stays) */
    memcpy(c, f2, (size_t)n2);
    assert_int_equal(lane_open(&m.rx, c + 2, (size_t)n2 - 2), -1);
    assert_true(m.rx.counter == 0);
    /* every single changed byte (length included) fails */
    for (int i = 0; i < n1; i++) {
        memcpy(c, f1, (size_t)n1 < sizeof c ? (size_t)n1 : sizeof c);
        c[i] ^= 0x01;
        size_t blen = (size_t)(c[0] * 256 + c[1]);
        if (blen != (size_t)n1 - 2) continue; /* a changed length: the reader would wait */
        assert_int_equal(lane_open(&m.rx, c + 2, blen), -1);
    }
    memcpy(c, f1, (size_t)n1);
    assert_int_equal(lane_open(&m.rx, c + 2, (size_t)n1 - 2), 100);
    assert_memory_equal(c + 2, plain, 100);
    memcpy(c, f1, (size_t)n1); /* replayed */
    assert_int_equal(lane_open(&m.rx, c + 2, (size_t)n1 - 2), -1);
    memcpy(c, f2, (size_t)n2);
    assert_int_equal(lane_open(&m.rx, c + 2, (size_t)n2 - 2), 50);
    memcpy(c, f3, (size_t)n3);
    assert_int_equal(lane_open(&m.rx, c + 2, (size_t)n3 - 2), 0);
    /* the master's own direction does not open the slave's frames (no reflection) */
    struct lane_keys s2, m2;
    ends(&s2, &m2, 1);
    memcpy(c, f1, (size_t)n1);
    assert_int_equal(lane_open(&s2.rx, c + 2, (size_t)n1 - 2), -1);
    /* another connection (another challenge): the frames mean nothing there */
    struct lane_keys s3, m3;
    ends(&s3, &m3, 2);
    memcpy(c, f1, (size_t)n1);
    assert_int_equal(lane_open(&m3.rx, c + 2, (size_t)n1 - 2), -1);
    /* limits */
    assert_int_equal(lane_seal(&s.tx, plain, LANE_PLAIN_MAX, f1, sizeof f1),
                     LANE_FRAME_HDR + LANE_FRAME_MAX);
    assert_int_equal(lane_seal(&s.tx, plain, LANE_PLAIN_MAX + 1, f1, sizeof f1), -1);
    assert_int_equal(lane_seal(&s.tx, plain, 10, f2, 2 + 10 + 15), -1); /* no room */
    assert_int_equal(lane_open(&m.rx, c, 15), -1);                     /* shorter than a tag */
    s.tx.counter = UINT64_MAX;
    assert_int_equal(lane_seal(&s.tx, plain, 1, f2, sizeof f2), -1); /* never a nonce twice */
}

/* ---- opening a link connection ---- */

static void test_open_exchange(void **state)
{
    (void)state;
    uint8_t a[32], b[32], ch[16], msg[64], got[16];
    memset(a, 0x11, 32);
    memset(b, 0x22, 32);
    for (int i = 0; i < 16; i++) ch[i] = (uint8_t)(i * 9);
    /* 1. the challenge, read in pieces */
    link_tcp_greeting_put(msg, ch);
    for (size_t n = 0; n < LINK_TCP_GREETING_LEN; n++)
        assert_int_equal(link_tcp_greeting_parse(msg, n, got), 1);
    assert_int_equal(link_tcp_greeting_parse(msg, LINK_TCP_GREETING_LEN, got), 0);
    assert_memory_equal(got, ch, 16);
    uint8_t bad[LINK_TCP_GREETING_LEN];
    memcpy(bad, msg, sizeof bad);
    bad[3] = 2; /* another version */
    assert_int_equal(link_tcp_greeting_parse(bad, sizeof bad, got), -1);
    assert_int_equal(link_tcp_greeting_parse(bad, 4, got), -1);
    assert_int_equal(link_tcp_greeting_parse((const uint8_t *)"HTTP/1.1", 8, got), -1);
    assert_int_equal(link_tcp_greeting_parse((const uint8_t *)"H", 1, got), -1);
    /* 2. the HELLO: index 0x01020304, link 3 */
    struct lane_keys slave, master;
    lane_keys_derive(a, b, ch, &slave);
    lane_keys_derive(b, a, ch, &master);
    int n = lane_hello_put(msg, sizeof msg, 0x01020304u, 3, &slave.tx);
    assert_true(n > LANE_HELLO_HDR + LANE_FRAME_HDR);
    uint32_t index;
    uint8_t link;
    size_t flen;
    for (int k = 0; k < LANE_HELLO_HDR + LANE_FRAME_HDR; k++)
        assert_int_equal(lane_hello_parse(msg, (size_t)k, &index, &link, &flen), 1);
    assert_int_equal(lane_hello_parse(msg, (size_t)n, &index, &link, &flen), 0);
    assert_int_equal(index, 0x01020304u);
    assert_int_equal(link, 3);
    assert_int_equal(LANE_HELLO_HDR + LANE_FRAME_HDR + flen, n);
    uint8_t copy[64];
    /* a HELLO whose clear link id was changed: refused (the sealed one says 3) */
    memcpy(copy, msg, (size_t)n);
    struct lane_dir rx = master.rx;
    assert_int_equal(lane_hello_check(copy + LANE_HELLO_HDR + LANE_FRAME_HDR, flen, 4, &rx), -1);
    /* the same HELLO on another connection (another challenge): refused */
    struct lane_keys other;
    uint8_t ch2[16];
    memcpy(ch2, ch, 16);
    ch2[0] ^= 1;
    lane_keys_derive(b, a, ch2, &other);
    memcpy(copy, msg, (size_t)n);
    assert_int_equal(lane_hello_check(copy + 7, flen, 3, &other.rx), -1);
    /* with another session's keys: refused */
    struct lane_keys wrong;
    uint8_t c3[32];
    memset(c3, 0x33, 32);
    lane_keys_derive(c3, c3, ch, &wrong);
    memcpy(copy, msg, (size_t)n);
    assert_int_equal(lane_hello_check(copy + 7, flen, 3, &wrong.rx), -1);
    /* a HELLO frame of another size is refused before any crypto */
    memcpy(copy, msg, (size_t)n);
    copy[6]++;
    assert_int_equal(lane_hello_parse(copy, (size_t)n, &index, &link, &flen), -1);
    /* the real one */
    memcpy(copy, msg, (size_t)n);
    assert_int_equal(lane_hello_check(copy + 7, flen, 3, &master.rx), 0);
    assert_int_equal(lane_hello_check(copy + 7, flen, 3, &master.rx), -1); /* not twice */
    /* 3. the WELCOME */
    int w = lane_welcome_put(msg, sizeof msg, &master.tx);
    assert_true(w > LANE_FRAME_HDR);
    memcpy(copy, msg, (size_t)w);
    struct lane_dir srx = slave.rx;
    copy[w - 1] ^= 0x80;
    assert_int_equal(lane_welcome_check(copy + 2, (size_t)w - 2, &srx), -1);
    memcpy(copy, msg, (size_t)w);
    assert_int_equal(lane_welcome_check(copy + 2, (size_t)w - 2, &slave.rx), 0);
    /* then records flow both ways on counters 1, 2 ... */
    uint8_t f[64];
    int fn = lane_seal(&slave.tx, (const uint8_t *)"rec", 3, f, sizeof f);
    assert_int_equal(lane_open(&master.rx, f + 2, (size_t)fn - 2), 3);
    assert_int_equal(lane_welcome_put(msg, sizeof msg, &master.tx), -1); /* only first */
}

/* ---- the master's dial (loopback only) ---- */

static int dial_fd = -2, dial_status = -2;
static void dialed(void *ctx, int fd, int status)
{
    ev_break(ctx, EVBREAK_ALL);
    dial_fd = fd;
    dial_status = status;
}

static int listener(int backlog, uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, backlog), 0);
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    *port = ntohs(a.sin_port);
    return fd;
}

static void dial(struct ev_loop *loop, uint16_t port, double timeout)
{
    static const uint8_t lo[16] = {127, 0, 0, 1};
    dial_fd = dial_status = -2;
    struct lane_dial *d = lane_dial_start(loop, 4, lo, port, timeout, dialed, loop);
    assert_non_null(d);
    ev_run(loop, 0); /* (bounded: a dial always ends, at the latest by its own timeout) */
}

static void test_dial(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    uint16_t port;
    /* a listening destination: connected, with the socket */
    int lfd = listener(8, &port);
    dial(loop, port, 2.0);
    assert_int_equal(dial_status, LANE_OPEN_OK);
    assert_true(dial_fd >= 0);
    close(dial_fd);
    close(lfd);
    /* the same port closed now: refused */
    dial(loop, port, 2.0);
    assert_int_equal(dial_status, LANE_OPEN_REFUSED);
    assert_int_equal(dial_fd, -1);
    /* a destination that never answers (its queue full, so its SYNs are dropped): timeout */
    lfd = listener(0, &port);
    int fill[4];
    static const uint8_t lo[16] = {127, 0, 0, 1};
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        (void)connect(fill[i], (struct sockaddr *)&a, sizeof a);
    }
    dial(loop, port, 0.3);
    assert_int_equal(dial_status, LANE_OPEN_TIMEOUT);
    for (int i = 0; i < 4; i++) close(fill[i]);
    close(lfd);
    /* errno -> status */
    assert_int_equal(lane_dial_status_of(ECONNREFUSED), LANE_OPEN_REFUSED);
    assert_int_equal(lane_dial_status_of(ENETUNREACH), LANE_OPEN_UNREACHABLE);
    assert_int_equal(lane_dial_status_of(EHOSTUNREACH), LANE_OPEN_UNREACHABLE);
    assert_int_equal(lane_dial_status_of(ETIMEDOUT), LANE_OPEN_TIMEOUT);
    assert_null(lane_dial_start(loop, 5, lo, 1, 1.0, dialed, loop)); /* family */
    /* cancel: no callback, nothing left */
    lfd = listener(8, &port);
    struct lane_dial *d = lane_dial_start(loop, 4, lo, port, 1.0, dialed, loop);
    dial_status = -2;
    lane_dial_cancel(d);
    ev_run(loop, EVRUN_NOWAIT);
    assert_int_equal(dial_status, -2);
    close(lfd);
    ev_loop_destroy(loop);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_roundtrip),     cmocka_unit_test(test_record_put_refuses),
        cmocka_unit_test(test_record_hostile),       cmocka_unit_test(test_reasm_order_gaps_dups),
        cmocka_unit_test(test_reasm_fin_rules_and_wrap),
        cmocka_unit_test(test_reasm_too_many_pieces), cmocka_unit_test(test_reasm_random_model),
        cmocka_unit_test(test_seal_derivation_vector),
        cmocka_unit_test(test_seal_roundtrip_and_attacks),
        cmocka_unit_test(test_open_exchange),
        cmocka_unit_test(test_dial),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
