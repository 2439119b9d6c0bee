/* mux.c: the multiplexer: handshake and sessions, per-link state (beats, RTT, loss, delivery
 * rate, up/down), scheduling tunnel packets over links, and in-order delivery on receive. */
#include "mux.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/addr.h"
#include "../common/log.h"
#include "../common/util.h"
#include "reorder.h"
#include "replay.h"
#include "sched.h"
#include "wire.h"

#define HELLO_INTERVAL_US 500000u
#define HELLO_RATE_PER_S 10u
#define MIN_RTT_WINDOW_US 10000000u
#define REORDER_FLOOR_US 10000u
#define OWD_PEAK_FADE_US 3000000.0 /* time constant of a link's delay peak fading to its mean */
#define INITIAL_RATE_BPS 125000.0 /* 1 Mbit/s until feedback says more */
#define STALE_MIN_US 2000000u     /* silence before a link's transport is told to re-establish */
#define COUNTER_REKEY (UINT64_C(1) << 47)

struct mux_link {
    bool used;
    bool owned;          /* master: made by new_link, destroyed by the mux */
    uint8_t id;
    int pos;             /* index in m->order / m->sl */
    struct link *tl;     /* transport */
    /* state */
    bool up;             /* usable for data */
    bool heard;          /* an authenticated datagram arrived this session */
    bool peer_hears;     /* the peer's latest BEAT says it hears us */
    bool peer_down;      /* the peer sent LINK_DOWN for this link */
    uint64_t last_rx_us;
    uint64_t silent_since_us; /* start of the current silence (for the stale downcall) */
    uint64_t next_stale_us;   /* when to call the transport's stale op next (0: not yet due) */
    uint64_t stale_gap_us;    /* doubles after each call while the silence lasts */
    uint64_t state_since_us;
    uint64_t ups, downs;
    /* tx */
    uint64_t tx_counter;
    uint64_t last_beat_us;
    uint64_t tx_data, tx_ctrl;
    /* rx */
    struct replay replay;
    uint64_t rx_packets, rx_bytes, rx_highest;
    uint64_t rx_data;
    uint16_t peer_ts;
    uint64_t peer_ts_rx_us;
    bool have_peer_ts;
    uint32_t passed;     /* every DATA gseq below this that was sent on this link has arrived or is lost */
    bool have_passed;
    /* RTT (us) */
    bool have_rtt;
    double srtt, rttvar, last_rtt, min_rtt;
    uint64_t min_rtt_at;
    /* Relative one-way delay (us): receive time minus the peer's ts, against a per-session
     * reference. The peer's clock offset is the same on every link, so differences between
     * links are their one-way delay differences, queueing in this direction included. */
    bool have_owd;
    double owd, owd_var, owd_min;
    uint64_t owd_min_at;
    double owd_peak;       /* recent highest sample, fading toward owd (delay spikes) */
    uint64_t owd_peak_at;
    /* feedback from the peer's BEATs */
    bool have_fb;
    struct ctrl_beat fb;
    double delivered_Bps, loss;
};

struct mux_session {
    bool valid;
    struct session_keys keys;
    struct hs_server_result res; /* master: what made it (to answer HELLO retransmissions) */
};

struct mux {
    struct ev_loop *loop;
    struct mux_config cfg;
    struct mux_callbacks cb;
    struct mux_session cur, pending; /* pending: master only */
    uint64_t session_at_us;
    /* slave handshake */
    struct hs_client hs;
    bool hs_active;
    uint64_t hs_started_us, hs_last_tx_us;
    /* master HELLO rate limit */
    uint64_t hello_window_us;
    unsigned hello_count;
    uint64_t last_any_rx_us;
    bool have_owd_ref;
    uint16_t owd_ref; /* reference for the links' relative one-way delays (ts units) */
    /* links */
    struct mux_link links[MUX_MAX_LINKS];
    uint8_t order[MUX_MAX_LINKS];
    struct sched_link sl[MUX_MAX_LINKS];
    int nlinks;
    struct sched sched;
    uint32_t tx_gseq;
    /* receive order */
    struct reorder *ro;
    uint64_t ro_timeout_us;
    ev_timer ro_timer;
    ev_idle ro_idle;          /* gives gaps up once the input pending now has been read */
    uint64_t ro_idle_since;
    ev_timer tick;
    bool started;
    struct mux_counters c;
    struct log_limit lim_late;
    struct log_limit lim_malformed, lim_auth, lim_replay, lim_nosession, lim_nolink, lim_big,
        lim_hello;
    uint8_t txbuf[WIRE_MAX_DGRAM + 64];
};

static const char *role(const struct mux *m)
{
    return m->cfg.is_master ? "slave" : "master";
}

void mux_config_defaults(struct mux_config *c)
{
    memset(c, 0, sizeof *c);
    c->beat_interval_ms = 100;
    c->dead_timeout_ms = 300;
    c->reorder_max_ms = 200;
    c->reorder_slots = 4096;
    c->rehandshake_ms = 2000;
    c->mtu = 1440;
}

/* ---------------------------------------------------------------- sending */

static void fill_echo(struct mux_link *ml, struct wire_hdr *h, uint64_t now)
{
    h->ts = wire_ts(now);
    h->echo_valid = false;
    h->echo = 0;
    if (ml->have_peer_ts && now - ml->peer_ts_rx_us < WIRE_ECHO_MAX_HOLD_US) {
        h->echo = (uint16_t)(ml->peer_ts + (now - ml->peer_ts_rx_us) / WIRE_TS_UNIT_US);
        h->echo_valid = true;
    }
}

