/* shaper.c: braid-emu's timing logic for one link direction (token bucket, trace replay, queue
 * limit, delay/jitter, loss, blackhole) and the SPEC and trace parsers; no clock, no sockets. */
#include "shaper.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* traces */

int emu_trace_parse(const char *text, size_t len, const char *name, struct emu_trace **out,
                    char *err, size_t errlen)
{
    struct emu_trace *t = calloc(1, sizeof(*t));
    size_t cap = 0, lineno = 0, pos = 0;
    if (!t) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    snprintf(t->name, sizeof(t->name), "%s", name);
    while (pos < len) {
        size_t end = pos, i;
        uint64_t v = 0;
        while (end < len && text[end] != '\n')
            end++;
        lineno++;
        i = pos;
        while (i < end && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r'))
            i++;
        if (i == end || text[i] == '#') {
            pos = end + 1;
            continue;
        }
        if (!isdigit((unsigned char)text[i])) {
            snprintf(err, errlen,
                     "%s:%zu: expected a millisecond timestamp (a whole number >= 0), got '%c'",
                     name, lineno, text[i]);
            goto fail;
        }
        while (i < end && isdigit((unsigned char)text[i])) {
            v = v * 10 + (uint64_t)(text[i] - '0');
            if (v > UINT32_MAX) {
                snprintf(err, errlen, "%s:%zu: timestamp too large (at most %u ms)", name, lineno,
                         UINT32_MAX);
                goto fail;
            }
            i++;
        }
        while (i < end && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r'))
            i++;
        if (i != end) {
            snprintf(err, errlen,
                     "%s:%zu: unexpected text after the timestamp; one whole number of ms per line",
                     name, lineno);
            goto fail;
        }
        if (t->n > 0 && v < t->ms[t->n - 1]) {
            snprintf(err, errlen,
                     "%s:%zu: timestamp %llu is before the previous one (%u); timestamps must not "
                     "decrease",
                     name, lineno, (unsigned long long)v, t->ms[t->n - 1]);
            goto fail;
        }
        if (t->n == cap) {
            size_t ncap = cap ? cap * 2 : 1024;
            uint32_t *nms = realloc(t->ms, ncap * sizeof(*nms));
            if (!nms) {
                snprintf(err, errlen, "%s: out of memory", name);
                goto fail;
            }
            t->ms = nms;
            cap = ncap;
        }
        t->ms[t->n++] = (uint32_t)v;
        pos = end + 1;
    }
    if (t->n == 0) {
        snprintf(err, errlen, "%s: no timestamps; a trace has one millisecond timestamp per line",
                 name);
        goto fail;
    }
    if (t->ms[t->n - 1] == 0) {
        snprintf(err, errlen,
                 "%s: the last timestamp is 0; a trace must span at least 1 ms (it repeats "
                 "shifted by its last timestamp)",
                 name);
        goto fail;
    }
    t->period = t->ms[t->n - 1];
    t->refs = 1;
    *out = t;
    return 0;
fail:
    free(t->ms);
    free(t);
    return -1;
}

int emu_trace_load(const char *path, struct emu_trace **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc;
    if (!f) {
        snprintf(err, errlen, "cannot open trace file %s: %s", path, strerror(errno));
        return -1;
    }
    for (;;) {
        size_t n;
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            char *nb;
            if (ncap > (256u << 20)) {
                snprintf(err, errlen, "trace file %s is larger than 256 MiB", path);
                goto fail;
            }
            nb = realloc(buf, ncap);
            if (!nb) {
                snprintf(err, errlen, "trace file %s: out of memory", path);
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) break;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "cannot read trace file %s: %s", path, strerror(errno));
        goto fail;
    }
    fclose(f);
    rc = emu_trace_parse(buf, len, path, out, err, errlen);
    free(buf);
    return rc;
fail:
    fclose(f);
    free(buf);
    return -1;
}

struct emu_trace *emu_trace_ref(struct emu_trace *t)
{
    if (t) t->refs++;
    return t;
}

void emu_trace_unref(struct emu_trace *t)
{
    if (!t || --t->refs > 0) return;
    free(t->ms);
    free(t);
}

double emu_trace_mean_bps(const struct emu_trace *t)
{
    return (double)t->n * EMU_OPP_BYTES * 8.0 * 1000.0 / (double)t->period;
}

/* ------------------------------------------------------------------------------------------ */
/* SPEC parsing */

/* Split s[0..len) into a plain decimal number ([+-]digits[.digits]) and a unit suffix.
 * Returns 0, or -1 if s does not start with such a number. */
static int split_number(const char *s, size_t len, double *v, const char **unit, size_t *ulen)
{
    char buf[64];
    size_t i = 0, digits = 0;
    if (i < len && (s[i] == '+' || s[i] == '-')) i++;
    while (i < len && isdigit((unsigned char)s[i]))
        i++, digits++;
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && isdigit((unsigned char)s[i]))
            i++, digits++;
    }
    if (digits == 0 || i >= sizeof(buf)) return -1;
    memcpy(buf, s, i);
    buf[i] = '\0';
    *v = strtod(buf, NULL);
    if (!isfinite(*v)) return -1;
    *unit = s + i;
    *ulen = len - i;
    return 0;
}

