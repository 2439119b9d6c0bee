/* test_shaper.c: unit tests of braid-emu's timing logic with explicit times: token bucket,
 * trace replay, queue limits, delay/jitter, loss, blackhole, SPEC, command and script parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the headers above first */
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../emu/script.h"
#include "../emu/shaper.h"

#define MS EMU_NS_PER_MS
#define SEC EMU_NS_PER_S
#define T0 (1000 * SEC) /* an arbitrary non-zero start */

static struct emu_shaper *mk(const char *spec, uint32_t cap, uint64_t seed)
{
    struct emu_spec s;
    char err[256];
    struct emu_shaper *sh = emu_shaper_new(cap, seed, T0);
    assert_non_null(sh);
    if (emu_spec_parse(spec, &s, err, sizeof(err)) != 0) fail_msg("spec %s: %s", spec, err);
    emu_shaper_apply(sh, &s, T0);
    emu_spec_free(&s);
    return sh;
}

static void apply(struct emu_shaper *sh, const char *spec, uint64_t now)
{
    struct emu_spec s;
    char err[256];
    if (emu_spec_parse(spec, &s, err, sizeof(err)) != 0) fail_msg("spec %s: %s", spec, err);
    emu_shaper_apply(sh, &s, now);
    emu_spec_free(&s);
}

/* Pop everything due at or before now into out (up to max); returns the count. */
static size_t pop_all(struct emu_shaper *sh, uint64_t now, struct emu_out *out, size_t max)
{
    size_t n = 0;
    struct emu_out o;
    while (emu_shaper_pop(sh, now, &o)) {
        if (n < max) out[n] = o;
        n++;
    }
    return n;
}

/* Run until the shaper is empty, always popping at the time it asks for. */
static size_t drain(struct emu_shaper *sh, struct emu_out *out, size_t max)
{
    size_t n = 0;
    uint64_t t;
    while ((t = emu_shaper_next(sh)) != EMU_NEVER)
        n += pop_all(sh, t, out + n, max - n);
    return n;
}

/* ---------------------------------------------------------------- token bucket */

/* Offer more than the rate for 10 s; the delivered rate must match within 0.5 %. */
static void check_long_rate(const char *spec, double bps, uint32_t len, uint64_t gap_ns,
                            uint32_t overhead)
{
    struct emu_shaper *sh = mk(spec, 100000, 1);
    uint64_t t = T0, end = T0 + 10 * SEC, first = 0, last = 0, bytes = 0, n = 0;
    struct emu_out o;
    uint32_t id = 0;
    for (; t < end; t += gap_ns) {
        emu_shaper_arrive(sh, t, id++, len);
        while (emu_shaper_pop(sh, t, &o)) {
            assert_true(o.t_deliver <= t);
            assert_true(o.t_depart >= o.t_arrive);
            if (n == 0)
                first = o.t_depart;
            else
                bytes += o.len + overhead;
            last = o.t_depart;
            n++;
        }
    }
    assert_true(n > 1000);
    double got = (double)bytes * 8e9 / (double)(last - first);
    if (fabs(got / bps - 1) > 0.005)
        fail_msg("%s: delivered %.0f bit/s, configured %.0f (%.3f %%)", spec, got, bps,
                 100 * (got / bps - 1));
    /* the offered excess was dropped at the queue, nothing else */
    const struct emu_stats *st = emu_shaper_stats(sh);
    assert_true(st->dropped_queue > 0);
    assert_int_equal(st->dropped_loss, 0);
    emu_shaper_free(sh);
}

static void test_rate_long_run(void **state)
{
    (void)state;
    check_long_rate("rate=20mbit", 20e6, 1400, 400000, 0);    /* 28 Mbit/s offered */
    check_long_rate("rate=7.3mbit", 7.3e6, 1234, 1000000, 0); /* 9.9 Mbit/s offered */
    check_long_rate("rate=1gbit", 1e9, 1500, 10000, 0);       /* 1.2 Gbit/s offered */
    check_long_rate("rate=2mbit,overhead=28", 2e6, 100, 300000, 28);
}

static void test_rate_exact_spacing(void **state)
{
    /* A backlog at 12 mbit: 1500-byte packets leave exactly 1 ms apart after the burst. */
    struct emu_shaper *sh = mk("rate=12mbit,queue=1mb", 1000, 1);
    struct emu_out out[100];
    size_t n;
    (void)state;
    for (uint32_t i = 0; i < 50; i++)
        assert_int_equal(emu_shaper_arrive(sh, T0 + 5 * SEC, i, 1500), EMU_ACCEPTED);
    n = drain(sh, out, 100);
    assert_int_equal(n, 50);
    /* burst max(2 packets, 1 ms = 1500 B) = 3000 B: two leave at once */
    assert_int_equal(emu_shaper_burst_bytes(sh), 3000);
    assert_int_equal(out[0].t_depart, T0 + 5 * SEC);
    assert_int_equal(out[1].t_depart, T0 + 5 * SEC);
    for (size_t i = 2; i < n; i++) {
        assert_int_equal(out[i].id, i);
        assert_int_equal(out[i].t_depart - out[i - 1].t_depart, MS);
    }
    emu_shaper_free(sh);
}

