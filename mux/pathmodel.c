/* pathmodel.c: one link's path model on the sender: a ring of what was sent (time, cumulative
 * bytes) against the peer's receive reports gives bytes in flight, RTT, delivery rate and loss. */
#include "pathmodel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PM_MAX_REPORT_GAP_US 10000000u /* reports further apart than this start afresh */
#define PM_MAX_DELAY_US 10000000.0

int pm_init(struct pathmodel *p)
{
    memset(p, 0, sizeof *p);
    p->ring = calloc(PM_RING_MIN, sizeof *p->ring);
    p->ring_cap = PM_RING_MIN;
    return p->ring ? 0 : -1;
}

void pm_free(struct pathmodel *p)
{
    free(p->ring);
    p->ring = NULL;
}

void pm_reset(struct pathmodel *p)
{
    void *ring = p->ring;
    uint32_t cap = p->ring_cap;
    memset(p, 0, sizeof *p);
    p->ring = ring;
    p->ring_cap = cap;
}

/* The oldest counter the ring still holds. */
static uint64_t ring_first(const struct pathmodel *p)
{
    return p->next_counter > p->ring_cap ? p->next_counter - p->ring_cap : 0;
}

/* Twice the room, the entries kept (at their new places). On allocation failure the ring stays
 * as it is: the oldest entries are then forgotten sooner (in flight estimates err low). */
static void ring_grow(struct pathmodel *p)
{
    uint32_t cap = p->ring_cap * 2;
    struct pm_sent_rec *n = calloc(cap, sizeof *n);
    if (!n) return;
    for (uint64_t c = ring_first(p); c < p->next_counter; c++)
        n[c & (cap - 1)] = p->ring[c & (p->ring_cap - 1)];
    free(p->ring);
    p->ring = n;
    p->ring_cap = cap;
}

void pm_sent(struct pathmodel *p, uint64_t counter, size_t len, uint64_t now_us)
{
    if (!p->ring || counter != p->next_counter) return;
    /* The entry about to be overwritten must be of no more use: reported received, or sent
     * long enough ago to count as lost (loss timeouts stay below PM_RING_KEEP_US); else more
     * room. A busy link's ring grows to what it has in flight; an idle one's stays small. */
    if (p->next_counter >= p->ring_cap && p->ring_cap < PM_RING) {
        uint64_t victim = p->next_counter - p->ring_cap;
        bool acked = p->have_report && victim <= p->acked;
        if (!acked && now_us - p->ring[victim & (p->ring_cap - 1)].t_us < PM_RING_KEEP_US)
            ring_grow(p);
    }
    p->tx_cum += len;
    p->ring[counter & (p->ring_cap - 1)].t_us = now_us;
    p->ring[counter & (p->ring_cap - 1)].cum = p->tx_cum;
    p->next_counter++;
}

void pm_app_limited(struct pathmodel *p, uint64_t queued, uint64_t inflight, double min_rtt_us)
{
    if (queued > 0) return;
    /* Once a rate is measured, the path is full when what is in flight covers rate x min RTT,
     * or when the peer measures a queue behind it: an estimate too high would otherwise make
     * every sample look app-limited and never fall. (Before a rate is measured, a queue may be
     * a first burst's own, and its samples would set a first rate far too low.) */
    if (p->have_rate) {
        bool pipe_full = min_rtt_us > 0 && (double)inflight >= p->rate_Bps * min_rtt_us / 1e6;
        bool queue_seen = p->have_owd && p->owd_queue_us >= PM_FULL_QUEUE_US &&
                          inflight >= PM_FULL_INFLIGHT;
        if (pipe_full || queue_seen) return;
    }
    p->app_limited_until = p->next_counter;
}

/* Cumulative bytes sent before counter c (c in [ring_first, next_counter]). */
static uint64_t cum_before(const struct pathmodel *p, uint64_t c)
{
    if (c == 0) return 0;
    if (c >= p->next_counter) return p->tx_cum;
    if (c <= ring_first(p)) {
        /* the entry before the ring's first is gone: the first entry's own bytes are unknown,
         * so count it as sent before (in flight estimates err low by one datagram at most) */
        return p->ring[ring_first(p) & (p->ring_cap - 1)].cum;
    }
    return p->ring[(c - 1) & (p->ring_cap - 1)].cum;
}