/* Seal and send one DATA or CTRL datagram on a link. Returns link_send's result. */
static int send_dgram(struct mux *m, struct mux_link *ml, uint8_t type, uint32_t gseq,
                      const uint8_t *payload, size_t plen, uint64_t now)
{
    struct wire_hdr h = {0};
    h.type = type;
    h.phase = m->cur.keys.phase;
    h.link_id = ml->id;
    h.counter = ml->tx_counter++;
    h.gseq = gseq;
    fill_echo(ml, &h, now);
    int n = wire_seal(m->txbuf, sizeof m->txbuf, &h, payload, plen, m->cur.keys.tx);
    if (n < 0) return -1;
    return link_send(ml->tl, m->txbuf, (size_t)n);
}

static bool transport_up(const struct mux_link *ml)
{
    return ml->tl && ml->tl->up;
}

static void send_ctrl(struct mux *m, struct mux_link *ml, const uint8_t *msgs, size_t len,
                      uint64_t now)
{
    if (!m->cur.valid || !transport_up(ml)) return;
    if (send_dgram(m, ml, WIRE_CTRL, m->tx_gseq, msgs, len, now) == 0) {
        ml->tx_ctrl++;
        m->c.tx_ctrl++;
    }
}

static void send_beat(struct mux *m, struct mux_link *ml, uint64_t now)
{
    struct ctrl_beat b = {0};
    if (ml->heard && now - ml->last_rx_us <= (uint64_t)m->cfg.dead_timeout_ms * 1000u)
        b.flags |= CTRL_BEAT_F_HEARS;
    b.interval_ms = (uint16_t)m->cfg.beat_interval_ms;
    b.report_us = (uint32_t)now;
    b.rx_packets = ml->rx_packets;
    b.rx_bytes = ml->rx_bytes;
    b.rx_highest = ml->rx_highest;
    uint8_t buf[64];
    size_t pos = 0;
    ctrl_put_beat(buf, sizeof buf, &pos, &b);
    ml->last_beat_us = now;
    send_ctrl(m, ml, buf, pos, now);
}

/* Tell the peer on every other usable link that link id is down. */
static void announce_down(struct mux *m, uint8_t id, uint8_t reason, uint64_t now)
{
    struct ctrl_link_down d = {.link_id = id, .reason = reason};
    uint8_t buf[16];
    size_t pos = 0;
    ctrl_put_link_down(buf, sizeof buf, &pos, &d);
    for (int i = 0; i < m->nlinks; i++) {
        struct mux_link *o = &m->links[m->order[i]];
        if (o->id != id && o->up) send_ctrl(m, o, buf, pos, now);
    }
}

void mux_send(struct mux *m, const uint8_t *pkt, size_t len)
{
    if (len == 0) return;
    if (len > m->cfg.mtu) {
        m->c.tx_too_big++;
        log_limited(&m->lim_big, LOG_WARN,
                    "dropped a %zu-byte tunnel packet: larger than the tunnel MTU %u", len,
                    m->cfg.mtu);
        return;
    }
    uint64_t now = mono_us();
    if (m->cur.valid) {
        /* If a link fails while sending, pick another: a packet another live link could carry
         * is not lost to it. */
        for (int tries = 0; tries < m->nlinks; tries++) {
            int pos = sched_pick(&m->sched, m->sl, m->nlinks, len + WIRE_OVERHEAD);
            if (pos < 0) break;
            struct mux_link *ml = &m->links[m->order[pos]];
            if (send_dgram(m, ml, WIRE_DATA, m->tx_gseq, pkt, len, now) == 0) {
                m->tx_gseq++;
                ml->tx_data++;
                m->c.tx_data++;
                m->c.tx_data_bytes += len;
                return;
            }
            m->sl[pos].usable = false; /* the transport reports down through its handler too */
        }
    }
    m->c.tx_no_link++;
    log_limited(&m->lim_nolink, LOG_WARN, "dropped tunnel packets: %s",
                m->cur.valid ? "no link to the peer is up" : "no session with the peer yet");
}

/* ---------------------------------------------------------------- link state */

static void rtt_sample(struct mux_link *ml, double rtt, uint64_t now)
{
    ml->last_rtt = rtt;
    if (!ml->have_rtt) {
        ml->srtt = rtt;
        ml->rttvar = rtt / 2;
        ml->min_rtt = rtt;
        ml->min_rtt_at = now;
        ml->have_rtt = true;
        return;
    }
    ml->rttvar = 0.75 * ml->rttvar + 0.25 * fabs(ml->srtt - rtt);
    ml->srtt = 0.875 * ml->srtt + 0.125 * rtt;
    if (rtt <= ml->min_rtt || now - ml->min_rtt_at > MIN_RTT_WINDOW_US) {
        ml->min_rtt = rtt;
        ml->min_rtt_at = now;
    }
}

static void owd_sample(struct mux *m, struct mux_link *ml, uint16_t peer_ts, uint64_t now)
{
    uint16_t raw = (uint16_t)(wire_ts(now) - peer_ts);
    if (!m->have_owd_ref) {
        m->owd_ref = raw;
        m->have_owd_ref = true;
    }
    double x = (double)(int16_t)(raw - m->owd_ref) * WIRE_TS_UNIT_US;
    if (!ml->have_owd) {
        ml->owd = ml->owd_min = ml->owd_peak = x;
        ml->owd_var = 0;
        ml->owd_min_at = ml->owd_peak_at = now;
        ml->have_owd = true;
        return;
    }
    ml->owd_var = 0.75 * ml->owd_var + 0.25 * fabs(ml->owd - x);
    ml->owd = 0.875 * ml->owd + 0.125 * x;
    /* The averages hide short spikes (a relay app descheduled, a radio retransmitting); the
     * reorder timeout must cover them, so keep the peak, fading to owd in a few seconds. */
    double fade = exp(-(double)(now - ml->owd_peak_at) / OWD_PEAK_FADE_US);
    double peak = ml->owd + (ml->owd_peak - ml->owd) * fade;
    ml->owd_peak = x > peak ? x : peak;
    ml->owd_peak_at = now;
    if (x <= ml->owd_min || now - ml->owd_min_at > MIN_RTT_WINDOW_US) {
        ml->owd_min = x;
        ml->owd_min_at = now;
    }
}

