/* sched.h: the sender's link scheduler: which live link carries the next data packet.
 * Weighted by each link's estimated capacity from the peer's delivery-rate feedback. */
#ifndef BRAID_SCHED_H
#define BRAID_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Per-link scheduler state; embedded in the mux's link record. */
struct sched_link {
    bool usable;         /* set by the mux: link up and transport up */
    double est_Bps;      /* capacity estimate in bytes/s: the link's weight */
    double vfinish;      /* virtual finish time of the last packet sent (internal) */
    uint64_t sent_bytes; /* bytes picked for this link since the last feedback (internal) */
};

/* One feedback sample for a link, computed by the mux from two successive peer BEATs. */
struct sched_feedback {
    double interval_s;    /* time covered by the sample (peer's clock) */
    double delivered_Bps; /* bytes/s the peer received on the link in that interval */
    double loss;          /* 0..1, fraction of datagrams lost in that interval */
    double srtt_ms;       /* smoothed RTT of the link now, 0 if unknown */
    double min_rtt_ms;    /* the link's minimum RTT recently seen, 0 if unknown */
};

/* Bounds of a link's estimate, bytes/s. */
#define SCHED_MIN_BPS 16000.0
#define SCHED_MAX_BPS 1.25e9
/* On congestion the estimate falls to the delivered rate, but by at most this factor per sample. */
#define SCHED_CUT_FLOOR 0.5
/* A link counts as active (its congestion signals are believed) when it was sent at least this
 * share of its estimate in the sample's interval. */
#define SCHED_ACTIVE_SHARE 0.1
/* Growth per busy, uncongested sample. */
#define SCHED_PROBE_GAIN 1.25

struct sched {
    double vtime;       /* virtual time of the last pick */
    double initial_Bps; /* estimate for a link without feedback */
};

void sched_init(struct sched *s, double initial_Bps);
/* A link (re)joins: estimate to initial and no backlog. */
void sched_link_init(struct sched *s, struct sched_link *l);
/* Pick a usable link for a packet of len bytes among links[0..n-1]; charges it. Returns the
 * index, or -1 if no link is usable. Never returns a link with usable == false.
 * Fair queueing: for each usable link start = max(vfinish, vtime), finish = start +
 * len / est_Bps; the smallest finish wins (ties: lowest index) and gets vfinish = finish; vtime =
 * the smallest start among the usable links (so vtime never passes a usable link's vfinish).
 * Each link's share of bytes is proportional to est_Bps; a link that was idle, unusable or just
 * (re)joined starts at vtime: no catch-up burst. O(n). */
int sched_pick(struct sched *s, struct sched_link *links, int n, size_t len);
/* Update a link's estimate from a feedback sample (grows while the link keeps up without
 * loss or queueing, falls to the delivered rate when it does not). Rules:
 *  - a sample with interval_s <= 0, delivered_Bps < 0 or any non-finite field changes nothing;
 *  - sent_Bps = bytes picked for the link since the last sample / interval_s (counter reset);
 *  - congested = loss > 2%, or srtt_ms > min_rtt_ms + max(20, min_rtt_ms / 2) when min_rtt_ms
 *    is known (> 0); if congested and the link was active (sent_Bps >= SCHED_ACTIVE_SHARE *
 *    est): est = delivered_Bps, but not below SCHED_CUT_FLOOR * est;
 *  - else if sent_Bps >= est / 2 (the link was kept busy and kept up):
 *    est = max(est, delivered_Bps) * SCHED_PROBE_GAIN;
 *  - else (lightly used: nothing learnt about the limit) est = max(est, delivered_Bps);
 *  - est is then clamped to [SCHED_MIN_BPS, SCHED_MAX_BPS]. */
void sched_feedback(struct sched *s, struct sched_link *l, const struct sched_feedback *fb);

#endif
