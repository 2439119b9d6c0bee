/* test_reorder.c: unit tests of the receive reorder buffer: order, gaps, duplicates, timeouts,
 * overflow, gseq wrap-around, and randomised streams with reordering, duplicates and losses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../common/util.h"
#include "../../mux/reorder.h"

#define MAX_PKT 64

/* Deterministic PRNG (splitmix64). */
static uint64_t rng_state;
static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static uint32_t rng_below(uint32_t n)
{
    return (uint32_t)(rng() % n);
}

/* Packet for gseq g: 4-byte gseq then a pattern derived from g; length 4..MAX_PKT from g. */
static size_t pkt_len(uint32_t g)
{
    return 4 + (size_t)((g * 2654435761u) >> 16) % (MAX_PKT - 3);
}
static size_t make_pkt(uint8_t *p, uint32_t g)
{
    size_t len = pkt_len(g);
    put_be32(p, g);
    for (size_t j = 4; j < len; j++)
        p[j] = (uint8_t)(g * 31u + j * 7u);
    return len;
}

/* Collects delivered gseqs after checking each packet's bytes. */
struct capture {
    uint32_t *g;
    size_t n, cap;
    size_t bad; /* packets whose bytes do not match their gseq */
};

static void deliver(void *ctx, const uint8_t *pkt, size_t len)
{
    struct capture *c = ctx;
    uint32_t g = len >= 4 ? get_be32(pkt) : 0;
    uint8_t want[MAX_PKT];
    if (len < 4 || len > MAX_PKT || make_pkt(want, g) != len || memcmp(want, pkt, len) != 0)
        c->bad++;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 1024;
        c->g = realloc(c->g, c->cap * sizeof *c->g);
        assert_non_null(c->g);
    }
    c->g[c->n++] = g;
}

struct fixture {
    struct capture cap;
    struct reorder *r;
};

static struct fixture *fx_new(unsigned slots)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->r = reorder_new(slots, MAX_PKT, deliver, &f->cap);
    assert_non_null(f->r);
    return f;
}

static void fx_free(struct fixture *f)
{
    reorder_free(f->r);
    free(f->cap.g);
    free(f);
}

static enum reorder_result push(struct fixture *f, uint32_t g, uint64_t now)
{
    uint8_t p[MAX_PKT];
    size_t len = make_pkt(p, g);
    return reorder_push(f->r, g, p, len, now);
}

/* The capture holds exactly want[0..n-1], with correct bytes. */
static void expect_out(const struct fixture *f, const uint32_t *want, size_t n)
{
    assert_int_equal(f->cap.bad, 0);
    assert_int_equal(f->cap.n, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(f->cap.g[i], want[i]);
}

static void test_new_args(void **state)
{
    (void)state;
    struct capture c = {0};
    assert_null(reorder_new(8, 0, deliver, &c));
    assert_null(reorder_new(8, 100, NULL, &c));
    assert_null(reorder_new(1u << 30, 100, deliver, &c));

    /* slots rounds up to a power of two: 5 -> 8, so gseq 7 fits and 8 does not. */
    struct reorder *r = reorder_new(5, MAX_PKT, deliver, &c);
    assert_non_null(r);
    uint8_t p[MAX_PKT];
    assert_int_equal(reorder_push(r, 7, p, make_pkt(p, 7), 0), REORDER_HELD);
    assert_int_equal(reorder_stats(r)->overflow, 0);
    assert_int_equal(reorder_push(r, 8, p, make_pkt(p, 8), 0), REORDER_HELD);
    assert_int_equal(reorder_stats(r)->overflow, 1);
    assert_int_equal(reorder_next(r), 1);
    reorder_free(r);

    /* slots 0 and 1 become 2: gseq 1 fits, gseq 2 overflows. */
    r = reorder_new(0, MAX_PKT, deliver, &c);
    assert_non_null(r);
    assert_int_equal(reorder_push(r, 1, p, make_pkt(p, 1), 0), REORDER_HELD);
    assert_int_equal(reorder_stats(r)->overflow, 0);
    assert_int_equal(reorder_push(r, 2, p, make_pkt(p, 2), 0), REORDER_DELIVERED);
    assert_int_equal(reorder_stats(r)->overflow, 1);
    assert_int_equal(reorder_next(r), 3);
    reorder_free(r);
    assert_int_equal(c.bad, 0);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.g[0], 1);
    assert_int_equal(c.g[1], 2);
    free(c.g);
}

