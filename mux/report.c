/* report.c: receive reports (CTRL REPORT): sent for every link that carried something, every
 * SCHED_REPORT_US while data flows, on the fastest link; applied to the sender's path model. */
#include "mux_int.h"

#include <math.h>

#include "../common/util.h"

#define PEER_WAIT_FADE_US 1000000.0 /* the peer's send-queue wait: recent peak, fading */
/* A send queue whose wait grew by this since it was last reported is reported at once (at most
 * every REPORT_PROMPT_GAP_US), not at the next interval: the peer's reorder timeout must cover
 * that wait before the packets queued behind it are overtaken on another link (a burst after a
 * pause, a link that rejoined), and half the timeout's floor is the most it can miss. */
#define REPORT_WAIT_STEP_US 5000.0
#define REPORT_PROMPT_GAP_US 2000u

/* The link reports travel on: the up link with the lowest smoothed RTT. */
static struct mux_link *report_carrier(struct mux *m)
{
    struct mux_link *best = NULL;
    for (int i = 0; i < m->nlinks; i++) {
        struct mux_link *ml = &m->links[m->order[i]];
        if (!ml->up || !transport_up(ml)) continue;
        if (!best || (ml->have_rtt && (!best->have_rtt || ml->srtt < best->srtt))) best = ml;
    }
    return best;
}

/* How long a packet joining the link's send queue now waits, at the link's estimated rate. */
static double txq_wait_us(const struct mux_link *ml)
{
    double rate = ml->pm.have_rate ? ml->pm.rate_Bps : PM_GUESS_BPS;
    return (double)ml->txq_bytes / rate * 1e6;
}

static bool wait_grew(const struct mux *m)
{
    for (int i = 0; i < m->nlinks; i++) {
        const struct mux_link *ml = &m->links[m->order[i]];
        if (ml->txq_head && txq_wait_us(ml) >= ml->rep_wait_us + REPORT_WAIT_STEP_US) return true;
    }
    return false;
}

static bool report_due(const struct mux_link *ml)
{
    return ml->rx_packets != ml->rep_rx_packets || ml->tx_data_end != ml->rep_tx_data_end;
}

void send_reports(struct mux *m, uint64_t now)
{
    if (ev_is_active(&m->report_timer)) ev_timer_stop(m->loop, &m->report_timer);
    struct mux_link *carrier = report_carrier(m);
    if (!m->cur.valid || !carrier) return;
    m->last_report_us = now;
    uint8_t buf[CTRL_MAX_MSGS * (2 + CTRL_REPORT_LEN)];
    size_t pos = 0;
    int nmsg = 0;
    for (int i = 0; i < m->nlinks; i++) {
        struct mux_link *ml = &m->links[m->order[i]];
        if (!report_due(ml)) continue;
        struct ctrl_report r = {.link_id = ml->id, .report_us = (uint32_t)now,
                                .flags = CTRL_REPORT_F_TXEND};
        r.tx_data_end = ml->tx_data_end;
        double wait_us = txq_wait_us(ml);
        double wait = wait_us / 100.0; /* units of 100 us */
        r.tx_wait_100us = wait < 65535 ? (uint16_t)wait : 65535;
        ml->rep_wait_us = wait_us;
        if (ml->rx_packets) {
            r.flags |= CTRL_REPORT_F_RX;
            r.rx_highest = ml->rx_highest;
            r.rx_packets = (uint32_t)ml->rx_packets;
            r.rx_bytes = (uint32_t)ml->rx_bytes;
            uint64_t ad = now - ml->rx_highest_at_us;
            r.ack_delay_us = ad > UINT32_MAX ? UINT32_MAX : (uint32_t)ad;
        }
        if (ml->have_owd) {
            r.flags |= CTRL_REPORT_F_OWD;
            r.owd_min_rel_us = (int32_t)fmax(fmin(ml->owd_min, 1e9), -1e9);
            double q = ml->owd_last - ml->owd_min;
            r.owd_queue_us = q > 0 ? (uint32_t)fmin(q, 1e9) : 0;
        }
        ml->rep_rx_packets = ml->rx_packets;
        ml->rep_tx_data_end = ml->tx_data_end;
        ctrl_put_report(buf, sizeof buf, &pos, &r);
        if (++nmsg == CTRL_MAX_MSGS) {
            send_ctrl(m, carrier, buf, pos, now);
            pos = 0;
            nmsg = 0;
        }
    }
    if (nmsg) send_ctrl(m, carrier, buf, pos, now);
}

void report_maybe(struct mux *m, uint64_t now)
{
    uint64_t since = now - m->last_report_us;
    if (since >= REPORT_PROMPT_GAP_US && wait_grew(m)) {
        send_reports(m, now);
        return;
    }
    if (ev_is_active(&m->report_timer)) return;
    if (since >= SCHED_REPORT_US) {
        send_reports(m, now);
        return;
    }
    ev_timer_set(&m->report_timer, (double)(SCHED_REPORT_US - since) / 1e6, 0);
    ev_timer_start(m->loop, &m->report_timer);
}

static void report_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct mux *m = w->data;
    send_reports(m, mono_us());
}

void report_init(struct mux *m)
{
    ev_timer_init(&m->report_timer, report_timer_cb, 0, 0);
    m->report_timer.data = m;
}

void report_apply(struct mux *m, const struct ctrl_report *r, uint32_t mark, uint64_t now)
{
    struct mux_link *o = &m->links[r->link_id];
    if (!o->used) return;
    struct pm_sample s;
    int rc = pm_report(&o->pm, r, now, &s);
    if (rc < 0) {
        if (rc == -2) m->c.rx_report_stale++;
        else m->c.rx_report_rejected++;
        return;
    }
    /* how long the peer's DATA on the link now waits in its send queue: the reorder timeout
     * must cover it on top of the link's delay */
    double w = r->tx_wait_100us * 100.0;
    double fade = exp(-(double)(now - o->peer_wait_at) / PEER_WAIT_FADE_US);
    double peak = o->peer_wait_us * fade;
    bool grew = w > o->peer_wait_us;
    o->peer_wait_us = w > peak ? w : peak;
    o->peer_wait_at = now;
    /* (at once: the gaps held now are the ones that wait is for) */
    if (grew) update_reorder_timeout(m, now);
    if (rc == 1) {
        if (s.rtt_us > 0) rtt_sample(m, o, s.rtt_us, now);
        fill_view(m, o, now);
        const struct sched_view *v = &m->view[o->pos];
        struct sched_feedback fb = {.kind = SCHED_FB_REPORT,
                                    .interval_s = s.interval_s,
                                    .delivered_Bps = s.delivered_Bps,
                                    .loss = s.loss,
                                    .srtt_ms = v->have_rtt ? v->srtt_us / 1000.0 : 0,
                                    .min_rtt_ms = v->have_rtt ? v->min_rtt_us / 1000.0 : 0,
                                    .app_limited = s.app_limited};
        m->sched->feedback(m->sched_state, o->pos, v, &fb, now);
    }
    /* No DATA in [tx_data_end, mark) went on the link: once everything before tx_data_end
     * has passed, so has everything before mark. */
    if (r->flags & CTRL_REPORT_F_TXEND) {
        if (o->have_passed ? !seq_lt(o->passed, r->tx_data_end) : r->tx_data_end == 0)
            note_passed(o, mark);
    }
    if (o->txq_head) txq_drain(m, o, now);
}