static bool unit_is(const char *u, size_t ulen, const char *name)
{
    return strlen(name) == ulen && strncasecmp(u, name, ulen) == 0;
}

int emu_parse_time(const char *s, size_t len, uint64_t *ns, char *err, size_t errlen)
{
    double v, mult;
    const char *u;
    size_t ul;
    if (split_number(s, len, &v, &u, &ul) < 0) {
        snprintf(err, errlen, "\"%.*s\" is not a time; expected e.g. 30ms, 1.5s or 500us", (int)len,
                 s);
        return -1;
    }
    if (v < 0) {
        snprintf(err, errlen, "\"%.*s\": a time cannot be negative", (int)len, s);
        return -1;
    }
    if (ul == 0 && v == 0)
        mult = 0;
    else if (unit_is(u, ul, "ns"))
        mult = 1;
    else if (unit_is(u, ul, "us"))
        mult = 1e3;
    else if (unit_is(u, ul, "ms"))
        mult = 1e6;
    else if (unit_is(u, ul, "s"))
        mult = 1e9;
    else if (unit_is(u, ul, "min"))
        mult = 60e9;
    else {
        snprintf(err, errlen, "\"%.*s\": %s time unit; use ns, us, ms, s or min", (int)len, s,
                 ul ? "unknown" : "missing");
        return -1;
    }
    if (v * mult > 7.0 * 86400e9) {
        snprintf(err, errlen, "\"%.*s\": too long (at most 7 days)", (int)len, s);
        return -1;
    }
    *ns = (uint64_t)llround(v * mult);
    return 0;
}

int emu_parse_rate(const char *s, size_t len, uint64_t *bps, char *err, size_t errlen)
{
    double v, mult;
    const char *u;
    size_t ul;
    if (split_number(s, len, &v, &u, &ul) < 0) {
        snprintf(err, errlen, "\"%.*s\" is not a rate; expected e.g. 20mbit, 500kbit or 1gbit",
                 (int)len, s);
        return -1;
    }
    if (ul == 0 || unit_is(u, ul, "bit") || unit_is(u, ul, "bps"))
        mult = 1;
    else if (unit_is(u, ul, "kbit") || unit_is(u, ul, "kbps"))
        mult = 1e3;
    else if (unit_is(u, ul, "mbit") || unit_is(u, ul, "mbps"))
        mult = 1e6;
    else if (unit_is(u, ul, "gbit") || unit_is(u, ul, "gbps"))
        mult = 1e9;
    else {
        snprintf(err, errlen,
                 "\"%.*s\": unknown rate unit; use bit, kbit, mbit or gbit (per second)", (int)len,
                 s);
        return -1;
    }
    if (v < 0) {
        snprintf(err, errlen, "\"%.*s\": a rate cannot be negative", (int)len, s);
        return -1;
    }
    if (v * mult < 1) {
        snprintf(err, errlen,
                 "\"%.*s\": a rate must be at least 1 bit/s; use rate=off for no limit", (int)len,
                 s);
        return -1;
    }
    if (v * mult > (double)EMU_MAX_RATE_BPS) {
        snprintf(err, errlen, "\"%.*s\": too fast (at most 100gbit)", (int)len, s);
        return -1;
    }
    *bps = (uint64_t)llround(v * mult);
    return 0;
}

