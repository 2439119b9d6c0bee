/* test_sched.c: unit tests of the link scheduler: only usable links, weighted byte shares, no
 * burst for a joining link, the capacity estimator's rules, a closed-loop convergence run, and
 * the registry and the weighted policy through the sched_ops interface. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../common/util.h"
#include "../../mux/sched.h"
#include "../../mux/sched_weighted.h"

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

static void links_init(struct wsched *s, struct wsched_link *l, int n, const double *est)
{
    for (int i = 0; i < n; i++) {
        wsched_link_init(s, &l[i]);
        l[i].usable = true;
        if (est) l[i].est_Bps = est[i];
    }
}

static void test_init(void **state)
{
    (void)state;
    struct wsched s;
    struct wsched_link l;
    memset(&l, 0x55, sizeof l);
    wsched_init(&s, 1e6);
    assert_true(s.vtime == 0.0);
    wsched_link_init(&s, &l);
    assert_true(l.est_Bps == 1e6);
    assert_true(l.vfinish == s.vtime);
    assert_int_equal(l.sent_bytes, 0);

    /* The initial estimate is clamped like any other. */
    wsched_init(&s, 1.0);
    wsched_link_init(&s, &l);
    assert_true(l.est_Bps == WSCHED_MIN_BPS);
    wsched_init(&s, 1e12);
    wsched_link_init(&s, &l);
    assert_true(l.est_Bps == WSCHED_MAX_BPS);
}

static void test_none_usable(void **state)
{
    (void)state;
    struct wsched s;
    struct wsched_link l[4];
    wsched_init(&s, 1e6);
    links_init(&s, l, 4, NULL);
    assert_int_equal(wsched_pick(&s, l, 0, 1000), -1);
    for (int i = 0; i < 4; i++)
        l[i].usable = false;
    assert_int_equal(wsched_pick(&s, l, 4, 1000), -1);
    for (int i = 0; i < 4; i++)
        assert_int_equal(l[i].sent_bytes, 0);
    l[2].usable = true;
    assert_int_equal(wsched_pick(&s, l, 4, 1000), 2);
    assert_int_equal(wsched_pick(&s, l, 2, 1000), -1); /* only links[0..1] are considered */
    assert_int_equal(l[2].sent_bytes, 1000);
}

