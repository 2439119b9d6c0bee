/* send.c: the data send path: a tunnel packet from the tundev goes to the link(s) the
 * scheduling policy picks, at once or through their send queues. */
#include "mux_int.h"

#include "../common/util.h"
#include "pktclass.h"

static bool any_usable(const struct mux *m)
{
    for (int i = 0; i < m->nlinks; i++)
        if (m->view[i].usable) return true;
    return false;
}

/* Give the packet to the links the policy picks: sent at once when the policy has no send
 * queues, else queued (and sent when the policy lets the link). Returns true if taken. */
static bool send_ordered(struct mux *m, const uint8_t *pkt, size_t len, uint64_t now)
{
    const struct sched_ops *s = m->sched;
    /* If a link fails while sending, pick another: a packet another live link could carry
     * is not lost to it. */
    for (int tries = 0; tries < m->nlinks; tries++) {
        int out[SCHED_MAX_COPIES];
        int c = s->pick(m->sched_state, m->view, m->nlinks, len + WIRE_OVERHEAD, now, out);
        if (c < 1) {
            if (any_usable(m)) m->c.tx_queue_drop++;
            return any_usable(m);
        }
        uint32_t g = m->tx_gseq;
        bool taken = false;
        for (int j = 0; j < c && j < SCHED_MAX_COPIES; j++) {
            struct mux_link *ml = &m->links[m->order[out[j]]];
            int rc = s->send_wait ? txq_offer(m, ml, g, pkt, len, now)
                                  : send_data(m, ml, g, pkt, len, false, now);
            if (rc != 0) {
                if (!s->send_wait) m->view[out[j]].usable = false; /* transport reports too */
                else m->c.tx_queue_drop++;
                continue;
            }
            if (taken) m->c.tx_dup++;
            taken = true;
            ml->tx_data_end = g + 1;
        }
        if (taken) {
            m->tx_gseq++;
            return true;
        }
        if (s->send_wait) return true; /* counted as a queue drop */
    }
    return false;
}

void mux_send(struct mux *m, const uint8_t *pkt, size_t len)
{
    if (len == 0) return;
    if (len > m->cfg.mtu) {
        m->c.tx_too_big++;
        log_limited(&m->lim_big, LOG_WARN,
                    "dropped a %zu-byte tunnel packet: larger than the tunnel MTU %u", len,
                    m->cfg.mtu);
        return;
    }
    uint64_t now = mono_us();
    if (m->cur.valid) {
        fill_views(m, now);
        /* A packet that may overtake (a ping, a pure TCP ACK) the policy may send at once,
         * past the queues, delivered out of order. */
        if (m->sched->pick_unordered && pkt_reorder_safe(pkt, len)) {
            int pos = m->sched->pick_unordered(m->sched_state, m->view, m->nlinks,
                                               len + WIRE_OVERHEAD, now);
            if (pos >= 0) {
                struct mux_link *ml = &m->links[m->order[pos]];
                if (send_data(m, ml, link_gseq_mark(m, ml, now), pkt, len, true, now) == 0) {
                    m->c.tx_unordered++;
                    /* a link carrying only these (a download's ACKs) is idle, not slow: its
                     * rate samples must not lower its estimate */
                    note_app_limited(m, ml, now);
                    report_maybe(m, now);
                    return;
                }
            }
        }
        if (send_ordered(m, pkt, len, now)) {
            report_maybe(m, now);
            return;
        }
    }
    m->c.tx_no_link++;
    log_limited(&m->lim_nolink, LOG_WARN, "dropped tunnel packets: %s",
                m->cur.valid ? "no link to the peer is up" : "no session with the peer yet");
}
