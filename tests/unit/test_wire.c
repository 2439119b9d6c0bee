/* test_wire.c: unit tests of the datagram codec (mux/wire.c): byte-exact conformance with
 * PROTOCOL.md section 3, round trips, hostile datagrams and hostile CTRL payloads. */
#include <ctype.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "../../common/util.h"
#include "../../mux/session.h"
#include "../../mux/wire.h"

static const uint8_t KEY[WIRE_KEY_LEN] = {
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
    0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0};

static struct wire_hdr mkhdr(uint8_t type, uint16_t index, bool echo_valid, uint8_t link,
                             uint64_t ctr, uint32_t gseq, uint16_t ts, uint16_t echo)
{
    struct wire_hdr h = {.type = type,
                         .index = index,
                         .echo_valid = echo_valid,
                         .link_id = link,
                         .counter = ctr,
                         .gseq = gseq,
                         .ts = ts,
                         .echo = echo};
    return h;
}

static void fill_pattern(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 7u);
}

/* Seal a datagram of the given type with payload_len bytes of pattern; returns its length. */
static size_t seal_sample(uint8_t *out, size_t cap, uint8_t type, size_t payload_len)
{
    uint8_t payload[256];
    assert_true(payload_len <= sizeof(payload));
    fill_pattern(payload, payload_len, 3);
    struct wire_hdr h = mkhdr(type, 1, true, 42, 1000, 77, 5, 6);
    int n = wire_seal(out, cap, &h, payload, payload_len, KEY);
    assert_int_equal(n, (int)(payload_len + WIRE_OVERHEAD));
    return (size_t)n;
}

/* wire_open on an exact-size heap copy (so ASan sees any read past the end). */
static int open_copy(const uint8_t *dg, size_t len, struct wire_hdr *h)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len) memcpy(copy, dg, len);
    uint8_t *pl = NULL;
    size_t pll = 0;
    int rc = wire_open(copy, len, KEY, h, &pl, &pll);
    free(copy);
    return rc;
}

/* ---- conformance with PROTOCOL.md section 3, built by hand with libsodium ---- */

static void check_conformance(uint8_t type, bool echo_valid, uint8_t byte0)
{
    static const uint8_t payload[] = {0x45, 0x00, 0x00, 0x1c, 'b', 'r', 'a', 'i', 'd'};
    /* Clear header: byte 0, link id 0xA5, counter 0x0123456789AB (48 bits), receiver index
     * 0xC0FF (16 bits). */
    const uint8_t clear[10] = {byte0, 0xa5, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xc0, 0xff};
    /* Nonce: 0 0 0 <link id> <counter as 64-bit big-endian>. */
    const uint8_t nonce[12] = {0, 0, 0, 0xa5, 0x00, 0x00, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab};
    /* Plaintext: gseq 0xDEADBEEF, ts 0x1234, echo 0x5678, payload. */
    uint8_t plain[8 + sizeof(payload)] = {0xde, 0xad, 0xbe, 0xef, 0x12, 0x34, 0x56, 0x78};
    memcpy(plain + 8, payload, sizeof(payload));

    uint8_t expect[10 + sizeof(plain) + 16];
    memcpy(expect, clear, 10);
    unsigned long long clen = 0;
    assert_int_equal(crypto_aead_chacha20poly1305_ietf_encrypt(
                         expect + 10, &clen, plain, sizeof(plain), clear, 10, NULL, nonce, KEY),
                     0);
    assert_int_equal(clen, sizeof(plain) + 16);

    struct wire_hdr h =
        mkhdr(type, 0xc0ffu, echo_valid, 0xa5, UINT64_C(0x0123456789ab), 0xdeadbeef, 0x1234,
              0x5678);
    uint8_t out[sizeof(expect) + 10];
    int n = wire_seal(out, sizeof(out), &h, payload, sizeof(payload), KEY);
    assert_int_equal(n, (int)sizeof(expect));
    assert_int_equal(n, (int)sizeof(payload) + 34); /* "exactly 34 bytes" of overhead */
    assert_memory_equal(out, expect, sizeof(expect));
}

static void test_conformance_data(void **state)
{
    (void)state;
    /* V=11 T=00 R=0 E=1 R=0 U=0 -> 1100 0100 */
    check_conformance(WIRE_DATA, true, 0xc4);
    /* V=11 T=00 E=0 -> 1100 0000 */
    check_conformance(WIRE_DATA, false, 0xc0);
}

static void test_conformance_ctrl(void **state)
{
    (void)state;
    /* V=11 T=01 E=1 -> 1101 0100 */
    check_conformance(WIRE_CTRL, true, 0xd4);
    /* V=11 T=01 E=0 -> 1101 0000 */
    check_conformance(WIRE_CTRL, false, 0xd0);
}

/* ---- round trips ---- */

