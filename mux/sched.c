/* sched.c: weighted fair queueing (smallest virtual finish) over the usable links by capacity
 * estimate, and the estimator turning the peer's delivery-rate feedback into those estimates. */
#include "sched.h"

#include <math.h>

static double clamp_Bps(double v)
{
    if (!(v >= SCHED_MIN_BPS)) return SCHED_MIN_BPS; /* also NaN */
    if (v > SCHED_MAX_BPS) return SCHED_MAX_BPS;
    return v;
}

void sched_init(struct sched *s, double initial_Bps)
{
    s->vtime = 0.0;
    s->initial_Bps = clamp_Bps(initial_Bps);
}

void sched_link_init(struct sched *s, struct sched_link *l)
{
    l->est_Bps = s->initial_Bps;
    l->vfinish = s->vtime;
    l->sent_bytes = 0;
}

int sched_pick(struct sched *s, struct sched_link *links, int n, size_t len)
{
    int best = -1;
    double min_start = 0.0, best_finish = 0.0;
    for (int i = 0; i < n; i++) {
        const struct sched_link *l = &links[i];
        if (!l->usable) continue;
        double start = l->vfinish > s->vtime ? l->vfinish : s->vtime;
        double finish = start + (double)len / clamp_Bps(l->est_Bps);
        if (best < 0 || start < min_start) min_start = start;
        if (best < 0 || finish < best_finish) {
            best = i;
            best_finish = finish;
        }
    }
    if (best < 0) return -1;
    /* The smallest start, not the chosen link's: a slow link not chosen this time keeps its
     * place (vtime never passes a usable link's vfinish), so shares stay proportional. */
    s->vtime = min_start;
    links[best].vfinish = best_finish;
    links[best].sent_bytes += len;
    return best;
}

void sched_feedback(struct sched *s, struct sched_link *l, const struct sched_feedback *fb)
{
    (void)s;
    if (!isfinite(fb->interval_s) || !isfinite(fb->delivered_Bps) || !isfinite(fb->loss) ||
        !isfinite(fb->srtt_ms) || !isfinite(fb->min_rtt_ms))
        return;
    if (fb->interval_s <= 0.0 || fb->delivered_Bps < 0.0) return;

    double sent_Bps = (double)l->sent_bytes / fb->interval_s;
    l->sent_bytes = 0;

    double est = clamp_Bps(l->est_Bps);
    bool congested = fb->loss > 0.02;
    if (fb->min_rtt_ms > 0.0) {
        double slack = fmax(20.0, 0.5 * fb->min_rtt_ms);
        if (fb->srtt_ms > fb->min_rtt_ms + slack) congested = true;
    }
    /* Signals of a link that carried little say nothing about its limit (a smoothed RTT still
     * inflated after a transfer ended, say): only an active link is cut. */
    bool active = sent_Bps >= SCHED_ACTIVE_SHARE * est;
    if (congested && active) {
        est = fmax(fb->delivered_Bps, SCHED_CUT_FLOOR * est);
    } else if (sent_Bps >= 0.5 * est) {
        est = fmax(est, fb->delivered_Bps) * SCHED_PROBE_GAIN;
    } else {
        est = fmax(est, fb->delivered_Bps);
    }
    l->est_Bps = clamp_Bps(est);
}