static void link_reset(struct mux *m, struct mux_link *ml)
{
    ml->up = ml->heard = ml->peer_hears = ml->peer_down = false;
    ml->last_rx_us = 0;
    ml->silent_since_us = mono_us();
    ml->next_stale_us = 0;
    ml->tx_counter = 0;
    ml->last_beat_us = 0;
    replay_init(&ml->replay);
    ml->rx_packets = ml->rx_bytes = ml->rx_highest = 0;
    ml->have_peer_ts = false;
    ml->have_passed = false;
    ml->have_rtt = false;
    ml->have_owd = false;
    ml->have_fb = false;
    ml->delivered_Bps = ml->loss = 0;
    sched_link_init(&m->sched, &m->sl[ml->pos]);
    m->sl[ml->pos].usable = false;
}

/* The reorder timeout: how much later than the fastest link's packets the slowest link's may
 * arrive, from the measured one-way delays in this direction (with 4 mean deviations of
 * headroom, or the link's recent delay peak if higher: a packet that came late raised it), plus
 * a floor for scheduling noise; at most reorder_max_ms. */
static void update_reorder_timeout(struct mux *m)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < m->nlinks; i++) {
        const struct mux_link *ml = &m->links[m->order[i]];
        if (!ml->up || !ml->have_owd) continue;
        if (ml->owd_min < lo) lo = ml->owd_min;
        double h = ml->owd + 4 * ml->owd_var;
        if (ml->owd_peak > h) h = ml->owd_peak;
        if (h > hi) hi = h;
    }
    double t = REORDER_FLOOR_US;
    if (hi > lo) t += hi - lo;
    double cap = (double)m->cfg.reorder_max_ms * 1000.0;
    if (t > cap) t = cap;
    m->ro_timeout_us = (uint64_t)t;
}

static void update_state(struct mux *m, struct mux_link *ml, uint64_t now)
{
    bool alive = ml->heard && transport_up(ml) && ml->peer_hears && !ml->peer_down &&
                 now - ml->last_rx_us <= (uint64_t)m->cfg.dead_timeout_ms * 1000u;
    m->sl[ml->pos].usable = alive;
    if (alive == ml->up) return;
    ml->up = alive;
    ml->state_since_us = now;
    const char *name = ml->tl ? ml->tl->name : "?";
    if (alive) {
        ml->ups++;
        sched_link_init(&m->sched, &m->sl[ml->pos]);
        m->sl[ml->pos].usable = true;
        LOGI("link %s (id %u): up%s", name, ml->id,
             ml->have_rtt ? "" : " (no RTT sample yet)");
    } else {
        ml->downs++;
        const char *why = !transport_up(ml) ? "transport down"
                          : ml->peer_down   ? "the %s reported it down"
                          : !ml->peer_hears && now - ml->last_rx_us <=
                                                   (uint64_t)m->cfg.dead_timeout_ms * 1000u
                              ? "the %s does not hear us on it"
                              : "no beats from the %s";
        char buf[64];
        snprintf(buf, sizeof buf, why, role(m));
        LOGI("link %s (id %u): down (%s)", name, ml->id, buf);
    }
    update_reorder_timeout(m);
}

static void transport_state(void *ctx, struct link *l, bool up)
{
    struct mux *m = ctx;
    struct mux_link *ml = &m->links[l->id];
    if (!ml->used || ml->tl != l) return;
    uint64_t now = mono_us();
    update_state(m, ml, now);
    if (!up) {
        announce_down(m, l->id, CTRL_DOWN_TRANSPORT, now);
    } else if (!m->cfg.is_master && m->hs_active) {
        uint8_t hello[HELLO_LEN];
        hs_client_hello(&m->hs, &m->cfg.keys, l->id, hello);
        link_send(l, hello, sizeof hello);
    }
}

static void link_rx(void *ctx, struct link *l, uint8_t *buf, size_t len,
                    const struct sockaddr *from, socklen_t fromlen);

static struct mux_link *link_slot(struct mux *m, uint8_t id, struct link *tl, bool owned)
{
    struct mux_link *ml = &m->links[id];
    memset(ml, 0, sizeof *ml);
    ml->used = true;
    ml->owned = owned;
    ml->id = id;
    ml->tl = tl;
    ml->pos = m->nlinks;
    m->order[m->nlinks++] = id;
    link_reset(m, ml);
    /* Slave links deliver datagrams through rx; the master's arrive through mux_input. */
    struct link_handlers h = {.rx = owned ? NULL : link_rx, .state = transport_state, .ctx = m};
    link_set_handlers(tl, &h);
    return ml;
}

/* ---------------------------------------------------------------- receive order */

static void deliver(void *ctx, const uint8_t *pkt, size_t len)
{
    struct mux *m = ctx;
    m->cb.deliver(m->cb.ctx, pkt, len);
}

