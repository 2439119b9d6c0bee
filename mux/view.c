/* view.c: the neutral per-link view the scheduler reads (path model, send queue), kept up to
 * date from the link's path model, and the path model told when a link runs out of data. */
#include "mux_int.h"

void fill_view(struct mux *m, struct mux_link *ml, uint64_t now)
{
    path_view(ml, now, &m->view[ml->pos]);
}

void path_view(const struct mux_link *ml, uint64_t now, struct sched_view *v)
{
    const struct pathmodel *p = &ml->pm;
    v->have_rate = p->have_rate;
    v->rate_Bps = p->rate_Bps;
    v->have_owd = p->have_owd;
    v->owd_base_us = p->owd_min_rel_us;
    v->queue_us = p->owd_queue_us;
    v->loss = p->loss;
    double timeout = ml->have_rtt ? 3 * ml->srtt : 0;
    if (timeout < PM_LOSS_TIMEOUT_MIN_US) timeout = PM_LOSS_TIMEOUT_MIN_US;
    if (timeout > PM_RING_KEEP_US) timeout = PM_RING_KEEP_US; /* (what the ring keeps) */
    v->inflight = pm_inflight(p, now, (uint64_t)timeout);
    v->min_rtt_age_us = ml->have_rtt && now > ml->min_rtt_at ? (double)(now - ml->min_rtt_at) : 0;
    v->queued = ml->txq_bytes;
    v->queue_age_us = ml->txq_head && now > ml->txq_head->enq_us ? now - ml->txq_head->enq_us : 0;
}

void fill_views(struct mux *m, uint64_t now)
{
    for (int i = 0; i < m->nlinks; i++) fill_view(m, &m->links[m->order[i]], now);
}

void note_app_limited(struct mux *m, struct mux_link *ml, uint64_t now)
{
    fill_view(m, ml, now);
    pm_app_limited(&ml->pm, ml->txq_bytes, m->view[ml->pos].inflight, m->view[ml->pos].min_rtt_us);
}
