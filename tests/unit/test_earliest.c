/* test_earliest.c: the "earliest" scheduler and the path model against a deterministic simulated
 * network (fake clock): links with a rate, a delay and a drop-tail buffer, receive reports. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../mux/pathmodel.h"
#include "../../mux/sched.h"

#define NL 3
#define PKT 1462 /* a full-size datagram */
#define QMAX 4096
#define STEP_US 100
#define RX_SLOTS 65536

struct simpkt {
    uint64_t arrive;
    uint32_t bytes, gseq;
    uint64_t counter;
    double qdelay_us; /* what it waited in the path buffer */
    bool ctrl;        /* a control datagram (not a tunnel packet) */
};

struct simlink {
    /* the path */
    double rate_Bps, owd_us, buf_us; /* buf_us: drop-tail buffer at the rate */
    double busy_until;
    /* outages: nothing is delivered before outage_until; what was sent during one then
     * leaves at burst_Bps (a cellular link's backlog after a gap) */
    double outage_until, burst_Bps;
    struct simpkt fly[QMAX];
    int fly_head, fly_n;
    /* sender */
    struct pathmodel pm;
    uint64_t counter;
    uint32_t q[QMAX]; /* local send queue: gseqs (all packets PKT bytes)... */
    uint64_t qt[QMAX]; /* ...and when each was queued */
    int q_head, q_n;
    uint64_t tx_data, dropped_path;
    double max_queue_us;  /* largest queueing delay a packet met in the path buffer */
    /* receiver */
    uint32_t rx_packets, rx_bytes;
    uint64_t rx_highest, rx_highest_at;
    double rx_last_qdelay_us; /* the queueing delay the receiver measured last */
    bool rx_any;
    uint64_t rx_data;
    /* the sender's min RTT from the samples (with sim.measure_rtt; else the truth is used) */
    double min_rtt;
    uint64_t min_rtt_at;
    bool have_min_rtt;
};

struct pending_report {
    uint64_t at;
    int link;
    struct ctrl_report r;
};

struct sim {
    uint64_t now;
    struct simlink l[NL];
    int n;
    const struct sched_ops *ops;
    void *st;
    struct sched_view v[NL];
    struct pending_report rep[QMAX];
    int rep_n;
    uint64_t next_report;
    uint32_t gseq;
    double offered_Bps, credit; /* source; < 0: always backlogged */
    uint64_t ctrl_every_us, next_ctrl; /* control datagrams (beats) on every link; 0: none */
    uint64_t dropped_sched;
    uint32_t rx_max_gseq;
    uint64_t rx_out_of_order, rx_max_at;
    double max_late_us; /* longest a packet came after a later one (what reordering costs) */
    double max_hold_us; /* longest the receiver had to hold a gap for a packet that came */
    uint64_t rx_at[RX_SLOTS]; /* arrival time by gseq (modulo)... */
    uint32_t rx_g[RX_SLOTS];  /* ...of this gseq */
    bool check_budget;
    double max_budget_excess;
    bool measure_rtt; /* min RTT from RTT samples as the mux keeps it, not the truth */
    /* an AIMD source (a TCP Reno sketch): a window of packets not yet acknowledged (an ack
     * comes a reverse delay after the packet arrives), +1 per window, halved on a drop */
    bool aimd;
    double cwnd;
    int outstanding;
    uint64_t acks_at[QMAX];
    int acks_head, acks_n;
    uint64_t last_cut;
    /* the wait packets had in the sender's queues beyond the links' base delay spread */
    double wait_base_us; /* the base delay of the slowest link in use (set by the test) */
    double wait_sum_us, wait_n, wait_max_us;
};

/* A packet was dropped (by the policy or a path buffer): the AIMD source halves its window,
 * at most once per 100 ms (about a round trip here). */
static void sim_loss(struct sim *s)
{
    if (!s->aimd) return;
    s->outstanding--;
    if (s->now - s->last_cut > 100000) {
        s->cwnd = s->cwnd / 2 > 2 ? s->cwnd / 2 : 2;
        s->last_cut = s->now;
    }
}

static void sim_init(struct sim *s, int n)
{
    memset(s, 0, sizeof *s);
    s->n = n;
    s->ops = sched_find(getenv("SIM_POLICY") ? getenv("SIM_POLICY") : "earliest");
    assert_non_null(s->ops);
    s->st = s->ops->create(n);
    assert_non_null(s->st);
    for (int i = 0; i < n; i++) {
        assert_int_equal(pm_init(&s->l[i].pm), 0);
        s->l[i].buf_us = 200000;
        s->ops->link_up(s->st, i, 0);
    }
    s->now = 1000000; /* the clock does not start at 0 */
    s->next_report = s->now;
}

static void sim_free(struct sim *s)
{
    for (int i = 0; i < s->n; i++) pm_free(&s->l[i].pm);
    s->ops->destroy(s->st);
}

static double rev_delay(const struct sim *s)
{
    double d = 1e9;
    for (int i = 0; i < s->n; i++) d = fmin(d, s->l[i].owd_us);
    return d;
}