/* Seal one datagram, then check wire_peek and wire_open give back every field exactly. */
static void roundtrip_one(const struct wire_hdr *h, size_t plen, uint8_t seed)
{
    static uint8_t payload[1400], buf[1400 + WIRE_OVERHEAD];
    assert_true(plen <= sizeof(payload));
    fill_pattern(payload, plen, seed);
    int n = wire_seal(buf, sizeof(buf), h, payload, plen, KEY);
    assert_int_equal(n, (int)(plen + WIRE_OVERHEAD));

    struct wire_hdr p;
    assert_int_equal(wire_peek(buf, (size_t)n, &p), WIRE_OK);
    assert_int_equal(p.type, h->type);
    assert_int_equal(p.index, h->index);
    assert_int_equal(p.echo_valid, h->echo_valid);
    assert_int_equal(p.link_id, h->link_id);
    assert_true(p.counter == h->counter);

    struct wire_hdr o;
    memset(&o, 0xee, sizeof(o));
    uint8_t *pl = NULL;
    size_t pll = 99999;
    assert_int_equal(wire_open(buf, (size_t)n, KEY, &o, &pl, &pll), WIRE_OK);
    assert_int_equal(o.type, h->type);
    assert_int_equal(o.index, h->index);
    assert_int_equal(o.echo_valid, h->echo_valid);
    assert_int_equal(o.link_id, h->link_id);
    assert_true(o.counter == h->counter);
    assert_true(o.gseq == h->gseq);
    assert_int_equal(o.ts, h->ts);
    assert_int_equal(o.echo, h->echo);
    assert_int_equal(pll, plen);
    assert_ptr_equal(pl, buf + WIRE_HDR_LEN + WIRE_INNER_LEN);
    if (plen) assert_memory_equal(pl, payload, plen);
}

static void test_roundtrip(void **state)
{
    (void)state;
    const uint64_t ctrs[] = {0, 1, 0xffffffffu, UINT64_C(0x100000000), WIRE_COUNTER_MAX};
    const uint32_t gseqs[] = {0, 1, 0x7fffffffu, 0x80000000u, 0xfffffffeu, 0xffffffffu};
    const size_t lens[] = {0, 1, 17, 1400};
    int cases = 0;
    for (unsigned combo = 0; combo < 8; combo++) {
        uint8_t type = combo & 1u;
        uint16_t index = (combo >> 1) & 1u ? 0xffffu : (uint16_t)(combo * 0x0101u);
        bool e = (combo >> 2) & 1u;
        for (size_t ci = 0; ci < ARRAY_LEN(ctrs); ci++) {
            for (size_t gi = 0; gi < ARRAY_LEN(gseqs); gi++) {
                for (size_t li = 0; li < ARRAY_LEN(lens); li++) {
                    if (type == WIRE_DATA && lens[li] == 0) continue;
                    struct wire_hdr h =
                        mkhdr(type, index, e, (uint8_t)(255 - ci), ctrs[ci], gseqs[gi],
                              (uint16_t)(0xffff - gi), (uint16_t)(ci * 3u));
                    roundtrip_one(&h, lens[li], (uint8_t)(ci + gi));
                    cases++;
                }
            }
        }
    }
    assert_int_equal(cases, 4 * 5 * 6 * 4 + 4 * 5 * 6 * 3);
}

static void test_seal_in_place_and_overlap(void **state)
{
    (void)state;
    uint8_t ref[200], a[200], b[260];
    uint8_t payload[100];
    fill_pattern(payload, sizeof(payload), 9);
    struct wire_hdr h = mkhdr(WIRE_DATA, 0, false, 1, 5, 6, 7, 0);
    int n = wire_seal(ref, sizeof(ref), &h, payload, sizeof(payload), KEY);
    assert_int_equal(n, 134);

    /* Payload already at out + 18: encrypted in place. */
    memcpy(a + 18, payload, sizeof(payload));
    assert_int_equal(wire_seal(a, sizeof(a), &h, a + 18, sizeof(payload), KEY), n);
    assert_memory_equal(a, ref, (size_t)n);

    /* Payload overlapping the header area (at out + 3) and after it (at out + 40). */
    memcpy(b + 3, payload, sizeof(payload));
    assert_int_equal(wire_seal(b, sizeof(b), &h, b + 3, sizeof(payload), KEY), n);
    assert_memory_equal(b, ref, (size_t)n);
    memcpy(b + 40, payload, sizeof(payload));
    assert_int_equal(wire_seal(b, sizeof(b), &h, b + 40, sizeof(payload), KEY), n);
    assert_memory_equal(b, ref, (size_t)n);
}

static void test_max_size(void **state)
{
    (void)state;
    size_t maxpl = WIRE_MAX_DGRAM - WIRE_OVERHEAD;
    uint8_t *buf = malloc(WIRE_MAX_DGRAM + 1);
    uint8_t *payload = malloc(maxpl + 1);
    assert_non_null(buf);
    assert_non_null(payload);
    fill_pattern(payload, maxpl + 1, 1);
    struct wire_hdr h = mkhdr(WIRE_DATA, 0, false, 2, 3, 4, 5, 6);
    assert_int_equal(wire_seal(buf, WIRE_MAX_DGRAM + 1, &h, payload, maxpl + 1, KEY),
                     WIRE_ERR_LONG);
    int n = wire_seal(buf, WIRE_MAX_DGRAM + 1, &h, payload, maxpl, KEY);
    assert_int_equal(n, WIRE_MAX_DGRAM);
    struct wire_hdr o;
    uint8_t *pl;
    size_t pll;
    assert_int_equal(wire_open(buf, (size_t)n, KEY, &o, &pl, &pll), WIRE_OK);
    assert_int_equal(pll, maxpl);
    assert_memory_equal(pl, payload, maxpl);
    free(buf);
    free(payload);
}

/* ---- hostile datagrams ---- */

static void test_truncations(void **state)
{
    (void)state;
    for (uint8_t type = WIRE_DATA; type <= WIRE_CTRL; type++) {
        uint8_t dg[64];
        size_t n = seal_sample(dg, sizeof(dg), type, 20);
        size_t min = type == WIRE_DATA ? 35 : 34;
        for (size_t len = 0; len < n; len++) {
            struct wire_hdr h;
            int rc = open_copy(dg, len, &h);
            if (len < min) {
                assert_int_equal(rc, WIRE_ERR_SHORT);
                uint8_t *copy = malloc(len ? len : 1);
                if (len) memcpy(copy, dg, len);
                assert_int_equal(wire_peek(copy, len, &h), WIRE_ERR_SHORT);
                free(copy);
            } else {
                assert_int_equal(rc, WIRE_ERR_AUTH);
            }
        }
        struct wire_hdr h;
        assert_int_equal(open_copy(dg, n, &h), WIRE_OK);
    }
}

