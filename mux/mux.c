/* mux.c: the multiplexer's core: receiving (datagram and control-message dispatch), link
 * slots, the periodic tick, and the lifecycle (new, start, shutdown, free). */
#include "mux_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/addr.h"
#include "../common/bigmem.h"
#include "../common/util.h"

#define HELLO_INTERVAL_US 500000u
#define HS_FRESH_US 5000000u /* a new INIT after this long without an answer */
#define STALE_MIN_US 2000000u     /* silence before a link's transport is told to re-establish */
#define COUNTER_REKEY (UINT64_C(1) << 47)

void mux_config_defaults(struct mux_config *c)
{
    memset(c, 0, sizeof *c);
    c->beat_interval_ms = 100;
    c->dead_timeout_ms = 300;
    c->reorder_max_ms = 500;
    c->reorder_slots = 4096;
    c->rehandshake_ms = 2000;
    c->rekey_after_ms = 120000;
    c->mtu = 1440;
}

/* The link's state from what was heard; a link that can no longer carry data hands its send
 * queue on. */
static void refresh_link(struct mux *m, struct mux_link *ml, uint64_t now)
{
    if (update_state(m, ml, now) && ml->txq_head) txq_relocate(m, ml, now);
}

static void transport_state(void *ctx, struct link *l, bool up)
{
    struct mux *m = ctx;
    struct mux_link *ml = &m->links[l->id];
    if (!ml->used || ml->tl != l) return;
    uint64_t now = mono_us();
    refresh_link(m, ml, now);
    if (!up) {
        announce_down(m, l->id, CTRL_DOWN_TRANSPORT, now);
    } else if (!m->cfg.is_master && m->hs_active) {
        slave_send_init(m, ml);
    }
}

static void link_rx(void *ctx, struct link *l, uint8_t *buf, size_t len,
                    const struct sockaddr *from, socklen_t fromlen);

static struct mux_link *link_slot(struct mux *m, uint8_t id, struct link *tl, bool owned)
{
    struct mux_link *ml = &m->links[id];
    memset(ml, 0, sizeof *ml);
    ml->pos = m->nlinks;
    m->order[m->nlinks++] = id;
    ml->used = true;
    ml->owned = owned;
    ml->id = id;
    ml->tl = tl;
    if (pm_init(&ml->pm) != 0) LOGW("link id %u: out of memory for its path model", id);
    link_reset(m, ml);
    /* Slave links deliver datagrams through rx; the master's arrive through mux_input. */
    struct link_handlers h = {.rx = owned ? NULL : link_rx, .state = transport_state, .ctx = m};
    link_set_handlers(tl, &h);
    return ml;
}

/* ---------------------------------------------------------------- receiving */

static void handle_ctrl(struct mux *m, struct mux_link *ml, const uint8_t *p, size_t len,
                        uint32_t mark, uint64_t now)
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
            /* the slave's backup link: the master keeps its return traffic off it too */
            bool backup = (b->flags & CTRL_BEAT_F_BACKUP) != 0;
            if (m->cfg.is_master && backup != ml->backup) mux_link_backup(m, ml->id, backup);
            if (ml->peer_hears) ml->peer_down = false;
            beat_feedback(m, ml, b, now);
        } else if (msgs[i].kind == CTRL_LINK_NAME) {
            struct mux_link *o = &m->links[msgs[i].u.name.link_id];
            if (m->cfg.is_master && o->used && strcmp(o->peer_name, msgs[i].u.name.name) != 0) {
                LOGI("site %s: link id %u is the slave's \"%s\"", m->cfg.name, o->id,
                     msgs[i].u.name.name);
                memcpy(o->peer_name, msgs[i].u.name.name, sizeof o->peer_name);
            }
        } else if (msgs[i].kind == CTRL_REPORT) {
            report_apply(m, &msgs[i].u.report, mark, now);
        } else if (msgs[i].kind == CTRL_LINK_DOWN) {
            struct mux_link *o = &m->links[msgs[i].u.down.link_id];
            if (o->used) {
                o->peer_down = true;
                o->peer_hears = false;
                refresh_link(m, o, now);
            }
            /* The master is going away: look for its successor at once instead of waiting
             * for rehandshake_ms of silence. */
            if (!m->cfg.is_master && msgs[i].u.down.reason == CTRL_DOWN_SHUTDOWN &&
                mux_links_up(m) == 0 && !m->hs_active)
                slave_start_handshake(m, now, false);
        } else if (msgs[i].kind == CTRL_REKEY && !m->cfg.is_master) {
            /* the master asks for new keys */
            m->c.rekey_asked++;
            if (!m->hs_active && m->cur.valid) slave_start_handshake(m, now, true);
        }
    }
}