static void fill_views(struct sim *s)
{
    for (int i = 0; i < s->n; i++) {
        struct simlink *l = &s->l[i];
        struct sched_view *v = &s->v[i];
        v->usable = true;
        v->have_rtt = true; /* the mux has it from echoes and reports; here it is known */
        v->min_rtt_us = v->srtt_us = l->owd_us + rev_delay(s);
        v->min_rtt_age_us = 0;
        if (s->measure_rtt && l->have_min_rtt) {
            v->min_rtt_us = l->min_rtt;
            v->min_rtt_age_us = (double)(s->now - l->min_rtt_at);
        }
        v->have_rate = l->pm.have_rate;
        v->rate_Bps = l->pm.rate_Bps;
        v->have_owd = l->pm.have_owd;
        v->owd_base_us = l->pm.owd_min_rel_us;
        v->queue_us = l->pm.owd_queue_us;
        v->inflight = pm_inflight(&l->pm, s->now, 1000000);
        v->queued = (uint64_t)l->q_n * PKT;
        v->queue_age_us = l->q_n ? s->now - l->qt[l->q_head] : 0;
    }
}

static void path_send_len(struct sim *s, int i, uint32_t gseq, uint32_t len, bool ctrl)
{
    struct simlink *l = &s->l[i];
    double t = (double)s->now;
    if (l->busy_until < t) l->busy_until = t;
    bool burst = t < l->outage_until;
    if (l->busy_until < l->outage_until) l->busy_until = l->outage_until;
    double qdelay = l->busy_until - t;
    pm_sent(&l->pm, l->counter, len, s->now);
    if (qdelay > l->buf_us || l->fly_n == QMAX) {
        l->dropped_path++;
        l->counter++;
        if (!ctrl) sim_loss(s);
        return;
    }
    if (qdelay > l->max_queue_us && !burst) l->max_queue_us = qdelay;
    l->busy_until += len / (burst ? l->burst_Bps : l->rate_Bps) * 1e6;
    struct simpkt *p = &l->fly[(l->fly_head + l->fly_n++) % QMAX];
    p->arrive = (uint64_t)(l->busy_until + l->owd_us);
    p->bytes = len;
    p->gseq = gseq;
    p->counter = l->counter++;
    p->qdelay_us = qdelay;
    p->ctrl = ctrl;
}

static void path_send(struct sim *s, int i, uint32_t gseq)
{
    path_send_len(s, i, gseq, PKT, false);
}

static void drain(struct sim *s)
{
    for (int i = 0; i < s->n; i++) {
        struct simlink *l = &s->l[i];
        while (l->q_n > 0) {
            fill_views(s);
            uint64_t w = s->ops->send_wait(s->st, i, &s->v[i], PKT, s->now);
            if (w != 0) break;
            uint32_t g = l->q[l->q_head];
            double wait = (double)(s->now - l->qt[l->q_head]) - (s->wait_base_us - l->owd_us);
            s->wait_sum_us += wait;
            s->wait_n++;
            if (wait > s->wait_max_us) s->wait_max_us = wait;
            l->q_head = (l->q_head + 1) % QMAX;
            l->q_n--;
            path_send(s, i, g);
            l->tx_data++;
            s->ops->sent(s->st, i, &s->v[i], PKT, s->now);
            if (s->check_budget) {
                /* in flight never exceeds rate x (min RTT x probe gain + report + target)
                 * by more than the packet just sent */
                fill_views(s);
                const struct sched_view *v = &s->v[i];
                double rtt = v->have_rtt ? v->min_rtt_us : 100000;
                double r0 = v->have_rate ? v->rate_Bps : 125000;
                double b = fmax(r0 * (rtt * 2.0 + SCHED_REPORT_US +
                                               SCHED_TARGET_QUEUE_US) / 1e6, 6000);
                double excess = (double)v->inflight - PKT - b;
                if (excess > s->max_budget_excess) s->max_budget_excess = excess;
            }
        }
        /* nothing to send and room for more: what is sent from now on is app-limited */
        if (l->q_n == 0) {
            fill_views(s);
            pm_app_limited(&l->pm, 0, s->v[i].inflight, s->v[i].min_rtt_us);
        }
    }
}

static void offer(struct sim *s, int npkts)
{
    for (int k = 0; k < npkts; k++) {
        fill_views(s);
        int out[SCHED_MAX_COPIES];
        int c = s->ops->pick(s->st, s->v, s->n, PKT, s->now, out);
        if (c == 0) {
            s->dropped_sched++;
            s->gseq++;
            sim_loss(s);
            continue;
        }
        for (int j = 0; j < c; j++) {
            assert_true(out[j] >= 0 && out[j] < s->n);
            struct simlink *l = &s->l[out[j]];
            assert_true(l->q_n < QMAX);
            l->qt[(l->q_head + l->q_n) % QMAX] = s->now;
            l->q[(l->q_head + l->q_n++) % QMAX] = s->gseq;
        }
        s->gseq++;
        drain(s);
    }
}

