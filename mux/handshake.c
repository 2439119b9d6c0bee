/* handshake.c: sessions: the master's part of answering an INIT its site table read (newer
 * timestamps only, a rate limit) and promoting a pending session, the slave starting handshakes
 * and taking the RESPONSE or a cookie; new keys every rekey_after_ms that carry the links' state
 * on, sessions refused 1.5 x that after they began, and the reset of the links for a session
 * that starts afresh. */
#include "mux_int.h"

#include <sodium.h>
#include <string.h>
#include <time.h>

#include "../common/addr.h"
#include "../common/keys.h"
#include "../common/util.h"

#define HELLO_RATE_PER_S 10u /* new sessions a second, per site */

/* A session that starts afresh (the first, or after silence or a restart): counters, replay
 * windows, gseq, the reorder buffer and the links' measurements start again. */
static void session_reset_links(struct mux *m)
{
    m->have_owd_ref = false;
    for (int i = 0; i < m->nlinks; i++) {
        txq_flush(m, &m->links[m->order[i]]); /* their gseqs belong to the old session */
        link_reset(m, &m->links[m->order[i]]);
    }
    reorder_reset(m->ro, 0);
    ev_timer_stop(m->loop, &m->ro_timer);
    ev_idle_stop(m->loop, &m->ro_idle);
    m->tx_gseq = 0;
    m->session_at_us = mono_us();
    m->c.sessions++;
}

static void send_response(struct mux *m, const struct hs_server_result *res, uint8_t link_id,
                          const struct sockaddr *from, socklen_t fromlen)
{
    uint8_t out[HS_RESPONSE_LEN];
    hs_server_response(res, &m->cfg.peer, link_id, out);
    if (m->cb.reply_to) m->cb.reply_to(m->cb.ctx, out, sizeof out, from, fromlen);
}

/* A receiver index for a new session: from the site table (unique among all sites), or our
 * own pick. */
static int claim_index(const struct mux *m, uint32_t *x)
{
    if (m->cb.index_claim) return m->cb.index_claim(m->cb.ctx, x);
    do *x = randombytes_uniform(WIRE_INDEX_MAX + 1);
    while ((m->cur.valid && *x == m->cur.keys.local_index) ||
           (m->pending.valid && *x == m->pending.keys.local_index));
    return 0;
}

void release_session(struct mux *m, struct mux_session *s)
{
    if (s->valid && m->cfg.is_master && m->cb.index_release)
        m->cb.index_release(m->cb.ctx, s->keys.local_index);
    sodium_memzero(s, sizeof *s);
}

/* The new session s becomes current. A rekey keeps everything but the keys and the index:
 * counters go on (a nonce is never used twice under one key, and the replay windows stay
 * right), and so do gseq, the reorder buffer, the send queues and the links' measurements;
 * the old session stays for the datagrams in flight under its keys. */
static void take_session(struct mux *m, struct mux_session *s, bool carry_on, uint64_t now)
{
    release_session(m, &m->prev);
    if (carry_on) {
        m->prev = m->cur;
        m->cur = *s;
        m->session_at_us = now;
        m->c.sessions++;
        m->c.rekeys++;
    } else {
        release_session(m, &m->cur);
        m->cur = *s;
        session_reset_links(m);
    }
    memset(s, 0, sizeof *s);
}

void master_promote(struct mux *m)
{
    bool carry = m->pending.keys.continued && m->cur.valid;
    take_session(m, &m->pending, carry, mono_us());
    if (carry)
        LOGD("site %s: new keys (session %llu, index %04x)", m->cfg.name,
             (unsigned long long)m->c.sessions, m->cur.keys.local_index);
    else
        LOGI("site %s: session %llu established with the slave (index %04x)", m->cfg.name,
             (unsigned long long)m->c.sessions, m->cur.keys.local_index);
}

