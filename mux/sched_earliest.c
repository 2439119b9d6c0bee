/* sched_earliest.c: the "earliest" policy: each packet goes to the link where it is predicted to
 * arrive first; every link keeps at most rate x (min RTT + target) in flight, paced at its rate. */
#include <math.h>
#include <stdlib.h>

#include "../common/bigmem.h"
#include "../common/util.h"
#include "sched.h"

#define SE_INIT_BPS 125000.0       /* a link without a measured rate: 1 Mbit/s */
#define SE_NO_RTT_US 100000.0      /* a link without an RTT sample yet */
#define SE_MIN_BUDGET 6000.0       /* bytes: a link may always have a few packets in flight */
#define SE_STARTUP_GAIN 2.0        /* pacing and budget gain while a link's rate still grows */
#define SE_STARTUP_DRAIN_US 20000.0
#define SE_PACE_GAIN 1.25          /* steady state: pace above the rate, so a rise shows */
#define SE_PROBE_GAIN 1.5          /* budget gain during a probe */
#define SE_PROBE_PERIOD_US 250000.0 /* one probe (a round trip long) every 250 ms or 4 RTTs */
#define SE_ROUND_MIN_US 20000.0
#define SE_FULL_ROUNDS 3           /* startup ends after 3 rounds without 25 % growth */
#define SE_MAX_WAIT_MIN_US 150000.0 /* hard queue bound: at least this... */
#define SE_MAX_WAIT_SLACK_US 30000.0 /* ...or the links' base delay spread plus this */
#define SE_MAX_WAIT_CAP_US 300000.0
#define SE_AQM_TARGET_US 40000.0   /* the send queues' AQM (CoDel's control law): target... */
#define SE_AQM_INTERVAL_US 400000.0 /* ...and interval (a bond's RTT may reach 300 ms) */
#define SE_SMALL_LEN 232           /* with overhead: tunnel packets up to 200 bytes */
#define SE_BURST_US 1000.0
#define SE_MEASURE_QUEUE 524288    /* bytes a link whose rate is being measured may queue */
#define SE_RTT_CHECK_US 8500000.0  /* a min RTT unconfirmed this long (it expires at 10 s): drain
                                    * the link's path queue until a sample confirms it... */
#define SE_RTT_CHECK_MAX_US 150000.0 /* ...for at most this long (less than the rate filter's
                                      * 200 ms: the drain's own samples cannot lower the rate), */
#define SE_RTT_CHECK_GAIN 0.5      /* ...with at most this x rate x min RTT in flight */
#define SE_IDLE_RESTART_US 1000000.0 /* data again after this long: startup again */
#define SE_DISCOVER_ROUNDS 16.0    /* a link's first startup after joining, under load (at most
                                    * this many rounds)... */
#define SE_DISCOVER_MARGIN_US 30000.0 /* ...keeps data off links slower by this (base delay) */

struct se_link {
    double next_send_us;  /* pacing: earliest time of the next send */
    bool startup;
    bool discover;        /* the first startup after joining: nothing measured before */
    double round_start_us, round_rate;
    int flat_rounds;
    double load_start_us; /* startup: when a queue first built up behind the link, 0: not yet */
    uint64_t copies_left; /* redundancy: packets still to duplicate after joining */
    double last_sent_us;  /* last data sent */
};

/* The send queues' AQM state (one for all links: together they are the bond's queue). */
struct se_aqm {
    bool dropping;
    double first_above_us; /* 0: the queue is below the target */
    double drop_next_us;
    uint32_t count, last_count;
};

struct se {
    int nmax;
    struct se_aqm aqm;
    struct se_link l[];
};

static size_t se_size(int nmax)
{
    return sizeof(struct se) + (size_t)nmax * sizeof(struct se_link);
}

static void *se_create(int nmax)
{
    if (nmax <= 0) return NULL;
    /* (room for every possible link; pages of links that never exist cost nothing) */
    struct se *s = bigmem_zalloc(se_size(nmax));
    if (s) s->nmax = nmax;
    return s;
}

static void se_destroy(void *p)
{
    struct se *s = p;
    if (s) bigmem_free(s, se_size(s->nmax));
}

static void se_link_up(void *sp, int pos, uint64_t now)
{
    struct se *s = sp;
    if (pos < 0 || pos >= s->nmax) return;
    struct se_link *l = &s->l[pos];
    l->next_send_us = (double)now;
    l->startup = true;
    l->discover = true;
    l->round_start_us = (double)now;
    l->round_rate = 0;
    l->flat_rounds = 0;
    l->load_start_us = 0;
    l->copies_left = SCHED_JOIN_COPIES;
    l->last_sent_us = (double)now;
}

/* The view's numbers, made safe: whatever a peer reported, a rate is in [2 kB/s, 1.25 GB/s]
 * and a delay in [0, 10 s] here. */