static void test_in_order(void **state)
{
    (void)state;
    struct fixture *f = fx_new(64);
    uint32_t want[1000];
    for (uint32_t g = 0; g < 1000; g++) {
        want[g] = g;
        assert_int_equal(push(f, g, g), REORDER_DELIVERED);
        assert_int_equal(f->cap.n, g + 1);
    }
    expect_out(f, want, 1000);
    const struct reorder_stats *st = reorder_stats(f->r);
    assert_int_equal(st->delivered, 1000);
    assert_int_equal(st->direct, 1000);
    assert_int_equal(st->held, 0);
    assert_int_equal(st->dup + st->late + st->skipped + st->overflow, 0);
    assert_int_equal(reorder_next(f->r), 1000);
    assert_int_equal(reorder_expire(f->r, 5000, 10), 0);
    fx_free(f);
}

static void test_gaps_filled(void **state)
{
    (void)state;
    struct fixture *f = fx_new(16);
    assert_int_equal(push(f, 3, 0), REORDER_HELD);
    assert_int_equal(push(f, 1, 0), REORDER_HELD);
    assert_int_equal(push(f, 2, 0), REORDER_HELD);
    assert_int_equal(f->cap.n, 0);
    assert_int_equal(reorder_stats(f->r)->held, 3);
    assert_int_equal(push(f, 0, 0), REORDER_DELIVERED);
    const uint32_t w1[] = {0, 1, 2, 3};
    expect_out(f, w1, 4);
    assert_int_equal(reorder_next(f->r), 4);

    /* 4..11 in the order 9 5 11 4 7 6 10 8: released as runs become consecutive. */
    const uint32_t order[] = {9, 5, 11, 4, 7, 6, 10, 8};
    const size_t out_after[] = {4, 4, 4, 6, 6, 8, 8, 12};
    for (size_t i = 0; i < ARRAY_LEN(order); i++) {
        push(f, order[i], 0);
        assert_int_equal(f->cap.n, out_after[i]);
    }
    const uint32_t w2[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    expect_out(f, w2, 12);
    const struct reorder_stats *st = reorder_stats(f->r);
    assert_int_equal(st->delivered, 12);
    assert_int_equal(st->direct, 4); /* 0, 4, 6, 8 */
    assert_int_equal(st->held, 0);
    assert_int_equal(st->skipped, 0);
    fx_free(f);
}

static void test_duplicates(void **state)
{
    (void)state;
    struct fixture *f = fx_new(16);
    assert_int_equal(push(f, 2, 0), REORDER_HELD);
    assert_int_equal(push(f, 2, 0), REORDER_DUP); /* held dup */
    assert_int_equal(push(f, 0, 0), REORDER_DELIVERED);
    assert_int_equal(push(f, 0, 0), REORDER_DUP); /* delivered dup */
    assert_int_equal(push(f, 1, 0), REORDER_DELIVERED);
    assert_int_equal(push(f, 2, 0), REORDER_DUP); /* delivered after being held */
    assert_int_equal(push(f, 1, 0), REORDER_DUP);
    const uint32_t w[] = {0, 1, 2};
    expect_out(f, w, 3);
    const struct reorder_stats *st = reorder_stats(f->r);
    assert_int_equal(st->dup, 4);
    assert_int_equal(st->late, 0);
    assert_int_equal(st->delivered, 3);
    assert_int_equal(st->held, 0);

    /* Delivered gseqs are remembered for a full window back. */
    for (uint32_t g = 3; g < 3 + 16; g++)
        assert_int_equal(push(f, g, 0), REORDER_DELIVERED);
    assert_int_equal(reorder_next(f->r), 19);
    assert_int_equal(push(f, 3, 0), REORDER_DUP);  /* 16 back */
    assert_int_equal(push(f, 18, 0), REORDER_DUP); /* 1 back */
    assert_int_equal(push(f, 2, 0), REORDER_LATE); /* 17 back: too old to tell */
    assert_int_equal(reorder_stats(f->r)->dup, 6);
    assert_int_equal(reorder_stats(f->r)->late, 1);
    assert_int_equal(f->cap.n, 19);
    fx_free(f);
}

static void test_late_after_skip(void **state)
{
    (void)state;
    struct fixture *f = fx_new(16);
    assert_int_equal(push(f, 1, 0), REORDER_HELD);
    assert_int_equal(push(f, 3, 0), REORDER_HELD);
    reorder_release_before(f->r, 1); /* gives up 0, releases 1 */
    assert_int_equal(reorder_next(f->r), 2);
    assert_int_equal(push(f, 0, 0), REORDER_LATE);
    assert_int_equal(push(f, 0, 0), REORDER_LATE);
    assert_int_equal(push(f, 1, 0), REORDER_DUP);
    reorder_release_before(f->r, 3); /* gives up 2, releases 3 */
    assert_int_equal(push(f, 2, 0), REORDER_LATE);
    assert_int_equal(push(f, 3, 0), REORDER_DUP);
    const uint32_t w[] = {1, 3};
    expect_out(f, w, 2);
    const struct reorder_stats *st = reorder_stats(f->r);
    assert_int_equal(st->late, 3);
    assert_int_equal(st->dup, 2);
    assert_int_equal(st->skipped, 2);

    /* After a reset, history is unknown: old packets count as late; held ones are dropped. */
    assert_int_equal(push(f, 6, 0), REORDER_HELD);
    reorder_reset(f->r, 100);
    assert_int_equal(reorder_stats(f->r)->held, 0);
    assert_int_equal(reorder_next(f->r), 100);
    assert_int_equal(push(f, 99, 0), REORDER_LATE);
    assert_int_equal(push(f, 4, 0), REORDER_LATE);
    assert_int_equal(push(f, 100, 0), REORDER_DELIVERED);
    assert_int_equal(push(f, 100, 0), REORDER_DUP);
    assert_int_equal(reorder_expire(f->r, 1u << 30, 1), 0);
    const uint32_t w2[] = {1, 3, 100};
    expect_out(f, w2, 3);
    fx_free(f);
}

static void test_expire(void **state)
{
    (void)state;
    struct fixture *f = fx_new(32);
    const uint64_t T = 1000;
    assert_int_equal(reorder_expire(f->r, 0, T), 0);
    assert_int_equal(reorder_due(f->r, T), 0); /* nothing held */
    assert_int_equal(push(f, 3, 100), REORDER_HELD);
    assert_int_equal(push(f, 6, 150), REORDER_HELD);
    /* reorder_due tells what expire would return, and gives nothing up */
    assert_int_equal(reorder_due(f->r, T), 1100);
    assert_int_equal(reorder_due(f->r, UINT64_MAX), UINT64_MAX);
    assert_int_equal(reorder_stats(f->r)->held, 2);
    assert_int_equal(reorder_expire(f->r, 500, T), 1100);
    assert_int_equal(reorder_expire(f->r, 1099, T), 1100);
    assert_int_equal(f->cap.n, 0);
    assert_int_equal(reorder_next(f->r), 0);

    /* Due: 0..2 given up, 3 released, then 6 (arrived 150) is next due. */
    assert_int_equal(reorder_expire(f->r, 1100, T), 1150);
    const uint32_t w1[] = {3};
    expect_out(f, w1, 1);
    assert_int_equal(reorder_next(f->r), 4);
    assert_int_equal(reorder_stats(f->r)->skipped, 3);
    assert_int_equal(reorder_expire(f->r, 1149, T), 1150);
    assert_int_equal(reorder_due(f->r, T), 1150);
    assert_int_equal(f->cap.n, 1);

    /* 4 arrives in time and is delivered at once; 5 still missing. */
    assert_int_equal(push(f, 4, 1120), REORDER_DELIVERED);
    assert_int_equal(reorder_expire(f->r, 1150, T), 0);
    const uint32_t w2[] = {3, 4, 6};
    expect_out(f, w2, 3);
    assert_int_equal(reorder_stats(f->r)->skipped, 4);
    assert_int_equal(reorder_next(f->r), 7);

    /* The first held packet after the gap decides, even when a later one arrived earlier; once
     * it is released, the later one's own (already passed) deadline gives up the next gap. */
    assert_int_equal(push(f, 12, 2000), REORDER_HELD);
    assert_int_equal(push(f, 9, 2500), REORDER_HELD);
    assert_int_equal(reorder_expire(f->r, 3000, T), 3500);
    assert_int_equal(push(f, 10, 3100), REORDER_HELD);
    assert_int_equal(reorder_expire(f->r, 3499, T), 3500);
    assert_int_equal(f->cap.n, 3);
    assert_int_equal(reorder_expire(f->r, 3500, T), 0);
    const uint32_t w3[] = {3, 4, 6, 9, 10, 12};
    expect_out(f, w3, 6);
    assert_int_equal(reorder_next(f->r), 13);
    assert_int_equal(reorder_stats(f->r)->skipped, 4 + 2 + 1);
    assert_int_equal(reorder_stats(f->r)->held, 0);

    /* Deadline saturates instead of wrapping. */
    assert_int_equal(push(f, 14, 10), REORDER_HELD);
    assert_int_equal(reorder_expire(f->r, 20, UINT64_MAX), UINT64_MAX);
    assert_int_equal(reorder_expire(f->r, 20, 0), 0);
    assert_int_equal(f->cap.n, 7);
    assert_int_equal(f->cap.g[6], 14);
    fx_free(f);
}

static void test_release_before(void **state)
{
    (void)state;
    struct fixture *f = fx_new(16);
    push(f, 2, 0);
    push(f, 3, 0);
    push(f, 5, 0);
    push(f, 8, 0);
    reorder_release_before(f->r, 4); /* gives up 0 1, releases 2 3 */
    const uint32_t w1[] = {2, 3};
    expect_out(f, w1, 2);
    assert_int_equal(reorder_next(f->r), 4);
    reorder_release_before(f->r, 4); /* not after next: nothing */
    reorder_release_before(f->r, 1);
    reorder_release_before(f->r, 0xFFFFFFF0u); /* "before" in serial arithmetic */
    assert_int_equal(reorder_next(f->r), 4);
    assert_int_equal(reorder_stats(f->r)->skipped, 2);
    reorder_release_before(f->r, 7); /* gives up 4, releases 5, gives up 6 */
    const uint32_t w2[] = {2, 3, 5};
    expect_out(f, w2, 3);
    assert_int_equal(reorder_next(f->r), 7);
    assert_int_equal(reorder_stats(f->r)->skipped, 4);
    assert_int_equal(push(f, 7, 0), REORDER_DELIVERED); /* 7 then the held 8 */
    const uint32_t w3[] = {2, 3, 5, 7, 8};
    expect_out(f, w3, 5);

    /* Releasing to beyond the window flushes everything held and jumps. Consecutive held ones
     * after upto follow. */
    push(f, 12, 0);
    push(f, 20, 0);
    push(f, 1000, 0); /* overflow: releases 12 and 20, 1000 is held */
    push(f, 1001, 0);
    reorder_release_before(f->r, 1000);
    const uint32_t w4[] = {2, 3, 5, 7, 8, 12, 20, 1000, 1001};
    expect_out(f, w4, 9);
    assert_int_equal(reorder_next(f->r), 1002);
    const struct reorder_stats *st = reorder_stats(f->r);
    assert_int_equal(st->held, 0);
    assert_int_equal(st->skipped, 1002 - 9);
    assert_int_equal(st->delivered, 9);

    reorder_release_before(f->r, 5000); /* nothing held: plain jump */
    assert_int_equal(reorder_next(f->r), 5000);
    assert_int_equal(st->skipped, 5000 - 9);
    assert_int_equal(push(f, 4999, 0), REORDER_LATE);
    fx_free(f);
}

static void test_overflow(void **state)
{
    (void)state;
    struct fixture *f = fx_new(8);
    push(f, 3, 0);
    push(f, 5, 0);
    /* 10 needs next >= 3: 0..2 given up, 3 released; 4 missing, so next = 4. */
    assert_int_equal(push(f, 10, 0), REORDER_HELD);
    const uint32_t w1[] = {3};
    expect_out(f, w1, 1);
    assert_int_equal(reorder_next(f->r), 4);
    const struct reorder_stats *st = reorder_stats(f->r);
    assert_int_equal(st->overflow, 3);
    assert_int_equal(st->skipped, 3);
    assert_int_equal(st->held, 2);

    /* 100 needs next >= 93: gives up 4, 6..9, 11..92; releases 5 and 10. */
    assert_int_equal(push(f, 100, 0), REORDER_HELD);
    const uint32_t w2[] = {3, 5, 10};
    expect_out(f, w2, 3);
    assert_int_equal(reorder_next(f->r), 93);
    assert_int_equal(st->overflow, 3 + 87);
    assert_int_equal(st->skipped, 3 + 87);
    assert_int_equal(st->held, 1);
    assert_int_equal(push(f, 92, 0), REORDER_LATE);
    assert_int_equal(push(f, 10, 0), REORDER_LATE); /* 83 back: beyond the history */

    /* Overflow that lands exactly on consecutive held packets releases them and the new one. */
    for (uint32_t g = 94; g < 100; g++)
        assert_int_equal(push(f, g, 0), REORDER_HELD);
    /* Window 93..100 is full except 93: 101 gives up 93, releases 94..100, then itself. */
    assert_int_equal(push(f, 101, 0), REORDER_DELIVERED);
    assert_int_equal(reorder_next(f->r), 102);
    assert_int_equal(st->overflow, 91);
    assert_int_equal(st->held, 0);
    assert_int_equal(f->cap.n, 3 + 8);
    for (uint32_t i = 0; i < 8; i++)
        assert_int_equal(f->cap.g[3 + i], 94 + i);

    /* A huge jump with nothing held is O(1) and everything before is late. */
    assert_int_equal(push(f, 0x40000000u, 0), REORDER_HELD);
    assert_int_equal(reorder_next(f->r), 0x40000000u - 7);
    assert_int_equal(st->overflow, 91 + (0x40000000u - 7 - 102));
    assert_int_equal(push(f, 0x40000000u - 8, 0), REORDER_LATE);
    assert_int_equal(push(f, 0x40000000u - 1, 0), REORDER_HELD);
    assert_int_equal(f->cap.bad, 0);
    fx_free(f);
}

static void test_toobig(void **state)
{
    (void)state;
    struct fixture *f = fx_new(8);
    uint8_t p[MAX_PKT + 1];
    memset(p, 0, sizeof p);
    assert_int_equal(reorder_push(f->r, 0, p, 0, 0), REORDER_TOOBIG);
    assert_int_equal(reorder_push(f->r, 0, p, MAX_PKT + 1, 0), REORDER_TOOBIG);
    assert_int_equal(reorder_push(f->r, 1, p, MAX_PKT + 1, 0), REORDER_TOOBIG);
    assert_int_equal(reorder_push(f->r, 100, p, 0, 0), REORDER_TOOBIG);
    assert_int_equal(f->cap.n, 0);
    assert_int_equal(reorder_next(f->r), 0);
    const struct reorder_stats *st = reorder_stats(f->r);
    assert_int_equal(st->held + st->delivered + st->skipped + st->overflow, 0);

    /* Exactly max_pkt is fine, held and released intact. */
    uint32_t g = 0;
    while (pkt_len(g) != MAX_PKT || g < 2)
        g++;
    reorder_reset(f->r, g - 1);
    assert_int_equal(push(f, g, 0), REORDER_HELD);
    assert_int_equal(push(f, g - 1, 0), REORDER_DELIVERED);
    const uint32_t w[] = {g - 1, g};
    expect_out(f, w, 2);
    fx_free(f);
}

/* Arrival order of base + i for i < n: sorted by i + jitter with jitter < disp, so every packet is
 * displaced by less than disp. Some get a second copy with its own jitter. Returns the count. */
struct arrival {
    uint64_t key;
    uint32_t i;
};
static int cmp_arrival(const void *a, const void *b)
{
    const struct arrival *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}
static struct arrival *make_arrivals(uint32_t n, uint32_t disp, unsigned dup_pct, unsigned loss_pct,
                                     size_t *count, uint8_t *lost)
{
    struct arrival *a = malloc(((size_t)n * 2) * sizeof *a);
    assert_non_null(a);
    size_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        lost[i] = rng_below(100) < loss_pct;
        if (lost[i]) continue;
        a[k++] = (struct arrival){(uint64_t)i + rng_below(disp), i};
        if (rng_below(100) < dup_pct) a[k++] = (struct arrival){(uint64_t)i + rng_below(disp), i};
    }
    qsort(a, k, sizeof *a, cmp_arrival);
    *count = k;
    return a;
}

