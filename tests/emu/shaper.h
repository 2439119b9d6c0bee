/* shaper.h: braid-emu's pure timing logic for one direction of an emulated link: token bucket or
 * Mahimahi trace bottleneck, drop-tail queue, delay/jitter line, random loss, blackhole. */
#ifndef BRAID_EMU_SHAPER_H
#define BRAID_EMU_SHAPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* All times are absolute nanoseconds on one clock (CLOCK_MONOTONIC in braid-emu, anything in
 * tests), passed in by the caller; nothing here reads a clock or does I/O except
 * emu_trace_load. */
#define EMU_NS_PER_MS 1000000ull
#define EMU_NS_PER_S 1000000000ull
#define EMU_NEVER UINT64_MAX

#define EMU_OPP_BYTES 1500u              /* bytes one trace delivery opportunity can carry */
#define EMU_DEFAULT_QUEUE_MS 200u        /* rate mode: default queue limit, in time at the rate */
#define EMU_DEFAULT_QUEUE_PKTS 150       /* trace mode: default queue limit, in packets */
#define EMU_MAX_RATE_BPS 100000000000ull /* 100 Gbit/s */

/* ---- Mahimahi trace: one line per 1500-byte delivery opportunity, in ms from the start ---- */
struct emu_trace {
    uint32_t *ms;    /* non-decreasing */
    size_t n;        /* number of opportunities per period (>= 1) */
    uint64_t period; /* ms after which the trace repeats: its last timestamp (> 0) */
    unsigned refs;   /* reference count */
    char name[128];  /* file name, for messages */
};

/* Parse trace text (name is used in messages). Blank lines and lines starting with '#' are
 * skipped. Returns 0, or -1 with "name:line: ..." in err. */
int emu_trace_parse(const char *text, size_t len, const char *name, struct emu_trace **out,
                    char *err, size_t errlen);
/* Read and parse a trace file. Returns 0, or -1 with a message in err. */
int emu_trace_load(const char *path, struct emu_trace **out, char *err, size_t errlen);
struct emu_trace *emu_trace_ref(struct emu_trace *t);
void emu_trace_unref(struct emu_trace *t);
/* Mean capacity in bit/s: n * 1500 * 8 / period. */
double emu_trace_mean_bps(const struct emu_trace *t);

/* ---- SPEC: "rate=20mbit,delay=30ms,..." (commas or blanks separate keys) ---- */
enum emu_field {
    EMU_F_RATE = 1u << 0, /* rate= and trace= are exclusive */
    EMU_F_TRACE = 1u << 1,
    EMU_F_DELAY = 1u << 2,
    EMU_F_JITTER = 1u << 3,
    EMU_F_REORDER = 1u << 4,
    EMU_F_LOSS = 1u << 5,
    EMU_F_QUEUE = 1u << 6,
    EMU_F_BLACKHOLE = 1u << 7,
    EMU_F_OVERHEAD = 1u << 8,
};

enum emu_queue_unit {
    EMU_Q_AUTO = 0, /* 200 ms at the rate; 150 packets for a trace */
    EMU_Q_TIME,     /* ns of queueing at the current rate (trace: at its mean rate) */
    EMU_Q_BYTES,
    EMU_Q_PACKETS,
};

/* A parsed SPEC: only the fields in mask are set; applying it changes only those. */
struct emu_spec {
    unsigned mask;           /* EMU_F_* */
    uint64_t rate_bps;       /* 0: unshaped (rate=off) */
    struct emu_trace *trace; /* owned reference, or NULL (trace=off) */
    uint64_t delay_ns;
    uint64_t jitter_ns; /* uniform extra delay in [0, jitter] per packet */
    bool reorder;       /* jitter may reorder packets */
    double loss;        /* probability in [0, 1] */
    enum emu_queue_unit qunit;
    uint64_t qval; /* ns, bytes or packets */
    bool blackhole;
    uint32_t overhead; /* bytes added to each packet's size for the bottleneck */
};