/* Gaps are given up by time only once the datagrams already waiting in the links' sockets
 * have been read: when the loop falls behind (a busy CPU), a packet that has arrived but is not
 * read yet must not be declared missing. So the timer does not expire gaps itself: it starts an
 * idle watcher (lowest priority: it runs when no input is pending), which does. */
static void rearm_reorder(struct mux *m)
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
    (void)reorder_expire(m->ro, mono_us(), m->ro_timeout_us);
    rearm_reorder(m);
}

static void reorder_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)loop;
    (void)revents;
    expire_reorder(w->data);
}

/* Links are FIFO: a gseq below every up link's progress that is still missing was lost. */
static void release_passed(struct mux *m)
{
    bool any = false;
    uint32_t min = 0;
    for (int i = 0; i < m->nlinks; i++) {
        const struct mux_link *ml = &m->links[m->order[i]];
        if (!ml->up) continue;
        if (!ml->have_passed) return;
        if (!any || seq_lt(ml->passed, min)) min = ml->passed;
        any = true;
    }
    if (any) reorder_release_before(m->ro, min);
}

static void reorder_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
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

static void note_passed(struct mux_link *ml, uint32_t upto)
{
    if (!ml->have_passed || seq_lt(ml->passed, upto)) ml->passed = upto;
    ml->have_passed = true;
}

/* ---------------------------------------------------------------- sessions */

static void session_reset_links(struct mux *m)
{
    m->have_owd_ref = false;
    for (int i = 0; i < m->nlinks; i++) link_reset(m, &m->links[m->order[i]]);
    reorder_reset(m->ro, 0);
    ev_timer_stop(m->loop, &m->ro_timer);
    ev_idle_stop(m->loop, &m->ro_idle);
    m->tx_gseq = 0;
    m->session_at_us = mono_us();
    m->c.sessions++;
}

static void master_promote(struct mux *m)
{
    m->cur = m->pending;
    memset(&m->pending, 0, sizeof m->pending);
    session_reset_links(m);
    LOGI("session %llu established with the slave (key phase %u)",
         (unsigned long long)m->c.sessions, m->cur.keys.phase);
}

static void handle_hello(struct mux *m, const uint8_t *buf, size_t len, uint8_t link_id,
                         const struct sockaddr *from, socklen_t fromlen)
{
    m->c.hello_rx++;
    uint8_t spk[32];
    if (hs_server_open_hello(&m->cfg.keys, buf, len, spk) != 0) {
        m->c.hello_bad++;
        log_limited(&m->lim_hello, LOG_WARN,
                    "handshake from %s failed authentication (is the key the same on both ends?)",
                    addr_str(from, (char[ADDR_STRLEN]){0}, ADDR_STRLEN));
        return;
    }
    const struct hs_server_result *res = NULL;
    if (m->pending.valid && memcmp(spk, m->pending.res.spk, 32) == 0)
        res = &m->pending.res;
    else if (m->cur.valid && memcmp(spk, m->cur.res.spk, 32) == 0)
        res = &m->cur.res;
    if (!res) {
        uint64_t now = mono_us();
        if (now - m->hello_window_us >= 1000000u) {
            m->hello_window_us = now;
            m->hello_count = 0;
        }
        if (m->hello_count >= HELLO_RATE_PER_S) {
            m->c.hello_ratelimited++;
            return;
        }
        m->hello_count++;
        uint8_t phase = m->cur.valid ? (uint8_t)(1u - m->cur.keys.phase) : 0;
        struct mux_session s = {0};
        if (hs_server_answer(&m->cfg.keys, spk, phase, &s.res) != 0) {
            m->c.hello_bad++;
            return;
        }
        s.valid = true;
        s.keys = s.res.keys;
        m->pending = s;
        res = &m->pending.res;
        char as[ADDR_STRLEN];
        LOGI("handshake from %s (link id %u): offering a new session", addr_str(from, as, sizeof as),
             link_id);
    }
    uint8_t reply[HELLO_LEN];
    hs_server_reply(&m->cfg.keys, res, link_id, reply);
    if (m->cb.reply_to) m->cb.reply_to(m->cb.ctx, reply, sizeof reply, from, fromlen);
}

static void slave_start_handshake(struct mux *m, uint64_t now)
{
    hs_client_start(&m->hs);
    m->hs_active = true;
    m->hs_started_us = now;
    m->hs_last_tx_us = 0;
}

static void slave_send_hellos(struct mux *m, uint64_t now)
{
    m->hs_last_tx_us = now;
    uint8_t hello[HELLO_LEN];
    for (int i = 0; i < m->nlinks; i++) {
        struct mux_link *ml = &m->links[m->order[i]];
        if (!transport_up(ml)) continue;
        hs_client_hello(&m->hs, &m->cfg.keys, ml->id, hello);
        link_send(ml->tl, hello, sizeof hello);
    }
}

static void handle_reply(struct mux *m, struct mux_link *ml, const uint8_t *buf, size_t len)
{
    if (!m->hs_active) return; /* an answer to a HELLO we no longer wait for */
    struct session_keys k;
    int rc = hs_client_reply(&m->hs, &m->cfg.keys, buf, len, &k);
    if (rc != 0) {
        if (rc != HS_ERR_STALE) {
            m->c.hello_bad++;
            log_limited(&m->lim_hello, LOG_WARN,
                        "handshake reply on link %s failed authentication (is the key the same "
                        "on both ends?)",
                        ml->tl->name);
        }
        return;
    }
    m->hs_active = false;
    hs_client_wipe(&m->hs);
    m->cur.valid = true;
    m->cur.keys = k;
    session_reset_links(m);
    uint64_t now = mono_us();
    m->last_any_rx_us = now;
    LOGI("session %llu established with the master via link %s",
         (unsigned long long)m->c.sessions, ml->tl->name);
    for (int i = 0; i < m->nlinks; i++) send_beat(m, &m->links[m->order[i]], now);
}