static void step(struct sim *s)
{
    s->now += STEP_US;
    /* arrivals */
    for (int i = 0; i < s->n; i++) {
        struct simlink *l = &s->l[i];
        while (l->fly_n > 0 && l->fly[l->fly_head].arrive <= s->now) {
            struct simpkt *p = &l->fly[l->fly_head];
            l->fly_head = (l->fly_head + 1) % QMAX;
            l->fly_n--;
            l->rx_packets++;
            l->rx_bytes += p->bytes;
            l->rx_data++;
            l->rx_last_qdelay_us = p->qdelay_us;
            if (!l->rx_any || p->counter > l->rx_highest) {
                l->rx_highest = p->counter;
                l->rx_highest_at = s->now;
            }
            l->rx_any = true;
            if (p->ctrl) continue;
            bool dup = s->rx_g[p->gseq % RX_SLOTS] == p->gseq && s->rx_at[p->gseq % RX_SLOTS];
            if (s->aimd && !dup && s->acks_n < QMAX)
                s->acks_at[(s->acks_head + s->acks_n++) % QMAX] = s->now + (uint64_t)rev_delay(s);
            s->rx_at[p->gseq % RX_SLOTS] = s->now;
            s->rx_g[p->gseq % RX_SLOTS] = p->gseq;
            if (p->gseq < s->rx_max_gseq) {
                s->rx_out_of_order++;
                /* the gap opened when the first later packet arrived */
                uint64_t opened = s->now;
                for (uint32_t g = p->gseq + 1; g <= s->rx_max_gseq && g - p->gseq < RX_SLOTS; g++) {
                    uint64_t t = s->rx_at[g % RX_SLOTS];
                    if (s->rx_g[g % RX_SLOTS] == g && t && t < opened) opened = t;
                }
                if ((double)(s->now - opened) > s->max_hold_us)
                    s->max_hold_us = (double)(s->now - opened);
                double late = (double)(s->now - s->rx_max_at);
                if (late > s->max_late_us) s->max_late_us = late;
            } else {
                s->rx_max_gseq = p->gseq;
                s->rx_max_at = s->now;
            }
        }
    }
    /* reports back to the sender */
    for (int k = 0; k < s->rep_n;) {
        if (s->rep[k].at <= s->now) {
            struct pm_sample smp = {.rtt_us = -1};
            struct simlink *l = &s->l[s->rep[k].link];
            int rc = pm_report(&l->pm, &s->rep[k].r, s->now, &smp);
            if (rc == 1 && s->measure_rtt && smp.rtt_us > 0) { /* as mux/linkstat.c does */
                if (!l->have_min_rtt) {
                    l->min_rtt = smp.rtt_us;
                    l->min_rtt_at = s->now;
                    l->have_min_rtt = true;
                }
                pm_min_update(&l->min_rtt, &l->min_rtt_at, smp.rtt_us, PM_MIN_CONFIRM_FRAC,
                              s->now);
            }
            if (rc == 1) {
                fill_views(s);
                struct sched_feedback fb = {.kind = SCHED_FB_REPORT,
                                            .interval_s = smp.interval_s,
                                            .delivered_Bps = smp.delivered_Bps,
                                            .loss = smp.loss,
                                            .app_limited = smp.app_limited};
                s->ops->feedback(s->st, s->rep[k].link, &s->v[s->rep[k].link], &fb, s->now);
            }
            s->rep[k] = s->rep[--s->rep_n];
        } else {
            k++;
        }
    }
    if (s->ctrl_every_us && s->now >= s->next_ctrl) {
        /* a beat on every link, outside the scheduler (like the mux's control messages):
         * a link with nothing else to send is app-limited */
        s->next_ctrl = s->now + s->ctrl_every_us;
        for (int i = 0; i < s->n; i++) {
            path_send_len(s, i, 0, 100, true);
            if (s->l[i].q_n == 0) {
                fill_views(s);
                pm_app_limited(&s->l[i].pm, 0, s->v[i].inflight, s->v[i].min_rtt_us);
            }
        }
    }
    if (s->now >= s->next_report) {
        s->next_report += SCHED_REPORT_US;
        for (int i = 0; i < s->n && s->rep_n < QMAX; i++) {
            struct simlink *l = &s->l[i];
            struct pending_report *pr = &s->rep[s->rep_n++];
            pr->at = s->now + (uint64_t)rev_delay(s);
            pr->link = i;
            memset(&pr->r, 0, sizeof pr->r);
            pr->r.link_id = (uint8_t)i;
            pr->r.flags = CTRL_REPORT_F_OWD | (l->rx_any ? CTRL_REPORT_F_RX : 0);
            pr->r.report_us = (uint32_t)s->now;
            pr->r.rx_highest = l->rx_highest;
            pr->r.rx_packets = l->rx_packets;
            pr->r.rx_bytes = l->rx_bytes;
            pr->r.ack_delay_us = (uint32_t)(s->now - l->rx_highest_at);
            pr->r.owd_min_rel_us = (int32_t)l->owd_us;
            pr->r.owd_queue_us = (uint32_t)l->rx_last_qdelay_us;
        }
    }
    /* the source */
    while (s->acks_n > 0 && s->acks_at[s->acks_head] <= s->now) {
        s->acks_head = (s->acks_head + 1) % QMAX;
        s->acks_n--;
        s->outstanding--;
        s->cwnd += 1 / s->cwnd;
    }
    if (s->aimd) {
        while (s->outstanding < (int)s->cwnd) {
            s->outstanding++;
            offer(s, 1);
        }
    } else if (s->offered_Bps < 0) {
        /* backlogged: keep about 30 ms of the links' total rate waiting or more */
        int want = 0;
        double total = 0;
        uint64_t queued = 0;
        for (int i = 0; i < s->n; i++) {
            total += s->l[i].rate_Bps;
            queued += (uint64_t)s->l[i].q_n * PKT;
        }
        if ((double)queued < total * 0.03) want = 4;
        offer(s, want);
    } else {
        s->credit += s->offered_Bps * STEP_US / 1e6;
        int k = (int)(s->credit / PKT);
        s->credit -= k * (double)PKT;
        offer(s, k);
    }
    drain(s);
}

