/* pick.c: the TCP lane's policy for which link connection carries the next record: in order of
 * expected arrival, the first that can take it now, unless the links before it would deliver
 * the whole backlog before it (then wait for them; never for a late one, whose estimates may be
 * those of a path that died). Pure: the states come from the peer. */
#include "lane.h"

double lane_eta(const struct lane_link_state *l, size_t size)
{
    double rate = l->rate_Bps > 1000 ? l->rate_Bps : 1000;
    return (double)(l->notsent + l->pending + size) / rate + l->srtt_s / 2;
}

int lane_pick(const struct lane_link_state *l, int n, size_t size, uint64_t backlog, int *wait)
{
    int order[LANE_MAX_LINKS];
    double eta[LANE_MAX_LINKS];
    int m = 0;
    for (int i = 0; i < n && m < LANE_MAX_LINKS; i++) {
        double e = lane_eta(&l[i], size);
        int k = m++;
        while (k > 0 && eta[k - 1] > e) { /* (insertion: a few links) */
            eta[k] = eta[k - 1];
            order[k] = order[k - 1];
            k--;
        }
        eta[k] = e;
        order[k] = i;
    }
    *wait = m ? order[0] : -1;
    for (int k = 0; k < m; k++)
        if (!l[order[k]].late) {
            *wait = order[k];
            break;
        }
    double queued = 0, rate = 0, owd_min = 0;
    bool first = true;
    for (int k = 0; k < m; k++) {
        const struct lane_link_state *x = &l[order[k]];
        if (x->late && !x->ready) continue; /* (not waited for) */
        if (x->ready) {
            if (first) return order[k];
            /* the links before it deliver the backlog (and what they hold) by then */
            double t = (queued + (double)backlog + (double)size) / rate + owd_min;
            return eta[k] <= t ? order[k] : -1;
        }
        queued += (double)(x->notsent + x->pending);
        rate += x->rate_Bps > 1000 ? x->rate_Bps : 1000;
        double owd = x->srtt_s / 2;
        owd_min = first || owd < owd_min ? owd : owd_min;
        first = false;
    }
    return -1;
}