void mux_accept_init(struct mux *m, struct hs_server *s, uint8_t link_id,
                     const struct sockaddr *from, socklen_t fromlen)
{
    char as[ADDR_STRLEN];
    m->c.hello_rx++;
    /* The same INIT again (on another link, or retransmitted): the same answer. */
    const struct mux_session *same = NULL;
    if (m->pending.valid && sodium_memcmp(s->e, m->pending.res.e, NOISE_KEY_LEN) == 0)
        same = &m->pending;
    else if (m->cur.valid && sodium_memcmp(s->e, m->cur.res.e, NOISE_KEY_LEN) == 0)
        same = &m->cur;
    if (same) {
        noise_hs_wipe(&s->noise);
        send_response(m, &same->res, link_id, from, fromlen);
        return;
    }
    /* Only a newer INIT than any accepted from the site makes a session: a replayed one
     * changes nothing. */
    if (m->have_last_ts && memcmp(s->ts, m->last_ts, HS_TS_LEN) <= 0) {
        noise_hs_wipe(&s->noise);
        m->c.hello_replay++;
        log_limited(&m->lim_hello, LOG_WARN,
                    "site %s: handshake from %s is not newer than the last one accepted (a "
                    "replay, or the slave's clock went back): ignored",
                    m->cfg.name, addr_str(from, as, sizeof as));
        return;
    }
    uint64_t now = mono_us();
    window_roll(&m->hello_window_us, &m->hello_count, now);
    if (m->hello_count >= HELLO_RATE_PER_S) {
        noise_hs_wipe(&s->noise);
        m->c.hello_ratelimited++;
        return;
    }
    m->hello_count++;
    struct mux_session ns = {0};
    uint32_t index;
    if (claim_index(m, &index) != 0) {
        noise_hs_wipe(&s->noise);
        m->c.hello_ratelimited++;
        return;
    }
    /* new keys that carry the current session on, when the slave asks and there is one */
    bool carry = (s->flags & HS_INIT_F_REKEY) && m->cur.valid;
    if (hs_server_answer(s, &m->cfg.peer, index, carry, &ns.res) != 0) {
        if (m->cb.index_release) m->cb.index_release(m->cb.ctx, index);
        m->c.hello_bad++;
        return;
    }
    ns.valid = true;
    ns.keys = ns.res.keys;
    ns.created_us = now;
    release_session(m, &m->pending);
    m->pending = ns;
    sodium_memzero(&ns, sizeof ns);
    memcpy(m->last_ts, s->ts, HS_TS_LEN);
    m->have_last_ts = true;
    if (carry)
        LOGD("site %s: rekey from %s (link id %u): offering new keys", m->cfg.name,
             addr_str(from, as, sizeof as), link_id);
    else
        LOGI("site %s: handshake from %s (link id %u): offering a new session", m->cfg.name,
             addr_str(from, as, sizeof as), link_id);
    send_response(m, &m->pending.res, link_id, from, fromlen);
}

void slave_start_handshake(struct mux *m, uint64_t now, bool rekey)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (!m->hs_active) m->hs_since_us = now;
    m->hs_rekey = rekey && m->cur.valid;
    hs_client_start(&m->hs, &m->cfg.self, &m->cfg.peer, (uint64_t)ts.tv_sec, (uint32_t)ts.tv_nsec,
                    m->hs_rekey);
    m->hs_active = true;
    m->hs_started_us = now;
    m->hs_last_tx_us = 0;
}

void slave_send_init(struct mux *m, struct mux_link *ml)
{
    uint8_t init[HS_INIT_LEN];
    hs_client_init_msg(&m->hs, &m->cfg.peer, ml->id, init);
    link_send(ml->tl, init, sizeof init);
}

void slave_send_hellos(struct mux *m, uint64_t now)
{
    m->hs_last_tx_us = now;
    for (int i = 0; i < m->nlinks; i++) {
        struct mux_link *ml = &m->links[m->order[i]];
        if (transport_up(ml)) slave_send_init(m, ml);
    }
}