static void run_for(struct sim *s, double seconds)
{
    uint64_t end = s->now + (uint64_t)(seconds * 1e6);
    while (s->now < end) step(s);
}

struct snap {
    uint64_t data[NL];
};
static struct snap snap(const struct sim *s)
{
    struct snap x;
    for (int i = 0; i < NL; i++) x.data[i] = s->l[i].rx_data;
    return x;
}
static double mbit_since(const struct sim *s, const struct snap *a, int i, double seconds)
{
    return (double)(s->l[i].rx_data - a->data[i]) * PKT * 8 / seconds / 1e6;
}

/* Light load: everything takes the link where it arrives first. */
static void test_earliest_arrival_light(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, 2);
    s.l[0].rate_Bps = s.l[1].rate_Bps = 1.25e6; /* 10 Mbit/s each */
    s.l[0].owd_us = 40000;
    s.l[1].owd_us = 10000;
    s.offered_Bps = 250000; /* 2 Mbit/s */
    run_for(&s, 1.0);
    struct snap a = snap(&s);
    run_for(&s, 3.0);
    assert_true(mbit_since(&s, &a, 1, 3.0) > 1.8);
    assert_int_equal(s.l[0].rx_data - a.data[0], 0);
    assert_int_equal(s.rx_out_of_order, 0);
    sim_free(&s);
}

/* Backlogged over two unequal links: both are used, close to their sum, the path buffers stay
 * nearly empty, in flight never exceeds the budget, and packets arrive (nearly) in order. */
static void test_backlogged_two_links(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, 2);
    s.l[0].rate_Bps = 2.5e6; /* 20 Mbit/s, 10 ms */
    s.l[0].owd_us = 10000;
    s.l[1].rate_Bps = 1.25e6; /* 10 Mbit/s, 30 ms */
    s.l[1].owd_us = 30000;
    s.offered_Bps = -1;
    s.check_budget = true;
    run_for(&s, 2.0);
    for (int i = 0; i < 2; i++) s.l[i].max_queue_us = 0;
    s.rx_out_of_order = 0;
    s.max_late_us = 0;
    s.max_hold_us = 0;
    struct snap a = snap(&s);
    run_for(&s, 5.0);
    double m0 = mbit_since(&s, &a, 0, 5.0), m1 = mbit_since(&s, &a, 1, 5.0);
    print_message("backlogged: %.2f + %.2f Mbit/s, path queues %.1f / %.1f ms, out of order %llu (max %.1f ms), "
                  "dropped %llu, budget excess %.0f\n", m0, m1, s.l[0].max_queue_us / 1e3,
                  s.l[1].max_queue_us / 1e3, (unsigned long long)s.rx_out_of_order,
                  s.max_late_us / 1e3, (unsigned long long)s.dropped_sched, s.max_budget_excess);
    print_message("backlogged: gaps held up to %.1f ms\n", s.max_hold_us / 1e3);
    assert_true(m0 + m1 > 0.9 * 30);
    assert_true(m1 > 5);
    /* the link's own buffer (a phone's) stays nearly empty: target + feedback + probing */
    assert_true(s.l[0].max_queue_us < 60000);
    assert_true(s.l[1].max_queue_us < 60000);
    assert_int_equal(s.l[0].dropped_path + s.l[1].dropped_path, 0);
    assert_true(s.max_budget_excess <= 0);
    /* order: a packet may come a little after a later one, never by more than a few ms, and
     * no gap is held for long (the links' base delays differ by 20 ms) */
    assert_true(s.max_late_us < 5000);
    assert_true(s.max_hold_us < 20000);
    sim_free(&s);
}

/* A 5 s-delay link gets no data while a fast one has room, and none when the source is
 * backlogged either: its packets would arrive seconds after the fast link's. */
static void test_slow_link_idle(void **state)
{
    (void)state;
    for (int backlog = 0; backlog < 2; backlog++) {
        struct sim s;
        sim_init(&s, 2);
        s.l[0].rate_Bps = 1.25e6;
        s.l[0].owd_us = 10000;
        s.l[1].rate_Bps = 1.25e6;
        s.l[1].owd_us = 2500000;
        s.l[1].buf_us = 1000000;
        s.offered_Bps = backlog ? -1 : 625000;
        run_for(&s, 6.0);
        print_message("slow link: %llu data packets (backlog %d), fast %llu\n",
                      (unsigned long long)s.l[1].tx_data, backlog,
                      (unsigned long long)s.l[0].tx_data);
        assert_int_equal(s.l[1].tx_data, 0);
        assert_true(s.l[0].rx_data > 2000);
        sim_free(&s);
    }
}