static void test_random_no_loss(void **state)
{
    (void)state;
    rng_state = 1;
    const uint32_t n = 1000000, slots = 256, base = 0xFFFF0000u; /* crosses 2^32 */
    struct fixture *f = fx_new(slots);
    reorder_reset(f->r, base);
    uint8_t *lost = malloc(n);
    assert_non_null(lost);
    size_t count;
    struct arrival *a = make_arrivals(n, slots, 1, 0, &count, lost);
    uint64_t dups = count - n, held_max = 0, now = 0;
    for (size_t k = 0; k < count; k++) {
        enum reorder_result res = push(f, base + a[k].i, now++);
        assert_true(res == REORDER_DELIVERED || res == REORDER_HELD || res == REORDER_DUP);
        if (reorder_stats(f->r)->held > held_max) held_max = reorder_stats(f->r)->held;
    }
    assert_int_equal(f->cap.bad, 0);
    assert_int_equal(f->cap.n, n);
    for (uint32_t i = 0; i < n; i++) {
        if (f->cap.g[i] != base + i) fail_msg("output %u is %u", i, f->cap.g[i] - base);
    }
    const struct reorder_stats *st = reorder_stats(f->r);
    assert_true(dups > n / 200); /* about 1% */
    assert_int_equal(st->dup, dups);
    assert_int_equal(st->delivered, n);
    assert_true(st->direct < n);
    assert_true(st->direct > 0);
    assert_int_equal(st->late + st->skipped + st->overflow + st->held, 0);
    assert_true(held_max > 1 && held_max < slots);
    assert_int_equal(reorder_next(f->r), base + n);
    free(a);
    free(lost);
    fx_free(f);
}

