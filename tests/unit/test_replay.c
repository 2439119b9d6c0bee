/* test_replay.c: unit tests of the replay window (mux/replay.c): first counter, duplicates,
 * exact window edges, stale-bit clearing on jumps, and a randomized check against a model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../mux/replay.h"
#include "../../mux/wire.h"

/* check, then mark if accepted (what the receive path does after authentication) */
static bool accept(struct replay *r, uint64_t ctr)
{
    if (!replay_check(r, ctr)) return false;
    replay_mark(r, ctr);
    return true;
}

static void test_first_counter(void **state)
{
    (void)state;
    const uint64_t firsts[] = {0, 1, 63, 64, 4095, 4096, 123456789, WIRE_COUNTER_MAX};
    for (size_t i = 0; i < sizeof(firsts) / sizeof(firsts[0]); i++) {
        struct replay r;
        replay_init(&r);
        assert_true(replay_check(&r, firsts[i]));
        assert_true(replay_check(&r, 0));
        assert_true(replay_check(&r, WIRE_COUNTER_MAX));
        replay_mark(&r, firsts[i]);
        assert_false(replay_check(&r, firsts[i]));
        assert_true(r.top == firsts[i]);
        if (firsts[i] > 0) assert_true(replay_check(&r, firsts[i] - 1));
        if (firsts[i] < WIRE_COUNTER_MAX) assert_true(replay_check(&r, firsts[i] + 1));
    }
}

static void test_duplicates(void **state)
{
    (void)state;
    struct replay r;
    replay_init(&r);
    for (uint64_t c = 0; c < 10000; c++)
        assert_true(accept(&r, c));
    /* everything still in the window is a duplicate now, everything older is too old */
    for (uint64_t c = 0; c < 10000; c++)
        assert_false(replay_check(&r, c));
    /* check alone does not mark */
    assert_true(replay_check(&r, 10000));
    assert_true(replay_check(&r, 10000));
    assert_true(accept(&r, 10000));
    assert_false(accept(&r, 10000));
}

static void test_window_edges(void **state)
{
    (void)state;
    struct replay r;
    replay_init(&r);
    const uint64_t top = 100000;
    replay_mark(&r, top);
    assert_true(replay_check(&r, top - 1));
    assert_true(replay_check(&r, top - (REPLAY_WINDOW - 1))); /* top - 4095: oldest tracked */
    assert_false(replay_check(&r, top - REPLAY_WINDOW));      /* top - 4096: too old */
    assert_false(replay_check(&r, top - REPLAY_WINDOW - 1));
    assert_false(replay_check(&r, 0));
    assert_true(replay_check(&r, top + 1));
    assert_true(replay_check(&r, top + 100000));

    assert_true(accept(&r, top - 4095));
    assert_false(replay_check(&r, top - 4095));
    /* marking a too-old counter (contract violation) changes nothing */
    replay_mark(&r, top - 4096);
    assert_false(replay_check(&r, top - 4096));
    assert_true(r.top == top);

    /* moving top by one moves the edge by one */
    assert_true(accept(&r, top + 1));
    assert_false(replay_check(&r, top - 4095));
    assert_true(replay_check(&r, top - 4094));

    /* near 0: with top = 4095 counter 0 is still in the window, with top = 4096 it is not */
    replay_init(&r);
    replay_mark(&r, 4095);
    assert_true(replay_check(&r, 0));
    replay_mark(&r, 4096);
    assert_false(replay_check(&r, 0));
    assert_true(replay_check(&r, 1));

    /* at the top of the counter space */
    replay_init(&r);
    replay_mark(&r, WIRE_COUNTER_MAX);
    assert_true(replay_check(&r, WIRE_COUNTER_MAX - 4095));
    assert_false(replay_check(&r, WIRE_COUNTER_MAX - 4096));
    assert_false(replay_check(&r, WIRE_COUNTER_MAX));
}

static void test_jumps_clear_old_bits(void **state)
{
    (void)state;
    /* Fill every counter 0..N, then jump by various amounts (within a block, one block, many
     * blocks, exactly the ring size, more than the ring): every counter in the new window that
     * was never accepted must be accepted, every accepted one rejected. */
    const uint64_t jumps[] = {1,    2,    63,   64,   65,   100,  4095,
                              4096, 4097, 4159, 4160, 4161, 8192, 1000000};
    for (size_t j = 0; j < sizeof(jumps) / sizeof(jumps[0]); j++) {
        struct replay r;
        replay_init(&r);
        const uint64_t n = 6000;
        for (uint64_t c = 0; c <= n; c++)
            replay_mark(&r, c);
        uint64_t top = n + jumps[j];
        assert_true(accept(&r, top));
        for (uint64_t c = top - 4095; c < top; c++) {
            if (c <= n)
                assert_false(replay_check(&r, c));
            else
                assert_true(replay_check(&r, c));
        }
        assert_false(replay_check(&r, top - 4096));
    }
}