/* The first burst of a session, before any rate is measured: a fast link and a slow one with a
 * deep buffer (the integration test's pair). The burst stays on the fast link while it
 * discovers its rate, so nothing arrives late, out of order, behind the slow link's queue. */
static void test_first_burst(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, 2);
    s.l[0].rate_Bps = 2.5e6; /* 20 Mbit/s, 10 ms */
    s.l[0].owd_us = 10000;
    s.l[1].rate_Bps = 125000; /* 1 Mbit/s, 150 ms, 1 s of buffer */
    s.l[1].owd_us = 150000;
    s.l[1].buf_us = 1000000;
    run_for(&s, 1.0); /* idle: nothing measured */
    offer(&s, 40);    /* a 58 kB burst, then 16 Mbit/s */
    s.offered_Bps = 2.0e6;
    run_for(&s, 2.0);
    print_message("first burst: slow link %llu packets, fast %llu, out of order %llu, gap held "
                  "up to %.1f ms\n", (unsigned long long)s.l[1].tx_data,
                  (unsigned long long)s.l[0].tx_data, (unsigned long long)s.rx_out_of_order,
                  s.max_hold_us / 1e3);
    assert_int_equal(s.l[1].tx_data, 0);
    assert_int_equal(s.rx_out_of_order, 0);
    assert_int_equal(s.dropped_sched, 0);
    sim_free(&s);
}

/* The other way round: the low-delay link is the slow one (a DSL line beside a satellite
 * modem). Keeping data off the high-delay link while the low-delay one discovers its rate is
 * brief: the fast high-delay link soon carries most of a backlogged flow. */
static void test_first_burst_slow_low_delay(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, 2);
    s.l[0].rate_Bps = 250000; /* 2 Mbit/s, 10 ms */
    s.l[0].owd_us = 10000;
    s.l[1].rate_Bps = 2.5e6;  /* 20 Mbit/s, 150 ms */
    s.l[1].owd_us = 150000;
    s.l[1].buf_us = 1000000;
    run_for(&s, 1.0);
    s.offered_Bps = -1;
    run_for(&s, 1.0);
    struct snap a = snap(&s);
    run_for(&s, 1.0);
    double m0 = mbit_since(&s, &a, 0, 1.0), m1 = mbit_since(&s, &a, 1, 1.0);
    print_message("slow low-delay + fast high-delay, second 2: %.2f + %.2f Mbit/s\n", m0, m1);
    assert_true(m0 + m1 > 0.9 * 22);
    sim_free(&s);
}

/* A link that speeds up 4x is given more within a few hundred ms. */
static void test_speedup(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, 2);
    s.l[0].rate_Bps = 250000; /* 2 Mbit/s, 20 ms */
    s.l[0].owd_us = 20000;
    s.l[1].rate_Bps = 250000;
    s.l[1].owd_us = 25000;
    s.offered_Bps = -1;
    run_for(&s, 3.0);
    s.l[0].rate_Bps = 1e6; /* now 8 Mbit/s */
    run_for(&s, 0.5);
    struct snap a = snap(&s);
    run_for(&s, 0.5);
    double m0 = mbit_since(&s, &a, 0, 0.5);
    print_message("after the speed-up: %.2f Mbit/s on the faster link (rate %.2f)\n", m0,
                  s.l[0].pm.rate_Bps * 8 / 1e6);
    assert_true(m0 > 6.0);
    sim_free(&s);
}

/* A link that slows down 10x: after a transient (what was in flight drains), it is given
 * less, its rate estimate follows within a few hundred ms and its buffer stays nearly empty. */
static void test_slowdown(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, 2);
    s.l[0].rate_Bps = 1e6;
    s.l[0].owd_us = 20000;
    s.l[1].rate_Bps = 1e6;
    s.l[1].owd_us = 20000;
    s.offered_Bps = -1;
    run_for(&s, 3.0);
    s.l[0].rate_Bps = 100000; /* 8 -> 0.8 Mbit/s */
    run_for(&s, 0.5);
    assert_true(s.l[0].pm.rate_Bps < 150000);
    s.l[0].max_queue_us = 0;
    uint64_t drops = s.l[0].dropped_path;
    run_for(&s, 3.0);
    print_message("after the slow-down: path queue %.1f ms, drops %llu\n",
                  s.l[0].max_queue_us / 1e3, (unsigned long long)(s.l[0].dropped_path - drops));
    assert_true(s.l[0].max_queue_us < 60000);
    assert_int_equal(s.l[0].dropped_path, drops);
    sim_free(&s);
}

/* The same when the link that slows down is only partly used (the other one carries most of
 * the flow): its estimate must still fall. Sent only now and then, it always has room by the
 * old estimate, so its samples looked app-limited (only allowed to raise it) and it stayed
 * 5x too high; the queue the peer measures behind what is in flight says the path is full. */