static void test_random_loss_expire(void **state)
{
    (void)state;
    rng_state = 2;
    const uint32_t n = 200000, slots = 128, base = 0xFFFFF000u;
    const uint64_t timeout = 550; /* us; arrivals are 10 us apart */
    struct fixture *f = fx_new(slots);
    reorder_reset(f->r, base);
    uint8_t *lost = malloc(n);
    uint8_t *accepted = calloc(n, 1); /* pushes answered DELIVERED or HELD */
    uint8_t *out = calloc(n, 1);
    assert_non_null(lost);
    assert_non_null(accepted);
    assert_non_null(out);
    size_t count;
    struct arrival *a = make_arrivals(n, slots / 2, 1, 1, &count, lost);
    uint64_t now = 1000, deadline = 0, n_late = 0, n_dup = 0;
    for (size_t k = 0; k < count; k++) {
        now += 10;
        /* The mux's timer fires at the deadline, before this arrival (each firing must make
         * progress: the guard turns a stuck deadline into a failure instead of a hang). */
        for (int guard = 0; deadline && deadline <= now; guard++) {
            assert_true(guard < (int)slots);
            deadline = reorder_expire(f->r, deadline, timeout);
        }
        enum reorder_result res = push(f, base + a[k].i, now);
        if (res == REORDER_DELIVERED || res == REORDER_HELD) {
            assert_int_equal(accepted[a[k].i], 0);
            accepted[a[k].i] = 1;
        } else if (res == REORDER_LATE) {
            n_late++;
        } else {
            assert_int_equal(res, REORDER_DUP);
            n_dup++;
        }
        /* A push may change the first held packet: re-arm the timer. */
        deadline = reorder_expire(f->r, now, timeout);
    }
    /* What is still held is released at its deadline; a lost tail gseq is never waited for. */
    for (int guard = 0; deadline; guard++) {
        assert_true(guard < (int)slots);
        deadline = reorder_expire(f->r, deadline, timeout);
    }
    assert_int_equal(reorder_stats(f->r)->held, 0);

    assert_int_equal(f->cap.bad, 0);
    for (size_t k = 0; k < f->cap.n; k++) {
        uint32_t i = f->cap.g[k] - base;
        assert_true(i < n);
        if (k) assert_true(seq_lt(f->cap.g[k - 1], f->cap.g[k]));
        assert_int_equal(lost[i], 0);
        out[i] = 1;
    }
    uint64_t n_lost = 0, n_given_up = 0;
    for (uint32_t i = 0; i < n; i++) {
        n_lost += lost[i];
        /* Delivered exactly when one copy was accepted (strict order rules out two). */
        assert_int_equal(out[i], accepted[i]);
        if (!lost[i] && !out[i]) n_given_up++;
    }
    const struct reorder_stats *st = reorder_stats(f->r);
    assert_int_equal(st->delivered, f->cap.n);
    assert_int_equal(st->late, n_late);
    assert_int_equal(st->dup, n_dup);
    /* Given up: the lost ones and those that came too late, except lost ones at the very end. */
    uint32_t tail_lost = 0;
    while (tail_lost < n && lost[n - 1 - tail_lost])
        tail_lost++;
    assert_int_equal(st->skipped, n_lost - tail_lost + n_given_up);
    assert_int_equal(reorder_next(f->r), base + n - tail_lost);
    /* The scenario did exercise late arrivals and expiry. */
    assert_true(n_given_up > 0);
    assert_true(n_late >= n_given_up);
    assert_true(n_lost > n / 200);
    assert_true(f->cap.n > n - n / 20);
    free(a);
    free(lost);
    free(accepted);
    free(out);
    fx_free(f);
}