static int parse_bool(const char *key, const char *v, size_t vl, bool *out, char *err,
                      size_t errlen)
{
    if (vl == 1 && (v[0] == '0' || v[0] == '1')) {
        *out = v[0] == '1';
        return 0;
    }
    snprintf(err, errlen, "%s=%.*s: expected 0 or 1", key, (int)vl, v);
    return -1;
}

static int parse_queue(const char *v, size_t vl, struct emu_spec *out, char *err, size_t errlen)
{
    double x, mult;
    const char *u;
    size_t ul;
    if (unit_is(v, vl, "auto")) {
        out->qunit = EMU_Q_AUTO;
        out->qval = 0;
        return 0;
    }
    if (split_number(v, vl, &x, &u, &ul) < 0 || ul == 0) {
        snprintf(err, errlen,
                 "queue=%.*s: expected a time (200ms), bytes (300kb, 64000b) or packets (150p), "
                 "or auto",
                 (int)vl, v);
        return -1;
    }
    if (x < 0) {
        snprintf(err, errlen, "queue=%.*s: a queue limit cannot be negative", (int)vl, v);
        return -1;
    }
    if (unit_is(u, ul, "ns") || unit_is(u, ul, "us") || unit_is(u, ul, "ms") ||
        unit_is(u, ul, "s")) {
        out->qunit = EMU_Q_TIME;
        return emu_parse_time(v, vl, &out->qval, err, errlen);
    }
    if (unit_is(u, ul, "p") || unit_is(u, ul, "pkt") || unit_is(u, ul, "pkts") ||
        unit_is(u, ul, "packets")) {
        if (x != floor(x) || x > 1e9) {
            snprintf(err, errlen, "queue=%.*s: packets must be a whole number up to 1e9", (int)vl,
                     v);
            return -1;
        }
        out->qunit = EMU_Q_PACKETS;
        out->qval = (uint64_t)x;
        return 0;
    }
    if (unit_is(u, ul, "b"))
        mult = 1;
    else if (unit_is(u, ul, "kb"))
        mult = 1e3;
    else if (unit_is(u, ul, "mb"))
        mult = 1e6;
    else if (unit_is(u, ul, "kib"))
        mult = 1024;
    else if (unit_is(u, ul, "mib"))
        mult = 1048576;
    else {
        snprintf(err, errlen,
                 "queue=%.*s: unknown unit; use ms/s (time at the rate), b/kb/mb/kib/mib (bytes) "
                 "or p (packets)",
                 (int)vl, v);
        return -1;
    }
    if (x * mult > 1e12) {
        snprintf(err, errlen, "queue=%.*s: too large", (int)vl, v);
        return -1;
    }
    out->qunit = EMU_Q_BYTES;
    out->qval = (uint64_t)llround(x * mult);
    return 0;
}