/* Token-bucket conformance: over any run of departures i..j, bytes <= burst + rate * time. */
static void check_burst(const char *spec, double bps, uint64_t expect_burst)
{
    struct emu_shaper *sh = mk(spec, 4000, 1);
    struct emu_out out[300];
    size_t n, at_once = 0;
    (void)bps;
    assert_int_equal(emu_shaper_burst_bytes(sh), expect_burst);
    /* idle for a second (the bucket fills, but no further), then 300 packets at once */
    for (uint32_t i = 0; i < 300; i++)
        emu_shaper_arrive(sh, T0 + SEC, i, 1000);
    n = drain(sh, out, 300);
    assert_int_equal(n, 300);
    for (size_t i = 0; i < n; i++)
        if (out[i].t_depart == T0 + SEC) at_once++;
    assert_int_equal(at_once, expect_burst / 1000);
    for (size_t i = 0; i < n; i++) {
        uint64_t bytes = 0;
        for (size_t j = i; j < n; j++) {
            bytes += out[j].len;
            double allowed =
                (double)expect_burst + bps * (double)(out[j].t_depart - out[i].t_depart) / 8e9;
            if ((double)bytes > allowed + 1e-6)
                fail_msg("%s: %llu bytes in [%zu, %zu] > %.1f allowed", spec,
                         (unsigned long long)bytes, i, j, allowed);
        }
    }
    emu_shaper_free(sh);
}

static void test_burst_bound(void **state)
{
    (void)state;
    check_burst("rate=20mbit,queue=1mb", 20e6, 3000);    /* 2 packets > 1 ms (2500 B) */
    check_burst("rate=200mbit,queue=1mb", 200e6, 25000); /* 1 ms = 25000 B */
}

static void test_rate_change(void **state)
{
    /* 10 mbit for 5 s, then 20 mbit: each half delivers its own rate. */
    struct emu_shaper *sh = mk("rate=10mbit", 100000, 1);
    uint64_t bytes[2] = {0, 0};
    struct emu_out o;
    uint32_t id = 0;
    (void)state;
    for (uint64_t t = T0; t < T0 + 10 * SEC; t += 200000) { /* 1000 B per 0.2 ms: 40 mbit */
        if (t == T0 + 5 * SEC) apply(sh, "rate=20mbit", t);
        emu_shaper_arrive(sh, t, id++, 1000);
        while (emu_shaper_pop(sh, t, &o))
            bytes[o.t_depart >= T0 + 5 * SEC] += o.len;
    }
    assert_true(fabs((double)bytes[0] * 8 / 5 / 10e6 - 1) < 0.01);
    assert_true(fabs((double)bytes[1] * 8 / 5 / 20e6 - 1) < 0.01);
    emu_shaper_free(sh);
}

static void test_unshaped(void **state)
{
    struct emu_shaper *sh = mk("", 16, 1);
    struct emu_out o;
    (void)state;
    assert_int_equal(emu_shaper_arrive(sh, T0 + 7, 3, 100), EMU_ACCEPTED);
    assert_int_equal(emu_shaper_next(sh), T0 + 7);
    assert_true(emu_shaper_pop(sh, T0 + 7, &o));
    assert_int_equal(o.id, 3);
    assert_int_equal(o.t_deliver, T0 + 7);
    assert_false(emu_shaper_pop(sh, T0 + 7, &o));
    assert_int_equal(emu_shaper_next(sh), EMU_NEVER);
    emu_shaper_free(sh);
}

/* ---------------------------------------------------------------- traces */

static struct emu_trace *trace_from(const char *text)
{
    struct emu_trace *t = NULL;
    char err[256];
    if (emu_trace_parse(text, strlen(text), "mem", &t, err, sizeof(err)) != 0)
        fail_msg("trace: %s", err);
    return t;
}

static struct emu_shaper *mk_trace(const char *text, const char *extra, uint32_t cap)
{
    struct emu_shaper *sh = emu_shaper_new(cap, 1, T0);
    struct emu_spec s;
    char err[256];
    assert_non_null(sh);
    if (emu_spec_parse(extra, &s, err, sizeof(err)) != 0) fail_msg("%s", err);
    s.trace = trace_from(text);
    s.mask |= EMU_F_TRACE;
    emu_shaper_apply(sh, &s, T0);
    emu_spec_free(&s);
    return sh;
}

static void test_trace_parse(void **state)
{
    struct emu_trace *t = trace_from("# comment\n0\n0\n  5 \r\n\n10\n");
    (void)state;
    assert_int_equal(t->n, 4);
    assert_int_equal(t->period, 10);
    assert_int_equal(t->ms[2], 5);
    assert_true(fabs(emu_trace_mean_bps(t) - 4 * 1500 * 8 * 100.0) < 1e-6);
    emu_trace_unref(t);
}

