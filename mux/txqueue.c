/* txqueue.c: per-link send queues for policies with budgets and pacing: tunnel packets wait
 * here (gseq already given) until the policy lets their link send; one pacing timer for all. */
#include "mux_int.h"

#include <stdlib.h>
#include <string.h>

#include "../common/util.h"

#define TXQ_MAX_PKTS 8192 /* all links together; past it a packet is dropped (counted) */

static struct txq_pkt *pkt_alloc(struct mux *m)
{
    if (m->txq_count >= TXQ_MAX_PKTS) return NULL;
    struct txq_pkt *p = m->txq_free;
    if (p) {
        m->txq_free = p->next;
    } else {
        p = malloc(sizeof *p + m->cfg.mtu);
        if (!p) return NULL;
    }
    m->txq_count++;
    return p;
}

static void pkt_release(struct mux *m, struct txq_pkt *p)
{
    p->next = m->txq_free;
    m->txq_free = p;
    m->txq_count--;
}

int txq_push(struct mux *m, struct mux_link *ml, uint32_t gseq, const uint8_t *pkt, size_t len,
             uint64_t enq_us)
{
    if (len > m->cfg.mtu) return -1;
    struct txq_pkt *p = pkt_alloc(m);
    if (!p) return -1;
    p->next = NULL;
    p->gseq = gseq;
    p->len = (uint32_t)len;
    p->enq_us = enq_us;
    memcpy(p->data, pkt, len);
    if (ml->txq_tail) ml->txq_tail->next = p;
    else ml->txq_head = p;
    ml->txq_tail = p;
    ml->txq_bytes += len + WIRE_OVERHEAD;
    return 0;
}

int txq_offer(struct mux *m, struct mux_link *ml, uint32_t gseq, const uint8_t *pkt, size_t len,
              uint64_t now)
{
    const struct sched_ops *s = m->sched;
    size_t wlen = len + WIRE_OVERHEAD;
    /* nothing queued and the link may send: no copy into the queue (the view is this
     * packet's, filled by mux_send) */
    if (!ml->txq_head && s->send_wait(m->sched_state, ml->pos, &m->view[ml->pos], wlen, now) == 0) {
        send_data(m, ml, gseq, pkt, len, false, now);
        if (s->sent) s->sent(m->sched_state, ml->pos, &m->view[ml->pos], wlen, now);
        note_app_limited(m, ml, now);
        return 0;
    }
    if (txq_push(m, ml, gseq, pkt, len, now) != 0) return -1;
    txq_drain(m, ml, now);
    return 0;
}

static struct txq_pkt *txq_pop(struct mux_link *ml)
{
    struct txq_pkt *p = ml->txq_head;
    if (!p) return NULL;
    ml->txq_head = p->next;
    if (!ml->txq_head) {
        ml->txq_tail = NULL;
        ml->rep_wait_us = 0; /* drained: the next queue's growth is reported from nothing */
    }
    ml->txq_bytes -= p->len + WIRE_OVERHEAD;
    return p;
}

static void pace_arm(struct mux *m, uint64_t due, uint64_t now)
{
    if (ev_is_active(&m->pace_timer)) {
        if (m->pace_due <= due) return;
        ev_timer_stop(m->loop, &m->pace_timer);
    }
    m->pace_due = due;
    ev_timer_set(&m->pace_timer, due > now ? (double)(due - now) / 1e6 : 0.0, 0);
    ev_timer_start(m->loop, &m->pace_timer);
}