static double clampv(double x, double lo, double hi, double dflt)
{
    if (!isfinite(x)) return dflt;
    return x < lo ? lo : x > hi ? hi : x;
}

static double rate_of(const struct sched_view *v)
{
    return v->have_rate ? clampv(v->rate_Bps, 2000.0, 1.25e9, SE_INIT_BPS) : SE_INIT_BPS;
}

static double min_rtt_of(const struct sched_view *v)
{
    /* (an RTT below the clock's 250 us resolution reads as 0) */
    return v->have_rtt ? clampv(v->min_rtt_us, 100.0, 1e7, SE_NO_RTT_US) : SE_NO_RTT_US;
}

/* Feedback: startup ends once the rate has stopped growing for a few rounds. */
static void se_feedback(void *sp, int pos, const struct sched_view *v,
                        const struct sched_feedback *fb, uint64_t now)
{
    struct se *s = sp;
    if (pos < 0 || pos >= s->nmax || fb->kind != SCHED_FB_REPORT || fb->app_limited) return;
    struct se_link *l = &s->l[pos];
    if (!l->startup) return;
    double round = fmax(min_rtt_of(v), SE_ROUND_MIN_US);
    if ((double)now - l->round_start_us < round) return;
    double r = rate_of(v);
    if (r >= 1.25 * l->round_rate) {
        l->flat_rounds = 0;
    } else if (++l->flat_rounds >= SE_FULL_ROUNDS) {
        l->startup = false;
        l->discover = false;
    }
    l->round_rate = fmax(l->round_rate, r);
    l->round_start_us = (double)now;
}

/* Bytes the link may have in flight: rate x (min RTT + feedback interval + target queue). */
static double budget(const struct se_link *l, const struct sched_view *v, uint64_t now)
{
    double rtt = min_rtt_of(v);
    /* The scheduler may keep a queue standing on a fast link for long (its packets then arrive
     * with a slower link's); an RTT sample behind it cannot confirm the link's min RTT, which
     * would expire to the queued RTT, inflate the pipe the link is credited with and let its
     * queue grow further (S1 with BBR fell to the fast link alone that way). Before that,
     * hold no more in flight than the pipe for a moment, so the queue drains and the next
     * sample confirms the minimum (BBR's ProbeRTT, per link, only when needed). Bounded: the
     * link delivers less while it drains, and samples of a longer drain would pull its rate
     * estimate, then its budget, down (a first version without the bound left a link at the
     * rate floor for good); a drain that confirms nothing lets the minimum expire as before. */
    if (v->have_rtt && v->have_rate && v->min_rtt_age_us > SE_RTT_CHECK_US &&
        v->min_rtt_age_us < SE_RTT_CHECK_US + SE_RTT_CHECK_MAX_US)
        return fmax(SE_RTT_CHECK_GAIN * rate_of(v) * rtt / 1e6, 2 * 1500.0 /* two packets */);
    double gain = 1.0;
    if (l->startup) {
        gain = SE_STARTUP_GAIN;
    } else {
        double period = fmax(SE_PROBE_PERIOD_US, 4 * rtt);
        if (fmod((double)now, period) < rtt) gain = SE_PROBE_GAIN;
    }
    double b = rate_of(v) * (rtt * gain + SCHED_REPORT_US + SCHED_TARGET_QUEUE_US) / 1e6;
    return fmax(b, SE_MIN_BUDGET);
}

/* One-way base delay of each link for comparing links: the peer's relative measurement when
 * every usable link has one, else half the minimum RTT. */
static bool all_owd(const struct sched_view *v, int n)
{
    for (int i = 0; i < n; i++)
        if (v[i].usable && !v[i].have_owd) return false;
    return true;
}

static double base_of(const struct sched_view *v, bool use_owd)
{
    return use_owd ? clampv(v->owd_base_us, -1e7, 1e7, 0) : min_rtt_of(v) / 2;
}

/* Predicted time (relative, us) until a packet of len bytes given to the link now arrives:
 * base delay + what is queued ahead of it (its send queue, and what sits in the path beyond
 * the pipe's own share of the in-flight bytes) at the link's rate. */
static double wait_of(const struct sched_view *v, size_t len, bool include_queue)
{
    double rate = rate_of(v);
    double pipe = rate * (min_rtt_of(v) + SCHED_REPORT_US / 2.0) / 1e6;
    double ahead = (double)v->inflight - pipe;
    if (ahead < 0) ahead = 0;
    if (include_queue) ahead += (double)v->queued;
    return (ahead + (double)len) / rate * 1e6;
}