static void test_out_of_order(void **state)
{
    (void)state;
    struct replay r;
    replay_init(&r);
    const uint64_t order[] = {10, 5, 7, 3, 0, 4000, 1, 2, 4, 6, 8, 9, 3999, 100, 64, 63};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
        assert_true(accept(&r, order[i]));
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
        assert_false(replay_check(&r, order[i]));
    assert_true(replay_check(&r, 11));
    assert_true(replay_check(&r, 65));
    assert_true(replay_check(&r, 62));
    assert_true(r.top == 4000);
    /* 4100 pushes 3 and 4 out of the window, so they are now rejected as too old */
    assert_true(accept(&r, 4100));
    assert_false(replay_check(&r, 3));
    assert_false(replay_check(&r, 4));
    assert_false(replay_check(&r, 5)); /* oldest tracked, already seen */
    assert_true(replay_check(&r, 11)); /* in the window, never seen */
}

static uint64_t rng_next(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Reference model: "seen" as a plain bitmap over the whole tested range, plus top. */
static void run_model(uint64_t base, uint64_t seed)
{
    const uint64_t span = UINT64_C(1) << 26;
    uint8_t *seen = calloc(span / 8, 1);
    assert_non_null(seen);
    struct replay r;
    replay_init(&r);
    bool any = false;
    uint64_t top = 0, accepted = 0, rejected_old = 0, rejected_dup = 0;
    uint64_t s = seed;
    uint64_t recent[64];
    for (size_t i = 0; i < 64; i++)
        recent[i] = base;
    for (int op = 0; op < 200000; op++) {
        uint64_t x = rng_next(&s), ctr;
        unsigned kind = (unsigned)(x % 100);
        uint64_t v = x >> 8;
        if (!any) {
            ctr = base + v % 1000;
        } else if (kind < 25) { /* inside the window */
            uint64_t back = v % 4096;
            ctr = top - base >= back ? top - back : base;
        } else if (kind < 45) { /* right around its lower edge (top - 4095 / top - 4096) */
            uint64_t back = 4046 + v % 100;
            ctr = top - base >= back ? top - back : base;
        } else if (kind < 75) {
            ctr = top + 1 + v % 16; /* small step forward */
        } else if (kind < 80) {
            ctr = top + 1 + v % 9000; /* jump */
        } else {
            ctr = recent[v % 64]; /* replay of a recently accepted counter */
        }
        if (ctr - base >= span) ctr = top; /* stay in the modelled range */

        bool dup = (seen[(ctr - base) / 8] >> ((ctr - base) % 8)) & 1;
        bool expect = !any || ctr > top || (top - ctr < REPLAY_WINDOW && !dup);
        bool got = replay_check(&r, ctr);
        assert_int_equal(got, expect);
        if (!expect) {
            if (any && ctr <= top && top - ctr >= REPLAY_WINDOW)
                rejected_old++;
            else
                rejected_dup++;
            continue;
        }
        /* 1 in 10 accepted-by-window datagrams fail authentication: not marked */
        if ((x & 0xff) < 26) continue;
        replay_mark(&r, ctr);
        seen[(ctr - base) / 8] |= (uint8_t)(1u << ((ctr - base) % 8));
        if (!any || ctr > top) top = ctr;
        any = true;
        recent[accepted % 64] = ctr;
        accepted++;
        assert_true(r.top == top);
    }
    free(seen);
    print_message("model from %llu: accepted %llu, too old %llu, duplicate %llu\n",
                  (unsigned long long)base, (unsigned long long)accepted,
                  (unsigned long long)rejected_old, (unsigned long long)rejected_dup);
    /* the operation mix exercises all three outcomes */
    assert_true(accepted > 50000);
    assert_true(rejected_old > 10000);
    assert_true(rejected_dup > 5000);
}

static void test_random_vs_model(void **state)
{
    (void)state;
    run_model(0, 42);
    run_model(WIRE_COUNTER_MAX - (UINT64_C(1) << 26) + 1, 7); /* ends near 2^48 - 1 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_counter), cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_window_edges),  cmocka_unit_test(test_jumps_clear_old_bits),
        cmocka_unit_test(test_out_of_order),  cmocka_unit_test(test_random_vs_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