static void test_slowdown_partly_used(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, 2);
    s.l[0].rate_Bps = 2.5e6;
    s.l[0].owd_us = 10000;
    s.l[1].rate_Bps = 1.25e6;
    s.l[1].owd_us = 30000;
    s.offered_Bps = -1;
    run_for(&s, 3.0);
    s.l[1].rate_Bps = 250000; /* 10 -> 2 Mbit/s */
    s.offered_Bps = 2.0e6;    /* less than link 0 alone */
    run_for(&s, 3.0);
    print_message("partly used link after a slow-down to 2 Mbit/s: estimate %.2f Mbit/s\n",
                  s.l[1].pm.rate_Bps * 8 / 1e6);
    assert_true(s.l[1].pm.rate_Bps < 1.5 * 250000);
    assert_true(s.l[1].pm.rate_Bps > 0.5 * 250000);
    sim_free(&s);
}

/* Small packets take the lowest-delay link with room, past the send queues; big ones never. */
static void test_small_packets(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, 2);
    s.l[0].rate_Bps = 1.25e6;
    s.l[0].owd_us = 30000;
    s.l[1].rate_Bps = 1.25e6;
    s.l[1].owd_us = 10000;
    s.offered_Bps = -1;
    run_for(&s, 2.0);
    fill_views(&s);
    assert_true(s.v[1].queued > 0 || s.v[1].inflight > 0);
    assert_null(sched_find("earliest-inorder")->pick_unordered); /* every packet in order */
    s.ops = sched_find("earliest"); /* same state layout */
    assert_int_equal(s.ops->pick_unordered(s.st, s.v, 2, 100, s.now), 1);
    assert_int_equal(s.ops->pick_unordered(s.st, s.v, 2, PKT, s.now), -1);
    s.v[1].usable = false;
    assert_int_equal(s.ops->pick_unordered(s.st, s.v, 2, 100, s.now), 0);
    s.v[0].usable = false;
    assert_int_equal(s.ops->pick_unordered(s.st, s.v, 2, 100, s.now), -1);
    int out[SCHED_MAX_COPIES];
    assert_int_equal(s.ops->pick(s.st, s.v, 2, PKT, s.now, out), 0);
    sim_free(&s);
}

/* A TCP-like (AIMD) flow over two unequal links: the send queues' AQM keeps what packets wait
 * beyond the links' delay spread near its target, and the flow still fills both links. */
static void test_aqm_tcp_like(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, 2);
    s.l[0].rate_Bps = 2.5e6; /* 20 Mbit/s, 10 ms */
    s.l[0].owd_us = 10000;
    s.l[1].rate_Bps = 1.25e6; /* 10 Mbit/s, 30 ms */
    s.l[1].owd_us = 30000;
    s.wait_base_us = 30000;
    s.aimd = true;
    s.cwnd = 400; /* twice what fills the links: a standing queue unless something drops */
    run_for(&s, 4.0);
    s.wait_sum_us = s.wait_n = s.wait_max_us = 0;
    uint64_t drops = s.dropped_sched;
    struct snap a = snap(&s);
    run_for(&s, 10.0);
    double m0 = mbit_since(&s, &a, 0, 10.0), m1 = mbit_since(&s, &a, 1, 10.0);
    double mean = s.wait_sum_us / s.wait_n;
    print_message("AIMD flow: %.2f + %.2f Mbit/s, wait beyond the spread: mean %.1f ms, max %.1f "
                  "ms, %llu AQM drops in 10 s, window %.0f\n", m0, m1, mean / 1e3,
                  s.wait_max_us / 1e3, (unsigned long long)(s.dropped_sched - drops), s.cwnd);
    assert_true(m0 + m1 > 0.85 * 30);
    assert_true(mean < 40000); /* the AQM's target; about 50 ms here without the AQM */
    assert_true(s.dropped_sched > drops);
    assert_int_equal(s.l[0].dropped_path + s.l[1].dropped_path, 0);
    sim_free(&s);
}

/* A link that stalls 300 ms every second and then delivers what queued at 10x its rate (a
 * cellular link's backlog after a gap): between the stalls it carries its share again (its
 * estimate, which falls during a stall, recovers from the burst at once), and the burst does
 * not inflate its estimate (what it can send during a stall is bounded by its budget). */
static void test_outage_burst_estimate(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, 2);
    for (int i = 0; i < 2; i++) {
        s.l[i].rate_Bps = 500000; /* 4 Mbit/s, 20 ms */
        s.l[i].owd_us = 20000;
    }
    s.l[0].burst_Bps = 5e6;
    s.offered_Bps = -1;
    double max_est = 0;
    run_for(&s, 2.0);
    for (int k = 0; k < 10; k++) {
        s.l[0].outage_until = (double)s.now + 300000;
        for (int j = 0; j < 100; j++) {
            run_for(&s, 0.01);
            if (k >= 2 && s.l[0].pm.have_rate) max_est = fmax(max_est, s.l[0].pm.rate_Bps);
        }
    }
    print_message("link with 300 ms outages every second: estimate up to %.2f Mbit/s (rate 4, "
                  "burst 40), %llu + %llu packets\n", max_est * 8 / 1e6,
                  (unsigned long long)s.l[0].tx_data, (unsigned long long)s.l[1].tx_data);
    assert_true(max_est < 2.0 * 500000);
    assert_true(s.l[0].rx_data > s.l[1].rx_data / 2);
    sim_free(&s);
}