/* ---------------------------------------------------------------- receiving */

static void handle_ctrl(struct mux *m, struct mux_link *ml, const uint8_t *p, size_t len,
                        uint64_t now)
{
    struct ctrl_msg msgs[CTRL_MAX_MSGS];
    int n = ctrl_decode(p, len, msgs, CTRL_MAX_MSGS);
    if (n < 0) {
        m->c.malformed++;
        log_limited(&m->lim_malformed, LOG_WARN, "malformed control message from the %s",
                    role(m));
        return;
    }
    for (int i = 0; i < n; i++) {
        if (msgs[i].kind == CTRL_BEAT) {
            const struct ctrl_beat *b = &msgs[i].u.beat;
            ml->peer_hears = (b->flags & CTRL_BEAT_F_HEARS) != 0;
            if (ml->peer_hears) ml->peer_down = false;
            if (ml->have_fb) {
                uint32_t dus = b->report_us - ml->fb.report_us;
                uint64_t dpk = b->rx_packets - ml->fb.rx_packets;
                uint64_t dhi = b->rx_highest - ml->fb.rx_highest;
                if (dus > 0 && dus < 10000000u && b->rx_packets >= ml->fb.rx_packets) {
                    struct sched_feedback fb = {0};
                    fb.interval_s = dus / 1e6;
                    fb.delivered_Bps = (double)(b->rx_bytes - ml->fb.rx_bytes) / fb.interval_s;
                    fb.loss = dhi > 0 && dpk < dhi ? 1.0 - (double)dpk / (double)dhi : 0.0;
                    fb.srtt_ms = ml->have_rtt ? ml->srtt / 1000.0 : 0;
                    fb.min_rtt_ms = ml->have_rtt ? ml->min_rtt / 1000.0 : 0;
                    ml->delivered_Bps = fb.delivered_Bps;
                    ml->loss = fb.loss;
                    sched_feedback(&m->sched, &m->sl[ml->pos], &fb);
                }
            }
            ml->fb = *b;
            ml->have_fb = true;
        } else if (msgs[i].kind == CTRL_LINK_DOWN) {
            struct mux_link *o = &m->links[msgs[i].u.down.link_id];
            if (o->used) {
                o->peer_down = true;
                o->peer_hears = false;
                update_state(m, o, now);
            }
            /* The master is going away: look for its successor at once instead of waiting
             * for rehandshake_ms of silence. */
            if (!m->cfg.is_master && msgs[i].u.down.reason == CTRL_DOWN_SHUTDOWN &&
                mux_links_up(m) == 0 && !m->hs_active)
                slave_start_handshake(m, now);
        }
    }
}