static void test_min_lengths(void **state)
{
    (void)state;
    uint8_t buf[128] = {0};
    struct wire_hdr h;
    buf[0] = 0xc0; /* DATA */
    assert_int_equal(wire_peek(buf, 34, &h), WIRE_ERR_SHORT);
    assert_int_equal(wire_peek(buf, 35, &h), WIRE_OK);
    buf[0] = 0xd0; /* CTRL */
    assert_int_equal(wire_peek(buf, 33, &h), WIRE_ERR_SHORT);
    assert_int_equal(wire_peek(buf, 34, &h), WIRE_OK);
    buf[0] = 0xe0; /* handshake: only type and link id here (mux/hsmsg.c checks the rest) */
    buf[1] = 9;
    assert_int_equal(wire_peek(buf, 1, &h), WIRE_ERR_SHORT);
    assert_int_equal(wire_peek(buf, 2, &h), WIRE_OK);
    assert_int_equal(h.type, WIRE_HANDSHAKE);
    assert_int_equal(h.link_id, 9);
    assert_int_equal(wire_peek(buf, 128, &h), WIRE_OK);
    /* type 3 is reserved; so are the reserved bits of DATA and CTRL */
    buf[0] = 0xf0;
    assert_int_equal(wire_peek(buf, 128, &h), WIRE_ERR_RESERVED);
    buf[0] = 0xc0 | 0x08;
    assert_int_equal(wire_peek(buf, 128, &h), WIRE_ERR_RESERVED);
    buf[0] = 0xd0 | 0x02;
    assert_int_equal(wire_peek(buf, 128, &h), WIRE_ERR_RESERVED);
    /* wire_open refuses handshake datagrams */
    buf[0] = 0xe0;
    assert_int_equal(open_copy(buf, 128, &h), WIRE_ERR_TYPE);
}

static void test_oversized(void **state)
{
    (void)state;
    uint8_t *buf = calloc(1, WIRE_MAX_DGRAM + 1);
    assert_non_null(buf);
    struct wire_hdr h;
    for (unsigned b0 = 0xc0; b0 <= 0xf0; b0 += 0x10) {
        buf[0] = (uint8_t)b0;
        assert_int_equal(wire_peek(buf, WIRE_MAX_DGRAM + 1, &h), WIRE_ERR_LONG);
        assert_int_equal(open_copy(buf, WIRE_MAX_DGRAM + 1, &h), WIRE_ERR_LONG);
    }
    buf[0] = 0xc0;
    assert_int_equal(wire_peek(buf, WIRE_MAX_DGRAM, &h), WIRE_OK);
    assert_int_equal(open_copy(buf, WIRE_MAX_DGRAM, &h), WIRE_ERR_AUTH);
    free(buf);
}

static void test_wrong_key(void **state)
{
    (void)state;
    for (uint8_t type = WIRE_DATA; type <= WIRE_CTRL; type++) {
        uint8_t dg[64];
        size_t n = seal_sample(dg, sizeof(dg), type, 10);
        uint8_t key2[WIRE_KEY_LEN];
        memcpy(key2, KEY, sizeof(key2));
        key2[31] ^= 0x80;
        struct wire_hdr h;
        uint8_t *pl;
        size_t pll;
        assert_int_equal(wire_open(dg, n, key2, &h, &pl, &pll), WIRE_ERR_AUTH);
    }
}

static void test_bit_flips(void **state)
{
    (void)state;
    for (uint8_t type = WIRE_DATA; type <= WIRE_CTRL; type++) {
        uint8_t dg[64];
        size_t n = seal_sample(dg, sizeof(dg), type, 20);
        for (size_t bit = 0; bit < n * 8; bit++) {
            uint8_t copy[64];
            memcpy(copy, dg, n);
            copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            struct wire_hdr h;
            uint8_t *pl;
            size_t pll;
            int rc = wire_open(copy, n, KEY, &h, &pl, &pll);
            assert_int_not_equal(rc, WIRE_OK);
            if (bit >= 8) {
                assert_int_equal(rc, WIRE_ERR_AUTH);
            } else {
                /* byte 0: version, type, reserved bits are checked; E, U and the type bit
                 * DATA<->CTRL are covered by the tag (additional data); a type turned into
                 * handshake is not opened */
                assert_true(rc == WIRE_ERR_AUTH || rc == WIRE_ERR_VERSION ||
                            rc == WIRE_ERR_RESERVED || rc == WIRE_ERR_SHORT ||
                            rc == WIRE_ERR_TYPE);
            }
        }
    }
}

static void test_version_and_reserved(void **state)
{
    (void)state;
    uint8_t dg[64];
    size_t n = seal_sample(dg, sizeof(dg), WIRE_CTRL, 4);
    struct wire_hdr h;
    for (unsigned v = 0; v < 4; v++) {
        uint8_t copy[64];
        memcpy(copy, dg, n);
        copy[0] = (uint8_t)((copy[0] & 0x3f) | (v << 6));
        int expect = v == WIRE_VERSION ? WIRE_OK : WIRE_ERR_VERSION;
        assert_int_equal(wire_peek(copy, n, &h), expect);
        assert_int_equal(open_copy(copy, n, &h), expect);
    }
    for (unsigned r = 1; r < 4; r++) {
        uint8_t copy[64];
        memcpy(copy, dg, n);
        copy[0] |= (uint8_t)r;
        assert_int_equal(wire_peek(copy, n, &h), WIRE_ERR_RESERVED);
        assert_int_equal(open_copy(copy, n, &h), WIRE_ERR_RESERVED);
    }
}