static void test_never_unusable(void **state)
{
    (void)state;
    rng_state = 11;
    enum { N = 8 };
    struct wsched s;
    struct wsched_link l[N];
    wsched_init(&s, 1e6);
    links_init(&s, l, N, NULL);
    uint64_t sent[N] = {0};
    int none = 0;
    for (int i = 0; i < N; i++) {
        l[i].est_Bps = 1e5 * (1 + rng_below(100));
        l[i].usable = rng_below(2);
    }
    for (int k = 0; k < 100000; k++) {
        if (rng_below(4) == 0) {
            int i = (int)rng_below(N);
            l[i].usable = !l[i].usable;
        }
        bool any = false;
        for (int i = 0; i < N; i++)
            any |= l[i].usable;
        size_t len = 1 + rng_below(1500);
        int p = wsched_pick(&s, l, N, len);
        if (!any) {
            assert_int_equal(p, -1);
            none++;
            continue;
        }
        assert_true(p >= 0 && p < N);
        assert_true(l[p].usable);
        sent[p] += len;
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(l[i].sent_bytes, sent[i]);
    assert_true(none > 0); /* the run did include moments with no usable link */
}

/* Pick npkt packets of random sizes; return byte shares. */
static void run_shares(struct wsched *s, struct wsched_link *l, int n, int npkt, double *share)
{
    uint64_t bytes[16] = {0}, total = 0;
    for (int k = 0; k < npkt; k++) {
        size_t len = 40 + rng_below(1461);
        int p = wsched_pick(s, l, n, len);
        assert_true(p >= 0 && p < n);
        bytes[p] += len;
        total += len;
    }
    for (int i = 0; i < n; i++)
        share[i] = (double)bytes[i] / (double)total;
}

static void test_proportional(void **state)
{
    (void)state;
    rng_state = 12;
    struct wsched s;
    struct wsched_link l[4];
    const double est[4] = {20e6, 10e6, 5e6, 40e6};
    wsched_init(&s, 1e6);
    links_init(&s, l, 4, est);
    l[3].usable = false;
    double share[4];
    run_shares(&s, l, 4, 100000, share);
    const double want[3] = {20.0 / 35, 10.0 / 35, 5.0 / 35};
    for (int i = 0; i < 3; i++)
        assert_true(fabs(share[i] - want[i]) < 0.01 * want[i]);
    assert_true(share[3] == 0.0);

    /* Change the weights mid-run: the new shares follow. */
    l[0].est_Bps = 1e6;
    l[1].est_Bps = 3e6;
    l[2].est_Bps = 4e6;
    run_shares(&s, l, 4, 100000, share);
    const double want2[3] = {1.0 / 8, 3.0 / 8, 4.0 / 8};
    for (int i = 0; i < 3; i++)
        assert_true(fabs(share[i] - want2[i]) < 0.01 * want2[i]);
}

static void test_ties_lowest_index(void **state)
{
    (void)state;
    struct wsched s;
    struct wsched_link l[3];
    wsched_init(&s, 1e6);
    links_init(&s, l, 3, NULL);
    /* Equal weights and sizes: strict round robin starting at index 0. */
    for (int k = 0; k < 30; k++)
        assert_int_equal(wsched_pick(&s, l, 3, 1000), k % 3);
}

/* A link that becomes usable after a long run on the others gets its share, no catch-up burst. */
static void check_join(bool reinit)
{
    struct wsched s;
    struct wsched_link l[3];
    wsched_init(&s, 1e6);
    links_init(&s, l, 3, NULL);
    l[2].usable = false;
    for (int k = 0; k < 10000; k++) {
        int p = wsched_pick(&s, l, 3, 1000);
        assert_true(p == 0 || p == 1);
    }
    if (reinit) wsched_link_init(&s, &l[2]);
    l[2].usable = true;
    int got = 0;
    for (int k = 0; k < 100; k++)
        got += wsched_pick(&s, l, 3, 1000) == 2;
    assert_true(got <= 100 / 3 + 2);
    assert_true(got >= 100 / 3 - 2);
}

static void test_join_no_burst(void **state)
{
    (void)state;
    check_join(false); /* stale vfinish from before the others ran */
    check_join(true);  /* fresh link */

    /* A link that was in use, left for a while, and came back also gets no burst. */
    struct wsched s;
    struct wsched_link l[2];
    wsched_init(&s, 1e6);
    links_init(&s, l, 2, NULL);
    for (int k = 0; k < 1000; k++)
        wsched_pick(&s, l, 2, 1000);
    l[1].usable = false;
    for (int k = 0; k < 5000; k++)
        assert_int_equal(wsched_pick(&s, l, 2, 1000), 0);
    l[1].usable = true;
    int got = 0;
    for (int k = 0; k < 100; k++)
        got += wsched_pick(&s, l, 2, 1000) == 1;
    assert_true(got >= 48 && got <= 52);
}

/* Feedback for a link that had sent_Bps * interval bytes picked. */
static void feed(struct wsched *s, struct wsched_link *l, double sent_Bps, double interval,
                 double delivered, double loss, double srtt, double min_rtt)
{
    l->sent_bytes = (uint64_t)(sent_Bps * interval);
    struct sched_feedback fb = {SCHED_FB_BEAT, interval, delivered, loss, srtt, min_rtt, false};
    wsched_feedback(s, l, &fb);
}

static void test_estimator_grow(void **state)
{
    (void)state;
    struct wsched s;
    struct wsched_link l;
    wsched_init(&s, 1e6);
    wsched_link_init(&s, &l);
    double est = 1e6;
    for (int k = 0; k < 10; k++) {
        /* Busy (sent = est), no loss, RTT at its minimum: x1.25 per sample. */
        feed(&s, &l, est, 0.5, est * 0.99, 0.0, 30, 30);
        est *= 1.25;
        assert_true(fabs(l.est_Bps - est) < 1e-6 * est);
        assert_int_equal(l.sent_bytes, 0);
    }
    /* Busy at half the estimate still counts; delivered above the estimate raises the base. */
    l.est_Bps = 1e6;
    feed(&s, &l, 0.5e6, 1.0, 2e6, 0.0, 0, 0);
    assert_true(fabs(l.est_Bps - 2.5e6) < 1.0);
    /* Loss of exactly 2% and RTT exactly at the threshold are not congestion. */
    l.est_Bps = 1e6;
    feed(&s, &l, 1e6, 1.0, 0.98e6, 0.02, 60, 40);
    assert_true(fabs(l.est_Bps - 1.25e6) < 1.0);
    l.est_Bps = 1e6;
    feed(&s, &l, 1e6, 1.0, 0.98e6, 0.0, 150, 100);
    assert_true(fabs(l.est_Bps - 1.25e6) < 1.0);
    /* Unknown minimum RTT: a large srtt alone says nothing. */
    l.est_Bps = 1e6;
    feed(&s, &l, 1e6, 1.0, 0.98e6, 0.0, 5000, 0);
    assert_true(fabs(l.est_Bps - 1.25e6) < 1.0);
}

static void test_estimator_congested(void **state)
{
    (void)state;
    struct wsched s;
    struct wsched_link l;
    wsched_init(&s, 1e6);
    wsched_link_init(&s, &l);
    /* Loss above 2%: falls to the delivered rate. */
    l.est_Bps = 1e6;
    feed(&s, &l, 1e6, 1.0, 0.7e6, 0.021, 30, 30);
    assert_true(fabs(l.est_Bps - 0.7e6) < 1.0);
    assert_int_equal(l.sent_bytes, 0);
    /* RTT inflation: srtt > min + max(20 ms, min / 2). */
    l.est_Bps = 1e6;
    feed(&s, &l, 1e6, 1.0, 0.8e6, 0.0, 60.5, 40);
    assert_true(fabs(l.est_Bps - 0.8e6) < 1.0);
    l.est_Bps = 1e6;
    feed(&s, &l, 1e6, 1.0, 0.6e6, 0.0, 151, 100);
    assert_true(fabs(l.est_Bps - 0.6e6) < 1.0);
    /* Congested while delivering more than the estimate: the estimate follows it up. */
    l.est_Bps = 1e6;
    feed(&s, &l, 3e6, 1.0, 2e6, 0.05, 30, 30);
    assert_true(fabs(l.est_Bps - 2e6) < 1.0);
    /* At most a halving per sample. */
    l.est_Bps = 1e6;
    feed(&s, &l, 1e6, 1.0, 0.1e6, 0.5, 30, 30);
    assert_true(fabs(l.est_Bps - 0.5e6) < 1.0);
    feed(&s, &l, 1e6, 1.0, 0.1e6, 0.5, 30, 30);
    assert_true(fabs(l.est_Bps - 0.25e6) < 1.0);
}

static void test_estimator_idle(void **state)
{
    (void)state;
    struct wsched s;
    struct wsched_link l;
    wsched_init(&s, 1e6);
    wsched_link_init(&s, &l);
    /* Lightly used (sent < est / 2): no probing; the estimate stays... */
    for (int k = 0; k < 5; k++) {
        feed(&s, &l, 0.4e6, 1.0, 0.4e6, 0.0, 30, 30);
        assert_true(l.est_Bps == 1e6);
    }
    feed(&s, &l, 0.0, 2.0, 0.0, 0.0, 0, 0);
    assert_true(l.est_Bps == 1e6);
    /* ... unless the link delivered more than estimated (sent_Bps counts the interval). */
    feed(&s, &l, 0.4e6, 4.0, 1.5e6, 0.0, 30, 30);
    assert_true(fabs(l.est_Bps - 1.5e6) < 1.0);
    /* Congestion signals on a nearly idle link (a smoothed RTT still inflated after a transfer,
     * the loss of a beat or two) do not cut the estimate... */
    l.est_Bps = 1e6;
    for (int k = 0; k < 20; k++) {
        feed(&s, &l, 0.09e6, 1.0, 0.01e6, 0.0, 300, 30);
        assert_true(l.est_Bps == 1e6);
        feed(&s, &l, 0.09e6, 1.0, 0.01e6, 0.5, 30, 30);
        assert_true(l.est_Bps == 1e6);
    }
    /* ... but do once the link carries WSCHED_ACTIVE_SHARE of its estimate. */
    feed(&s, &l, 0.1e6, 1.0, 0.6e6, 0.0, 300, 30);
    assert_true(fabs(l.est_Bps - 0.6e6) < 1.0);
}

static void test_estimator_clamp(void **state)
{
    (void)state;
    struct wsched s;
    struct wsched_link l;
    wsched_init(&s, 1e6);
    wsched_link_init(&s, &l);
    l.est_Bps = WSCHED_MIN_BPS * 1.5;
    feed(&s, &l, 1e6, 1.0, 0.0, 0.9, 30, 30);
    assert_true(l.est_Bps == WSCHED_MIN_BPS);
    feed(&s, &l, 1e6, 1.0, 0.0, 0.9, 30, 30);
    assert_true(l.est_Bps == WSCHED_MIN_BPS);
    l.est_Bps = WSCHED_MAX_BPS / 1.1;
    feed(&s, &l, WSCHED_MAX_BPS, 1.0, WSCHED_MAX_BPS, 0.0, 30, 30);
    assert_true(l.est_Bps == WSCHED_MAX_BPS);
    feed(&s, &l, WSCHED_MAX_BPS, 1.0, 4 * WSCHED_MAX_BPS, 0.0, 30, 30);
    assert_true(l.est_Bps == WSCHED_MAX_BPS);
}

static void test_estimator_invalid(void **state)
{
    (void)state;
    struct wsched s;
    struct wsched_link l;
    wsched_init(&s, 1e6);
    wsched_link_init(&s, &l);
    const struct sched_feedback bad[] = {
        {SCHED_FB_BEAT, 0.0, 5e6, 0.0, 30, 30, false},
        {SCHED_FB_BEAT, -1.0, 5e6, 0.0, 30, 30, false},
        {SCHED_FB_BEAT, NAN, 5e6, 0.0, 30, 30, false},
        {SCHED_FB_BEAT, INFINITY, 5e6, 0.0, 30, 30, false},
        {SCHED_FB_BEAT, 1.0, NAN, 0.0, 30, 30, false},
        {SCHED_FB_BEAT, 1.0, INFINITY, 0.0, 30, 30, false},
        {SCHED_FB_BEAT, 1.0, -5e6, 0.0, 30, 30, false},
        {SCHED_FB_BEAT, 1.0, 5e6, NAN, 30, 30, false},
        {SCHED_FB_BEAT, 1.0, 5e6, 0.0, NAN, 30, false},
        {SCHED_FB_BEAT, 1.0, 5e6, 0.0, 30, -INFINITY, false},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        l.sent_bytes = 1000000;
        wsched_feedback(&s, &l, &bad[i]);
        assert_true(l.est_Bps == 1e6);
        assert_int_equal(l.sent_bytes, 1000000);
    }
    /* The same sample with valid fields does change it. */
    const struct sched_feedback good = {SCHED_FB_BEAT, 1.0, 5e6, 0.0, 30, 30, false};
    wsched_feedback(&s, &l, &good);
    assert_true(l.est_Bps == 5e6 * 1.25);
    assert_int_equal(l.sent_bytes, 0);
}

/* Closed loop: links with true capacities 20:10:5 that deliver min(sent, capacity) and lose the
 * rest; offered load = the sum of capacities; estimates start equal. The picked byte shares must
 * settle near 20:10:5: within 10% over rounds 50..59. With the load exactly at capacity, probing
 * (x1.25) keeps the estimates moving round to round, so single rounds only stay within 15%. */
static void test_closed_loop(void **state)
{
    (void)state;
    rng_state = 13;
    enum { N = 3, ROUNDS = 60, MEASURE_FROM = 50 };
    const double cap[N] = {2e6, 1e6, 0.5e6}; /* bytes/s */
    const double interval = 1.0;
    double total_cap = 0;
    for (int i = 0; i < N; i++)
        total_cap += cap[i];
    struct wsched s;
    struct wsched_link l[N];
    wsched_init(&s, 1e6);
    links_init(&s, l, N, NULL);
    uint64_t measured[N] = {0}, measured_total = 0;
    for (int r = 0; r < ROUNDS; r++) {
        double offered = 0, round_bytes[N] = {0};
        while (offered < total_cap * interval) {
            size_t len = 40 + rng_below(1461);
            int p = wsched_pick(&s, l, N, len);
            assert_true(p >= 0);
            offered += (double)len;
            round_bytes[p] += (double)len;
            if (r >= MEASURE_FROM) {
                measured[p] += len;
                measured_total += len;
            }
        }
        for (int i = 0; i < N && r >= MEASURE_FROM; i++) {
            double share = round_bytes[i] / offered, want = cap[i] / total_cap;
            assert_true(share > 0.85 * want && share < 1.15 * want);
        }
        for (int i = 0; i < N; i++) {
            double sent = (double)l[i].sent_bytes;
            double got = fmin(sent, cap[i] * interval);
            struct sched_feedback fb = {SCHED_FB_BEAT, interval, got / interval,
                                        sent > got ? 1 - got / sent : 0, 0, 0, false};
            wsched_feedback(&s, &l[i], &fb);
        }
    }
    for (int i = 0; i < N; i++) {
        double share = (double)measured[i] / (double)measured_total;
        double want = cap[i] / total_cap;
        assert_true(share > 0.9 * want && share < 1.1 * want);
    }
}

static void test_find(void **state)
{
    (void)state;
    assert_ptr_equal(sched_find(NULL), &sched_earliest);
    assert_ptr_equal(sched_find("earliest"), &sched_earliest);
    assert_ptr_equal(sched_find("weighted"), &sched_weighted);
    assert_string_equal(sched_weighted.name, "weighted");
    assert_null(sched_find("foo"));
    assert_null(sched_find(""));
    assert_null(sched_find("Weighted"));
    assert_string_equal(sched_names(), "earliest, earliest-inorder, weighted");
    assert_ptr_equal(sched_find("earliest-lowlat"), &sched_earliest); /* the old name */
}

static const char *json_of(const struct sched_ops *o, void *s, int pos, struct strbuf *sb)
{
    sb->len = 0;
    o->link_json(s, pos, NULL, sb);
    return sb->buf;
}

/* Through the interface: pick never returns an unusable link, returns 0 when none is usable,
 * only BEAT feedback moves the estimate, and link_json shows it. */
static void test_ops(void **state)
{
    (void)state;
    rng_state = 5;
    enum { N = 8 };
    const struct sched_ops *o = sched_find("weighted");
    void *s = o->create(N);
    assert_non_null(s);
    struct sched_view v[N];
    memset(v, 0, sizeof v);
    for (int i = 0; i < N; i++) o->link_up(s, i, 0);
    int out[SCHED_MAX_COPIES];
    assert_int_equal(o->pick(s, v, N, 1000, 0, out), 0);
    for (int r = 0; r < 2000; r++) {
        if (r % 16 == 0)
            for (int i = 0; i < N; i++) v[i].usable = rng_below(3) == 0;
        bool any = false;
        for (int i = 0; i < N; i++) any |= v[i].usable;
        int k = o->pick(s, v, N, 40 + rng_below(1461), (uint64_t)r, out);
        if (!any) {
            assert_int_equal(k, 0);
            continue;
        }
        assert_int_equal(k, 1);
        assert_true(out[0] >= 0 && out[0] < N);
        assert_true(v[out[0]].usable);
    }

    /* Feedback of another kind is ignored; a BEAT sample moves the estimate. */
    for (int i = 0; i < N; i++) o->link_up(s, i, 0);
    struct strbuf sb;
    sb_init(&sb);
    assert_string_equal(json_of(o, s, 0, &sb), ",\"est_Bps\":125000");
    struct sched_feedback fb = {SCHED_FB_REPORT, 1.0, 5e6, 0.0, 30, 30, false};
    o->feedback(s, 0, &v[0], &fb, 0);
    assert_string_equal(json_of(o, s, 0, &sb), ",\"est_Bps\":125000");
    fb.kind = SCHED_FB_BEAT;
    o->feedback(s, 0, &v[0], &fb, 0);
    assert_string_equal(json_of(o, s, 0, &sb), ",\"est_Bps\":5000000");
    sb_free(&sb);
    o->destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_none_usable),
        cmocka_unit_test(test_never_unusable),
        cmocka_unit_test(test_proportional),
        cmocka_unit_test(test_ties_lowest_index),
        cmocka_unit_test(test_join_no_burst),
        cmocka_unit_test(test_estimator_grow),
        cmocka_unit_test(test_estimator_congested),
        cmocka_unit_test(test_estimator_idle),
        cmocka_unit_test(test_estimator_clamp),
        cmocka_unit_test(test_estimator_invalid),
        cmocka_unit_test(test_closed_loop),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_ops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
