/* rxorder.c: receive order: delivering tunnel packets in order, giving gaps up by time (timer
 * and idle watcher) or when every up link has passed them. */
#include "mux_int.h"

#include <string.h>

#include "../common/addr.h"
#include "../common/util.h"

void deliver_in_order(void *ctx, const uint8_t *pkt, size_t len)
{
    struct mux *m = ctx;
    m->cb.deliver(m->cb.ctx, pkt, len);
}

/* Gaps are given up by time only once the datagrams already waiting in the links' sockets
 * have been read: when the loop falls behind (a busy CPU), a packet that has arrived but is not
 * read yet must not be declared missing. So the timer does not expire gaps itself: it starts an
 * idle watcher (lowest priority: it runs when no input is pending), which does. */
void rearm_reorder(struct mux *m)
{
    ev_timer_stop(m->loop, &m->ro_timer);
    if (reorder_stats(m->ro)->held == 0) {
        ev_idle_stop(m->loop, &m->ro_idle);
        return;
    }
    if (ev_is_active(&m->ro_idle)) return; /* expiry already due: the idle watcher re-arms */
    uint64_t due = reorder_due(m->ro, m->ro_timeout_us);
    uint64_t t = mono_us();
    ev_timer_set(&m->ro_timer, due > t ? (double)(due - t) / 1e6 : 0.0, 0);
    ev_timer_start(m->loop, &m->ro_timer);
}

static void expire_reorder(struct mux *m)
{
    ev_idle_stop(m->loop, &m->ro_idle);
    uint64_t before = reorder_stats(m->ro)->skipped;
    (void)reorder_expire(m->ro, mono_us(), m->ro_timeout_us);
    m->c.rx_gaps_timeout += reorder_stats(m->ro)->skipped - before;
    rearm_reorder(m);
}

void reorder_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)loop;
    (void)revents;
    expire_reorder(w->data);
}

/* Links are FIFO: a gseq below every live link's progress that is still missing was lost. A
 * link silent for less than a reorder timeout still counts: what it carried may still come (a
 * phone's radio outage holds packets, it does not always drop them), and the timeout gives its
 * gaps up anyway. */
void release_passed(struct mux *m, uint64_t now)
{
    bool any = false;
    uint32_t min = 0;
    for (int i = 0; i < m->nlinks; i++) {
        const struct mux_link *ml = &m->links[m->order[i]];
        if (!rx_live(m, ml, now) &&
            (!ml->have_passed || now - ml->last_rx_us >= m->ro_timeout_us))
            continue;
        bool hold = now < ml->hold_until;
        if (!(hold ? ml->hold_have : ml->have_passed)) return;
        uint32_t passed = hold ? ml->hold_passed : ml->passed;
        if (!any || seq_lt(passed, min)) min = passed;
        any = true;
    }
    if (!any) return;
    uint64_t before = reorder_stats(m->ro)->skipped;
    reorder_release_before(m->ro, min);
    m->c.rx_gaps_passed += reorder_stats(m->ro)->skipped - before;
}

void reorder_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct mux *m = w->data;
    uint64_t now = mono_us();
    if (!ev_is_active(&m->ro_idle)) {
        ev_idle_start(loop, &m->ro_idle);
        m->ro_idle_since = now;
    } else if (now - m->ro_idle_since >= m->ro_timeout_us / 2) {
        expire_reorder(m); /* input never stops: give up the gaps now, half a timeout late */
        return;
    }
    /* in case input keeps the idle watcher from running */
    double later = (double)(m->ro_timeout_us / 2) / 1e6;
    ev_timer_set(w, later > 0.002 ? later : 0.002, 0);
    ev_timer_start(loop, w);
}

void note_path(struct mux *m, struct mux_link *ml, const struct sockaddr *from, socklen_t fromlen,
               uint64_t now)
{
    if (fromlen == 0 || fromlen > sizeof ml->from) return;
    if (ml->fromlen && addr_equal((const struct sockaddr *)&ml->from, from)) return;
    if (ml->fromlen) {
        if (now >= ml->hold_until) { /* not already holding: hold where the link is now */
            ml->hold_passed = ml->passed;
            ml->hold_have = ml->have_passed;
        }
        ml->hold_until = now + m->ro_timeout_us;
    }
    memcpy(&ml->from, from, fromlen);
    ml->fromlen = fromlen;
}

void note_passed(struct mux_link *ml, uint32_t upto)
{
    if (!ml->have_passed || seq_lt(ml->passed, upto)) ml->passed = upto;
    ml->have_passed = true;
}
