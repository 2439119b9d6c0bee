/* pathmodel.h: the sender's model of one link's path, from the peer's receive reports: bytes in
 * flight, delivery rate (windowed max of short-window samples), RTT, loss, one-way delay. */
#ifndef BRAID_PATHMODEL_H
#define BRAID_PATHMODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

#define PM_RING 8192                 /* datagrams remembered per link (send time, bytes), at most;
                                      * the ring starts at PM_RING_MIN and doubles while what is
                                      * in flight needs it (an idle link keeps a small one) */
#define PM_RING_MIN 256
#define PM_RING_KEEP_US 10000000u    /* unreported this long, a datagram is lost whatever the RTT */
#define PM_HIST 32                   /* reports remembered for rate sample spans */
#define PM_SAMPLES 64                /* rate samples kept for the max filter */
#define PM_RATE_WINDOW_US 200000u    /* the rate is the max of the samples of the last 200 ms */
#define PM_SPAN_US 40000u            /* a rate sample spans at least 40 ms (peer's clock)... */
#define PM_SPAN_MIN_US 8000u         /* ...or, early on or when the link just became busy, this */
#define PM_SPAN_MIN_PKTS 4           /* (the latter: over at least this many datagrams) */
#define PM_MIN_BPS 2000.0
#define PM_GUESS_BPS 125000.0        /* app-limited samples set a first rate only above this */
#define PM_FULL_QUEUE_US 10000.0     /* a path queueing this long behind at least... */
#define PM_FULL_INFLIGHT 6000        /* ...this many bytes in flight is full (not app-limited) */
#define PM_MAX_BPS 1.25e9
#define PM_LOSS_TIMEOUT_MIN_US 500000u /* unreported this long (and 3 srtt): counted lost */
#define PM_MIN_WINDOW_US 10000000u   /* a min RTT or base delay unconfirmed this long expires */
#define PM_MIN_CONFIRM_US 1000.0     /* a sample this close to the minimum confirms it... */
#define PM_MIN_CONFIRM_FRAC 0.1      /* ...or this fraction of it (pm_min_update, RTTs) */

struct pm_sample {
    double interval_s;    /* peer's clock */
    double delivered_Bps;
    double loss;          /* 0..1 over the span */
    bool app_limited;     /* some datagram of the span was sent while the link had room */
    double rtt_us;        /* RTT of the newest acknowledged datagram, < 0 if none */
};

struct pm_report_hist {
    uint32_t t_us, bytes, packets;
    uint64_t highest;
};

struct pm_sent_rec {
    uint64_t t_us, cum; /* when a datagram was sent; bytes sent up to and including it */
};

struct pathmodel {
    struct pm_sent_rec *ring; /* indexed by counter % ring_cap */
    uint32_t ring_cap;       /* a power of two, PM_RING_MIN .. PM_RING */
    uint64_t next_counter;   /* counter of the next datagram sent */
    uint64_t tx_cum;         /* bytes sent so far (cum of the last ring entry) */
    uint64_t app_limited_until; /* samples acknowledging a counter below this are app-limited */
    bool have_report;
    uint32_t last_report_us; /* peer's clock */
    uint64_t last_report_at; /* our clock */
    uint64_t acked;          /* highest counter reported received */
    bool have_acked;
    uint64_t acked_at;       /* our clock when the peer last accepted a datagram on the link (the
                              * report's time minus its ack delay): it hears the link */
    struct pm_report_hist hist[PM_HIST];
    int hist_n, hist_pos;
    struct { uint64_t t_us; double Bps; } samp[PM_SAMPLES];
    int samp_n, samp_pos;
    bool have_rate;
    double rate_Bps;
    double loss;             /* EWMA over samples */
    bool have_owd;
    double owd_min_rel_us, owd_queue_us;
    uint64_t reports, rejected, stale; /* counters: accepted, rejected as inconsistent, older
                                        * than one applied (reports on two links crossing) */
};

/* Allocates the ring; returns 0 or -1. pm_free releases it (p may be zeroed or initialised). */
int pm_init(struct pathmodel *p);
void pm_free(struct pathmodel *p);
/* New session (counters restart at 0) or link (re)start: forget everything but the ring. */
void pm_reset(struct pathmodel *p);
/* A datagram with this counter and len bytes went on the wire at now. Counters must come in
 * order (counter == next_counter; others are ignored). */
void pm_sent(struct pathmodel *p, uint64_t counter, size_t len, uint64_t now_us);
/* Called when the link's send queue (queued bytes) may have run dry: if it has, and the path
 * is not even full (in flight below rate x min RTT, and no queue of PM_FULL_QUEUE_US behind
 * PM_FULL_INFLIGHT bytes in flight), what is sent from now on is app-limited:
 * its rate samples may raise the estimate, never lower it. */
void pm_app_limited(struct pathmodel *p, uint64_t queued, uint64_t inflight, double min_rtt_us);
/* Apply a receive report about the link. Returns 1 with *out filled when it yields a rate
 * sample, 0 when accepted without a sample, -2 when stale (its report time is not after the
 * last applied one's: a duplicate, or overtaken by a report on a faster link), -1 when rejected
 * (inconsistent or hostile: acknowledgement going backwards in a newer report, or beyond what
 * was sent). A stale or rejected report changes nothing but its counter. */
int pm_report(struct pathmodel *p, const struct ctrl_report *r, uint64_t now_us,
              struct pm_sample *out);
/* A windowed minimum (a link's min RTT, its base one-way delay): a new low replaces *min; a
 * sample within PM_MIN_CONFIRM_US or frac x |*min| of it confirms it (restarts its window: the
 * clock's resolution and the bursts' own queueing make an exact repeat rare); once nothing has
 * confirmed it for PM_MIN_WINDOW_US, the next sample replaces it (the path may have changed).
 * A queue kept standing on the link for that long would then pass for its base delay: the
 * scheduler drains a link whose minimum has gone unconfirmed for a while (sched.h,
 * min_rtt_age_us). */
void pm_min_update(double *min, uint64_t *at, double x, double frac, uint64_t now_us);

/* Bytes in flight: sent after the highest acknowledged counter, and not sent longer than
 * loss_timeout_us ago (those count as lost). */
uint64_t pm_inflight(const struct pathmodel *p, uint64_t now_us, uint64_t loss_timeout_us);

#endif