static void test_trace_parse_errors(void **state)
{
    static const struct {
        const char *text, *msg;
    } cases[] = {
        {"1\n2\nx\n", "mem:3:"},
        {"1\n5\n3\n", "mem:3: timestamp 3 is before"},
        {"", "no timestamps"},
        {"# only a comment\n", "no timestamps"},
        {"0\n0\n", "last timestamp is 0"},
        {"1\n2 3\n", "mem:2: unexpected text"},
        {"-1\n", "mem:1:"},
        {"99999999999\n", "mem:1: timestamp too large"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct emu_trace *t = NULL;
        char err[256] = "";
        assert_int_equal(
            emu_trace_parse(cases[i].text, strlen(cases[i].text), "mem", &t, err, sizeof(err)), -1);
        assert_null(t);
        if (!strstr(err, cases[i].msg))
            fail_msg("trace %zu: got \"%s\", want \"%s\"", i, err, cases[i].msg);
    }
}

static void test_trace_opportunities_and_repeat(void **state)
{
    /* opportunities at 1, 3, 3, 10 ms; then again shifted by 10: 11, 13, 13, 20, 21, ... */
    struct emu_shaper *sh = mk_trace("1\n3\n3\n10\n", "", 100);
    static const uint64_t want[] = {1, 3, 3, 10, 11, 13, 13, 20, 21, 23, 23, 30};
    struct emu_out out[20];
    size_t n;
    (void)state;
    for (uint32_t i = 0; i < 12; i++)
        assert_int_equal(emu_shaper_arrive(sh, T0, i, 1500), 0);
    assert_int_equal(emu_shaper_next(sh), T0 + 1 * MS);
    n = drain(sh, out, 20);
    assert_int_equal(n, 12);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(out[i].id, i);
        assert_int_equal(out[i].t_depart, T0 + want[i] * MS);
    }
    emu_shaper_free(sh);
}

static void test_trace_several_per_opportunity(void **state)
{
    /* 500-byte packets: three share one opportunity; 800-byte ones: one each (the rest of the
     * opportunity is lost); a 3000-byte packet needs two opportunities. */
    struct emu_shaper *sh = mk_trace("1\n2\n3\n4\n5\n6\n7\n8\n", "", 100);
    struct emu_out out[20];
    size_t n;
    (void)state;
    for (uint32_t i = 0; i < 6; i++)
        emu_shaper_arrive(sh, T0, i, 500);
    emu_shaper_arrive(sh, T0, 6, 800);
    emu_shaper_arrive(sh, T0, 7, 800);
    emu_shaper_arrive(sh, T0, 8, 3000);
    emu_shaper_arrive(sh, T0, 9, 100);
    n = drain(sh, out, 20);
    assert_int_equal(n, 10);
    static const uint64_t want[] = {1, 1, 1, 2, 2, 2, 3, 4, 6, 7};
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(out[i].id, i);
        if (out[i].t_depart != T0 + want[i] * MS)
            fail_msg("packet %zu left at %.3f ms, want %llu", i,
                     (double)(out[i].t_depart - T0) / 1e6, (unsigned long long)want[i]);
    }
    emu_shaper_free(sh);
}

static void test_trace_unused_lost(void **state)
{
    /* one opportunity per ms; opportunities while the queue is empty are not saved up */
    struct emu_shaper *sh = mk_trace("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n", "", 100);
    struct emu_out out[20];
    size_t n;
    (void)state;
    for (uint32_t i = 0; i < 5; i++)
        emu_shaper_arrive(sh, T0 + 4 * MS + MS / 2, i, 1500);
    n = drain(sh, out, 20);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(out[i].t_depart, T0 + (5 + i) * MS);
    /* idle across a repetition: at 23.5 ms, next opportunities are 24, 25 (= 10 + 14, 15) */
    emu_shaper_arrive(sh, T0 + 23 * MS + MS / 2, 10, 1500);
    emu_shaper_arrive(sh, T0 + 23 * MS + MS / 2, 11, 1500);
    n = drain(sh, out, 20);
    assert_int_equal(n, 2);
    assert_int_equal(out[0].t_depart, T0 + 24 * MS);
    assert_int_equal(out[1].t_depart, T0 + 25 * MS);
    /* an arrival exactly at an opportunity uses it */
    emu_shaper_arrive(sh, T0 + 1000 * MS, 12, 1500);
    n = pop_all(sh, T0 + 1000 * MS, out, 20);
    assert_int_equal(n, 1);
    emu_shaper_free(sh);
}

static void test_trace_mean_rate(void **state)
{
    /* A saturated trace delivers its mean capacity: 3 opportunities per 2 ms = 18 Mbit/s. */
    struct emu_shaper *sh = mk_trace("1\n2\n2\n", "queue=1000p", 4000);
    struct emu_out o;
    uint64_t bytes = 0;
    uint32_t id = 0;
    (void)state;
    for (uint64_t t = T0; t < T0 + 10 * SEC; t += 500000) { /* 1500 B / 0.5 ms = 24 Mbit */
        emu_shaper_arrive(sh, t, id++, 1500);
        while (emu_shaper_pop(sh, t, &o))
            bytes += o.len;
    }
    assert_true(fabs((double)bytes * 8 / 10 / 18e6 - 1) < 0.005);
    emu_shaper_free(sh);
}