void handle_reply(struct mux *m, struct mux_link *ml, const uint8_t *buf, size_t len)
{
    uint8_t kind, lid;
    if (hs_peek(buf, len, &kind, &lid) != 0 || kind == HS_KIND_INIT) {
        m->c.malformed++;
        return;
    }
    if (!m->hs_active) return; /* an answer to an INIT we no longer wait for */
    if (kind == HS_KIND_COOKIE) {
        /* the master is under load: the next INITs carry the cookie (MAC2) */
        if (hs_client_cookie(&m->hs, &m->cfg.peer, buf, len) == 0) {
            m->c.cookie_rx++;
            slave_send_init(m, ml);
        }
        return;
    }
    struct session_keys k;
    int rc = hs_client_response(&m->hs, &m->cfg.self, buf, len, &k);
    if (rc != 0) {
        if (rc != HS_ERR_STALE) {
            m->c.hello_bad++;
            log_limited(&m->lim_hello, LOG_WARN,
                        "handshake answer on link %s failed: %s", ml->tl->name,
                        rc == HS_ERR_MAC1 ? "not made for this slave's public key"
                                          : "wrong keys or PSK (check the master's public key, "
                                            "the site's public_key and psk on the master)");
        }
        /* (the handshake goes on: a forged answer spoils nothing, and the real one may follow) */
        return;
    }
    m->hs_active = false;
    hs_client_wipe(&m->hs);
    uint64_t now = mono_us();
    /* the master carries the session on only when asked (hs_rekey) and while it has one */
    bool carry = k.continued && m->hs_rekey && m->cur.valid;
    struct mux_session ns = {.valid = true, .keys = k, .created_us = now};
    sodium_memzero(&k, sizeof k);
    take_session(m, &ns, carry, now);
    m->last_any_rx_us = now;
    if (carry)
        LOGD("new keys (session %llu) via link %s", (unsigned long long)m->c.sessions,
             ml->tl->name);
    else
        LOGI("session %llu established with the master via link %s",
             (unsigned long long)m->c.sessions, ml->tl->name);
    /* datagrams under the new keys at once: the master switches on the first one */
    for (int i = 0; i < m->nlinks; i++) send_beat(m, &m->links[m->order[i]], now);
}

#define REKEY_ASK_US 1000000u /* the master asks again after this long without new keys */

static uint64_t reject_us(const struct mux *m)
{
    return (uint64_t)m->cfg.rekey_after_ms * 1500u;
}

void session_timers(struct mux *m, uint64_t now)
{
    uint64_t rekey = (uint64_t)m->cfg.rekey_after_ms * 1000u;
    if (m->prev.valid && now - m->prev.created_us >= reject_us(m)) release_session(m, &m->prev);
    if (m->cur.valid && now - m->cur.created_us >= reject_us(m)) {
        /* no new keys in time (no answer to the rekeys): the session is over */
        if (m->cfg.is_master)
            LOGW("site %s: session %llu is %.1f s old without new keys: refused from now on",
                 m->cfg.name, (unsigned long long)m->c.sessions, reject_us(m) / 1e6);
        else
            LOGW("session %llu is %.1f s old without new keys: refused from now on",
                 (unsigned long long)m->c.sessions, reject_us(m) / 1e6);
        release_session(m, &m->cur);
        if (!m->cfg.is_master && m->hs_active && m->hs_rekey) slave_start_handshake(m, now, false);
    }
    if (!m->cur.valid || now - m->cur.created_us < rekey) return;
    if (!m->cfg.is_master) {
        if (!m->hs_active) slave_start_handshake(m, now, true);
        return;
    }
    /* Either end may ask for new keys; only the slave makes the handshake. The master asks
     * once its session is a quarter older than rekey_after (a slave that did not rekey by
     * itself), again every second. */
    if (now - m->cur.created_us >= rekey + rekey / 4 && !m->pending.valid &&
        now - m->rekey_asked_us >= REKEY_ASK_US) {
        uint8_t buf[8];
        size_t pos = 0;
        ctrl_put_rekey(buf, sizeof buf, &pos);
        for (int i = 0; i < m->nlinks; i++) {
            struct mux_link *ml = &m->links[m->order[i]];
            if (ml->up) send_ctrl(m, ml, buf, pos, now);
        }
        m->rekey_asked_us = now;
        m->c.rekey_asked++;
    }
}

#ifdef BRAID_FUZZ
void mux_fuzz_session(struct mux *m, const struct session_keys *k)
{
    m->hs_active = false;
    m->cur.valid = true;
    m->cur.keys = *k;
    m->cur.created_us = mono_us();
    session_reset_links(m);
}
#endif
