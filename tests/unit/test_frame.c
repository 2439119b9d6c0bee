/* test_frame.c: unit tests for the notun frame decoder (tundev/frame.c): every split point,
 * empty and oversized frames skipped in sync, 0xFFFF lengths, truncation, hostile random input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../common/frame.h"

#define MAX_EVENTS 16384
#define BODY_CAP (1u << 20)

/* What the decoder emitted: a list of events (frame of len / reject of len) and frame bodies. */
struct rec {
    size_t n;
    int kind[MAX_EVENTS]; /* 1 frame, 2 reject */
    size_t len[MAX_EVENTS];
    size_t off[MAX_EVENTS]; /* frame body offset in body[] */
    size_t body_len;
    uint8_t body[BODY_CAP];
};

static void rec_frame(void *ctx, const uint8_t *p, size_t len)
{
    struct rec *r = ctx;
    assert_true(len >= 1);
    assert_true(r->n < MAX_EVENTS);
    assert_true(r->body_len + len <= BODY_CAP);
    r->kind[r->n] = 1;
    r->len[r->n] = len;
    r->off[r->n] = r->body_len;
    memcpy(r->body + r->body_len, p, len);
    r->body_len += len;
    r->n++;
}

static void rec_reject(void *ctx, size_t len)
{
    struct rec *r = ctx;
    assert_true(r->n < MAX_EVENTS);
    r->kind[r->n] = 2;
    r->len[r->n] = len;
    r->off[r->n] = 0;
    r->n++;
}

static void check_accounting(const struct frame_dec *d)
{
    const struct frame_dec_stats *s = &d->stats;
    assert_int_equal(s->consumed, 2 * (s->frames + s->rejected) + s->frame_bytes +
                                      s->skipped_bytes + frame_dec_pending(d));
}

static void assert_same(const struct rec *a, const struct rec *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_int_equal(a->kind[i], b->kind[i]);
        assert_int_equal(a->len[i], b->len[i]);
        if (a->kind[i] == 1)
            assert_memory_equal(a->body + a->off[i], b->body + b->off[i], a->len[i]);
    }
}

/* A stream builder. */
struct stream {
    uint8_t *p;
    size_t len, cap;
};

static void put_frame(struct stream *s, size_t announced, size_t body, uint8_t fill)
{
    assert_true(s->len + 2 + body <= s->cap);
    s->p[s->len++] = (uint8_t)(announced >> 8);
    s->p[s->len++] = (uint8_t)announced;
    for (size_t i = 0; i < body; i++)
        s->p[s->len++] = (uint8_t)(fill + i * 7);
}

static struct rec *rec_new(void)
{
    struct rec *r = calloc(1, sizeof *r);
    assert_non_null(r);
    return r;
}

static struct frame_dec *dec_new(size_t max, struct rec *r)
{
    struct frame_dec *d = malloc(sizeof *d);
    assert_non_null(d);
    frame_dec_init(d, max, rec_frame, rec_reject, r);
    return d;
}

static void test_single_frame(void **state)
{
    (void)state;
    struct rec *r = rec_new();
    struct frame_dec *d = dec_new(1500, r);
    const uint8_t in[] = {0x00, 0x03, 'a', 'b', 'c'};
    assert_true(frame_dec_at_boundary(d));
    frame_dec_feed(d, in, sizeof in);
    assert_int_equal(r->n, 1);
    assert_int_equal(r->kind[0], 1);
    assert_int_equal(r->len[0], 3);
    assert_memory_equal(r->body, "abc", 3);
    assert_true(frame_dec_at_boundary(d));
    assert_int_equal(d->stats.frames, 1);
    assert_int_equal(d->stats.frame_bytes, 3);
    assert_int_equal(d->stats.consumed, 5);
    check_accounting(d);
    frame_dec_feed(d, NULL, 0); /* empty feed is a no-op */
    assert_int_equal(r->n, 1);
    free(d);
    free(r);
}

/* The reference stream: valid frames mixed with empty and oversized ones (max 1500). */
static void build_mixed(struct stream *s)
{
    put_frame(s, 1, 1, 0x11);
    put_frame(s, 0, 0, 0); /* empty: rejected */
    put_frame(s, 300, 300, 0x22);
    put_frame(s, 1501, 1501, 0x33); /* one over the max: rejected, body skipped */
    put_frame(s, 1500, 1500, 0x44); /* exactly the max */
    put_frame(s, 0, 0, 0);
    put_frame(s, 0, 0, 0);
    put_frame(s, 2, 2, 0x55);
    put_frame(s, 0xFFFF, 0xFFFF, 0x66);
    put_frame(s, 64, 64, 0x77);
}