static void on_dgram(struct mux *m, struct mux_link *via, uint8_t *buf, size_t len,
                     const struct sockaddr *from, socklen_t fromlen)
{
    struct wire_hdr h;
    int rc = wire_peek(buf, len, &h);
    if (rc != WIRE_OK) {
        m->c.malformed++;
        char as[ADDR_STRLEN];
        log_limited(&m->lim_malformed, LOG_WARN, "dropped a malformed datagram from %s: %s",
                    addr_str(from, as, sizeof as), wire_strerror(rc));
        return;
    }
    if (h.type == WIRE_HELLO) {
        if (m->cfg.is_master) handle_hello(m, buf, len, h.link_id, from, fromlen);
        else m->c.malformed++;
        return;
    }
    if (h.type == WIRE_HELLO_REPLY) {
        if (!m->cfg.is_master && via) handle_reply(m, via, buf, len);
        else m->c.malformed++;
        return;
    }
    if (via && via->id != h.link_id) {
        m->c.wrong_link++;
        return;
    }
    struct mux_session *s = NULL;
    if (m->cur.valid && m->cur.keys.phase == h.phase) s = &m->cur;
    else if (m->pending.valid && m->pending.keys.phase == h.phase) s = &m->pending;
    if (!s) {
        m->c.no_session++;
        char as[ADDR_STRLEN];
        log_limited(&m->lim_nosession, LOG_INFO,
                    "dropped datagrams from %s: no session for them yet (handshake pending)",
                    addr_str(from, as, sizeof as));
        return;
    }
    bool pending = s == &m->pending;
    struct mux_link *ml = &m->links[h.link_id];
    if (!pending && ml->used && !replay_check(&ml->replay, h.counter)) {
        m->c.replay++;
        char as[ADDR_STRLEN];
        log_limited(&m->lim_replay, LOG_WARN, "dropped a replayed or too old datagram from %s",
                    addr_str(from, as, sizeof as));
        return;
    }
    uint8_t *payload;
    size_t plen;
    rc = wire_open(buf, len, s->keys.rx, &h, &payload, &plen);
    if (rc != WIRE_OK) {
        if (rc == WIRE_ERR_AUTH) m->c.auth_fail++;
        else m->c.malformed++;
        char as[ADDR_STRLEN];
        log_limited(&m->lim_auth, LOG_WARN, "dropped a datagram from %s: %s",
                    addr_str(from, as, sizeof as), wire_strerror(rc));
        return;
    }
    /* Authenticated: only now may the datagram change any state. */
    if (pending) master_promote(m);
    if (!ml->used) {
        struct link *tl = m->cb.new_link ? m->cb.new_link(m->cb.ctx, h.link_id) : NULL;
        if (!tl) return;
        ml = link_slot(m, h.link_id, tl, true);
        LOGI("learned link id %u", h.link_id);
    }
    replay_mark(&ml->replay, h.counter);
    uint64_t now = mono_us();
    if (ml->tl->ops->peer_seen) ml->tl->ops->peer_seen(ml->tl, from, fromlen);
    bool first = !ml->heard || now - ml->last_rx_us > (uint64_t)m->cfg.dead_timeout_ms * 1000u;
    ml->heard = true;
    ml->last_rx_us = now;
    m->last_any_rx_us = now;
    ml->rx_packets++;
    ml->rx_bytes += len;
    if (h.counter > ml->rx_highest) ml->rx_highest = h.counter;
    ml->peer_ts = h.ts;
    ml->peer_ts_rx_us = now;
    ml->have_peer_ts = true;
    owd_sample(m, ml, h.ts, now);
    if (h.echo_valid) {
        uint32_t units = (uint16_t)(wire_ts(now) - h.echo);
        uint64_t rtt = (uint64_t)units * WIRE_TS_UNIT_US;
        if (rtt < WIRE_RTT_MAX_US) rtt_sample(ml, (double)rtt, now);
    }
    if (h.type == WIRE_DATA) {
        ml->rx_data++;
        m->c.rx_data++;
        note_passed(ml, h.gseq + 1);
        update_state(m, ml, now);
        /* A packet whose gap was already given up is still worth more to TCP than a resend:
         * deliver it out of order. Duplicates are dropped. */
        enum reorder_result rr = reorder_push(m->ro, h.gseq, payload, plen, now);
        if (rr == REORDER_LATE) {
            m->c.rx_late_delivered++;
            log_limited(&m->lim_late, LOG_DEBUG,
                        "link %s: gseq %u arrived after its gap was given up (reorder timeout "
                        "%.1f ms, next %u): delivered out of order",
                        ml->tl ? ml->tl->name : "?", h.gseq, m->ro_timeout_us / 1000.0,
                        reorder_next(m->ro));
            m->cb.deliver(m->cb.ctx, payload, plen);
        } else if (rr == REORDER_TOOBIG) {
            m->c.rx_too_big++;
            log_limited(&m->lim_big, LOG_WARN,
                        "dropped a %zu-byte tunnel packet from the %s: larger than this end's "
                        "tunnel MTU %u; set the same tunnel.mtu on both ends",
                        plen, role(m), m->cfg.mtu);
        }
    } else {
        m->c.rx_ctrl++;
        note_passed(ml, h.gseq);
        handle_ctrl(m, ml, payload, plen, now);
        update_state(m, ml, now);
    }
    if (reorder_stats(m->ro)->held) {
        release_passed(m);
        rearm_reorder(m);
    }
    /* A link heard again after silence: tell the peer at once rather than at the next beat, so
     * the link is usable after one round trip. */
    if (first) send_beat(m, ml, now);
}

static void link_rx(void *ctx, struct link *l, uint8_t *buf, size_t len,
                    const struct sockaddr *from, socklen_t fromlen)
{
    struct mux *m = ctx;
    struct mux_link *ml = &m->links[l->id];
    if (!ml->used || ml->tl != l) return;
    on_dgram(m, ml, buf, len, from, fromlen);
}

void mux_input(struct mux *m, uint8_t *buf, size_t len, const struct sockaddr *from,
               socklen_t fromlen)
{
    on_dgram(m, NULL, buf, len, from, fromlen);
}

/* ---------------------------------------------------------------- timers */

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct mux *m = w->data;
    uint64_t now = mono_us();
    if (!m->cfg.is_master) {
        bool silent = now - m->last_any_rx_us > (uint64_t)m->cfg.rehandshake_ms * 1000u;
        bool worn = false; /* counters half way to 2^48: new keys long before any nonce repeats */
        for (int i = 0; i < m->nlinks; i++) {
            const struct mux_link *ml = &m->links[m->order[i]];
            if (ml->tx_counter > COUNTER_REKEY || ml->rx_highest > COUNTER_REKEY) worn = true;
        }
        if (!m->hs_active && (!m->cur.valid || silent || worn)) {
            if (m->cur.valid && silent)
                LOGW("nothing heard from the master on any link for %u ms: new handshake",
                     m->cfg.rehandshake_ms);
            else if (m->cur.valid)
                LOGI("packet counters are half used up: new handshake for fresh keys");
            slave_start_handshake(m, now);
        }
        if (m->hs_active && now - m->hs_last_tx_us >= HELLO_INTERVAL_US) slave_send_hellos(m, now);
    }
    uint64_t beat = (uint64_t)m->cfg.beat_interval_ms * 1000u;
    uint64_t stale = (uint64_t)m->cfg.dead_timeout_ms * 4000u; /* 4 dead timeouts */
    if (stale < STALE_MIN_US) stale = STALE_MIN_US;
    for (int i = 0; i < m->nlinks; i++) {
        struct mux_link *ml = &m->links[m->order[i]];
        update_state(m, ml, now);
        /* A link silent for a while may need a new path: tell its transport, then again after
         * 2x, 4x ... the interval (at most a minute) while the silence lasts. */
        uint64_t quiet_since = ml->silent_since_us; /* transport (re)started or session began */
        if (ml->heard && ml->last_rx_us > quiet_since) quiet_since = ml->last_rx_us;
        if (!transport_up(ml)) {
            ml->silent_since_us = now;
            ml->next_stale_us = 0;
        } else if (now - quiet_since <= stale) {
            ml->next_stale_us = 0;
        } else if (ml->tl->ops->stale) {
            if (ml->next_stale_us == 0) {
                ml->stale_gap_us = stale;
                ml->next_stale_us = quiet_since + stale;
            }
            if (now >= ml->next_stale_us) {
                ml->tl->ops->stale(ml->tl);
                if (ml->stale_gap_us < 60000000u) ml->stale_gap_us *= 2;
                ml->next_stale_us = now + ml->stale_gap_us;
            }
        }
        if (m->cur.valid && transport_up(ml) && now - ml->last_beat_us >= beat)
            send_beat(m, ml, now);
    }
    update_reorder_timeout(m);
}

