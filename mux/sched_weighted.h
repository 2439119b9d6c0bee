/* sched_weighted.h: the "weighted" scheduler's pure parts (fair queueing by capacity estimate,
 * and the estimator), for sched_weighted.c's ops and the unit test. */
#ifndef BRAID_SCHED_WEIGHTED_H
#define BRAID_SCHED_WEIGHTED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sched.h"

/* Per-link state of the policy. */
struct wsched_link {
    bool usable;         /* copied from the link's view before each pick */
    double est_Bps;      /* capacity estimate in bytes/s: the link's weight */
    double vfinish;      /* virtual finish time of the last packet sent (internal) */
    uint64_t sent_bytes; /* bytes picked for this link since the last feedback (internal) */
};

/* Bounds of a link's estimate, bytes/s. */
#define WSCHED_MIN_BPS 16000.0
#define WSCHED_MAX_BPS 1.25e9
/* On congestion the estimate falls to the delivered rate, but by at most this factor per sample. */
#define WSCHED_CUT_FLOOR 0.5
/* A link counts as active (its congestion signals are believed) when it was sent at least this
 * share of its estimate in the sample's interval. */
#define WSCHED_ACTIVE_SHARE 0.1
/* Growth per busy, uncongested sample. */
#define WSCHED_PROBE_GAIN 1.25

struct wsched {
    double vtime;       /* virtual time of the last pick */
    double initial_Bps; /* estimate for a link without feedback */
};

void wsched_init(struct wsched *s, double initial_Bps);
/* A link (re)joins: estimate to initial and no backlog. */
void wsched_link_init(struct wsched *s, struct wsched_link *l);
/* Pick a usable link for a packet of len bytes among links[0..n-1]; charges it. Returns the
 * index, or -1 if no link is usable. Never returns a link with usable == false.
 * Fair queueing: for each usable link start = max(vfinish, vtime), finish = start +
 * len / est_Bps; the smallest finish wins (ties: lowest index) and gets vfinish = finish; vtime =
 * the smallest start among the usable links (so vtime never passes a usable link's vfinish).
 * Each link's share of bytes is proportional to est_Bps; a link that was idle, unusable or just
 * (re)joined starts at vtime: no catch-up burst. O(n). */
int wsched_pick(struct wsched *s, struct wsched_link *links, int n, size_t len);
/* Update a link's estimate from a feedback sample (grows while the link keeps up without
 * loss or queueing, falls to the delivered rate when it does not). Rules:
 *  - a sample with interval_s <= 0, delivered_Bps < 0 or any non-finite field changes nothing;
 *  - sent_Bps = bytes picked for the link since the last sample / interval_s (counter reset);
 *  - congested = loss > 2%, or srtt_ms > min_rtt_ms + max(20, min_rtt_ms / 2) when min_rtt_ms
 *    is known (> 0); if congested and the link was active (sent_Bps >= WSCHED_ACTIVE_SHARE *
 *    est): est = delivered_Bps, but not below WSCHED_CUT_FLOOR * est;
 *  - else if sent_Bps >= est / 2 (the link was kept busy and kept up):
 *    est = max(est, delivered_Bps) * WSCHED_PROBE_GAIN;
 *  - else (lightly used: nothing learnt about the limit) est = max(est, delivered_Bps);
 *  - est is then clamped to [WSCHED_MIN_BPS, WSCHED_MAX_BPS]. */
void wsched_feedback(struct wsched *s, struct wsched_link *l, const struct sched_feedback *fb);

#endif