/* Parse a SPEC; trace=FILE loads the file. Returns 0, or -1 with a message in err (out is then
 * empty). An empty string is a valid empty SPEC. */
int emu_spec_parse(const char *s, struct emu_spec *out, char *err, size_t errlen);
/* Parse one "key=value" item into out (merging). Returns 0 or -1 with err. */
int emu_spec_parse_item(const char *item, size_t len, struct emu_spec *out, char *err,
                        size_t errlen);
void emu_spec_free(struct emu_spec *s);

/* Value parsers (exposed for tests and the script parser); each returns 0 or -1 with err. */
int emu_parse_time(const char *s, size_t len, uint64_t *ns, char *err, size_t errlen);
int emu_parse_rate(const char *s, size_t len, uint64_t *bps, char *err, size_t errlen);

/* ---- one direction ---- */
struct emu_stats {
    uint64_t rx_packets, rx_bytes; /* arrivals, including dropped ones */
    uint64_t tx_packets, tx_bytes; /* released by the emulator toward the socket */
    uint64_t dropped_loss, dropped_queue, dropped_blackhole;
    uint64_t queued_bytes, queued_packets;     /* now in the bottleneck queue */
    uint64_t inflight_bytes, inflight_packets; /* now in the delay line */
};

enum emu_verdict {
    EMU_ACCEPTED = 0,
    EMU_DROP_LOSS,
    EMU_DROP_QUEUE,
    EMU_DROP_BLACKHOLE,
};

/* A packet leaving the emulator (pop): id as given to emu_shaper_arrive. */
struct emu_out {
    uint32_t id;
    uint32_t len;
    uint64_t t_arrive;  /* when it arrived */
    uint64_t t_depart;  /* when it left the bottleneck */
    uint64_t t_deliver; /* when it is due at the output */
    bool dropped;       /* blackholed at delivery time: do not send, just free */
};

struct emu_shaper;

/* capacity: how many packets the shaper may hold (queue + delay line); more are dropped as
 * queue drops. seed: for loss and jitter. now: the time the shaper (and a trace) starts. */
struct emu_shaper *emu_shaper_new(uint32_t capacity, uint64_t seed, uint64_t now);
void emu_shaper_free(struct emu_shaper *sh);

/* Apply the fields of spec at time now; takes its own reference to spec->trace. */
void emu_shaper_apply(struct emu_shaper *sh, const struct emu_spec *spec, uint64_t now);
/* Drop everything arriving or due for delivery in [now, until) (EMU_NEVER: until cleared). */
void emu_shaper_blackhole(struct emu_shaper *sh, uint64_t now, uint64_t until);
void emu_shaper_clear(struct emu_shaper *sh, uint64_t now);
bool emu_shaper_blackholed(const struct emu_shaper *sh, uint64_t now);

/* A packet of len bytes arrives at now (now must not go backwards). On EMU_ACCEPTED the shaper
 * holds id until emu_shaper_pop returns it. */
enum emu_verdict emu_shaper_arrive(struct emu_shaper *sh, uint64_t now, uint32_t id, uint32_t len);
/* Earliest time at which emu_shaper_pop may return something (EMU_NEVER: nothing held). It can
 * be early (a trace opportunity that a big packet only partly uses), never late. */
uint64_t emu_shaper_next(const struct emu_shaper *sh);
/* Return the next packet due at or before now, in delivery order; false if none. */
bool emu_shaper_pop(struct emu_shaper *sh, uint64_t now, struct emu_out *out);

const struct emu_stats *emu_shaper_stats(const struct emu_shaper *sh);
/* Current queue limit in bytes (UINT64_MAX: packet-count limit or unshaped). */
uint64_t emu_shaper_queue_limit_bytes(const struct emu_shaper *sh);
/* Token bucket depth in bytes (0 when not in rate mode). */
uint64_t emu_shaper_burst_bytes(const struct emu_shaper *sh);

/* Describe the current settings ("rate=20000000bit delay=30ms ...") into buf. */
void emu_shaper_describe(const struct emu_shaper *sh, char *buf, size_t len);

#endif