/* A fixed-rate flow of 200 Mbit/s starts at once over three fast links whose rates were never
 * measured at full load (idle, or carrying a light flow before: control traffic, pings): the
 * links' estimates ramp up before the send queues overflow, so (almost) nothing is dropped at
 * the start. With a light flow before, the reports' history reaches back into it, and rate
 * samples over that history would be diluted for 40 ms (bench S6-udp200 lost 0.2 %). */
static double fast_start(double light_Bps)
{
    struct sim s;
    sim_init(&s, 3);
    if (light_Bps > 0) s.ctrl_every_us = 10000; /* and control traffic on every link */
    for (int i = 0; i < 3; i++) {
        s.l[i].rate_Bps = 125e6; /* 1 Gbit/s, 0.1 ms */
        s.l[i].owd_us = 100;
    }
    s.offered_Bps = light_Bps;
    run_for(&s, 1.0);
    uint64_t sent0 = s.gseq, dropped0 = s.dropped_sched;
    s.offered_Bps = 25e6;
    /* the send queues' peak while the estimates ramp up */
    int peak_q = 0;
    for (uint64_t end = s.now + 100000; s.now < end;) {
        step(&s);
        int q = s.l[0].q_n + s.l[1].q_n + s.l[2].q_n;
        if (q > peak_q) peak_q = q;
    }
    double est100 = (s.l[0].pm.rate_Bps + s.l[1].pm.rate_Bps + s.l[2].pm.rate_Bps) * 8 / 1e6;
    run_for(&s, 0.9);
    uint64_t sent = s.gseq - sent0, dropped = s.dropped_sched - dropped0;
    print_message("200 Mbit/s after %.0f kB/s%s: %llu of %llu packets dropped, peak send "
                  "queue %.0f kB, estimates %.0f Mbit/s in all after 100 ms, %.0f / %.0f / %.0f "
                  "Mbit/s after 1 s\n", light_Bps / 1e3, s.ctrl_every_us ? " and beats" : "",
                  (unsigned long long)dropped, (unsigned long long)sent, peak_q * PKT / 1e3,
                  est100, s.l[0].pm.rate_Bps * 8 / 1e6, s.l[1].pm.rate_Bps * 8 / 1e6,
                  s.l[2].pm.rate_Bps * 8 / 1e6);
    assert_true(dropped * 1000 <= sent);
    assert_true(est100 >= 200);
    for (int i = 0; i < 3; i++) assert_true(s.l[i].pm.rate_Bps * 8 > 100e6);
    sim_free(&s);
    return peak_q * (double)PKT;
}

static void test_fast_start(void **state)
{
    (void)state;
    fast_start(0);
}

static void test_fast_start_after_light_flow(void **state)
{
    (void)state;
    /* the send queues fill no more than when the links were idle before */
    double idle = fast_start(0);
    assert_true(fast_start(20e3) <= 1.1 * idle);
}

/* A queue the scheduler keeps standing on a fast link (its packets wait there to arrive with
 * the slower link's) must not pass for the link's base delay when its min RTT, measured from
 * the RTT samples here, goes unconfirmed for the 10 s window: the link is drained before, a
 * sample confirms the minimum, and it stays the path's. */
static void test_min_rtt_standing_queue(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, 2);
    s.measure_rtt = true;
    s.l[0].rate_Bps = 2.5e6; /* 20 Mbit/s, 10 ms one way */
    s.l[0].owd_us = 10000;
    s.l[1].rate_Bps = 1.25e6; /* 10 Mbit/s, 30 ms */
    s.l[1].owd_us = 30000;
    s.offered_Bps = -1;
    run_for(&s, 1.0);
    double true_min = s.l[0].owd_us + rev_delay(&s);
    double worst = 0;
    struct snap a = snap(&s);
    for (int k = 0; k < 300; k++) {
        run_for(&s, 0.1);
        worst = fmax(worst, s.l[0].min_rtt - true_min);
    }
    double mbit = mbit_since(&s, &a, 0, 30) + mbit_since(&s, &a, 1, 30);
    print_message("standing queue, 30 s: fast link's min RTT at most %.1f ms above its base "
                  "(%.0f ms), %.2f Mbit/s in all\n", worst / 1000, true_min / 1000, mbit);
    assert_true(worst < 5000);
    assert_true(mbit > 0.9 * 30);
    sim_free(&s);
}