/* The AQM: should a packet that would wait behind a queue whose oldest packet has waited
 * sojourn_us (measured, not predicted: an estimate too low after a phone sped up does not drop
 * by itself) be dropped? CoDel's control law (RFC 8289), applied when a packet joins a queue:
 * once the wait has stayed above the target for an interval, drop one packet, then the next
 * after interval / sqrt(count), until the wait falls below the target. One drop per round
 * trip or so is the signal a TCP sender needs to keep no standing queue beyond the target. */
static bool aqm_drop(struct se_aqm *q, double sojourn_us, uint64_t queued, double now)
{
    if (sojourn_us < SE_AQM_TARGET_US || queued <= 2 * 1500 /* two full packets */) {
        q->first_above_us = 0;
        q->dropping = false;
        return false;
    }
    if (q->dropping) {
        if (now < q->drop_next_us) return false;
        q->count++;
        q->drop_next_us += SE_AQM_INTERVAL_US / sqrt((double)q->count);
        if (q->drop_next_us < now) q->drop_next_us = now; /* no drop bursts after a pause */
        return true;
    }
    if (q->first_above_us == 0) {
        q->first_above_us = now + SE_AQM_INTERVAL_US;
        return false;
    }
    if (now < q->first_above_us) return false;
    q->dropping = true;
    /* back to dropping soon after the last time: start near the rate that worked then */
    uint32_t delta = q->count - q->last_count;
    q->count = delta > 1 && now - q->drop_next_us < 16 * SE_AQM_INTERVAL_US ? delta : 1;
    q->last_count = q->count;
    q->drop_next_us = now + SE_AQM_INTERVAL_US / sqrt((double)q->count);
    return true;
}

static int se_pick(void *sp, const struct sched_view *v, int n, size_t len, uint64_t now,
                   int out[SCHED_MAX_COPIES])
{
    struct se *s = sp;
    if (n > s->nmax) n = s->nmax;
    bool use_owd = all_owd(v, n);
    /* While a link that joined discovers its rate (its first startup), the estimate is only a
     * lower bound and the wait it predicts too long: links whose base delay is higher and whose
     * rate is not measured either carry no data then, or the first burst of a session would go
     * to a slow link whose packets arrive after the fast link has caught up (and after their
     * gap was given up). A link with a measured rate is judged by its prediction as always.
     * Bounded: discovery ends with the link's startup or after SE_DISCOVER_ROUNDS rounds
     * under load. */
    double disc_base = INFINITY;
    for (int i = 0; i < n; i++) {
        struct se_link *l = &s->l[i];
        if (!v[i].usable || !l->discover) continue;
        if (l->load_start_us == 0 && v[i].queued > 0) l->load_start_us = (double)now;
        double rounds = SE_DISCOVER_ROUNDS * fmax(min_rtt_of(&v[i]), SE_ROUND_MIN_US);
        if (l->load_start_us != 0 && (double)now - l->load_start_us >= rounds) {
            l->discover = false;
            continue;
        }
        disc_base = fmin(disc_base, base_of(&v[i], use_owd));
    }
    int best = -1, ref = -1;
    double best_arr = 0, ref_arr = 0, base_min = 0, base_max = 0, base_busy = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (!v[i].usable) continue;
        double base = base_of(&v[i], use_owd);
        if (base > disc_base + SE_DISCOVER_MARGIN_US && !v[i].have_rate) continue;
        double arr = base + wait_of(&v[i], len, true);
        if (best < 0 || base < base_min) base_min = base;
        if (best < 0 || base > base_max) base_max = base;
        if (v[i].queued > 0 || v[i].inflight > SE_MIN_BUDGET / 2) base_busy = fmax(base_busy, base);
        if (best < 0 || arr < best_arr) {
            best = i;
            best_arr = arr;
        }
        /* the reference for redundancy: the best link whose model is known */
        if (v[i].have_rate && s->l[i].copies_left == 0 && (ref < 0 || arr < ref_arr)) {
            ref = i;
            ref_arr = arr;
        }
    }
    if (best < 0) return 0;
    /* A link that carried no data for a while may have changed: measure it afresh (its rate
     * is kept as the first guess). */
    struct se_link *bl = &s->l[best];
    if (!bl->startup && (double)now - bl->last_sent_us > SE_IDLE_RESTART_US && v[best].queued == 0) {
        bl->startup = true;
        bl->round_start_us = (double)now;
        bl->round_rate = 0;
        bl->flat_rounds = 0;
    }
    /* Bounded send queue: the AQM keeps the queues' wait short; a packet that would wait longer
     * than the hard bound (the links' base delay spread plus some slack) is dropped anyway. */
    double max_wait = fmin(fmax(SE_MAX_WAIT_MIN_US, base_max - base_min + SE_MAX_WAIT_SLACK_US),
                           SE_MAX_WAIT_CAP_US);
    /* (a link whose rate is not measured yet, still in startup, or whose path is not full -
     * its queue then drains at our pacing, not at a limit the path showed - may queue some
     * packets whatever the estimate says: the estimate is a lower bound there) */
    bool path_full = (double)v[best].inflight + (double)len > budget(bl, &v[best], now);
    bool measuring = (!v[best].have_rate || bl->startup || !path_full) &&
                     v[best].queued < SE_MEASURE_QUEUE;
    /* The AQM judges the wait beyond what the links in use need: a fast link's queue that
     * makes its packets arrive with a slower busy link's is what keeps both busy, not a
     * standing queue. */
    double spread = fmax(base_busy - base_of(&v[best], use_owd), 0);
    if (!measuring && (best_arr - base_min > max_wait ||
                       aqm_drop(&s->aqm, (double)v[best].queue_age_us - spread, v[best].queued,
                                (double)now)))
        return 0;
    out[0] = best;
    int k = 1;
    /* A link that just joined has no model yet: its first packets also go on the best known
     * link, so a wrong guess about it costs no gap. */
    if (bl->copies_left > 0) {
        bl->copies_left--;
        if (ref >= 0 && ref != best && !v[best].have_rate) out[k++] = ref;
    }
    return k;
}