int emu_spec_parse_item(const char *item, size_t len, struct emu_spec *out, char *err,
                        size_t errlen)
{
    const char *eq = memchr(item, '=', len);
    const char *v;
    size_t kl, vl;
    if (!eq) {
        snprintf(err, errlen, "\"%.*s\": expected key=value (e.g. rate=20mbit)", (int)len, item);
        return -1;
    }
    kl = (size_t)(eq - item);
    v = eq + 1;
    vl = len - kl - 1;
    if (vl == 0) {
        snprintf(err, errlen, "\"%.*s\": missing value after '='", (int)len, item);
        return -1;
    }
#define KEY(name) (kl == strlen(name) && strncmp(item, name, kl) == 0)
    if (KEY("rate")) {
        if (unit_is(v, vl, "off") || unit_is(v, vl, "none"))
            out->rate_bps = 0;
        else if (emu_parse_rate(v, vl, &out->rate_bps, err, errlen) < 0)
            return -1;
        out->mask |= EMU_F_RATE;
    } else if (KEY("trace")) {
        struct emu_trace *t = NULL;
        if (!unit_is(v, vl, "off")) {
            char path[4096];
            if (vl >= sizeof(path)) {
                snprintf(err, errlen, "trace file name too long");
                return -1;
            }
            memcpy(path, v, vl);
            path[vl] = '\0';
            if (emu_trace_load(path, &t, err, errlen) < 0) return -1;
        }
        emu_trace_unref(out->trace);
        out->trace = t;
        out->mask |= EMU_F_TRACE;
    } else if (KEY("delay")) {
        if (emu_parse_time(v, vl, &out->delay_ns, err, errlen) < 0) return -1;
        out->mask |= EMU_F_DELAY;
    } else if (KEY("jitter")) {
        if (emu_parse_time(v, vl, &out->jitter_ns, err, errlen) < 0) return -1;
        out->mask |= EMU_F_JITTER;
    } else if (KEY("reorder")) {
        if (parse_bool("reorder", v, vl, &out->reorder, err, errlen) < 0) return -1;
        out->mask |= EMU_F_REORDER;
    } else if (KEY("blackhole")) {
        if (parse_bool("blackhole", v, vl, &out->blackhole, err, errlen) < 0) return -1;
        out->mask |= EMU_F_BLACKHOLE;
    } else if (KEY("loss")) {
        double x;
        const char *u;
        size_t ul;
        if (split_number(v, vl, &x, &u, &ul) < 0 || (ul != 0 && !unit_is(u, ul, "%"))) {
            snprintf(err, errlen, "loss=%.*s: expected a probability like 0.01 or 1%%", (int)vl, v);
            return -1;
        }
        if (ul) x /= 100.0;
        if (x < 0 || x > 1) {
            snprintf(err, errlen, "loss=%.*s: must be between 0 and 1 (or 0%% and 100%%)", (int)vl,
                     v);
            return -1;
        }
        out->loss = x;
        out->mask |= EMU_F_LOSS;
    } else if (KEY("queue")) {
        if (parse_queue(v, vl, out, err, errlen) < 0) return -1;
        out->mask |= EMU_F_QUEUE;
    } else if (KEY("overhead")) {
        double x;
        const char *u;
        size_t ul;
        if (split_number(v, vl, &x, &u, &ul) < 0 || (ul && !unit_is(u, ul, "b")) || x < 0 ||
            x > 1000 || x != floor(x)) {
            snprintf(err, errlen, "overhead=%.*s: expected whole bytes per packet, 0 to 1000",
                     (int)vl, v);
            return -1;
        }
        out->overhead = (uint32_t)x;
        out->mask |= EMU_F_OVERHEAD;
    } else {
        snprintf(err, errlen,
                 "unknown key \"%.*s\"; keys are rate, trace, delay, jitter, reorder, loss, "
                 "queue, blackhole, overhead",
                 (int)kl, item);
        return -1;
    }
#undef KEY
    return 0;
}

int emu_spec_parse(const char *s, struct emu_spec *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    while (*s) {
        size_t n;
        while (*s == ',' || isspace((unsigned char)*s))
            s++;
        if (!*s) break;
        n = 0;
        while (s[n] && s[n] != ',' && !isspace((unsigned char)s[n]))
            n++;
        if (emu_spec_parse_item(s, n, out, err, errlen) < 0) goto fail;
        s += n;
    }
    if ((out->mask & EMU_F_RATE) && (out->mask & EMU_F_TRACE)) {
        snprintf(err, errlen,
                 "rate= and trace= cannot be combined: the bottleneck is one or the "
                 "other");
        goto fail;
    }
    return 0;
fail:
    emu_spec_free(out);
    return -1;
}

void emu_spec_free(struct emu_spec *s)
{
    emu_trace_unref(s->trace);
    memset(s, 0, sizeof(*s));
}

/* ------------------------------------------------------------------------------------------ */
/* the shaper */

enum mode { M_NONE, M_RATE, M_TRACE };

struct qent {
    uint32_t id, len;
    uint64_t t_arr;
};

struct hent {
    uint64_t t, seq, t_arr, t_dep;
    uint32_t id, len;
};

/* Token bucket units: 1 bit = 1e9 units, so a rate of r bit/s adds exactly r units per ns. */
#define UNITS_PER_BYTE 8000000000ll

struct emu_shaper {
    uint32_t cap;
    struct qent *q; /* bottleneck FIFO ring */
    uint32_t qhead, qcount;
    struct hent *heap; /* delay line: min-heap on (t, seq) */
    uint32_t hcount;
    uint64_t seq;
    uint64_t rng;
    uint64_t t_last; /* time of the last advance; tokens are valid at t_last */