/* ---- encode-side errors ---- */

static void test_seal_errors(void **state)
{
    (void)state;
    uint8_t payload[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    uint8_t out[64];
    struct wire_hdr h = mkhdr(WIRE_DATA, 0, false, 1, 0, 0, 0, 0);

    /* WIRE_ERR_SPACE: one byte short; out untouched */
    memset(out, 0xcc, sizeof(out));
    assert_int_equal(wire_seal(out, 43, &h, payload, 10, KEY), WIRE_ERR_SPACE);
    for (size_t i = 0; i < sizeof(out); i++)
        assert_int_equal(out[i], 0xcc);
    assert_int_equal(wire_seal(out, 0, &h, payload, 10, KEY), WIRE_ERR_SPACE);
    assert_int_equal(wire_seal(out, 44, &h, payload, 10, KEY), 44);
    assert_int_equal(out[44], 0xcc);

    /* empty DATA, but empty CTRL is fine */
    assert_int_equal(wire_seal(out, sizeof(out), &h, payload, 0, KEY), WIRE_ERR_EMPTY);
    h.type = WIRE_CTRL;
    assert_int_equal(wire_seal(out, sizeof(out), &h, NULL, 0, KEY), 34);
    struct wire_hdr o;
    uint8_t *pl;
    size_t pll = 5;
    assert_int_equal(wire_open(out, 34, KEY, &o, &pl, &pll), WIRE_OK);
    assert_int_equal(pll, 0);

    /* handshake and unknown types, exhausted counter */
    h.type = WIRE_HANDSHAKE;
    assert_int_equal(wire_seal(out, sizeof(out), &h, payload, 10, KEY), WIRE_ERR_TYPE);
    h.type = 3;
    assert_int_equal(wire_seal(out, sizeof(out), &h, payload, 10, KEY), WIRE_ERR_TYPE);
    h.type = 7;
    assert_int_equal(wire_seal(out, sizeof(out), &h, payload, 10, KEY), WIRE_ERR_TYPE);
    h.type = WIRE_DATA;
    h.counter = WIRE_COUNTER_MAX + 1;
    assert_int_equal(wire_seal(out, sizeof(out), &h, payload, 10, KEY), WIRE_ERR_INVAL);
    h.counter = WIRE_COUNTER_MAX;
    assert_int_equal(wire_seal(out, sizeof(out), &h, payload, 10, KEY), 44);
}

static void test_strerror(void **state)
{
    (void)state;
    const int codes[] = {WIRE_OK,           WIRE_ERR_SHORT, WIRE_ERR_LONG,  WIRE_ERR_VERSION,
                         WIRE_ERR_RESERVED, WIRE_ERR_AUTH,  WIRE_ERR_SPACE, WIRE_ERR_EMPTY,
                         WIRE_ERR_TYPE,     WIRE_ERR_INVAL};
    const char *unknown = wire_strerror(-12345);
    assert_string_equal(unknown, "unknown error");
    assert_string_equal(wire_strerror(WIRE_ERR_SHORT), "datagram too short");
    for (size_t i = 0; i < ARRAY_LEN(codes); i++) {
        const char *s = wire_strerror(codes[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        assert_string_not_equal(s, unknown);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(s, wire_strerror(codes[j]));
    }
}

static void test_ts(void **state)
{
    (void)state;
    assert_int_equal(wire_ts(0), 0);
    assert_int_equal(wire_ts(249), 0);
    assert_int_equal(wire_ts(250), 1);
    assert_int_equal(wire_ts(UINT64_C(250) * 65536 + 750), 3); /* wraps every 16.384 s */
}

/* ---- CTRL messages ---- */

static void test_ctrl_roundtrip(void **state)
{
    (void)state;
    struct ctrl_beat b1 = {.flags = CTRL_BEAT_F_HEARS,
                           .interval_ms = 100,
                           .report_us = 0xfedcba98u,
                           .rx_packets = UINT64_C(0x0102030405060708),
                           .rx_bytes = UINT64_MAX,
                           .rx_highest = WIRE_COUNTER_MAX};
    struct ctrl_beat b2 = {.flags = 0, .interval_ms = 0xffff};
    struct ctrl_link_down d = {.link_id = 200, .reason = CTRL_DOWN_SHUTDOWN};
    uint8_t buf[128];
    size_t pos = 0;
    assert_int_equal(ctrl_put_beat(buf, sizeof(buf), &pos, &b1), 0);
    assert_int_equal(pos, 34);
    assert_int_equal(ctrl_put_link_down(buf, sizeof(buf), &pos, &d), 0);
    assert_int_equal(pos, 38);
    assert_int_equal(ctrl_put_beat(buf, sizeof(buf), &pos, &b2), 0);
    assert_int_equal(pos, 72);

    /* byte layout per PROTOCOL.md section 4 */
    const uint8_t beat_hdr[] = {1,    32, 0x01, 0x00, 0x00, 100, 0xfe, 0xdc, 0xba,
                                0x98, 1,  2,    3,    4,    5,   6,    7,    8};
    assert_memory_equal(buf, beat_hdr, sizeof(beat_hdr));
    const uint8_t down[] = {2, 2, 200, 2};
    assert_memory_equal(buf + 34, down, sizeof(down));

    /* through a sealed CTRL datagram */
    uint8_t dg[256];
    struct wire_hdr h = mkhdr(WIRE_CTRL, 0, false, 3, 9, 1234, 0, 0);
    int n = wire_seal(dg, sizeof(dg), &h, buf, pos, KEY);
    assert_int_equal(n, (int)pos + 34);
    uint8_t *pl;
    size_t pll;
    assert_int_equal(wire_open(dg, (size_t)n, KEY, &h, &pl, &pll), WIRE_OK);

    struct ctrl_msg m[CTRL_MAX_MSGS];
    assert_int_equal(ctrl_decode(pl, pll, m, CTRL_MAX_MSGS), 3);
    assert_int_equal(m[0].kind, CTRL_BEAT);
    assert_int_equal(m[0].u.beat.flags, b1.flags);
    assert_int_equal(m[0].u.beat.interval_ms, b1.interval_ms);
    assert_true(m[0].u.beat.report_us == b1.report_us);
    assert_true(m[0].u.beat.rx_packets == b1.rx_packets);
    assert_true(m[0].u.beat.rx_bytes == b1.rx_bytes);
    assert_true(m[0].u.beat.rx_highest == b1.rx_highest);
    assert_int_equal(m[1].kind, CTRL_LINK_DOWN);
    assert_int_equal(m[1].u.down.link_id, 200);
    assert_int_equal(m[1].u.down.reason, CTRL_DOWN_SHUTDOWN);
    assert_int_equal(m[2].kind, CTRL_BEAT);
    assert_int_equal(m[2].u.beat.interval_ms, 0xffff);
    assert_true(m[2].u.beat.rx_bytes == 0);

    /* empty payload: no messages */
    assert_int_equal(ctrl_decode(NULL, 0, m, CTRL_MAX_MSGS), 0);
}

static void test_ctrl_put_space(void **state)
{
    (void)state;
    struct ctrl_beat b = {.flags = 1};
    struct ctrl_link_down d = {.link_id = 1, .reason = 1};
    uint8_t buf[40];
    memset(buf, 0xcc, sizeof(buf));
    size_t pos = 0;
    assert_int_equal(ctrl_put_beat(buf, 33, &pos, &b), WIRE_ERR_SPACE);
    assert_int_equal(pos, 0);
    assert_int_equal(buf[0], 0xcc);
    assert_int_equal(ctrl_put_beat(buf, 34, &pos, &b), 0);
    assert_int_equal(pos, 34);
    assert_int_equal(ctrl_put_link_down(buf, 37, &pos, &d), WIRE_ERR_SPACE);
    assert_int_equal(pos, 34);
    assert_int_equal(buf[34], 0xcc);
    assert_int_equal(ctrl_put_link_down(buf, 38, &pos, &d), 0);
    assert_int_equal(pos, 38);
    pos = 50; /* inconsistent position past the capacity */
    assert_int_equal(ctrl_put_link_down(buf, 40, &pos, &d), WIRE_ERR_SPACE);
    assert_int_equal(pos, 50);
}

/* Decode from an exact-size heap copy so ASan catches any over-read. */
static int decode_copy(const uint8_t *p, size_t len, struct ctrl_msg *m, int max)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len) memcpy(copy, p, len);
    int rc = ctrl_decode(copy, len, m, max);
    free(copy);
    return rc;
}

static void test_ctrl_hostile(void **state)
{
    (void)state;
    struct ctrl_msg m[CTRL_MAX_MSGS];
    uint8_t buf[600];

    /* a lone kind byte */
    buf[0] = CTRL_BEAT;
    assert_int_equal(decode_copy(buf, 1, m, CTRL_MAX_MSGS), WIRE_ERR_SHORT);
    /* every truncation of a valid BEAT + LINK_DOWN payload */
    size_t pos = 0;
    struct ctrl_beat b = {.flags = 1};
    struct ctrl_link_down d = {.link_id = 4, .reason = 1};
    assert_int_equal(ctrl_put_beat(buf, sizeof(buf), &pos, &b), 0);
    assert_int_equal(ctrl_put_link_down(buf, sizeof(buf), &pos, &d), 0);
    for (size_t len = 1; len < pos; len++) {
        int rc = decode_copy(buf, len, m, CTRL_MAX_MSGS);
        if (len == 34)
            assert_int_equal(rc, 1); /* cut exactly between the two messages */
        else
            assert_int_equal(rc, WIRE_ERR_SHORT);
    }
    assert_int_equal(decode_copy(buf, pos, m, CTRL_MAX_MSGS), 2);

    /* length byte past the end (unknown kind too) */
    const uint8_t past[] = {9, 5, 1, 2, 3, 4};
    assert_int_equal(decode_copy(past, sizeof(past), m, CTRL_MAX_MSGS), WIRE_ERR_SHORT);
    const uint8_t past255[] = {CTRL_LINK_DOWN, 255, 1, 2};
    assert_int_equal(decode_copy(past255, sizeof(past255), m, CTRL_MAX_MSGS), WIRE_ERR_SHORT);

    /* known kinds with the wrong length */
    const uint8_t down1[] = {CTRL_LINK_DOWN, 1, 7};
    assert_int_equal(decode_copy(down1, sizeof(down1), m, CTRL_MAX_MSGS), WIRE_ERR_SHORT);
    const uint8_t down3[] = {CTRL_LINK_DOWN, 3, 7, 1, 0};
    assert_int_equal(decode_copy(down3, sizeof(down3), m, CTRL_MAX_MSGS), WIRE_ERR_SHORT);
    const uint8_t down0[] = {CTRL_LINK_DOWN, 0};
    assert_int_equal(decode_copy(down0, sizeof(down0), m, CTRL_MAX_MSGS), WIRE_ERR_SHORT);
    uint8_t beat31[33] = {CTRL_BEAT, 31};
    assert_int_equal(decode_copy(beat31, sizeof(beat31), m, CTRL_MAX_MSGS), WIRE_ERR_SHORT);
    uint8_t beat33[35] = {CTRL_BEAT, 33};
    assert_int_equal(decode_copy(beat33, sizeof(beat33), m, CTRL_MAX_MSGS), WIRE_ERR_SHORT);

    /* REKEY: no value */
    size_t o = 0;
    assert_int_equal(ctrl_put_rekey(buf, sizeof buf, &o), 0);
    assert_int_equal(o, 2);
    assert_int_equal(buf[0], CTRL_REKEY);
    assert_int_equal(buf[1], 0);
    assert_int_equal(decode_copy(buf, o, m, CTRL_MAX_MSGS), 1);
    assert_int_equal(m[0].kind, CTRL_REKEY);
    uint8_t rekey1[3] = {CTRL_REKEY, 1, 0};
    assert_int_equal(decode_copy(rekey1, sizeof rekey1, m, CTRL_MAX_MSGS), WIRE_ERR_SHORT);
    o = 1;
    assert_int_equal(ctrl_put_rekey(buf, 2, &o), WIRE_ERR_SPACE);

    /* unknown kinds (0, 6, 255; empty and 255-byte values) are skipped */
    o = 0;
    buf[o++] = 0;
    buf[o++] = 0;
    buf[o++] = 6;
    buf[o++] = 255;
    memset(buf + o, 0xab, 255);
    o += 255;
    buf[o++] = CTRL_LINK_DOWN;
    buf[o++] = 2;
    buf[o++] = 17;
    buf[o++] = CTRL_DOWN_TRANSPORT;
    buf[o++] = 255;
    buf[o++] = 1;
    buf[o++] = 0;
    assert_int_equal(decode_copy(buf, o, m, CTRL_MAX_MSGS), 1);
    assert_int_equal(m[0].kind, CTRL_LINK_DOWN);
    assert_int_equal(m[0].u.down.link_id, 17);
    assert_int_equal(m[0].u.down.reason, CTRL_DOWN_TRANSPORT);

    /* 16 messages accepted, 17 rejected (known or unknown all count) */
    o = 0;
    for (int i = 0; i < 16; i++) {
        struct ctrl_link_down di = {.link_id = (uint8_t)i, .reason = 1};
        assert_int_equal(ctrl_put_link_down(buf, sizeof(buf), &o, &di), 0);
    }
    assert_int_equal(decode_copy(buf, o, m, CTRL_MAX_MSGS), 16);
    assert_int_equal(m[15].u.down.link_id, 15);
    buf[o] = 77; /* 17th: unknown, empty */
    buf[o + 1] = 0;
    assert_int_equal(decode_copy(buf, o + 2, m, CTRL_MAX_MSGS), WIRE_ERR_SHORT);
    o = 0;
    for (int i = 0; i < 17; i++) {
        buf[o++] = 200;
        buf[o++] = 0;
    }
    assert_int_equal(decode_copy(buf, o, m, CTRL_MAX_MSGS), WIRE_ERR_SHORT);
    assert_int_equal(decode_copy(buf, o - 2, m, CTRL_MAX_MSGS), 0);

    /* more known messages than the caller's array */
    o = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(ctrl_put_link_down(buf, sizeof(buf), &o, &d), 0);
    assert_int_equal(decode_copy(buf, o, m, 2), WIRE_ERR_SPACE);
    assert_int_equal(decode_copy(buf, o, m, 3), 3);
    assert_int_equal(decode_copy(buf, o, NULL, 0), WIRE_ERR_SPACE);
}

static uint32_t lcg(uint32_t *x)
{
    *x = *x * 1103515245u + 12345u;
    return *x >> 8;
}

/* Random TLV sequences (fixed seed): mostly well-formed, some with wrong lengths, some
 * truncated or with a byte changed. ctrl_decode must agree with a straightforward model of
 * section 4, and every decoded message must re-encode to the bytes it came from. */
/* REPORT (kind 3): exact bytes, round trip, wrong lengths, 48-bit counter mask, signed delay. */
/* LINK_NAME: the slave's name for a link; names of 1-31 of [A-Za-z0-9._-] only, both ways. */
static void test_ctrl_link_name(void **state)
{
    (void)state;
    struct ctrl_msg m[CTRL_MAX_MSGS];
    uint8_t buf[128];
    size_t o = 0;
    struct ctrl_link_name n = {.link_id = 7, .name = "phone-1.usb_2"};
    assert_int_equal(ctrl_put_link_name(buf, sizeof buf, &o, &n), 0);
    assert_int_equal(o, 2 + 1 + strlen(n.name));
    assert_int_equal(buf[0], CTRL_LINK_NAME);
    assert_int_equal(buf[1], 1 + strlen(n.name));
    assert_int_equal(decode_copy(buf, o, m, CTRL_MAX_MSGS), 1);
    assert_int_equal(m[0].kind, CTRL_LINK_NAME);
    assert_int_equal(m[0].u.name.link_id, 7);
    assert_string_equal(m[0].u.name.name, "phone-1.usb_2");
    /* 31 characters: the longest */
    memset(n.name, 'a', 31);
    n.name[31] = '\0';
    o = 0;
    assert_int_equal(ctrl_put_link_name(buf, sizeof buf, &o, &n), 0);
    assert_int_equal(decode_copy(buf, o, m, CTRL_MAX_MSGS), 1);
    assert_int_equal(strlen(m[0].u.name.name), 31);
    /* refused to encode: empty, other characters */
    struct ctrl_link_name bad = {.link_id = 1, .name = ""};
    o = 0;
    assert_int_equal(ctrl_put_link_name(buf, sizeof buf, &o, &bad), WIRE_ERR_SHORT);
    snprintf(bad.name, sizeof bad.name, "a b");
    assert_int_equal(ctrl_put_link_name(buf, sizeof buf, &o, &bad), WIRE_ERR_SHORT);
    assert_int_equal(o, 0);
    assert_int_equal(ctrl_put_link_name(buf, 4, &o, &n), WIRE_ERR_SPACE);
    /* refused to decode: no name, 32 bytes, a NUL, a slash, a control character, truncated */
    const uint8_t none[] = {CTRL_LINK_NAME, 1, 3};
    assert_int_equal(decode_copy(none, sizeof none, m, CTRL_MAX_MSGS), WIRE_ERR_SHORT);
    const uint8_t empty[] = {CTRL_LINK_NAME, 0};
    assert_int_equal(decode_copy(empty, sizeof empty, m, CTRL_MAX_MSGS), WIRE_ERR_SHORT);
    uint8_t long32[2 + 33] = {CTRL_LINK_NAME, 33, 1};
    memset(long32 + 3, 'x', 32);
    assert_int_equal(decode_copy(long32, sizeof long32, m, CTRL_MAX_MSGS), WIRE_ERR_SHORT);
    const uint8_t nul[] = {CTRL_LINK_NAME, 4, 1, 'a', 0, 'b'};
    assert_int_equal(decode_copy(nul, sizeof nul, m, CTRL_MAX_MSGS), WIRE_ERR_SHORT);
    const uint8_t slash[] = {CTRL_LINK_NAME, 4, 1, 'a', '/', 'b'};
    assert_int_equal(decode_copy(slash, sizeof slash, m, CTRL_MAX_MSGS), WIRE_ERR_SHORT);
    const uint8_t esc[] = {CTRL_LINK_NAME, 3, 1, 0x1b, '['};
    assert_int_equal(decode_copy(esc, sizeof esc, m, CTRL_MAX_MSGS), WIRE_ERR_SHORT);
    const uint8_t cut[] = {CTRL_LINK_NAME, 5, 1, 'a', 'b'};
    assert_int_equal(decode_copy(cut, sizeof cut, m, CTRL_MAX_MSGS), WIRE_ERR_SHORT);
}

static void test_ctrl_report(void **state)
{
    (void)state;
    struct ctrl_report r = {.link_id = 7, .flags = CTRL_REPORT_F_OWD | CTRL_REPORT_F_RX,
                            .tx_wait_100us = 0xfedc,
                            .report_us = 0x01020304u, .rx_highest = UINT64_C(0xffff123456789abc),
                            .rx_packets = 0x11223344u, .rx_bytes = 0x55667788u,
                            .ack_delay_us = 0x000003e8u, .owd_min_rel_us = -2,
                            .owd_queue_us = 0x00010000u, .tx_data_end = 0xfffffffeu};
    uint8_t buf[2 + CTRL_REPORT_LEN];
    size_t pos = 0;
    assert_int_equal(ctrl_put_report(buf, sizeof buf, &pos, &r), 0);
    assert_int_equal(pos, sizeof buf);
    static const uint8_t want[2 + CTRL_REPORT_LEN] = {
        3, 40, 7, 0x05, 0xfe, 0xdc, 1, 2, 3, 4, 0, 0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc,
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0, 0, 0x03, 0xe8,
        0xff, 0xff, 0xff, 0xfe, 0, 1, 0, 0, 0xff, 0xff, 0xff, 0xfe};
    assert_memory_equal(buf, want, sizeof want);
    struct ctrl_msg m[CTRL_MAX_MSGS];
    assert_int_equal(ctrl_decode(buf, pos, m, CTRL_MAX_MSGS), 1);
    assert_int_equal(m[0].kind, CTRL_REPORT);
    assert_int_equal(m[0].u.report.rx_highest, UINT64_C(0x123456789abc));
    assert_int_equal(m[0].u.report.owd_min_rel_us, -2);
    assert_int_equal(m[0].u.report.tx_data_end, 0xfffffffeu);
    assert_int_equal(m[0].u.report.ack_delay_us, 1000);
    assert_int_equal(m[0].u.report.tx_wait_100us, 0xfedc);
    /* no room: nothing written */
    pos = 1;
    assert_int_equal(ctrl_put_report(buf, sizeof buf, &pos, &r), WIRE_ERR_SPACE);
    assert_int_equal(pos, 1);
    /* every other length of a kind-3 message makes the payload malformed */
    uint8_t bad[2 + 255] = {0};
    for (int len = 0; len <= 255; len++) {
        if (len == CTRL_REPORT_LEN) continue;
        bad[0] = CTRL_REPORT;
        bad[1] = (uint8_t)len;
        assert_int_equal(ctrl_decode(bad, 2 + (size_t)len, m, CTRL_MAX_MSGS), WIRE_ERR_SHORT);
    }
    /* a truncated one too */
    assert_int_equal(ctrl_decode(want, sizeof want - 1, m, CTRL_MAX_MSGS), WIRE_ERR_SHORT);
    assert_int_equal(wire_version_of(want, 0), -1);
    uint8_t v2 = 0x80, v1 = 0x40;
    assert_int_equal(wire_version_of(&v2, 1), 2);
    assert_int_equal(wire_version_of(&v1, 1), 1);
}

/* The model of a LINK_NAME value: a link id, then 1-31 of [A-Za-z0-9._-]. */
static bool model_name_ok(const uint8_t *v, size_t vlen)
{
    if (vlen < 2 || vlen - 1 > CTRL_LINK_NAME_MAX) return false;
    for (size_t i = 1; i < vlen; i++)
        if (!isalnum(v[i]) && v[i] != '.' && v[i] != '_' && v[i] != '-') return false;
    return true;
}

static void test_ctrl_random(void **state)
{
    (void)state;
    uint32_t x = 12345;
    int outcome[3] = {0, 0, 0}; /* ok with messages, ok empty, error */
    for (int iter = 0; iter < 20000; iter++) {
        uint8_t buf[20 * 42];
        size_t len = 0, starts[20];
        int nmsg = (int)(lcg(&x) % 20), nknown = 0;
        for (int i = 0; i < nmsg; i++) {
            uint8_t kind = (uint8_t)(lcg(&x) % 6);
            size_t vlen = kind == CTRL_BEAT        ? 32
                          : kind == CTRL_LINK_DOWN ? 2
                          : kind == CTRL_REPORT    ? 40
                          : kind == CTRL_REKEY     ? 0
                                                   : lcg(&x) % 8;
            if (lcg(&x) % 16 == 0) vlen = lcg(&x) % 34;
            starts[i] = len;
            buf[len++] = kind;
            buf[len++] = (uint8_t)vlen;
            for (size_t j = 0; j < vlen; j++)
                buf[len++] = kind == CTRL_LINK_NAME && j > 0 && lcg(&x) % 8
                                 ? (uint8_t)"az09._-Q"[lcg(&x) % 8]
                                 : (uint8_t)lcg(&x);
        }
        uint32_t mode = lcg(&x) % 4;
        if (mode == 0 && len) len = lcg(&x) % len;
        if (mode == 1 && len) buf[lcg(&x) % len] = (uint8_t)lcg(&x);

        /* model */
        int expect = 0, seen = 0;
        for (size_t off = 0; off < len;) {
            if (len - off < 2 || buf[off + 1] > len - off - 2 || ++seen > CTRL_MAX_MSGS) {
                expect = WIRE_ERR_SHORT;
                break;
            }
            uint8_t kind = buf[off], vlen = buf[off + 1];
            if ((kind == CTRL_BEAT && vlen != 32) || (kind == CTRL_LINK_DOWN && vlen != 2) ||
                (kind == CTRL_REPORT && vlen != 40) || (kind == CTRL_REKEY && vlen != 0) ||
                (kind == CTRL_LINK_NAME && !model_name_ok(buf + off + 2, vlen))) {
                expect = WIRE_ERR_SHORT;
                break;
            }
            if (kind == CTRL_BEAT || kind == CTRL_LINK_DOWN || kind == CTRL_REPORT ||
                kind == CTRL_REKEY || kind == CTRL_LINK_NAME)
                starts[expect++] = off;
            off += 2u + vlen;
        }
        nknown = expect;

        struct ctrl_msg m[CTRL_MAX_MSGS];
        int n = decode_copy(buf, len, m, CTRL_MAX_MSGS);
        assert_int_equal(n, expect);
        outcome[n > 0 ? 0 : n == 0 ? 1 : 2]++;
        for (int i = 0; i < nknown; i++) {
            uint8_t enc[42];
            size_t pos = 0;
            if (m[i].kind == CTRL_BEAT) {
                assert_int_equal(ctrl_put_beat(enc, sizeof(enc), &pos, &m[i].u.beat), 0);
                enc[3] = buf[starts[i] + 3]; /* reserved byte is not decoded */
            } else if (m[i].kind == CTRL_REPORT) {
                assert_int_equal(ctrl_put_report(enc, sizeof(enc), &pos, &m[i].u.report), 0);
                /* not decoded: the top 16 bits of rx_highest */
                memcpy(enc + 10, buf + starts[i] + 10, 2);
            } else if (m[i].kind == CTRL_REKEY) {
                assert_int_equal(ctrl_put_rekey(enc, sizeof(enc), &pos), 0);
            } else if (m[i].kind == CTRL_LINK_NAME) {
                assert_int_equal(ctrl_put_link_name(enc, sizeof(enc), &pos, &m[i].u.name), 0);
            } else {
                assert_int_equal(m[i].kind, CTRL_LINK_DOWN);
                assert_int_equal(ctrl_put_link_down(enc, sizeof(enc), &pos, &m[i].u.down), 0);
            }
            assert_memory_equal(enc, buf + starts[i], pos);
        }
    }
    /* the generator reaches all three outcomes often */
    assert_true(outcome[0] > 2000 && outcome[1] > 500 && outcome[2] > 2000);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conformance_data),
        cmocka_unit_test(test_conformance_ctrl),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_seal_in_place_and_overlap),
        cmocka_unit_test(test_max_size),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_min_lengths),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_version_and_reserved),
        cmocka_unit_test(test_seal_errors),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_ts),
        cmocka_unit_test(test_ctrl_roundtrip),
        cmocka_unit_test(test_ctrl_put_space),
        cmocka_unit_test(test_ctrl_hostile),
        cmocka_unit_test(test_ctrl_random),
        cmocka_unit_test(test_ctrl_report),
        cmocka_unit_test(test_ctrl_link_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
