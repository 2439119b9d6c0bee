/* sched.h: the scheduler interface: which link carries each tunnel packet, and when a link may
 * put its next packet on the wire. A policy is one file behind this (sched_weighted.c, ...). */
#ifndef BRAID_SCHED_H
#define BRAID_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/strbuf.h"

/* The neutral per-link view the mux maintains (link state and path model) and hands to the
 * policy; policies read it, never write it. Indexed by the link's position (0..n-1). */
struct sched_view {
    bool usable;          /* link up and transport up: may carry data */
    bool have_rtt;        /* srtt_us/min_rtt_us are valid */
    double srtt_us;       /* smoothed round-trip time */
    double min_rtt_us;    /* minimum round-trip time over the last 10 s... */
    double min_rtt_age_us; /* ...last confirmed this long ago (a sample within 1 ms or 10 %) */
    bool have_rate;       /* rate_Bps is valid (receive reports have measured it) */
    double rate_Bps;      /* delivery rate: windowed max of recent samples, bytes/s */
    bool have_owd;        /* owd_base_us is valid */
    double owd_base_us;   /* one-way base delay in the send direction, relative to the other
                           * links' (the peer measures it; same unknown clock offset for all) */
    double queue_us;      /* queueing delay in the send direction the peer measured last */
    double loss;          /* 0..1, recent fraction of datagrams lost */
    uint64_t inflight;    /* bytes sent on the link, not yet reported received nor lost */
    uint64_t queued;      /* bytes assigned to the link, waiting in its send queue */
    uint64_t queue_age_us; /* how long the oldest of them has waited (0: queue empty) */
};

/* One feedback sample for a link, computed by the mux's path model from the peer's reports. */
enum sched_fb_kind {
    SCHED_FB_BEAT = 1,   /* from two successive BEATs (about every beat_interval_ms) */
    SCHED_FB_REPORT = 2, /* from a receive report (every few ms while data flows) */
};
struct sched_feedback {
    int kind;             /* enum sched_fb_kind */
    double interval_s;    /* time covered by the sample (peer's clock) */
    double delivered_Bps; /* bytes/s the peer received on the link in that interval */
    double loss;          /* 0..1, fraction of datagrams lost in that interval */
    double srtt_ms;       /* smoothed RTT of the link now, 0 if unknown */
    double min_rtt_ms;    /* the link's minimum RTT recently seen, 0 if unknown */
    bool app_limited;     /* REPORT: the link had nothing more to send for part of the sample */
};

/* Largest number of links one packet may be sent on (the redundancy hook). */
#define SCHED_MAX_COPIES 2
/* The mux sends a receive report for every link that carried something at about this interval
 * while data flows (docs/PROTOCOL.md section 4, REPORT). */
#define SCHED_REPORT_US 10000
/* A link's queue target: what a policy with budgets lets wait in the link's own buffer. */
#define SCHED_TARGET_QUEUE_US 20000
/* A link that (re)joins: how many of its first packets a policy may also send on another. */
#define SCHED_JOIN_COPIES 8
/* send_wait: the link may not send until feedback arrives (its in-flight budget is full). */
#define SCHED_BLOCKED UINT64_MAX

struct sched_ops {
    const char *name;
    /* Private state for up to nmax links; NULL on allocation failure. */
    void *(*create)(int nmax);
    void (*destroy)(void *s);
    /* The link at pos (re)joins: forget its history. */
    void (*link_up)(void *s, int pos, uint64_t now_us);
    /* A feedback sample for the link at pos (v is the link's view after the sample). Hostile
     * values (non-finite, negative, huge) must change nothing harmful. */
    void (*feedback)(void *s, int pos, const struct sched_view *v,
                     const struct sched_feedback *fb, uint64_t now_us);
    /* Choose the link(s) for a packet of len bytes (with overhead) among v[0..n-1]. Writes the
     * positions to out and returns how many (1..SCHED_MAX_COPIES), 0 when no link is usable or
     * the packet should be dropped (every usable link's queue is over its bound). Never returns
     * a position whose view is not usable. Charges the choice to the policy's state. */
    int (*pick)(void *s, const struct sched_view *v, int n, size_t len, uint64_t now_us,
                int out[SCHED_MAX_COPIES]);
    /* A packet that may be delivered out of order (the mux asks only for pings, pure TCP ACKs,
     * SYNs and DNS, mux/pktclass.h) and sent at once, past the send queues: the link for it, or
     * -1 to treat it as any other packet. NULL: always -1. */
    int (*pick_unordered)(void *s, const struct sched_view *v, int n, size_t len,
                          uint64_t now_us);
    /* May the link at pos put a packet of len bytes on the wire now? 0: yes; otherwise the
     * microseconds to wait (pacing), or SCHED_BLOCKED until the next feedback. NULL: always. */
    uint64_t (*send_wait)(void *s, int pos, const struct sched_view *v, size_t len,
                          uint64_t now_us);
    /* The link at pos put len bytes on the wire (NULL: nothing to account). */
    void (*sent)(void *s, int pos, const struct sched_view *v, size_t len, uint64_t now_us);
    /* Extra JSON members for the link's status object, each preceded by a comma. */
    void (*link_json)(void *s, int pos, const struct sched_view *v, struct strbuf *sb);
};

/* The policies; sched_find(NULL) is the default one. Returns NULL for an unknown name. */
const struct sched_ops *sched_find(const char *name);
/* Names of all policies, comma separated, for error messages. */
const char *sched_names(void);

extern const struct sched_ops sched_weighted;
extern const struct sched_ops sched_earliest;
extern const struct sched_ops sched_earliest_inorder;

#endif