    enum mode mode;
    uint64_t rate_bps;
    int64_t tokens, burst;

    struct emu_trace *trace;
    uint64_t origin; /* trace time 0 */
    uint64_t k;      /* next unprocessed opportunity, counting across repetitions */
    uint32_t head_sent;

    uint64_t delay_ns, jitter_ns, last_deliver;
    bool reorder;
    double loss;
    enum emu_queue_unit qunit;
    uint64_t qval;
    uint32_t overhead;

    bool bh;
    uint64_t bh_from, bh_until;

    struct emu_stats st;
};

static uint64_t rng_next(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s) /* [0, 1) */
{
    return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

struct emu_shaper *emu_shaper_new(uint32_t capacity, uint64_t seed, uint64_t now)
{
    struct emu_shaper *sh = calloc(1, sizeof(*sh));
    if (!sh || capacity == 0) {
        free(sh);
        return NULL;
    }
    sh->cap = capacity;
    sh->q = calloc(capacity, sizeof(*sh->q));
    sh->heap = calloc(capacity, sizeof(*sh->heap));
    if (!sh->q || !sh->heap) {
        emu_shaper_free(sh);
        return NULL;
    }
    sh->rng = seed;
    sh->t_last = now;
    sh->origin = now;
    sh->mode = M_NONE;
    return sh;
}

void emu_shaper_free(struct emu_shaper *sh)
{
    if (!sh) return;
    emu_trace_unref(sh->trace);
    free(sh->q);
    free(sh->heap);
    free(sh);
}

const struct emu_stats *emu_shaper_stats(const struct emu_shaper *sh)
{
    return &sh->st;
}

static int64_t cost_units(const struct emu_shaper *sh, uint32_t len)
{
    return (int64_t)(len + sh->overhead) * UNITS_PER_BYTE;
}

static int64_t burst_units(uint64_t rate_bps)
{
    /* max(2 full-size packets, 1 ms of rate) */
    int64_t two = 2 * (int64_t)EMU_OPP_BYTES * UNITS_PER_BYTE;
    int64_t ms = (int64_t)rate_bps * 1000000;
    return ms > two ? ms : two;
}

/* ---- delay-line heap ---- */
static bool h_less(const struct hent *a, const struct hent *b)
{
    return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static void h_push(struct emu_shaper *sh, const struct hent *e)
{
    uint32_t i = sh->hcount++;
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!h_less(e, &sh->heap[p])) break;
        sh->heap[i] = sh->heap[p];
        i = p;
    }
    sh->heap[i] = *e;
}

static void h_pop(struct emu_shaper *sh, struct hent *out)
{
    struct hent last;
    uint32_t i = 0, n;
    *out = sh->heap[0];
    n = --sh->hcount;
    if (n == 0) return;
    last = sh->heap[n];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && h_less(&sh->heap[c + 1], &sh->heap[c])) c++;
        if (!h_less(&sh->heap[c], &last)) break;
        sh->heap[i] = sh->heap[c];
        i = c;
    }
    sh->heap[i] = last;
}

/* ---- bottleneck ---- */
static struct qent *q_head(struct emu_shaper *sh)
{
    return &sh->q[sh->qhead];
}

/* The head leaves the bottleneck at t and enters the delay line. */
static void depart(struct emu_shaper *sh, uint64_t t)
{
    struct qent *e = q_head(sh);
    struct hent h;
    uint64_t td = t + sh->delay_ns;
    if (sh->jitter_ns) td += (uint64_t)(rng_unit(&sh->rng) * (double)(sh->jitter_ns + 1));
    if (!sh->reorder && td < sh->last_deliver) td = sh->last_deliver;
    if (td > sh->last_deliver) sh->last_deliver = td;
    h.t = td;
    h.seq = sh->seq++;
    h.t_arr = e->t_arr;
    h.t_dep = t;
    h.id = e->id;
    h.len = e->len;
    sh->st.queued_bytes -= e->len;
    sh->st.queued_packets--;
    sh->qhead = (sh->qhead + 1) % sh->cap;
    sh->qcount--;
    h_push(sh, &h);
    sh->st.inflight_bytes += h.len;
    sh->st.inflight_packets++;
}