static void check_mixed(const struct rec *r)
{
    static const int kinds[] = {1, 2, 1, 2, 1, 2, 2, 1, 2, 1};
    static const size_t lens[] = {1, 0, 300, 1501, 1500, 0, 0, 2, 0xFFFF, 64};
    assert_int_equal(r->n, 10);
    for (size_t i = 0; i < 10; i++) {
        assert_int_equal(r->kind[i], kinds[i]);
        assert_int_equal(r->len[i], lens[i]);
    }
    /* bodies intact: byte j of a frame filled with f is f + 7j */
    static const uint8_t fills[] = {0x11, 0, 0x22, 0, 0x44, 0, 0, 0x55, 0, 0x77};
    for (size_t i = 0; i < 10; i++) {
        if (r->kind[i] != 1) continue;
        for (size_t j = 0; j < r->len[i]; j++)
            assert_int_equal(r->body[r->off[i] + j], (uint8_t)(fills[i] + j * 7));
    }
}

static void test_every_split_point(void **state)
{
    (void)state;
    struct stream s = {.cap = 80000};
    s.p = malloc(s.cap);
    assert_non_null(s.p);
    build_mixed(&s);
    struct rec *r = rec_new();
    struct frame_dec *d = dec_new(1500, r);
    for (size_t cut = 0; cut <= s.len; cut++) {
        memset(r, 0, offsetof(struct rec, body));
        r->body_len = 0;
        frame_dec_init(d, 1500, rec_frame, rec_reject, r);
        frame_dec_feed(d, s.p, cut);
        check_accounting(d);
        frame_dec_feed(d, s.p + cut, s.len - cut);
        check_accounting(d);
        assert_true(frame_dec_at_boundary(d));
        assert_int_equal(frame_dec_pending(d), 0);
        check_mixed(r);
        assert_int_equal(d->stats.frames, 5);
        assert_int_equal(d->stats.rejected, 5);
        assert_int_equal(d->stats.skipped_bytes, 1501 + 0xFFFF);
        assert_int_equal(d->stats.consumed, s.len);
    }
    free(d);
    free(r);
    free(s.p);
}

/* All pairs of cut points over a small stream (three chunks), and byte-at-a-time. */
static void test_three_chunks_and_bytewise(void **state)
{
    (void)state;
    uint8_t buf[64];
    struct stream s = {.p = buf, .cap = sizeof buf};
    put_frame(&s, 3, 3, 1);
    put_frame(&s, 0, 0, 0);
    put_frame(&s, 9, 9, 2); /* over max 8: skipped */
    put_frame(&s, 8, 8, 3);
    put_frame(&s, 1, 1, 4);
    struct rec *r = rec_new();
    struct frame_dec *d = dec_new(8, r);
    for (size_t i = 0; i <= s.len; i++) {
        for (size_t j = i; j <= s.len; j++) {
            memset(r, 0, offsetof(struct rec, body));
            r->body_len = 0;
            frame_dec_init(d, 8, rec_frame, rec_reject, r);
            frame_dec_feed(d, s.p, i);
            frame_dec_feed(d, s.p + i, j - i);
            frame_dec_feed(d, s.p + j, s.len - j);
            check_accounting(d);
            assert_int_equal(r->n, 5);
            assert_int_equal(r->kind[0], 1);
            assert_int_equal(r->len[0], 3);
            assert_int_equal(r->kind[1], 2);
            assert_int_equal(r->len[1], 0);
            assert_int_equal(r->kind[2], 2);
            assert_int_equal(r->len[2], 9);
            assert_int_equal(r->kind[3], 1);
            assert_int_equal(r->len[3], 8);
            assert_int_equal(r->body[r->off[3]], 3);
            assert_int_equal(r->body[r->off[3] + 7], 3 + 49);
            assert_int_equal(r->kind[4], 1);
            assert_int_equal(r->len[4], 1);
            assert_int_equal(r->body[r->off[4]], 4);
        }
    }
    memset(r, 0, offsetof(struct rec, body));
    r->body_len = 0;
    frame_dec_init(d, 8, rec_frame, rec_reject, r);
    for (size_t i = 0; i < s.len; i++) {
        frame_dec_feed(d, s.p + i, 1);
        check_accounting(d);
    }
    assert_int_equal(r->n, 5);
    assert_int_equal(d->stats.frames, 3);
    assert_int_equal(d->stats.frame_bytes, 12);
    free(d);
    free(r);
}