uint64_t pm_inflight(const struct pathmodel *p, uint64_t now_us, uint64_t loss_timeout_us)
{
    if (!p->ring || p->next_counter == 0) return 0;
    uint64_t lo = p->have_report ? p->acked + 1 : 0;
    if (lo < ring_first(p)) lo = ring_first(p);
    if (lo >= p->next_counter) return 0;
    /* Datagrams sent before now - timeout and not acknowledged are lost: find the first one
     * sent after (send times are in counter order). */
    /* (the search only when the oldest unacknowledged datagram is that old: usually none is) */
    if (now_us > loss_timeout_us && p->ring[lo & (p->ring_cap - 1)].t_us < now_us - loss_timeout_us) {
        uint64_t cutoff = now_us - loss_timeout_us;
        uint64_t a = lo, b = p->next_counter; /* first counter in [a, b) with t >= cutoff */
        while (a < b) {
            uint64_t mid = a + (b - a) / 2;
            if (p->ring[mid & (p->ring_cap - 1)].t_us < cutoff) a = mid + 1;
            else b = mid;
        }
        lo = a;
    }
    return p->tx_cum - cum_before(p, lo);
}

void pm_min_update(double *min, uint64_t *at, double x, double frac, uint64_t now_us)
{
    double tolerance = fmax(PM_MIN_CONFIRM_US, frac * fabs(*min));
    if (x <= *min || now_us - *at > PM_MIN_WINDOW_US) {
        *min = x;
        *at = now_us;
    } else if (x <= *min + tolerance) {
        *at = now_us;
    }
}

static double clampd(double v, double lo, double hi)
{
    if (!(v >= lo)) return lo; /* also NaN */
    return v > hi ? hi : v;
}

/* The k-th newest remembered report (k < hist_n). */
static const struct pm_report_hist *hist_back(const struct pathmodel *p, int k)
{
    return &p->hist[(p->hist_pos - 1 - k + PM_HIST) % PM_HIST];
}

/* Newest remembered report at least span_us older than t (peer's clock), or NULL. */
static const struct pm_report_hist *hist_find(const struct pathmodel *p, uint32_t t,
                                              uint32_t span_us)
{
    for (int k = 0; k < p->hist_n; k++) {
        const struct pm_report_hist *h = hist_back(p, k);
        uint32_t age = t - h->t_us;
        if (age >= span_us && age < PM_MAX_REPORT_GAP_US) return h;
    }
    return NULL;
}

static void rate_update(struct pathmodel *p, double Bps, uint64_t now_us)
{
    p->samp[p->samp_pos].t_us = now_us;
    p->samp[p->samp_pos].Bps = Bps;
    p->samp_pos = (p->samp_pos + 1) % PM_SAMPLES;
    if (p->samp_n < PM_SAMPLES) p->samp_n++;
    double max = 0;
    for (int i = 0; i < p->samp_n; i++)
        if (now_us - p->samp[i].t_us <= PM_RATE_WINDOW_US && p->samp[i].Bps > max)
            max = p->samp[i].Bps;
    p->rate_Bps = clampd(max, PM_MIN_BPS, PM_MAX_BPS);
    p->have_rate = true;
}

int pm_report(struct pathmodel *p, const struct ctrl_report *r, uint64_t now_us,
              struct pm_sample *out)
{
    bool rx = (r->flags & CTRL_REPORT_F_RX) != 0;
    if (p->have_report) {
        uint32_t dt = r->report_us - p->last_report_us;
        if (dt == 0 || dt >= PM_MAX_REPORT_GAP_US) {
            /* a duplicate or reordered report, or one after a long silence: the latter
             * restarts the history rather than being rejected forever */
            if (dt == 0 || now_us - p->last_report_at < PM_MAX_REPORT_GAP_US) {
                p->stale++;
                return -2;
            }
            p->hist_n = 0;
        }
    }
    if (rx) {
        if (r->rx_highest >= p->next_counter || (p->have_report && r->rx_highest < p->acked)) {
            p->rejected++;
            return -1;
        }
    }
    p->reports++;
    if (r->flags & CTRL_REPORT_F_OWD) {
        p->have_owd = true;
        p->owd_min_rel_us = clampd((double)r->owd_min_rel_us, -PM_MAX_DELAY_US, PM_MAX_DELAY_US);
        p->owd_queue_us = clampd((double)r->owd_queue_us, 0, PM_MAX_DELAY_US);
    }
    bool first = !p->have_report;
    p->have_report = true;
    p->last_report_us = r->report_us;
    p->last_report_at = now_us;
    if (!rx) return 0;