static void on_dgram(struct mux *m, struct mux_link *via, uint8_t *buf, size_t len,
                     const struct sockaddr *from, socklen_t fromlen)
{
    struct wire_hdr h;
    int rc = wire_peek(buf, len, &h);
    if (rc == WIRE_ERR_VERSION) {
        m->c.malformed++;
        char as[ADDR_STRLEN];
        log_limited(&m->lim_malformed, LOG_WARN,
                    "dropped a datagram from %s: it speaks braid wire version %d, this braid "
                    "speaks version %d; run the same braid release on both ends",
                    addr_str(from, as, sizeof as), wire_version_of(buf, len), WIRE_VERSION);
        return;
    }
    if (rc != WIRE_OK) {
        m->c.malformed++;
        char as[ADDR_STRLEN];
        log_limited(&m->lim_malformed, LOG_WARN, "dropped a malformed datagram from %s: %s",
                    addr_str(from, as, sizeof as), wire_strerror(rc));
        return;
    }
    if (h.type == WIRE_HANDSHAKE) {
        /* (the master's INITs go through its site table to mux_accept_init) */
        if (via && !m->cfg.is_master) handle_reply(m, via, buf, len);
        else m->c.malformed++;
        return;
    }
    if (via && via->id != h.link_id) {
        m->c.wrong_link++;
        return;
    }
    struct mux_session *s = NULL;
    if (m->cur.valid && m->cur.keys.local_index == h.index) s = &m->cur;
    else if (m->prev.valid && m->prev.keys.local_index == h.index) s = &m->prev;
    else if (m->pending.valid && m->pending.keys.local_index == h.index) s = &m->pending;
    if (!s) {
        m->c.no_session++;
        char as[ADDR_STRLEN];
        log_limited(&m->lim_nosession, LOG_INFO,
                    "dropped datagrams from %s: no session for them yet (handshake pending)",
                    addr_str(from, as, sizeof as));
        return;
    }
    bool pending = s == &m->pending;
    /* (a session that starts afresh starts its replay windows afresh; new keys that carry the
     * session on keep them, as the counters go on) */
    bool fresh = pending && !m->pending.keys.continued;
    struct mux_link *ml = &m->links[h.link_id];
    if (!fresh && ml->used && !replay_check(&ml->replay, h.counter)) {
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
        LOGI("site %s: learned link id %u", m->cfg.name, h.link_id);
    }
    replay_mark(&ml->replay, h.counter);
    uint64_t now = mono_us();
    if (ml->tl->ops->peer_seen) ml->tl->ops->peer_seen(ml->tl, from, fromlen);
    note_path(m, ml, from, fromlen, now);
    bool first = !ml->heard || now - ml->last_rx_us > (uint64_t)m->cfg.dead_timeout_ms * 1000u;
    ml->heard = true;
    ml->last_rx_us = now;
    m->last_any_rx_us = now;
    ml->rx_packets++;
    ml->rx_bytes += len;
    if (h.counter > ml->rx_highest || ml->rx_packets == 1) {
        ml->rx_highest = h.counter;
        ml->rx_highest_at_us = now;
    }
    ml->peer_ts = h.ts;
    ml->peer_ts_rx_us = now;
    ml->have_peer_ts = true;
    owd_sample(m, ml, h.ts, now);
    if (h.echo_valid) {
        uint32_t units = (uint16_t)(wire_ts(now) - h.echo);
        uint64_t rtt = (uint64_t)units * WIRE_TS_UNIT_US;
        if (rtt < WIRE_RTT_MAX_US) rtt_sample(m, ml, (double)rtt, now);
    }
    if (h.type == WIRE_DATA && h.unordered) {
        /* a small packet sent past the queues: at once, outside the order; its gseq is the
         * sender's mark, as in CTRL */
        ml->rx_data++;
        m->c.rx_data++;
        m->c.rx_unordered++;
        note_passed(ml, h.gseq);
        refresh_link(m, ml, now);
        m->cb.deliver(m->cb.ctx, payload, plen);
        report_maybe(m, now);
    } else if (h.type == WIRE_DATA) {
        ml->rx_data++;
        m->c.rx_data++;
        note_passed(ml, h.gseq + 1);
        report_maybe(m, now);
        refresh_link(m, ml, now);
        /* A packet whose gap was already given up is still worth more to TCP than a resend:
         * deliver it out of order. Duplicates are dropped. */
        enum reorder_result rr = reorder_push(m->ro, h.gseq, payload, plen, now);
        if (rr == REORDER_LATE) {
            m->c.rx_late_delivered++;
            ml->rx_late++;
            log_limited(&m->lim_late, LOG_DEBUG,
                        "link %s: gseq %u arrived after its gap was given up (reorder timeout "
                        "%.1f ms, next %u): delivered out of order",
                        link_name(ml), h.gseq, m->ro_timeout_us / 1000.0,
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
        handle_ctrl(m, ml, payload, plen, h.gseq, now);
        refresh_link(m, ml, now);
    }
    if (reorder_stats(m->ro)->held) {
        release_passed(m, now);
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
    if (!ml->used || (ml->tl != l && ml->old_tl != l)) return;
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
            slave_start_handshake(m, now, false);
        }
        /* no answer for a while: a fresh INIT (new ephemeral key and timestamp), as WireGuard
         * does after its REKEY_TIMEOUT */
        if (m->hs_active && now - m->hs_started_us >= HS_FRESH_US)
            slave_start_handshake(m, now, m->hs_rekey);
        if (m->hs_active && !m->cur.valid && now - m->hs_since_us >= HS_FRESH_US &&
            m->hs_last_tx_us != 0) {
            log_limited(&m->lim_noanswer, LOG_WARN,
                        "no answer from the master to the handshake for %.0f s: check that "
                        "master_public_key is the master's (`braid-master pubkey < its key "
                        "file`), that the master's sites list this slave's public key (and the "
                        "same psk), the master's address and port, and that a firewall lets UDP "
                        "through to it",
                        (double)(now - m->hs_since_us) / 1e6);
        }
        if (m->hs_active && now - m->hs_last_tx_us >= HELLO_INTERVAL_US) slave_send_hellos(m, now);
    }
    uint64_t beat = (uint64_t)m->cfg.beat_interval_ms * 1000u;
    uint64_t stale = (uint64_t)m->cfg.dead_timeout_ms * 4000u; /* 4 dead timeouts */
    if (stale < STALE_MIN_US) stale = STALE_MIN_US;
    for (int i = 0; i < m->nlinks; i++) {
        struct mux_link *ml = &m->links[m->order[i]];
        refresh_link(m, ml, now);
        uint64_t txb = ml->tl ? ml->tl->c.tx_bytes : 0;
        if (ml->meter_at_us == 0 || now - ml->meter_at_us >= 1000000u) {
            double dt = (double)(now - ml->meter_at_us) / 1e6;
            if (ml->meter_at_us && dt < 10 && txb >= ml->meter_tx &&
                ml->rx_bytes >= ml->meter_rx) { /* (a new session starts the counts again) */
                ml->tx_Bps = (double)(txb - ml->meter_tx) / dt;
                ml->rx_Bps = (double)(ml->rx_bytes - ml->meter_rx) / dt;
            }
            ml->meter_at_us = now;
            ml->meter_tx = txb;
            ml->meter_rx = ml->rx_bytes;
        }
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
        /* a budget freed by the loss timeout has no report to announce it */
        if (ml->txq_head) txq_drain(m, ml, now);
    }
    update_reorder_timeout(m, now);
    session_timers(m, now);
}

/* ---------------------------------------------------------------- lifecycle */

struct mux *mux_new(struct ev_loop *loop, const struct mux_config *cfg,
                    const struct mux_callbacks *cb)
{
    /* (a master holds one per site: pages it never writes, such as the slots of links that
     * do not exist, cost nothing) */
    struct mux *m = bigmem_zalloc(sizeof *m);
    if (!m) return NULL;
    m->loop = loop;
    m->cfg = *cfg;
    m->cb = *cb;
    size_t maxpkt = cfg->mtu > 1500 ? cfg->mtu : 1500;
    m->ro = reorder_new(cfg->reorder_slots ? cfg->reorder_slots : 4096, maxpkt, deliver_in_order, m);
    if (!m->ro) {
        bigmem_free(m, sizeof *m);
        return NULL;
    }
    m->sched = sched_find(cfg->scheduler[0] ? cfg->scheduler : NULL);
    if (!m->sched) {
        LOGE("mux.scheduler: \"%.*s\" is not a scheduler; expected one of: %s",
             (int)sizeof cfg->scheduler, cfg->scheduler, sched_names());
        reorder_free(m->ro);
        bigmem_free(m, sizeof *m);
        return NULL;
    }
    m->sched_state = m->sched->create(MUX_MAX_LINKS);
    if (!m->sched_state) {
        reorder_free(m->ro);
        bigmem_free(m, sizeof *m);
        return NULL;
    }
    m->ro_timeout_us = REORDER_FLOOR_US;
    txq_init(m);
    report_init(m);
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
    m->lim_noanswer.interval_us = 60000000u;
    m->lim_late.interval_us = 1000000u;
    return m;
}

int mux_add_link(struct mux *m, struct link *l)
{
    struct mux_link *ml = &m->links[l->id];
    if (ml->used) return -1;
    link_slot(m, l->id, l, false);
    if (m->started) refresh_link(m, ml, mono_us());
    return 0;
}

void mux_retire_link(struct mux *m, uint8_t id)
{
    struct mux_link *ml = &m->links[id];
    if (!ml->used || ml->retired) return;
    uint64_t now = mono_us();
    ml->retired = true;
    refresh_link(m, ml, now); /* down: its queue moves to the others */
    if (m->started) announce_down(m, id, CTRL_DOWN_SHUTDOWN, now);
    LOGI("link %s (id %u): removed", ml->tl ? ml->tl->name : "?", id);
}

struct link *mux_replace_link(struct mux *m, struct link *l)
{
    struct mux_link *ml = &m->links[l->id];
    if (!ml->used || ml->retired || !ml->tl) return NULL;
    uint64_t now = mono_us();
    struct link *old = ml->tl;
    ml->old_tl = old;
    ml->tl = l;
    struct link_handlers h = {.rx = link_rx, .state = transport_state, .ctx = m};
    link_set_handlers(l, &h);
    link_set_handlers(old, &h); /* late datagrams on the old one still count (link_rx) */
    ml->silent_since_us = now;
    ml->next_stale_us = 0;
    refresh_link(m, ml, now); /* down until the new transport comes up */
    return old;
}

int mux_link_admin(struct mux *m, const char *name, bool up)
{
    for (int i = 0; i < m->nlinks; i++) {
        struct mux_link *ml = &m->links[m->order[i]];
        if (ml->retired || !ml->tl || strcmp(ml->tl->name, name) != 0) continue;
        if (ml->admin_down == !up) return 0;
        uint64_t now = mono_us();
        ml->admin_down = !up;
        refresh_link(m, ml, now); /* down: its queue moves to the others */
        if (!up && m->started) announce_down(m, ml->id, CTRL_DOWN_SHUTDOWN, now);
        if (up) { /* as a transport coming up: a prompt beat and, during a handshake, an INIT */
            ml->silent_since_us = now;
            if (m->cur.valid && transport_up(ml)) send_beat(m, ml, now);
        }
        LOGI("link %s (id %u): %s by the admin", name, ml->id, up ? "enabled" : "disabled");
        return 0;
    }
    return -1;
}

void mux_link_backup(struct mux *m, uint8_t id, bool backup)
{
    struct mux_link *ml = &m->links[id];
    if (!ml->used || ml->backup == backup) return;
    ml->backup = backup;
    m->nbackup += backup ? 1 : -1;
    for (int i = 0; i < m->nlinks; i++) m->view[i].usable = m->links[m->order[i]].sendable;
    apply_backup(m);
}

void mux_release_link(struct mux *m, struct link *l)
{
    struct mux_link *ml = &m->links[l->id];
    if (!ml->used) return;
    if (ml->old_tl == l) ml->old_tl = NULL;
    if (ml->tl == l && ml->retired) ml->tl = NULL;
    if (ml->tl != l) link_set_handlers(l, &(struct link_handlers){0});
}

void mux_start(struct mux *m)
{
    m->started = true;
    ev_timer_start(m->loop, &m->tick);
    if (!m->cfg.is_master) {
        uint64_t now = mono_us();
        slave_start_handshake(m, now, false);
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
    ev_timer_stop(m->loop, &m->pace_timer);
    ev_timer_stop(m->loop, &m->report_timer);
    m->started = false;
}

void mux_free(struct mux *m)
{
    if (!m) return;
    ev_timer_stop(m->loop, &m->tick);
    ev_timer_stop(m->loop, &m->ro_timer);
    ev_idle_stop(m->loop, &m->ro_idle);
    ev_timer_stop(m->loop, &m->report_timer);
    txq_free_all(m);
    for (int i = 0; i < m->nlinks; i++) {
        struct mux_link *ml = &m->links[m->order[i]];
        pm_free(&ml->pm);
        if (ml->owned) link_destroy(ml->tl);
        else if (ml->tl) link_set_handlers(ml->tl, &(struct link_handlers){0});
        if (ml->old_tl) link_set_handlers(ml->old_tl, &(struct link_handlers){0});
    }
    reorder_free(m->ro);
    m->sched->destroy(m->sched_state);
    release_session(m, &m->cur);
    release_session(m, &m->prev);
    release_session(m, &m->pending);
    bigmem_free(m, sizeof *m);
}