static void test_trace_file_and_real(void **state)
{
    char path[] = "/tmp/test_shaper_traceXXXXXX";
    int fd = mkstemp(path);
    struct emu_spec s;
    char err[512];
    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "5\n5\n20\n", 7), 7);
    close(fd);
    char spec[128];
    snprintf(spec, sizeof(spec), "trace=%s,delay=10ms", path);
    assert_int_equal(emu_spec_parse(spec, &s, err, sizeof(err)), 0);
    assert_non_null(s.trace);
    assert_int_equal(s.trace->n, 3);
    assert_int_equal(s.trace->period, 20);
    emu_spec_free(&s);
    unlink(path);
    assert_int_equal(emu_spec_parse(spec, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot open trace file"));

    /* the project's real traces, when shared/ is beside the checkout */
    static const char *const dirs[] = {"../shared/traces", "../../shared/traces"};
    for (size_t i = 0; i < 2; i++) {
        struct emu_trace *t;
        char p[256];
        snprintf(p, sizeof(p), "%s/Verizon-LTE-short.down", dirs[i]);
        if (access(p, R_OK) != 0) continue;
        assert_int_equal(emu_trace_load(p, &t, err, sizeof(err)), 0);
        assert_true(fabs(emu_trace_mean_bps(t) / 1e6 - 5.0) < 0.1); /* README: 5.0 Mbit/s */
        emu_trace_unref(t);
        break;
    }
}

/* ---------------------------------------------------------------- queue limits */

static void test_queue_bytes(void **state)
{
    /* 1 mbit, 10 kB queue: 20 x 1000 B at once: 3 leave (3000 B burst), 10 wait, 7 dropped */
    struct emu_shaper *sh = mk("rate=1mbit,queue=10kb", 100, 1);
    struct emu_out out[20];
    int verdict[20];
    (void)state;
    assert_int_equal(emu_shaper_queue_limit_bytes(sh), 10000);
    for (uint32_t i = 0; i < 20; i++) {
        verdict[i] = emu_shaper_arrive(sh, T0 + SEC, i, 1000);
        assert_true(emu_shaper_stats(sh)->queued_bytes <= 10000);
    }
    for (int i = 0; i < 13; i++)
        assert_int_equal(verdict[i], EMU_ACCEPTED);
    for (int i = 13; i < 20; i++)
        assert_int_equal(verdict[i], EMU_DROP_QUEUE);
    assert_int_equal(emu_shaper_stats(sh)->dropped_queue, 7);
    assert_int_equal(drain(sh, out, 20), 13);
    emu_shaper_free(sh);
}

static void test_queue_time(void **state)
{
    /* 8 mbit = 1 MB/s; 50 ms = 50000 B; default 200 ms = 200000 B */
    struct emu_shaper *sh = mk("rate=8mbit,queue=50ms", 1000, 1);
    size_t acc = 0;
    (void)state;
    assert_int_equal(emu_shaper_queue_limit_bytes(sh), 50000);
    for (uint32_t i = 0; i < 100; i++)
        acc += emu_shaper_arrive(sh, T0, i, 1000) == EMU_ACCEPTED;
    assert_int_equal(acc, 3 + 50); /* burst 3000 B + 50 ms of queue */
    /* the limit follows the rate */
    apply(sh, "rate=16mbit", T0);
    assert_int_equal(emu_shaper_queue_limit_bytes(sh), 100000);
    apply(sh, "queue=auto", T0);
    assert_int_equal(emu_shaper_queue_limit_bytes(sh), 400000);
    emu_shaper_free(sh);

    sh = mk("rate=8mbit", 10, 1);
    assert_int_equal(emu_shaper_queue_limit_bytes(sh), 200000);
    emu_shaper_free(sh);
}

static void test_queue_packets_and_trace_default(void **state)
{
    struct emu_shaper *sh = mk_trace("5\n10\n", "", 1000);
    size_t acc = 0;
    (void)state;
    for (uint32_t i = 0; i < 200; i++)
        acc += emu_shaper_arrive(sh, T0, i, 1500) == EMU_ACCEPTED;
    assert_int_equal(acc, EMU_DEFAULT_QUEUE_PKTS);
    emu_shaper_free(sh);

    sh = mk("rate=1mbit,queue=10p", 1000, 1);
    acc = 0;
    for (uint32_t i = 0; i < 50; i++)
        acc += emu_shaper_arrive(sh, T0, i, 100) == EMU_ACCEPTED;
    assert_int_equal(acc, 30 + 10); /* 3000 B burst = 30 x 100 B, then 10 queued */
    emu_shaper_free(sh);
}

static void test_capacity_limit(void **state)
{
    /* the delay line counts too: capacity 8 with a 10 ms delay holds 8 packets */
    struct emu_shaper *sh = mk("delay=10ms", 8, 1);
    struct emu_out out[10];
    size_t acc = 0;
    (void)state;
    for (uint32_t i = 0; i < 10; i++)
        acc += emu_shaper_arrive(sh, T0, i, 100) == EMU_ACCEPTED;
    assert_int_equal(acc, 8);
    assert_int_equal(emu_shaper_stats(sh)->dropped_queue, 2);
    assert_int_equal(emu_shaper_stats(sh)->inflight_packets, 8);
    assert_int_equal(pop_all(sh, T0 + 10 * MS - 1, out, 10), 0);
    assert_int_equal(pop_all(sh, T0 + 10 * MS, out, 10), 8);
    assert_int_equal(emu_shaper_arrive(sh, T0 + 10 * MS, 9, 100), EMU_ACCEPTED);
    emu_shaper_free(sh);
}

/* ---------------------------------------------------------------- delay and jitter */

static void test_delay_exact(void **state)
{
    struct emu_shaper *sh = mk("delay=30ms", 100, 1);
    struct emu_out o;
    (void)state;
    emu_shaper_arrive(sh, T0 + 123, 1, 500);
    assert_int_equal(emu_shaper_next(sh), T0 + 123 + 30 * MS);
    assert_false(emu_shaper_pop(sh, T0 + 123 + 30 * MS - 1, &o));
    assert_true(emu_shaper_pop(sh, T0 + 123 + 30 * MS, &o));
    assert_int_equal(o.t_deliver - o.t_arrive, 30 * MS);
    /* delay is added after the bottleneck */
    apply(sh, "rate=12mbit,delay=5ms", T0 + SEC);
    for (uint32_t i = 0; i < 3; i++)
        emu_shaper_arrive(sh, T0 + SEC, i, 1500);
    struct emu_out out[3];
    assert_int_equal(drain(sh, out, 3), 3);
    assert_int_equal(out[2].t_depart, T0 + SEC + MS);
    assert_int_equal(out[2].t_deliver, T0 + SEC + 6 * MS);
    emu_shaper_free(sh);
}

/* N packets gap_ns apart through delay=30ms,jitter=5ms: every delay within [30, 35] ms, popped
 * in time order; without reorder=1 never out of order. */
static void run_jitter(const char *spec, uint64_t gap_ns, bool expect_reorder, double mean_lo,
                       double mean_hi)
{
    enum { N = 20000 };
    struct emu_shaper *sh = mk(spec, N, 42);
    struct emu_out *out = calloc(N, sizeof(*out));
    size_t n;
    uint64_t min = UINT64_MAX, max = 0;
    double sum = 0, mean;
    bool reordered = false;
    assert_non_null(out);
    for (uint32_t i = 0; i < N; i++)
        emu_shaper_arrive(sh, T0 + i * gap_ns, i, 200);
    n = drain(sh, out, N);
    assert_int_equal(n, N);
    for (size_t i = 0; i < n; i++) {
        uint64_t d = out[i].t_deliver - out[i].t_arrive;
        assert_true(d >= 30 * MS && d <= 35 * MS);
        if (d < min) min = d;
        if (d > max) max = d;
        sum += (double)d;
        if (i > 0) {
            assert_true(out[i].t_deliver >= out[i - 1].t_deliver); /* popped in time order */
            if (out[i].id < out[i - 1].id) reordered = true;
        }
    }
    assert_int_equal(reordered, expect_reorder);
    mean = sum / (double)n / 1e6;
    if (mean < mean_lo || mean > mean_hi)
        fail_msg("%s, gap %llu ns: mean delay %.3f ms, want %.2f..%.2f", spec,
                 (unsigned long long)gap_ns, mean, mean_lo, mean_hi);
    if (gap_ns > 5 * MS) /* no packet waits for another: the whole uniform range shows */
        assert_true(min < 30 * MS + 10000 && max > 35 * MS - 10000);
    free(out);
    emu_shaper_free(sh);
}

static void test_jitter_no_reorder(void **state)
{
    (void)state;
    /* sparse: independent uniform 0..5 ms, mean 2.5 ms (4 standard errors: 0.04 ms) */
    run_jitter("delay=30ms,jitter=5ms", 6 * MS, false, 32.46, 32.54);
    /* dense: a packet waits for its predecessor, so the mean moves up toward 35 ms */
    run_jitter("delay=30ms,jitter=5ms", 100000, false, 34.0, 35.0);
}

static void test_jitter_reorder(void **state)
{
    (void)state;
    run_jitter("delay=30ms,jitter=5ms,reorder=1", 100000, true, 32.46, 32.54);
}

/* ---------------------------------------------------------------- loss and blackhole */

static double loss_run(double p, uint64_t seed, uint8_t *pattern, size_t n)
{
    char spec[64];
    struct emu_shaper *sh;
    size_t lost = 0;
    snprintf(spec, sizeof(spec), "loss=%g", p);
    sh = mk(spec, 16, seed);
    for (size_t i = 0; i < n; i++) {
        struct emu_out o;
        enum emu_verdict v = emu_shaper_arrive(sh, T0 + i, (uint32_t)i, 100);
        if (pattern) pattern[i] = v == EMU_DROP_LOSS;
        lost += v == EMU_DROP_LOSS;
        while (emu_shaper_pop(sh, T0 + i, &o)) {
        }
    }
    assert_int_equal(emu_shaper_stats(sh)->dropped_loss, lost);
    emu_shaper_free(sh);
    return (double)lost / (double)n;
}

static void test_loss(void **state)
{
    enum { N = 100000 };
    uint8_t *a = malloc(N), *b = malloc(N), *c = malloc(N);
    (void)state;
    /* 4 standard deviations of a binomial proportion */
    double f = loss_run(0.1, 7, a, N), sd = sqrt(0.1 * 0.9 / N);
    assert_true(fabs(f - 0.1) < 4 * sd);
    f = loss_run(0.01, 7, NULL, N);
    assert_true(fabs(f - 0.01) < 4 * sqrt(0.01 * 0.99 / N));
    assert_true(loss_run(0, 7, NULL, 1000) == 0);
    assert_true(loss_run(1, 7, NULL, 1000) == 1);
    /* the same seed gives the same pattern, another seed another */
    loss_run(0.1, 7, b, N);
    loss_run(0.1, 8, c, N);
    assert_memory_equal(a, b, N);
    assert_memory_not_equal(a, c, N);
    free(a);
    free(b);
    free(c);
}

static void test_blackhole(void **state)
{
    struct emu_shaper *sh = mk("delay=10ms", 100, 1);
    struct emu_out o;
    (void)state;
    /* in flight when the blackhole starts, due during it: dropped at delivery */
    assert_int_equal(emu_shaper_arrive(sh, T0, 1, 100), EMU_ACCEPTED);
    emu_shaper_blackhole(sh, T0 + 5 * MS, T0 + 105 * MS);
    assert_int_equal(emu_shaper_arrive(sh, T0 + 6 * MS, 2, 100), EMU_DROP_BLACKHOLE);
    assert_true(emu_shaper_pop(sh, T0 + 10 * MS, &o));
    assert_int_equal(o.id, 1);
    assert_true(o.dropped);
    /* sent just before the end, due after it: delivered */
    assert_int_equal(emu_shaper_arrive(sh, T0 + 104 * MS, 3, 100), EMU_DROP_BLACKHOLE);
    assert_int_equal(emu_shaper_arrive(sh, T0 + 105 * MS, 4, 100), EMU_ACCEPTED);
    assert_true(emu_shaper_pop(sh, T0 + 115 * MS, &o));
    assert_false(o.dropped);
    /* until cleared */
    emu_shaper_blackhole(sh, T0 + SEC, EMU_NEVER);
    assert_int_equal(emu_shaper_arrive(sh, T0 + 1000 * SEC, 5, 100), EMU_DROP_BLACKHOLE);
    emu_shaper_clear(sh, T0 + 1001 * SEC);
    assert_int_equal(emu_shaper_arrive(sh, T0 + 1001 * SEC, 6, 100), EMU_ACCEPTED);
    apply(sh, "blackhole=1", T0 + 1002 * SEC);
    assert_true(emu_shaper_blackholed(sh, T0 + 1002 * SEC));
    assert_true(emu_shaper_pop(sh, T0 + 1011 * SEC, &o)); /* due at 1001.01 s: before it */
    assert_false(o.dropped);
    apply(sh, "blackhole=0", T0 + 1003 * SEC);
    assert_false(emu_shaper_blackholed(sh, T0 + 1003 * SEC));
    const struct emu_stats *st = emu_shaper_stats(sh);
    assert_int_equal(st->dropped_blackhole, 4);
    assert_int_equal(st->tx_packets, 2);
    assert_int_equal(st->rx_packets, 6);
    emu_shaper_free(sh);
}

/* ---------------------------------------------------------------- SPEC parsing */

static void test_spec_valid(void **state)
{
    struct emu_spec s;
    char err[256];
    uint64_t v;
    (void)state;
    assert_int_equal(emu_spec_parse("rate=20mbit,delay=30ms, jitter=1.5ms reorder=1,loss=1%,"
                                    "queue=300kb,overhead=28",
                                    &s, err, sizeof(err)),
                     0);
    assert_int_equal(s.rate_bps, 20000000);
    assert_int_equal(s.delay_ns, 30 * MS);
    assert_int_equal(s.jitter_ns, 1500000);
    assert_true(s.reorder);
    assert_true(fabs(s.loss - 0.01) < 1e-12);
    assert_int_equal(s.qunit, EMU_Q_BYTES);
    assert_int_equal(s.qval, 300000);
    assert_int_equal(s.overhead, 28);
    assert_int_equal(s.mask, EMU_F_RATE | EMU_F_DELAY | EMU_F_JITTER | EMU_F_REORDER | EMU_F_LOSS |
                                 EMU_F_QUEUE | EMU_F_OVERHEAD);
    emu_spec_free(&s);
    assert_int_equal(emu_spec_parse("rate=500kbit,queue=150p,blackhole=1", &s, err, 256), 0);
    assert_int_equal(s.rate_bps, 500000);
    assert_int_equal(s.qunit, EMU_Q_PACKETS);
    assert_true(s.blackhole);
    emu_spec_free(&s);
    assert_int_equal(emu_spec_parse("rate=1gbit,queue=200ms", &s, err, 256), 0);
    assert_int_equal(s.rate_bps, 1000000000);
    assert_int_equal(s.qunit, EMU_Q_TIME);
    assert_int_equal(s.qval, 200 * MS);
    emu_spec_free(&s);
    assert_int_equal(emu_spec_parse("rate=64000,rate=off", &s, err, 256), 0);
    assert_int_equal(s.rate_bps, 0);
    assert_true(s.mask & EMU_F_RATE);
    emu_spec_free(&s);
    assert_int_equal(emu_parse_time("1.5s", 4, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 1500 * MS);
    assert_int_equal(emu_parse_time("250us", 5, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 250000);
    assert_int_equal(emu_parse_time("0", 1, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 0);
}

static void test_spec_errors(void **state)
{
    static const struct {
        const char *spec, *msg;
    } cases[] = {
        {"speed=5mbit", "unknown key \"speed\""},
        {"rate=20mbyte", "unknown rate unit"},
        {"rate=fast", "not a rate"},
        {"rate=0", "use rate=off"},
        {"rate=0mbit", "use rate=off"},
        {"rate=-1mbit", "cannot be negative"},
        {"rate=200gbit", "too fast"},
        {"delay=30", "missing time unit"},
        {"delay=30parsecs", "unknown time unit"},
        {"delay=-5ms", "cannot be negative"},
        {"jitter=-1ms", "cannot be negative"},
        {"delay=0x10ms", "unknown time unit"},
        {"delay=nanms", "not a time"},
        {"loss=-0.1", "between 0 and 1"},
        {"loss=1.5", "between 0 and 1"},
        {"loss=lots", "probability"},
        {"queue=-5kb", "cannot be negative"},
        {"queue=300kbit", "unknown unit"},
        {"queue=300", "expected a time"},
        {"queue=1.5p", "whole number"},
        {"reorder=2", "expected 0 or 1"},
        {"blackhole=yes", "expected 0 or 1"},
        {"overhead=-1", "overhead"},
        {"rate", "expected key=value"},
        {"rate=", "missing value"},
        {"rate=1mbit,trace=/nonexistent/x", "cannot open trace file /nonexistent/x"},
        {"trace=off,rate=1mbit", "cannot be combined"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct emu_spec s;
        char err[256] = "";
        assert_int_equal(emu_spec_parse(cases[i].spec, &s, err, sizeof(err)), -1);
        assert_int_equal(s.mask, 0);
        assert_null(s.trace);
        if (!strstr(err, cases[i].msg))
            fail_msg("spec \"%s\": got \"%s\", want \"%s\"", cases[i].spec, err, cases[i].msg);
    }
}

/* ---------------------------------------------------------------- commands and scripts */

static void test_cmd_parse(void **state)
{
    struct emu_cmd c;
    char err[256];
    (void)state;
    assert_int_equal(emu_cmd_parse("blackhole both for 3000ms", &c, err, sizeof(err)), 0);
    assert_int_equal(c.kind, EMU_CMD_BLACKHOLE);
    assert_int_equal(c.dirs, EMU_DIR_BOTH);
    assert_int_equal(c.for_ns, 3 * SEC);
    assert_int_equal(emu_cmd_parse("  blackhole up\n", &c, err, sizeof(err)), 0);
    assert_int_equal(c.dirs, EMU_DIR_UP);
    assert_int_equal(c.for_ns, 0);
    assert_int_equal(emu_cmd_parse("clear down", &c, err, sizeof(err)), 0);
    assert_int_equal(c.kind, EMU_CMD_CLEAR);
    assert_int_equal(c.dirs, EMU_DIR_DOWN);
    assert_int_equal(emu_cmd_parse("set up rate=5mbit delay=20ms,loss=0", &c, err, 256), 0);
    assert_int_equal(c.kind, EMU_CMD_SET);
    assert_int_equal(c.spec.rate_bps, 5000000);
    assert_int_equal(c.spec.mask, EMU_F_RATE | EMU_F_DELAY | EMU_F_LOSS);
    emu_cmd_free(&c);
    assert_int_equal(emu_cmd_parse("rebind", &c, err, sizeof(err)), 0);
    assert_int_equal(c.kind, EMU_CMD_REBIND);
    assert_int_equal(emu_cmd_parse("stats", &c, err, sizeof(err)), 0);
    assert_int_equal(c.kind, EMU_CMD_STATS);
    assert_int_equal(emu_cmd_parse("quit", &c, err, sizeof(err)), 0);
    assert_int_equal(c.kind, EMU_CMD_QUIT);

    static const struct {
        const char *cmd, *msg;
    } bad[] = {
        {"", "empty command"},
        {"explode", "unknown command \"explode\""},
        {"blackhole", "missing direction"},
        {"blackhole sideways", "expected a direction"},
        {"blackhole up for", "[for TIME]"},
        {"blackhole up during 3s", "[for TIME]"},
        {"blackhole up for 3", "missing time unit"},
        {"blackhole up for 0s", "must be > 0"},
        {"clear", "expected clear up|down|both"},
        {"set up", "expected set up|down|both key=value"},
        {"set up rate=0", "use rate=off"},
        {"set both rate=1mbit trace=off", "cannot be combined"},
        {"rebind now", "takes no arguments"},
        {"at 5s rebind", "only for scripts"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(emu_cmd_parse(bad[i].cmd, &c, err, sizeof(err)), -1);
        assert_int_equal(c.spec.mask, 0);
        if (!strstr(err, bad[i].msg))
            fail_msg("command \"%s\": got \"%s\", want \"%s\"", bad[i].cmd, err, bad[i].msg);
    }
}

static void test_script_valid(void **state)
{
    static const char text[] = "# outage test\n"
                               "at 10s set up rate=2mbit\n"
                               "\n"
                               "at 5s blackhole both for 3s   # a 3 s outage\n"
                               "at 12s set down delay=80ms loss=0\n"
                               "at 15s rebind\n"
                               "at 20s blackhole up\n"
                               "at 25s clear up\n"
                               "at 5s set up delay=1ms\n"
                               "at 1.5min quit\n";
    struct emu_script s;
    char err[256];
    (void)state;
    assert_int_equal(emu_script_parse(text, strlen(text), "x.emu", &s, err, sizeof(err)), 0);
    assert_int_equal(s.n, 8);
    /* sorted by time; the two at 5 s keep file order */
    assert_int_equal(s.ev[0].at_ns, 5 * SEC);
    assert_int_equal(s.ev[0].line, 4);
    assert_int_equal(s.ev[0].cmd.kind, EMU_CMD_BLACKHOLE);
    assert_int_equal(s.ev[0].cmd.for_ns, 3 * SEC);
    assert_int_equal(s.ev[1].line, 9);
    assert_int_equal(s.ev[2].at_ns, 10 * SEC);
    assert_int_equal(s.ev[2].cmd.spec.rate_bps, 2000000);
    assert_int_equal(s.ev[3].cmd.dirs, EMU_DIR_DOWN);
    assert_int_equal(s.ev[3].cmd.spec.delay_ns, 80 * MS);
    assert_int_equal(s.ev[4].cmd.kind, EMU_CMD_REBIND);
    assert_int_equal(s.ev[5].cmd.kind, EMU_CMD_BLACKHOLE);
    assert_int_equal(s.ev[5].cmd.for_ns, 0);
    assert_int_equal(s.ev[6].cmd.kind, EMU_CMD_CLEAR);
    assert_int_equal(s.ev[7].at_ns, 90 * SEC);
    assert_int_equal(s.ev[7].cmd.kind, EMU_CMD_QUIT);
    emu_script_free(&s);
    assert_int_equal(emu_script_parse("", 0, "empty", &s, err, sizeof(err)), 0);
    assert_int_equal(s.n, 0);
}

static void test_script_errors(void **state)
{
    static const struct {
        const char *text, *msg;
    } cases[] = {
        {"at 1s rebind\nrebind\n", "f.emu:2: expected \"at TIME COMMAND\""},
        {"at 1s\n", "f.emu:1: expected \"at TIME COMMAND\""},
        {"# c\n\nat soon rebind\n", "f.emu:3: \"soon\" is not a time"},
        {"at 5 rebind\n", "f.emu:1: \"5\": missing time unit"},
        {"at -5s rebind\n", "f.emu:1: \"-5s\": a time cannot be negative"},
        {"at 1s blackhole left\n", "f.emu:1: \"left\": expected a direction"},
        {"at 1s blackhole up for\n", "f.emu:1: blackhole: expected"},
        {"at 1s clear\n", "f.emu:1: clear: expected"},
        {"at 1s set up\n", "f.emu:1: set: expected"},
        {"at 1s set up rate=fast\n", "f.emu:1: \"fast\" is not a rate"},
        {"at 1s set down speed=1\n", "f.emu:1: unknown key \"speed\""},
        {"at 1s dance\n", "f.emu:1: unknown command \"dance\""},
        {"at 1s rebind\nat 2s stats\n", "f.emu:2: stats is a control-socket command"},
        {"at 1s rebind twice\n", "f.emu:1: rebind takes no arguments"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct emu_script s;
        char err[256] = "";
        assert_int_equal(
            emu_script_parse(cases[i].text, strlen(cases[i].text), "f.emu", &s, err, sizeof(err)),
            -1);
        assert_int_equal(s.n, 0);
        assert_null(s.ev);
        if (!strstr(err, cases[i].msg))
            fail_msg("script %zu: got \"%s\", want \"%s\"", i, err, cases[i].msg);
    }
    /* a long line and a NUL byte */
    {
        struct emu_script s;
        char err[256] = "";
        char *big = malloc(10000);
        memset(big, 'a', 9999);
        big[9999] = '\0';
        assert_int_equal(emu_script_parse(big, 9999, "f.emu", &s, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "f.emu:1: line too long"));
        free(big);
        assert_int_equal(emu_script_parse("at 1s re\0bind\n", 14, "f.emu", &s, err, 256), -1);
        assert_non_null(strstr(err, "f.emu:1: NUL byte"));
    }
    {
        struct emu_script s;
        char err[256];
        assert_int_equal(emu_script_load("/nonexistent/script", &s, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "cannot open script /nonexistent/script"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_long_run),
        cmocka_unit_test(test_rate_exact_spacing),
        cmocka_unit_test(test_burst_bound),
        cmocka_unit_test(test_rate_change),
        cmocka_unit_test(test_unshaped),
        cmocka_unit_test(test_trace_parse),
        cmocka_unit_test(test_trace_parse_errors),
        cmocka_unit_test(test_trace_opportunities_and_repeat),
        cmocka_unit_test(test_trace_several_per_opportunity),
        cmocka_unit_test(test_trace_unused_lost),
        cmocka_unit_test(test_trace_mean_rate),
        cmocka_unit_test(test_trace_file_and_real),
        cmocka_unit_test(test_queue_bytes),
        cmocka_unit_test(test_queue_time),
        cmocka_unit_test(test_queue_packets_and_trace_default),
        cmocka_unit_test(test_capacity_limit),
        cmocka_unit_test(test_delay_exact),
        cmocka_unit_test(test_jitter_no_reorder),
        cmocka_unit_test(test_jitter_reorder),
        cmocka_unit_test(test_loss),
        cmocka_unit_test(test_blackhole),
        cmocka_unit_test(test_spec_valid),
        cmocka_unit_test(test_spec_errors),
        cmocka_unit_test(test_cmd_parse),
        cmocka_unit_test(test_script_valid),
        cmocka_unit_test(test_script_errors),
    };
    return cmocka_run_group_tests_name("shaper", tests, NULL, NULL);
}