static void refill(struct emu_shaper *sh, uint64_t to)
{
    uint64_t dt;
    if (to <= sh->t_last) return;
    dt = to - sh->t_last;
    sh->t_last = to;
    if (sh->mode != M_RATE || sh->tokens >= sh->burst) return;
    if (dt >= (uint64_t)(sh->burst - sh->tokens) / sh->rate_bps + 1)
        sh->tokens = sh->burst;
    else {
        sh->tokens += (int64_t)(dt * sh->rate_bps);
        if (sh->tokens > sh->burst) sh->tokens = sh->burst;
    }
}

/* Rate mode: when the head can leave (tokens valid at t_last). */
static uint64_t rate_departure(const struct emu_shaper *sh)
{
    int64_t need = cost_units(sh, sh->q[sh->qhead].len);
    if (need > sh->burst) need = sh->burst;
    if (sh->tokens >= need) return sh->t_last;
    return sh->t_last + ((uint64_t)(need - sh->tokens) + sh->rate_bps - 1) / sh->rate_bps;
}

static uint64_t opp_time(const struct emu_shaper *sh, uint64_t k)
{
    const struct emu_trace *t = sh->trace;
    return sh->origin + ((k / t->n) * t->period + t->ms[k % t->n]) * EMU_NS_PER_MS;
}

/* Trace mode: move k to the first opportunity at or after now (the ones before are lost). */
static void trace_seek(struct emu_shaper *sh, uint64_t now)
{
    const struct emu_trace *t = sh->trace;
    uint64_t off, pns, rep, within, knew;
    size_t lo = 0, hi;
    if (opp_time(sh, sh->k) >= now) return;
    off = now - sh->origin;
    pns = t->period * EMU_NS_PER_MS;
    rep = off / pns;
    within = off % pns;
    if (within == 0 && rep > 0) { /* the previous repetition's last opportunities are at now */
        rep--;
        within = pns;
    }
    hi = t->n; /* first i with ms[i] * 1e6 >= within: exists, as ms[n-1] = period */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((uint64_t)t->ms[mid] * EMU_NS_PER_MS < within)
            lo = mid + 1;
        else
            hi = mid;
    }
    knew = rep * t->n + lo;
    if (knew > sh->k) sh->k = knew;
}

/* Move every packet whose bottleneck departure is at or before now into the delay line. */
static void advance(struct emu_shaper *sh, uint64_t now)
{
    switch (sh->mode) {
    case M_NONE:
        while (sh->qcount)
            depart(sh, now > q_head(sh)->t_arr ? now : q_head(sh)->t_arr);
        break;
    case M_RATE:
        while (sh->qcount) {
            uint64_t d = rate_departure(sh);
            if (d > now) break;
            refill(sh, d);
            sh->tokens -= cost_units(sh, q_head(sh)->len);
            depart(sh, d);
        }
        break;
    case M_TRACE:
        while (sh->qcount) {
            uint64_t t = opp_time(sh, sh->k);
            uint32_t budget = EMU_OPP_BYTES;
            if (t > now) break;
            while (sh->qcount) {
                uint32_t rem = q_head(sh)->len + sh->overhead - sh->head_sent;
                if (rem <= budget) {
                    budget -= rem;
                    sh->head_sent = 0;
                    depart(sh, t);
                } else {
                    if (budget == EMU_OPP_BYTES) sh->head_sent += EMU_OPP_BYTES;
                    break; /* the rest of this opportunity is lost */
                }
            }
            sh->k++;
        }
        break;
    }
    refill(sh, now);
}

uint64_t emu_shaper_queue_limit_bytes(const struct emu_shaper *sh)
{
    double bps;
    if (sh->mode == M_NONE) return UINT64_MAX;
    switch (sh->qunit) {
    case EMU_Q_BYTES:
        return sh->qval;
    case EMU_Q_PACKETS:
        return UINT64_MAX;
    case EMU_Q_AUTO:
        if (sh->mode == M_TRACE) return UINT64_MAX; /* 150 packets */
        bps = (double)sh->rate_bps;
        return (uint64_t)fmax(2.0 * EMU_OPP_BYTES, bps * EMU_DEFAULT_QUEUE_MS / 8000.0);
    case EMU_Q_TIME:
        bps = sh->mode == M_RATE ? (double)sh->rate_bps : emu_trace_mean_bps(sh->trace);
        return (uint64_t)fmax(2.0 * EMU_OPP_BYTES, bps * (double)sh->qval / 8e9);
    }
    return UINT64_MAX;
}

