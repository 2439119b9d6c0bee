/* linkstat.c: per-link statistics and liveness: RTT, one-way delay, up/down state, the
 * reorder timeout from the links' delays, and the scheduler's feedback from the peer's BEATs. */
#include "mux_int.h"

#include <math.h>
#include <stdio.h>

#include "../common/util.h"

#define OWD_PEAK_FADE_US 3000000.0 /* time constant of a link's delay peak fading to its mean */

/* The link's RTT in the scheduler's view. */
static void view_rtt(struct mux *m, const struct mux_link *ml)
{
    struct sched_view *v = &m->view[ml->pos];
    v->have_rtt = ml->have_rtt;
    v->srtt_us = ml->have_rtt ? ml->srtt : 0.0;
    v->min_rtt_us = ml->have_rtt ? ml->min_rtt : 0.0;
}

void rtt_sample(struct mux *m, struct mux_link *ml, double rtt, uint64_t now)
{
    ml->last_rtt = rtt;
    if (!ml->have_rtt) {
        ml->srtt = rtt;
        ml->rttvar = rtt / 2;
        ml->min_rtt = rtt;
        ml->min_rtt_at = now;
        ml->have_rtt = true;
    } else {
        ml->rttvar = 0.75 * ml->rttvar + 0.25 * fabs(ml->srtt - rtt);
        ml->srtt = 0.875 * ml->srtt + 0.125 * rtt;
        pm_min_update(&ml->min_rtt, &ml->min_rtt_at, rtt, PM_MIN_CONFIRM_FRAC, now);
    }
    view_rtt(m, ml);
}

void owd_sample(struct mux *m, struct mux_link *ml, uint16_t peer_ts, uint64_t now)
{
    uint16_t raw = (uint16_t)(wire_ts(now) - peer_ts);
    if (!m->have_owd_ref) {
        m->owd_ref = raw;
        m->have_owd_ref = true;
    }
    double x = (double)(int16_t)(raw - m->owd_ref) * WIRE_TS_UNIT_US;
    ml->owd_last = x;
    if (!ml->have_owd) {
        ml->owd = ml->owd_min = ml->owd_peak = x;
        ml->owd_var = 0;
        ml->owd_min_at = ml->owd_peak_at = now;
        ml->have_owd = true;
        return;
    }
    ml->owd_var = 0.75 * ml->owd_var + 0.25 * fabs(ml->owd - x);
    ml->owd = 0.875 * ml->owd + 0.125 * x;
    /* The averages hide short spikes (a relay app descheduled, a radio retransmitting); the
     * reorder timeout must cover them, so keep the peak, fading to owd in a few seconds. */
    double fade = exp(-(double)(now - ml->owd_peak_at) / OWD_PEAK_FADE_US);
    double peak = ml->owd + (ml->owd_peak - ml->owd) * fade;
    ml->owd_peak = x > peak ? x : peak;
    ml->owd_peak_at = now;
    /* (relative delays: their offset is arbitrary, so only the absolute tolerance) */
    pm_min_update(&ml->owd_min, &ml->owd_min_at, x, 0, now);
}

void link_reset(struct mux *m, struct mux_link *ml) /* its send queue must be empty */
{
    ml->up = ml->heard = ml->peer_hears = ml->peer_down = false;
    ml->last_rx_us = 0;
    ml->silent_since_us = mono_us();
    ml->next_stale_us = 0;
    ml->tx_counter = 0;
    ml->last_beat_us = 0;
    ml->name_sent_us = 0;
    replay_init(&ml->replay);
    ml->rx_packets = ml->rx_bytes = ml->rx_highest = 0;
    ml->have_peer_ts = false;
    ml->have_passed = false;
    ml->fromlen = 0;
    ml->hold_until = 0;
    ml->have_rtt = false;
    ml->have_owd = false;
    ml->have_fb = false;
    ml->delivered_Bps = ml->loss = 0;
    pm_reset(&ml->pm);
    ml->tx_data_end = ml->rep_tx_data_end = 0;
    ml->sendable = false;
    ml->mark_cap_until = 0;
    ml->rep_rx_packets = 0;
    ml->rx_highest_at_us = 0;
    ml->peer_wait_us = 0;
    m->view[ml->pos] = (struct sched_view){0};
    m->sched->link_up(m->sched_state, ml->pos, mono_us());
}

bool rx_live(const struct mux *m, const struct mux_link *ml, uint64_t now)
{
    return ml->up ||
           (ml->heard && now - ml->last_rx_us <= (uint64_t)m->cfg.dead_timeout_ms * 1000u);
}

/* The reorder timeout: how much later than the fastest link's packets the slowest link's may
 * arrive, from the measured one-way delays in this direction on the links that deliver (with 4
 * mean deviations of headroom, or the link's recent delay peak if higher: a packet that came late
 * raised it), plus a floor for scheduling noise; at most reorder_max_ms. */
