/* sched_weighted.c: the "weighted" scheduler: weighted fair queueing (smallest virtual finish)
 * over the usable links by capacity estimate, and the estimator turning BEAT feedback into them. */
#include "sched_weighted.h"

#include <math.h>
#include <stdlib.h>

#define INITIAL_RATE_BPS 125000.0 /* 1 Mbit/s until feedback says more */

static double clamp_Bps(double v)
{
    if (!(v >= WSCHED_MIN_BPS)) return WSCHED_MIN_BPS; /* also NaN */
    if (v > WSCHED_MAX_BPS) return WSCHED_MAX_BPS;
    return v;
}

void wsched_init(struct wsched *s, double initial_Bps)
{
    s->vtime = 0.0;
    s->initial_Bps = clamp_Bps(initial_Bps);
}

void wsched_link_init(struct wsched *s, struct wsched_link *l)
{
    l->est_Bps = s->initial_Bps;
    l->vfinish = s->vtime;
    l->sent_bytes = 0;
}

int wsched_pick(struct wsched *s, struct wsched_link *links, int n, size_t len)
{
    int best = -1;
    double min_start = 0.0, best_finish = 0.0;
    for (int i = 0; i < n; i++) {
        const struct wsched_link *l = &links[i];
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

void wsched_feedback(struct wsched *s, struct wsched_link *l, const struct sched_feedback *fb)
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
    bool active = sent_Bps >= WSCHED_ACTIVE_SHARE * est;
    if (congested && active) {
        est = fmax(fb->delivered_Bps, WSCHED_CUT_FLOOR * est);
    } else if (sent_Bps >= 0.5 * est) {
        est = fmax(est, fb->delivered_Bps) * WSCHED_PROBE_GAIN;
    } else {
        est = fmax(est, fb->delivered_Bps);
    }
    l->est_Bps = clamp_Bps(est);
}

/* ---- the ops: private state for nmax links ---- */

struct wstate {
    struct wsched w;
    int nmax;
    struct wsched_link l[];
};

static void *w_create(int nmax)
{
    if (nmax < 1) return NULL;
    struct wstate *s = calloc(1, sizeof *s + (size_t)nmax * sizeof s->l[0]);
    if (!s) return NULL;
    s->nmax = nmax;
    wsched_init(&s->w, INITIAL_RATE_BPS);
    for (int i = 0; i < nmax; i++)
        wsched_link_init(&s->w, &s->l[i]);
    return s;
}

static void w_destroy(void *p)
{
    free(p);
}

static void w_link_up(void *p, int pos, uint64_t now_us)
{
    (void)now_us;
    struct wstate *s = p;
    if (pos < 0 || pos >= s->nmax) return;
    wsched_link_init(&s->w, &s->l[pos]);
}

static void w_feedback(void *p, int pos, const struct sched_view *v,
                       const struct sched_feedback *fb, uint64_t now_us)
{
    (void)v;
    (void)now_us;
    struct wstate *s = p;
    if (pos < 0 || pos >= s->nmax || fb->kind != SCHED_FB_BEAT) return;
    wsched_feedback(&s->w, &s->l[pos], fb);
}

static int w_pick(void *p, const struct sched_view *v, int n, size_t len, uint64_t now_us,
                  int out[SCHED_MAX_COPIES])
{
    (void)now_us;
    struct wstate *s = p;
    if (n > s->nmax) n = s->nmax;
    for (int i = 0; i < n; i++)
        s->l[i].usable = v[i].usable;
    int pos = wsched_pick(&s->w, s->l, n, len);
    if (pos < 0) return 0;
    out[0] = pos;
    return 1;
}

static void w_link_json(void *p, int pos, const struct sched_view *v, struct strbuf *sb)
{
    (void)v;
    struct wstate *s = p;
    if (pos < 0 || pos >= s->nmax) return;
    sb_printf(sb, ",\"est_Bps\":%.0f", s->l[pos].est_Bps);
}

const struct sched_ops sched_weighted = {
    .name = "weighted",
    .create = w_create,
    .destroy = w_destroy,
    .link_up = w_link_up,
    .feedback = w_feedback,
    .pick = w_pick,
    .send_wait = NULL,
    .sent = NULL,
    .link_json = w_link_json,
};