static void test_wrap(void **state)
{
    (void)state;
    rng_state = 3;
    const uint32_t base = 0xFFFFFF00u, n = 1000;
    struct fixture *f = fx_new(32);
    reorder_reset(f->r, base);
    uint8_t lost[1000];
    size_t count;
    struct arrival *a = make_arrivals(n, 16, 0, 0, &count, lost);
    assert_int_equal(count, n);
    for (size_t k = 0; k < count; k++)
        push(f, base + a[k].i, k);
    assert_int_equal(f->cap.n, n);
    assert_int_equal(f->cap.bad, 0);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(f->cap.g[i], (uint32_t)(base + i));
    assert_int_equal(reorder_next(f->r), (uint32_t)(base + n));
    const struct reorder_stats *st = reorder_stats(f->r);
    assert_int_equal(st->held + st->skipped + st->dup + st->late, 0);
    assert_true(st->direct < n);

    /* Across the wrap: gaps, expiry, release_before and dup/late history. */
    reorder_reset(f->r, 0xFFFFFFFEu);
    size_t before = f->cap.n;
    assert_int_equal(push(f, 1, 120), REORDER_HELD);
    assert_int_equal(push(f, 0xFFFFFFFFu, 100), REORDER_HELD);
    assert_int_equal(reorder_expire(f->r, 150, 50), 170); /* gives up ...FE, releases FF */
    assert_int_equal(reorder_next(f->r), 0);
    assert_int_equal(f->cap.n, before + 1);
    assert_int_equal(f->cap.g[before], 0xFFFFFFFFu);
    reorder_release_before(f->r, 1);
    assert_int_equal(f->cap.n, before + 2);
    assert_int_equal(f->cap.g[before + 1], 1);
    assert_int_equal(push(f, 0xFFFFFFFEu, 200), REORDER_LATE);
    assert_int_equal(push(f, 0, 200), REORDER_LATE);
    assert_int_equal(push(f, 0xFFFFFFFFu, 200), REORDER_DUP);
    free(a);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_args),        cmocka_unit_test(test_in_order),
        cmocka_unit_test(test_gaps_filled),     cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_late_after_skip), cmocka_unit_test(test_expire),
        cmocka_unit_test(test_release_before),  cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_toobig),          cmocka_unit_test(test_wrap),
        cmocka_unit_test(test_random_no_loss),  cmocka_unit_test(test_random_loss_expire),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