    struct pm_sample s = {.rtt_us = -1};
    uint64_t hi = r->rx_highest;
    if ((first || hi > p->acked) && hi >= ring_first(p)) {
        uint64_t sent_at = p->ring[hi & (p->ring_cap - 1)].t_us;
        if (now_us >= sent_at) {
            double raw = (double)(now_us - sent_at);
            double ad = (double)r->ack_delay_us;
            if (ad < raw && raw - ad < 8e6) s.rtt_us = raw - ad;
        }
    }
    /* the peer accepted its highest datagram on the link ack_delay ago: it heard the link then */
    uint64_t heard = r->ack_delay_us < now_us ? now_us - r->ack_delay_us : 0;
    if (heard > 0 && (!p->have_acked || heard > p->acked_at)) {
        p->have_acked = true;
        p->acked_at = heard;
    }
    p->acked = hi;

    const struct pm_report_hist *h = hist_find(p, r->report_us, PM_SPAN_US);
    if (!h && p->hist_n > 0) {
        int oldest = (p->hist_pos - p->hist_n + PM_HIST) % PM_HIST;
        uint32_t age = r->report_us - p->hist[oldest].t_us;
        if (age >= PM_SPAN_MIN_US && age < PM_MAX_REPORT_GAP_US) h = &p->hist[oldest];
    }
    bool partial = false;
    if (h && h->highest < p->app_limited_until) {
        /* The span reaches back before the link became busy (a flow just started): such a
         * sample is diluted by the idle time before. A shorter span within the busy period
         * (at least PM_SPAN_MIN_US and PM_SPAN_MIN_PKTS datagrams) shows a new flow's rate
         * at once: a flow of 200 Mbit/s over fresh links otherwise waits 40 ms for its first
         * useful sample, and the send queues overflow meanwhile. Being short, it is noisy:
         * like an app-limited sample it may raise the estimate, never lower it. */
        const struct pm_report_hist *b = NULL;
        for (int k = 0; k < p->hist_n; k++) { /* the oldest report in the busy period */
            const struct pm_report_hist *c = hist_back(p, k);
            if (c->highest < p->app_limited_until || c->highest > hi ||
                r->report_us - c->t_us >= PM_MAX_REPORT_GAP_US)
                break;
            if (r->report_us - c->t_us >= PM_SPAN_MIN_US) b = c;
        }
        if (b && hi - b->highest >= PM_SPAN_MIN_PKTS) {
            h = b;
            partial = true;
        }
    }
    int rc = 0;
    if (h && hi >= h->highest) {
        uint32_t dt = r->report_us - h->t_us;
        uint32_t dbytes = r->rx_bytes - h->bytes;
        uint32_t dpk = r->rx_packets - h->packets;
        uint64_t dhi = hi - h->highest;
        s.interval_s = dt / 1e6;
        s.delivered_Bps = clampd((double)dbytes / s.interval_s, 0, PM_MAX_BPS);
        s.loss = dhi > 0 && dpk < dhi ? 1.0 - (double)dpk / (double)dhi : 0.0;
        s.app_limited = h->highest < p->app_limited_until || partial;
        if (dhi >= 4) p->loss = 0.75 * p->loss + 0.25 * s.loss;
        /* an app-limited (or partial) sample only shows a lower bound: it may raise the
         * estimate, never set it below the usual first guess (a link carrying only beats
         * would look like a 1 kB/s link) */
        double floor = p->have_rate ? p->rate_Bps : PM_GUESS_BPS;
        if (!s.app_limited || s.delivered_Bps > floor)
            rate_update(p, s.delivered_Bps, now_us);
        rc = 1;
    }
    struct pm_report_hist *n = &p->hist[p->hist_pos];
    n->t_us = r->report_us;
    n->bytes = r->rx_bytes;
    n->packets = r->rx_packets;
    n->highest = hi;
    p->hist_pos = (p->hist_pos + 1) % PM_HIST;
    if (p->hist_n < PM_HIST) p->hist_n++;
    if (out) *out = s;
    return rc;
}