void update_reorder_timeout(struct mux *m, uint64_t now)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < m->nlinks; i++) {
        const struct mux_link *ml = &m->links[m->order[i]];
        if (!rx_live(m, ml, now) || !ml->have_owd) continue;
        if (ml->owd_min < lo) lo = ml->owd_min;
        double h = ml->owd + 4 * ml->owd_var;
        if (ml->owd_peak > h) h = ml->owd_peak;
        h += ml->peer_wait_us; /* the sender's queue for the link: invisible in the delay */
        if (h > hi) hi = h;
    }
    double t = REORDER_FLOOR_US;
    if (hi > lo) t += hi - lo;
    double cap = (double)m->cfg.reorder_max_ms * 1000.0;
    if (t > cap) t = cap;
    m->ro_timeout_us = (uint64_t)t;
}

void apply_backup(struct mux *m)
{
    bool primary = false;
    for (int i = 0; i < m->nlinks; i++) {
        const struct mux_link *o = &m->links[m->order[i]];
        if (!o->backup && o->sendable) primary = true;
    }
    for (int i = 0; i < m->nlinks; i++) {
        const struct mux_link *o = &m->links[m->order[i]];
        if (o->backup) m->view[o->pos].usable = o->sendable && !primary;
    }
}

bool update_state(struct mux *m, struct mux_link *ml, uint64_t now)
{
    uint64_t dead = (uint64_t)m->cfg.dead_timeout_ms * 1000u;
    bool alive = ml->heard && transport_up(ml) && ml->peer_hears && !ml->peer_down &&
                 now - ml->last_rx_us <= dead;
    /* The peer's receive reports (they travel on any link) say it received something new on the
     * link lately: it may carry data even while nothing comes back on it (a one-way outage: a
     * phone's uplink gone while its downlink works). */
    bool heard_by_peer = transport_up(ml) && !ml->peer_down && ml->pm.have_acked &&
                         now - ml->pm.acked_at <= dead;
    bool was = ml->sendable;
    ml->sendable = alive || heard_by_peer;
    m->view[ml->pos].usable = ml->sendable;
    if (m->nbackup) apply_backup(m);
    /* (re)joins the scheduler when it may carry data again */
    if (ml->sendable && !was) m->sched->link_up(m->sched_state, ml->pos, now);
    if (alive != ml->up) {
        ml->up = alive;
        ml->state_since_us = now;
        const char *name = link_name(ml);
        if (alive) {
            ml->ups++;
            LOGI("link %s (id %u): up%s", name, ml->id,
                 ml->have_rtt ? "" : " (no RTT sample yet)");
        } else {
            ml->downs++;
            const char *why = !transport_up(ml) ? "transport down"
                              : ml->peer_down   ? "the %s reported it down"
                              : !ml->peer_hears && now - ml->last_rx_us <= dead
                                  ? "the %s does not hear us on it"
                                  : "no beats from the %s";
            char buf[64];
            snprintf(buf, sizeof buf, why, role(m));
            LOGI("link %s (id %u): down (%s)%s", name, ml->id, buf,
                 ml->sendable ? "; it still carries data: the peer's reports say it hears it"
                              : "");
        }
        update_reorder_timeout(m, now);
        if (m->cb.link_state) m->cb.link_state(m->cb.ctx, name, ml->id, alive, mux_links_up(m));
    }
    return was && !ml->sendable;
}

void beat_feedback(struct mux *m, struct mux_link *ml, const struct ctrl_beat *b, uint64_t now)
{
    if (ml->have_fb) {
        uint32_t dus = b->report_us - ml->fb.report_us;
        uint64_t dpk = b->rx_packets - ml->fb.rx_packets;
        uint64_t dhi = b->rx_highest - ml->fb.rx_highest;
        if (dus > 0 && dus < 10000000u && b->rx_packets >= ml->fb.rx_packets) {
            struct sched_feedback fb = {.kind = SCHED_FB_BEAT};
            fb.interval_s = dus / 1e6;
            fb.delivered_Bps = (double)(b->rx_bytes - ml->fb.rx_bytes) / fb.interval_s;
            fb.loss = dhi > 0 && dpk < dhi ? 1.0 - (double)dpk / (double)dhi : 0.0;
            fb.srtt_ms = ml->have_rtt ? ml->srtt / 1000.0 : 0;
            fb.min_rtt_ms = ml->have_rtt ? ml->min_rtt / 1000.0 : 0;
            ml->delivered_Bps = fb.delivered_Bps;
            ml->loss = fb.loss;
            m->sched->feedback(m->sched_state, ml->pos, &m->view[ml->pos], &fb, now);
        }
    }
    ml->fb = *b;
    ml->have_fb = true;
}