/* ---------------------------------------------------------------- lifecycle */

struct mux *mux_new(struct ev_loop *loop, const struct mux_config *cfg,
                    const struct mux_callbacks *cb)
{
    struct mux *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->loop = loop;
    m->cfg = *cfg;
    m->cb = *cb;
    size_t maxpkt = cfg->mtu > 1500 ? cfg->mtu : 1500;
    m->ro = reorder_new(cfg->reorder_slots ? cfg->reorder_slots : 4096, maxpkt, deliver, m);
    if (!m->ro) {
        free(m);
        return NULL;
    }
    sched_init(&m->sched, INITIAL_RATE_BPS);
    m->ro_timeout_us = REORDER_FLOOR_US;
    ev_timer_init(&m->ro_timer, reorder_timer_cb, 0, 0);
    m->ro_timer.data = m;
    ev_idle_init(&m->ro_idle, reorder_idle_cb);
    ev_set_priority(&m->ro_idle, EV_MINPRI);
    m->ro_idle.data = m;
    double tick = cfg->beat_interval_ms / 4000.0;
    if (tick < 0.005) tick = 0.005;
    if (tick > 0.05) tick = 0.05;
    ev_timer_init(&m->tick, tick_cb, tick, tick);
    m->tick.data = m;
    m->lim_hello.interval_us = 5000000u;
    m->lim_late.interval_us = 1000000u;
    return m;
}

int mux_add_link(struct mux *m, struct link *l)
{
    if (m->links[l->id].used) return -1;
    link_slot(m, l->id, l, false);
    return 0;
}

void mux_start(struct mux *m)
{
    m->started = true;
    ev_timer_start(m->loop, &m->tick);
    if (!m->cfg.is_master) {
        uint64_t now = mono_us();
        slave_start_handshake(m, now);
        slave_send_hellos(m, now);
    }
}

void mux_shutdown(struct mux *m)
{
    if (!m->started) return;
    uint64_t now = mono_us();
    uint8_t buf[2 * MUX_MAX_LINKS + 8];
    size_t pos = 0;
    for (int i = 0; i < m->nlinks && i < CTRL_MAX_MSGS; i++) {
        struct ctrl_link_down d = {.link_id = m->order[i], .reason = CTRL_DOWN_SHUTDOWN};
        ctrl_put_link_down(buf, sizeof buf, &pos, &d);
    }
    for (int i = 0; i < m->nlinks; i++) {
        struct mux_link *ml = &m->links[m->order[i]];
        if (ml->up) send_ctrl(m, ml, buf, pos, now);
    }
    ev_timer_stop(m->loop, &m->tick);
    ev_timer_stop(m->loop, &m->ro_timer);
    ev_idle_stop(m->loop, &m->ro_idle);
    m->started = false;
}

void mux_free(struct mux *m)
{
    if (!m) return;
    ev_timer_stop(m->loop, &m->tick);
    ev_timer_stop(m->loop, &m->ro_timer);
    ev_idle_stop(m->loop, &m->ro_idle);
    for (int i = 0; i < m->nlinks; i++) {
        struct mux_link *ml = &m->links[m->order[i]];
        if (ml->owned) link_destroy(ml->tl);
        else if (ml->tl) link_set_handlers(ml->tl, &(struct link_handlers){0});
    }
    reorder_free(m->ro);
    memset(&m->cur, 0, sizeof m->cur);
    memset(&m->pending, 0, sizeof m->pending);
    free(m);
}

/* ---------------------------------------------------------------- status */

const struct mux_counters *mux_counters(const struct mux *m)
{
    return &m->c;
}

bool mux_has_session(const struct mux *m)
{
    return m->cur.valid;
}

int mux_links_up(const struct mux *m)
{
    int n = 0;
    for (int i = 0; i < m->nlinks; i++) n += m->links[m->order[i]].up;
    return n;
}

#define COUNTERS(X)                                                                                \
    X(malformed) X(no_session) X(replay) X(auth_fail) X(wrong_link) X(hello_rx)                   \
    X(hello_ratelimited) X(hello_bad) X(sessions) X(tx_data) X(tx_data_bytes) X(tx_no_link)       \
    X(tx_too_big) X(tx_ctrl) X(rx_data) X(rx_ctrl) X(rx_late_delivered) X(rx_too_big)