static int se_pick_unordered(void *sp, const struct sched_view *v, int n, size_t len,
                             uint64_t now)
{
    struct se *s = sp;
    (void)now;
    if (len > SE_SMALL_LEN) return -1;
    if (n > s->nmax) n = s->nmax;
    bool use_owd = all_owd(v, n);
    int best = -1;
    double best_arr = 0;
    for (int i = 0; i < n; i++) {
        if (!v[i].usable) continue;
        /* the link's path queue counts, its send queue does not: the packet skips it */
        double arr = base_of(&v[i], use_owd) + wait_of(&v[i], len, false);
        if (best < 0 || arr < best_arr) {
            best = i;
            best_arr = arr;
        }
    }
    return best;
}

static uint64_t se_send_wait(void *sp, int pos, const struct sched_view *v, size_t len,
                             uint64_t now)
{
    struct se *s = sp;
    if (pos < 0 || pos >= s->nmax) return 0;
    struct se_link *l = &s->l[pos];
    if (v->inflight > 0 && (double)v->inflight + (double)len > budget(l, v, now))
        return SCHED_BLOCKED;
    double t = (double)now;
    if (l->next_send_us > t) return (uint64_t)(l->next_send_us - t) + 1;
    return 0;
}

static void se_sent(void *sp, int pos, const struct sched_view *v, size_t len, uint64_t now)
{
    struct se *s = sp;
    if (pos < 0 || pos >= s->nmax) return;
    struct se_link *l = &s->l[pos];
    double rate = rate_of(v) * (l->startup ? SE_STARTUP_GAIN : SE_PACE_GAIN);
    /* in startup, a queue that built up is sent within SE_STARTUP_DRAIN_US (the budget still
     * bounds what is in flight): the rate shows in a round or two, not after many doublings */
    if (l->startup) rate = fmax(rate, (double)v->queued / SE_STARTUP_DRAIN_US * 1e6);
    double burst = fmax(SE_BURST_US, 2.0 * (double)len / rate * 1e6);
    double t = (double)now;
    if (l->next_send_us < t - burst) l->next_send_us = t - burst;
    l->next_send_us += (double)len / rate * 1e6;
    l->last_sent_us = t;
}

static void se_link_json(void *sp, int pos, const struct sched_view *v, struct strbuf *sb)
{
    struct se *s = sp;
    if (pos < 0 || pos >= s->nmax) return;
    const struct se_link *l = &s->l[pos];
    sb_printf(sb, ",\"est_Bps\":%.0f,\"budget_bytes\":%.0f,\"startup\":%s", rate_of(v),
              budget(l, v, mono_us()), l->startup ? "true" : "false");
}

/* The packets the mux says may overtake (pings, pure TCP ACKs, SYNs, DNS; up to 200 bytes) skip
 * the send queues on the lowest-delay link and are delivered out of order: a ping, an ACK or a
 * name lookup does not wait behind a bulk flow's queue (bench S5). */
const struct sched_ops sched_earliest = {
    .name = "earliest",
    .create = se_create,
    .destroy = se_destroy,
    .link_up = se_link_up,
    .feedback = se_feedback,
    .pick = se_pick,
    .pick_unordered = se_pick_unordered,
    .send_wait = se_send_wait,
    .sent = se_sent,
    .link_json = se_link_json,
};

/* The same with every packet in gseq order (what "earliest" was before 2026-12). */
const struct sched_ops sched_earliest_inorder = {
    .name = "earliest-inorder",
    .create = se_create,
    .destroy = se_destroy,
    .link_up = se_link_up,
    .feedback = se_feedback,
    .pick = se_pick,
    .send_wait = se_send_wait,
    .sent = se_sent,
    .link_json = se_link_json,
};