void txq_drain(struct mux *m, struct mux_link *ml, uint64_t now)
{
    const struct sched_ops *s = m->sched;
    while (ml->txq_head) {
        fill_view(m, ml, now);
        struct sched_view *v = &m->view[ml->pos];
        size_t wlen = ml->txq_head->len + WIRE_OVERHEAD;
        uint64_t w = s->send_wait ? s->send_wait(m->sched_state, ml->pos, v, wlen, now) : 0;
        if (w == SCHED_BLOCKED) break; /* the next receive report frees room */
        if (w > 0) {
            pace_arm(m, now + w, now);
            break;
        }
        struct txq_pkt *p = txq_pop(ml);
        send_data(m, ml, p->gseq, p->data, p->len, false, now);
        if (s->sent) s->sent(m->sched_state, ml->pos, v, wlen, now);
        pkt_release(m, p);
    }
    note_app_limited(m, ml, now);
}
static void pace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct mux *m = w->data;
    uint64_t now = mono_us();
    for (int i = 0; i < m->nlinks; i++) {
        struct mux_link *ml = &m->links[m->order[i]];
        if (ml->txq_head) txq_drain(m, ml, now);
    }
}

void txq_flush(struct mux *m, struct mux_link *ml)
{
    struct txq_pkt *p;
    while ((p = txq_pop(ml))) pkt_release(m, p);
}

/* Put p in the link's send queue in gseq order: a packet moved from another link usually goes
 * near the head (the receiver holds its gap). */
static void txq_insert(struct mux_link *ml, struct txq_pkt *p)
{
    struct txq_pkt **pp = &ml->txq_head;
    while (*pp && !seq_lt(p->gseq, (*pp)->gseq)) pp = &(*pp)->next;
    p->next = *pp;
    *pp = p;
    if (!p->next) ml->txq_tail = p;
    ml->txq_bytes += p->len + WIRE_OVERHEAD;
}

/* Packet gseq was moved off the link at now: its mark stays at most gseq until `until`. */
static void note_moved(struct mux_link *ml, uint32_t gseq, uint64_t now, uint64_t until)
{
    if (now >= ml->mark_cap_until || seq_lt(gseq, ml->mark_cap)) ml->mark_cap = gseq;
    ml->mark_cap_until = until;
}

/* A link that can no longer carry data had packets queued: they go to the other links, in gseq
 * order into their queues (same gseq: the reorder buffer puts them back in place), or are
 * dropped if none can take them. The link's gseq mark stays below them meanwhile: the peer's
 * reorder buffer holds their gaps open while they travel (docs/PROTOCOL.md, gseq). */
void txq_relocate(struct mux *m, struct mux_link *ml, uint64_t now)
{
    struct txq_pkt *p;
    uint64_t until = now + (uint64_t)m->cfg.reorder_max_ms * 1000u;
    while ((p = txq_pop(ml))) {
        fill_views(m, now);
        m->view[ml->pos].usable = false; /* (it is: it cannot carry data) */
        int out[SCHED_MAX_COPIES];
        int c = m->sched->pick(m->sched_state, m->view, m->nlinks, p->len + WIRE_OVERHEAD, now,
                               out);
        struct mux_link *to = c > 0 ? &m->links[m->order[out[0]]] : NULL;
        if (!to || to == ml) {
            m->c.tx_queue_drop++;
            pkt_release(m, p);
            continue;
        }
        note_moved(ml, p->gseq, now, until);
        txq_insert(to, p);
        if (seq_lt(to->tx_data_end, p->gseq + 1)) to->tx_data_end = p->gseq + 1;
        m->c.tx_relocated++;
    }
    for (int i = 0; i < m->nlinks; i++) {
        struct mux_link *o = &m->links[m->order[i]];
        if (o->txq_head) txq_drain(m, o, now);
    }
}

void txq_init(struct mux *m)
{
    ev_timer_init(&m->pace_timer, pace_cb, 0, 0);
    m->pace_timer.data = m;
}

void txq_free_all(struct mux *m)
{
    ev_timer_stop(m->loop, &m->pace_timer);
    for (int i = 0; i < m->nlinks; i++) txq_flush(m, &m->links[m->order[i]]);
    struct txq_pkt *p;
    while ((p = m->txq_free)) {
        m->txq_free = p->next;
        free(p);
    }
}