void mux_status_json(const struct mux *m, struct strbuf *sb)
{
    uint64_t now = mono_us();
    const struct reorder_stats *rs = reorder_stats(m->ro);
    sb_printf(sb, "{\"role\":\"%s\",\"session\":%s,\"session_age_s\":%.3f,\"links_up\":%d,",
              m->cfg.is_master ? "master" : "slave", m->cur.valid ? "true" : "false",
              m->cur.valid ? (double)(now - m->session_at_us) / 1e6 : 0.0, mux_links_up(m));
    sb_printf(sb, "\"counters\":{");
    const char *sep = "";
#define X(f)                                                                                       \
    sb_printf(sb, "%s\"" #f "\":%llu", sep, (unsigned long long)m->c.f);                          \
    sep = ",";
    COUNTERS(X)
#undef X
    sb_printf(sb, "},\"reorder\":{\"timeout_ms\":%.1f,\"delivered\":%llu,\"direct\":%llu,"
                  "\"dup\":%llu,\"late\":%llu,\"skipped\":%llu,\"overflow\":%llu,\"held\":%llu},",
              m->ro_timeout_us / 1000.0, (unsigned long long)rs->delivered,
              (unsigned long long)rs->direct, (unsigned long long)rs->dup,
              (unsigned long long)rs->late, (unsigned long long)rs->skipped,
              (unsigned long long)rs->overflow, (unsigned long long)rs->held);
    sb_printf(sb, "\"links\":[");
    for (int i = 0; i < m->nlinks; i++) {
        const struct mux_link *ml = &m->links[m->order[i]];
        char desc[160] = "";
        if (ml->tl) ml->tl->ops->describe(ml->tl, desc, sizeof desc);
        sb_printf(sb, "%s{\"id\":%u,\"name\":", i ? "," : "", ml->id);
        sb_json_str(sb, ml->tl ? ml->tl->name : "");
        sb_printf(sb, ",\"transport\":");
        sb_json_str(sb, desc);
        sb_printf(sb,
                  ",\"transport_up\":%s,\"up\":%s,\"peer_hears\":%s,\"since_s\":%.3f,"
                  "\"last_rx_ms\":%.1f,\"ups\":%llu,\"downs\":%llu,"
                  "\"rtt_ms\":%.3f,\"srtt_ms\":%.3f,\"rttvar_ms\":%.3f,\"min_rtt_ms\":%.3f,"
                  "\"delivered_Bps\":%.0f,\"loss\":%.4f,\"est_Bps\":%.0f,"
                  "\"tx_data\":%llu,\"tx_ctrl\":%llu,\"rx_data\":%llu,\"rx_packets\":%llu,"
                  "\"rx_bytes\":%llu,\"tx_packets\":%llu,\"tx_bytes\":%llu,"
                  "\"tx_errors\":%llu,\"tx_dropped\":%llu",
                  transport_up(ml) ? "true" : "false", ml->up ? "true" : "false",
                  ml->peer_hears ? "true" : "false",
                  ml->state_since_us ? (double)(now - ml->state_since_us) / 1e6 : 0.0,
                  ml->heard ? (double)(now - ml->last_rx_us) / 1e3 : -1.0,
                  (unsigned long long)ml->ups, (unsigned long long)ml->downs,
                  ml->have_rtt ? ml->last_rtt / 1e3 : 0.0, ml->have_rtt ? ml->srtt / 1e3 : 0.0,
                  ml->have_rtt ? ml->rttvar / 1e3 : 0.0, ml->have_rtt ? ml->min_rtt / 1e3 : 0.0,
                  ml->delivered_Bps, ml->loss, m->sl[ml->pos].est_Bps,
                  (unsigned long long)ml->tx_data, (unsigned long long)ml->tx_ctrl,
                  (unsigned long long)ml->rx_data, (unsigned long long)ml->rx_packets,
                  (unsigned long long)ml->rx_bytes,
                  (unsigned long long)(ml->tl ? ml->tl->c.tx_packets : 0),
                  (unsigned long long)(ml->tl ? ml->tl->c.tx_bytes : 0),
                  (unsigned long long)(ml->tl ? ml->tl->c.tx_errors : 0),
                  (unsigned long long)(ml->tl ? ml->tl->c.tx_dropped : 0));
        if (ml->tl) {
            sb_printf(sb, ",\"transport_rx_dropped\":%llu",
                      (unsigned long long)ml->tl->c.rx_dropped);
            if (ml->tl->ops->status_json) {
                sb_printf(sb, ",\"transport_info\":");
                ml->tl->ops->status_json(ml->tl, sb);
            }
        }
        sb_printf(sb, "}");
    }
    sb_printf(sb, "]}");
}

void mux_status_text(const struct mux *m, struct strbuf *sb)
{
    uint64_t now = mono_us();
    sb_printf(sb, "%s: %s, %d of %d links up\n", m->cfg.is_master ? "braid-master" : "braid-slave",
              m->cur.valid ? "session established" : "no session", mux_links_up(m), m->nlinks);
    sb_printf(sb, "%-4s %-12s %-5s %9s %9s %7s %10s %10s %10s  %s\n", "id", "name", "state",
              "srtt_ms", "min_ms", "loss", "rate_kbit", "tx_data", "rx_data", "transport");
    for (int i = 0; i < m->nlinks; i++) {
        const struct mux_link *ml = &m->links[m->order[i]];
        char desc[160] = "";
        if (ml->tl) ml->tl->ops->describe(ml->tl, desc, sizeof desc);
        sb_printf(sb, "%-4u %-12s %-5s %9.2f %9.2f %6.2f%% %10.0f %10llu %10llu  %s\n", ml->id,
                  ml->tl ? ml->tl->name : "", ml->up ? "up" : "down",
                  ml->have_rtt ? ml->srtt / 1e3 : 0.0, ml->have_rtt ? ml->min_rtt / 1e3 : 0.0,
                  ml->loss * 100, ml->delivered_Bps * 8 / 1000, (unsigned long long)ml->tx_data,
                  (unsigned long long)ml->rx_data, desc);
    }
    (void)now;
    sb_printf(sb, "counters:");
#define X(f) sb_printf(sb, " " #f "=%llu", (unsigned long long)m->c.f);
    COUNTERS(X)
#undef X
    sb_printf(sb, "\n");
}