/* Hostile reports change nothing; hostile view values give no crash and no unusable pick. */
static void test_hostile_feedback(void **state)
{
    (void)state;
    struct pathmodel p;
    assert_int_equal(pm_init(&p), 0);
    for (uint64_t c = 0; c < 100; c++) pm_sent(&p, c, 1000, 1000000 + c * 100);
    pm_sent(&p, 200, 1000, 1020000); /* out of order: ignored */
    assert_int_equal(p.next_counter, 100);
    struct ctrl_report r = {.flags = CTRL_REPORT_F_RX | CTRL_REPORT_F_OWD, .report_us = 5000,
                            .rx_highest = 49, .rx_packets = 50, .rx_bytes = 50000,
                            .owd_min_rel_us = INT32_MIN, .owd_queue_us = UINT32_MAX};
    assert_true(pm_report(&p, &r, 1100000, NULL) >= 0);
    assert_int_equal(pm_inflight(&p, 1100000, 10000000), 50000);
    /* the peer heard the link when the report says (report time minus ack delay: 0 here) */
    assert_true(p.have_acked);
    assert_int_equal(p.acked_at, 1100000);
    assert_true(p.owd_queue_us <= 1e7 && p.owd_min_rel_us >= -1e7);
    struct pathmodel before = p;
    struct ctrl_report bad[] = {
        {.flags = CTRL_REPORT_F_RX, .report_us = 6000, .rx_highest = 100}, /* never sent */
        {.flags = CTRL_REPORT_F_RX, .report_us = 6000, .rx_highest = UINT64_MAX},
        {.flags = CTRL_REPORT_F_RX, .report_us = 7000, .rx_highest = 10}, /* backwards */
        {.flags = CTRL_REPORT_F_RX, .report_us = 5000, .rx_highest = 60}, /* same time */
        {.flags = CTRL_REPORT_F_RX, .report_us = 4000, .rx_highest = 60}, /* older */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(pm_report(&p, &bad[i], 1100100, NULL), i < 3 ? -1 : -2);
        assert_int_equal(p.acked, before.acked);
        assert_int_equal(pm_inflight(&p, 1100100, 10000000), 50000);
        assert_true(p.rate_Bps == before.rate_Bps);
    }
    assert_int_equal(p.acked_at, 1100000); /* rejected and stale reports say nothing of it */
    assert_int_equal(p.rejected, 3); /* never sent, beyond the counter space, backwards */
    assert_int_equal(p.stale, 2);    /* same time, older */
    /* a huge ack delay gives no RTT sample; a huge byte count gives a bounded rate */
    struct pm_sample smp;
    struct ctrl_report big = {.flags = CTRL_REPORT_F_RX, .report_us = 5000 + 50000,
                              .rx_highest = 99, .rx_packets = 100, .rx_bytes = UINT32_MAX,
                              .ack_delay_us = UINT32_MAX};
    assert_int_equal(pm_report(&p, &big, 1200000, &smp), 1);
    assert_true(smp.rtt_us < 0);
    assert_true(isfinite(smp.delivered_Bps) && smp.delivered_Bps <= PM_MAX_BPS);
    assert_true(p.rate_Bps <= PM_MAX_BPS);
    assert_int_equal(pm_inflight(&p, 1200000, 10000000), 0);
    /* an ack delay longer than our clock: no time at which the peer heard the link (it neither
     * moves back nor comes from the future) */
    assert_int_equal(p.acked_at, 1100000);
    struct ctrl_report late = {.flags = CTRL_REPORT_F_RX, .report_us = 5000 + 60000,
                               .rx_highest = 99, .rx_packets = 100, .rx_bytes = 0,
                               .ack_delay_us = 150000};
    assert_true(pm_report(&p, &late, 1210000, NULL) >= 0);
    assert_int_equal(p.acked_at, 1100000); /* 1210000 - 150000 is older than what it knew */
    pm_free(&p);

    /* the policy with non-finite and extreme view values */
    const struct sched_ops *ops = sched_find("earliest");
    void *st = ops->create(3);
    struct sched_view v[3] = {
        {.usable = true, .have_rate = true, .rate_Bps = NAN, .have_rtt = true,
         .min_rtt_us = INFINITY, .inflight = UINT64_MAX, .queued = UINT64_MAX,
         .queue_age_us = UINT64_MAX},
        {.usable = false, .have_rate = true, .rate_Bps = 1e6},
        {.usable = true, .have_rate = true, .rate_Bps = -5, .have_rtt = true, .min_rtt_us = -1,
         .have_owd = true, .owd_base_us = NAN, .queued = 5000, .queue_age_us = 10000000},
    };
    struct sched_feedback fb = {.kind = SCHED_FB_REPORT, .interval_s = NAN,
                                .delivered_Bps = INFINITY, .loss = -3};
    for (int i = 0; i < 3; i++) {
        ops->link_up(st, i, 0);
        ops->feedback(st, i, &v[i], &fb, 1000000);
    }
    for (int k = 0; k < 100; k++) {
        int out[SCHED_MAX_COPIES];
        int c = ops->pick(st, v, 3, 1000, 1000000 + (uint64_t)k, out);
        for (int j = 0; j < c; j++) assert_true(out[j] == 0 || out[j] == 2);
        uint64_t w = ops->send_wait(st, 0, &v[0], 1000, 1000000);
        assert_true(w == SCHED_BLOCKED);
        ops->sent(st, 2, &v[2], 1000, 1000000);
    }
    ops->destroy(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_earliest_arrival_light),
        cmocka_unit_test(test_backlogged_two_links),
        cmocka_unit_test(test_slow_link_idle),
        cmocka_unit_test(test_first_burst),
        cmocka_unit_test(test_first_burst_slow_low_delay),
        cmocka_unit_test(test_speedup),
        cmocka_unit_test(test_slowdown),
        cmocka_unit_test(test_slowdown_partly_used),
        cmocka_unit_test(test_small_packets),
        cmocka_unit_test(test_aqm_tcp_like),
        cmocka_unit_test(test_outage_burst_estimate),
        cmocka_unit_test(test_fast_start),
        cmocka_unit_test(test_fast_start_after_light_flow),
        cmocka_unit_test(test_min_rtt_standing_queue),
        cmocka_unit_test(test_hostile_feedback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