static void test_length_zero_stream(void **state)
{
    (void)state;
    /* a stream of nothing but empty frames, then one real frame */
    uint8_t in[2 * 100 + 3];
    memset(in, 0, 200);
    in[200] = 0;
    in[201] = 1;
    in[202] = 0xAB;
    struct rec *r = rec_new();
    struct frame_dec *d = dec_new(1500, r);
    frame_dec_feed(d, in, sizeof in);
    assert_int_equal(r->n, 101);
    for (size_t i = 0; i < 100; i++) {
        assert_int_equal(r->kind[i], 2);
        assert_int_equal(r->len[i], 0);
    }
    assert_int_equal(r->kind[100], 1);
    assert_int_equal(r->body[r->off[100]], 0xAB);
    assert_int_equal(d->stats.rejected, 100);
    assert_int_equal(d->stats.skipped_bytes, 0);
    check_accounting(d);
    /* a stream ending with an empty frame ends at a frame boundary */
    frame_dec_feed(d, in, 2);
    assert_true(frame_dec_at_boundary(d));
    assert_int_equal(frame_dec_pending(d), 0);
    assert_int_equal(d->stats.rejected, 101);
    free(d);
    free(r);
}

static void test_ffff_lengths(void **state)
{
    (void)state;
    size_t cap = 3 * (2 + 0xFFFF);
    struct stream s = {.cap = cap};
    s.p = malloc(cap);
    assert_non_null(s.p);
    put_frame(&s, 0xFFFF, 0xFFFF, 9);
    put_frame(&s, 0xFFFF, 0xFFFF, 10);
    put_frame(&s, 5, 5, 11);
    /* max 65535: the maximum-size frames are accepted, in any chunking */
    struct rec *r = rec_new();
    struct frame_dec *d = dec_new(FRAME_MAX_LEN, r);
    for (size_t chunk = 1; chunk <= 70001; chunk += 7000) {
        memset(r, 0, offsetof(struct rec, body));
        r->body_len = 0;
        frame_dec_init(d, FRAME_MAX_LEN, rec_frame, rec_reject, r);
        for (size_t off = 0; off < s.len; off += chunk)
            frame_dec_feed(d, s.p + off, s.len - off < chunk ? s.len - off : chunk);
        assert_int_equal(r->n, 3);
        assert_int_equal(r->len[0], 0xFFFF);
        assert_int_equal(r->len[1], 0xFFFF);
        assert_int_equal(r->len[2], 5);
        assert_int_equal(r->body[r->off[1] + 0xFFFE], (uint8_t)(10 + 0xFFFE * 7));
        check_accounting(d);
    }
    /* max 1400: both are rejected and fully skipped; the 5-byte frame still decodes */
    memset(r, 0, offsetof(struct rec, body));
    r->body_len = 0;
    frame_dec_init(d, 1400, rec_frame, rec_reject, r);
    frame_dec_feed(d, s.p, 3); /* header and one body byte */
    assert_int_equal(r->n, 1);
    assert_int_equal(r->kind[0], 2); /* rejected as soon as the header is read */
    assert_int_equal(frame_dec_pending(d), 0);
    assert_false(frame_dec_at_boundary(d));
    check_accounting(d);
    frame_dec_feed(d, s.p + 3, s.len - 3);
    assert_int_equal(r->n, 3);
    assert_int_equal(r->kind[1], 2);
    assert_int_equal(r->kind[2], 1);
    assert_int_equal(r->len[2], 5);
    assert_int_equal(r->body[r->off[2]], 11);
    assert_int_equal(d->stats.skipped_bytes, 2 * 0xFFFF);
    check_accounting(d);
    free(d);
    free(r);
    free(s.p);
}

static void test_truncated_at_eof(void **state)
{
    (void)state;
    uint8_t in[] = {0x00, 0x04, 1, 2, 3, 4, 0x00, 0x05, 'h', 'e'};
    struct rec *r = rec_new();
    struct frame_dec *d = dec_new(1500, r);
    frame_dec_feed(d, in, 1); /* half a header */
    assert_false(frame_dec_at_boundary(d));
    assert_int_equal(frame_dec_pending(d), 1);
    frame_dec_feed(d, in + 1, sizeof in - 1);
    assert_int_equal(r->n, 1); /* the second frame is incomplete: not delivered */
    assert_false(frame_dec_at_boundary(d));
    assert_int_equal(frame_dec_pending(d), 4);
    check_accounting(d);
    /* the stream is cut (EOF): reset and start a new one; no stale bytes leak into it */
    frame_dec_reset(d);
    assert_true(frame_dec_at_boundary(d));
    const uint8_t next[] = {0x00, 0x02, 'o', 'k'};
    frame_dec_feed(d, next, sizeof next);
    assert_int_equal(r->n, 2);
    assert_int_equal(r->len[1], 2);
    assert_memory_equal(r->body + r->off[1], "ok", 2);
    /* a reset in the middle of a skipped frame also resyncs */
    const uint8_t big[] = {0xFF, 0xFF, 1, 2, 3};
    frame_dec_feed(d, big, sizeof big);
    assert_int_equal(r->kind[2], 2);
    frame_dec_reset(d);
    frame_dec_feed(d, next, sizeof next);
    assert_int_equal(r->n, 4);
    assert_int_equal(r->kind[3], 1);
    free(d);
    free(r);
}