uint64_t emu_shaper_burst_bytes(const struct emu_shaper *sh)
{
    return sh->mode == M_RATE ? (uint64_t)(sh->burst / UNITS_PER_BYTE) : 0;
}

static bool over_limit(const struct emu_shaper *sh)
{
    uint64_t pk = UINT64_MAX;
    if (sh->mode == M_NONE) return false;
    if (sh->qunit == EMU_Q_PACKETS)
        pk = sh->qval;
    else if (sh->qunit == EMU_Q_AUTO && sh->mode == M_TRACE)
        pk = EMU_DEFAULT_QUEUE_PKTS;
    if (sh->st.queued_packets > pk) return true;
    return sh->st.queued_bytes > emu_shaper_queue_limit_bytes(sh);
}

bool emu_shaper_blackholed(const struct emu_shaper *sh, uint64_t t)
{
    return sh->bh && t >= sh->bh_from && t < sh->bh_until;
}

enum emu_verdict emu_shaper_arrive(struct emu_shaper *sh, uint64_t now, uint32_t id, uint32_t len)
{
    struct qent *e;
    advance(sh, now);
    sh->st.rx_packets++;
    sh->st.rx_bytes += len;
    if (emu_shaper_blackholed(sh, now)) {
        sh->st.dropped_blackhole++;
        return EMU_DROP_BLACKHOLE;
    }
    if (sh->loss > 0 && rng_unit(&sh->rng) < sh->loss) {
        sh->st.dropped_loss++;
        return EMU_DROP_LOSS;
    }
    if (sh->qcount + sh->hcount >= sh->cap) {
        sh->st.dropped_queue++;
        return EMU_DROP_QUEUE;
    }
    if (sh->qcount == 0) {
        sh->head_sent = 0;
        if (sh->mode == M_TRACE) trace_seek(sh, now);
    }
    e = &sh->q[(sh->qhead + sh->qcount) % sh->cap];
    e->id = id;
    e->len = len;
    e->t_arr = now;
    sh->qcount++;
    sh->st.queued_bytes += len;
    sh->st.queued_packets++;
    advance(sh, now);
    if (sh->qcount > 0 && over_limit(sh)) { /* the new packet is the tail: drop it */
        sh->qcount--;
        sh->st.queued_bytes -= len;
        sh->st.queued_packets--;
        if (sh->qcount == 0) sh->head_sent = 0;
        sh->st.dropped_queue++;
        return EMU_DROP_QUEUE;
    }
    return EMU_ACCEPTED;
}

uint64_t emu_shaper_next(const struct emu_shaper *sh)
{
    uint64_t t = sh->hcount ? sh->heap[0].t : EMU_NEVER;
    uint64_t b = EMU_NEVER;
    if (sh->qcount) {
        switch (sh->mode) {
        case M_NONE:
            b = sh->t_last;
            break;
        case M_RATE:
            b = rate_departure(sh);
            break;
        case M_TRACE:
            b = opp_time(sh, sh->k);
            break;
        }
    }
    return b < t ? b : t;
}

bool emu_shaper_pop(struct emu_shaper *sh, uint64_t now, struct emu_out *out)
{
    struct hent h;
    advance(sh, now);
    if (sh->hcount == 0 || sh->heap[0].t > now) return false;
    h_pop(sh, &h);
    sh->st.inflight_bytes -= h.len;
    sh->st.inflight_packets--;
    out->id = h.id;
    out->len = h.len;
    out->t_arrive = h.t_arr;
    out->t_depart = h.t_dep;
    out->t_deliver = h.t;
    out->dropped = emu_shaper_blackholed(sh, h.t);
    if (out->dropped) {
        sh->st.dropped_blackhole++;
    } else {
        sh->st.tx_packets++;
        sh->st.tx_bytes += h.len;
    }
    return true;
}