static void test_max_clamped(void **state)
{
    (void)state;
    struct rec *r = rec_new();
    struct frame_dec *d = dec_new(0, r);
    assert_int_equal(d->max, 1);
    const uint8_t in[] = {0x00, 0x01, 7, 0x00, 0x02, 7, 7, 0x00, 0x01, 8};
    frame_dec_feed(d, in, sizeof in);
    assert_int_equal(r->n, 3);
    assert_int_equal(r->kind[0], 1);
    assert_int_equal(r->kind[1], 2);
    assert_int_equal(r->kind[2], 1);
    assert_int_equal(r->body[r->off[2]], 8);
    frame_dec_init(d, 100000, rec_frame, rec_reject, r);
    assert_int_equal(d->max, FRAME_MAX_LEN);
    /* no reject callback: rejects are still counted and skipped */
    frame_dec_init(d, 4, rec_frame, NULL, r);
    memset(r, 0, offsetof(struct rec, body));
    r->body_len = 0;
    const uint8_t in2[] = {0x00, 0x05, 1, 2, 3, 4, 5, 0x00, 0x00, 0x00, 0x01, 9};
    frame_dec_feed(d, in2, sizeof in2);
    assert_int_equal(r->n, 1);
    assert_int_equal(r->body[0], 9);
    assert_int_equal(d->stats.rejected, 2);
    free(d);
    free(r);
}

static uint32_t rng_state = 12345;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* Hostile random streams: headers announcing 0, small, max, max+1, 0xFFFF or random lengths,
 * followed by bodies that are often shorter or longer than announced, plus raw garbage. Fed whole
 * and in random chunks, they must produce the same events and statistics. */
static size_t hostile_stream(uint8_t *in, size_t cap)
{
    size_t len = 0;
    size_t target = 3000 + rnd() % 60000;
    if (target > cap) target = cap;
    while (len + 2 <= target) {
        size_t ann;
        uint32_t k = rnd() % 200;
        if (k == 0)
            ann = 0xFFFF;
        else if (k == 1)
            ann = rnd() & 0xFFFF;
        else if (k < 15)
            ann = 0;
        else if (k < 30)
            ann = 700;
        else if (k < 45)
            ann = 701 + rnd() % 1000;
        else
            ann = 1 + rnd() % 700;
        in[len++] = (uint8_t)(ann >> 8);
        in[len++] = (uint8_t)ann;
        size_t body = rnd() % 150 == 0 ? rnd() % 800 : ann; /* some lie about their length */
        if (body > target - len) body = target - len;
        for (size_t i = 0; i < body; i++)
            in[len++] = (uint8_t)rnd();
    }
    return len;
}

static void test_hostile_random(void **state)
{
    (void)state;
    size_t cap = 70000;
    uint8_t *in = malloc(cap);
    assert_non_null(in);
    struct rec *whole = rec_new(), *chunked = rec_new();
    struct frame_dec *d = dec_new(700, whole);
    uint64_t frames = 0, rejected = 0;
    for (int round = 0; round < 50; round++) {
        size_t len = hostile_stream(in, cap);
        memset(whole, 0, offsetof(struct rec, body));
        whole->body_len = 0;
        memset(chunked, 0, offsetof(struct rec, body));
        chunked->body_len = 0;
        frame_dec_init(d, 700, rec_frame, rec_reject, whole);
        frame_dec_feed(d, in, len);
        check_accounting(d);
        struct frame_dec_stats ref = d->stats;
        frame_dec_init(d, 700, rec_frame, rec_reject, chunked);
        for (size_t off = 0; off < len;) {
            size_t c = 1 + rnd() % 1500;
            if (c > len - off) c = len - off;
            frame_dec_feed(d, in + off, c);
            check_accounting(d);
            off += c;
        }
        assert_same(whole, chunked);
        assert_memory_equal(&ref, &d->stats, sizeof ref);
        frames += ref.frames;
        rejected += ref.rejected;
    }
    /* the streams did exercise both paths */
    assert_true(frames > 1000);
    assert_true(rejected > 100);
    free(d);
    free(whole);
    free(chunked);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_frame),
        cmocka_unit_test(test_every_split_point),
        cmocka_unit_test(test_three_chunks_and_bytewise),
        cmocka_unit_test(test_length_zero_stream),
        cmocka_unit_test(test_ffff_lengths),
        cmocka_unit_test(test_truncated_at_eof),
        cmocka_unit_test(test_max_clamped),
        cmocka_unit_test(test_hostile_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