void emu_shaper_blackhole(struct emu_shaper *sh, uint64_t now, uint64_t until)
{
    advance(sh, now);
    sh->bh = true;
    sh->bh_from = now;
    sh->bh_until = until;
}

void emu_shaper_clear(struct emu_shaper *sh, uint64_t now)
{
    advance(sh, now);
    sh->bh = false;
}

void emu_shaper_apply(struct emu_shaper *sh, const struct emu_spec *spec, uint64_t now)
{
    unsigned m = spec->mask;
    advance(sh, now);
    if (m & EMU_F_OVERHEAD) sh->overhead = spec->overhead;
    if (m & EMU_F_RATE) {
        emu_trace_unref(sh->trace);
        sh->trace = NULL;
        if (spec->rate_bps == 0) {
            sh->mode = M_NONE;
        } else {
            bool was_rate = sh->mode == M_RATE;
            sh->mode = M_RATE;
            sh->rate_bps = spec->rate_bps;
            sh->burst = burst_units(spec->rate_bps);
            if (!was_rate || sh->tokens > sh->burst) sh->tokens = sh->burst;
        }
    }
    if (m & EMU_F_TRACE) {
        emu_trace_unref(sh->trace);
        sh->trace = emu_trace_ref(spec->trace);
        sh->mode = sh->trace ? M_TRACE : M_NONE;
        sh->origin = now;
        sh->k = 0;
        sh->head_sent = 0;
    }
    if (m & EMU_F_DELAY) sh->delay_ns = spec->delay_ns;
    if (m & EMU_F_JITTER) sh->jitter_ns = spec->jitter_ns;
    if (m & EMU_F_REORDER) sh->reorder = spec->reorder;
    if (m & EMU_F_LOSS) sh->loss = spec->loss;
    if (m & EMU_F_QUEUE) {
        sh->qunit = spec->qunit;
        sh->qval = spec->qval;
    }
    if (m & EMU_F_BLACKHOLE) {
        if (spec->blackhole)
            emu_shaper_blackhole(sh, now, EMU_NEVER);
        else
            emu_shaper_clear(sh, now);
    }
    advance(sh, now);
}

static void fmt_ns(char *buf, size_t len, uint64_t ns)
{
    if (ns % EMU_NS_PER_MS == 0)
        snprintf(buf, len, "%llums", (unsigned long long)(ns / 1000000));
    else
        snprintf(buf, len, "%.3fms", (double)ns / 1e6);
}

void emu_shaper_describe(const struct emu_shaper *sh, char *buf, size_t len)
{
    char bott[200], q[64], d[32], j[32];
    switch (sh->mode) {
    case M_NONE:
        snprintf(bott, sizeof(bott), "unshaped");
        break;
    case M_RATE:
        snprintf(bott, sizeof(bott), "rate=%.6gmbit (burst %llu B)", (double)sh->rate_bps / 1e6,
                 (unsigned long long)emu_shaper_burst_bytes(sh));
        break;
    case M_TRACE:
        snprintf(bott, sizeof(bott), "trace=%s (%zu opportunities per %llu ms, mean %.3g mbit)",
                 sh->trace->name, sh->trace->n, (unsigned long long)sh->trace->period,
                 emu_trace_mean_bps(sh->trace) / 1e6);
        break;
    }
    if (sh->mode == M_NONE)
        snprintf(q, sizeof(q), "none");
    else if (sh->qunit == EMU_Q_PACKETS)
        snprintf(q, sizeof(q), "%llup", (unsigned long long)sh->qval);
    else if (sh->qunit == EMU_Q_AUTO && sh->mode == M_TRACE)
        snprintf(q, sizeof(q), "%dp", EMU_DEFAULT_QUEUE_PKTS);
    else
        snprintf(q, sizeof(q), "%lluB", (unsigned long long)emu_shaper_queue_limit_bytes(sh));
    fmt_ns(d, sizeof(d), sh->delay_ns);
    fmt_ns(j, sizeof(j), sh->jitter_ns);
    snprintf(buf, len, "%s queue=%s delay=%s jitter=%s reorder=%d loss=%g overhead=%u%s", bott, q,
             d, j, sh->reorder, sh->loss, sh->overhead, sh->bh ? " blackhole" : "");
}
