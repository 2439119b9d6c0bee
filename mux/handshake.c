/* handshake.c: sessions: the master answering INITs (MAC1, cookies under load, the site's key,
 * newer timestamps only) and promoting a pending session, the slave starting handshakes and
 * taking the RESPONSE or a cookie, and the per-session reset of the links. */
#include "mux_int.h"

#include <sodium.h>
#include <string.h>
#include <time.h>

#include "../common/addr.h"
#include "../common/keys.h"
#include "../common/util.h"

#define HELLO_RATE_PER_S 10u

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

void master_promote(struct mux *m)
{
    m->cur = m->pending;
    memset(&m->pending, 0, sizeof m->pending);
    session_reset_links(m);
    LOGI("session %llu established with the slave (index %08x)",
         (unsigned long long)m->c.sessions, m->cur.keys.local_index);
}

/* Handshakes a second above which the master is under load: INITs then need a cookie (MAC2)
 * before it spends an X25519 on them. */
#define LOAD_PER_S 50u

/* A one-second counting window: starts afresh once a second has passed. */
static void window_roll(uint64_t *start, unsigned *count, uint64_t now)
{
    if (now - *start >= 1000000u) {
        *start = now;
        *count = 0;
    }
}

static bool under_load(struct mux *m, uint64_t now)
{
    window_roll(&m->load_window_us, &m->load_count, now);
    if (++m->load_count > LOAD_PER_S) m->under_load_until = now + 1000000u;
    return now < m->under_load_until;
}

static const uint8_t *cookie_secret(struct mux *m, uint64_t now)
{
    if (!m->have_cookie_secret || now - m->cookie_secret_at >= HS_COOKIE_SECRET_US) {
        randombytes_buf(m->cookie_secret, sizeof m->cookie_secret);
        m->cookie_secret_at = now;
        m->have_cookie_secret = true;
    }
    return m->cookie_secret;
}

static void send_response(struct mux *m, const struct hs_server_result *res, uint8_t link_id,
                          const struct sockaddr *from, socklen_t fromlen)
{
    uint8_t out[HS_RESPONSE_LEN];
    hs_server_response(res, &m->cfg.peer, link_id, out);
    if (m->cb.reply_to) m->cb.reply_to(m->cb.ctx, out, sizeof out, from, fromlen);
}

static uint32_t new_index(const struct mux *m)
{
    uint32_t x;
    do x = randombytes_uniform(WIRE_INDEX_MAX + 1);
    while ((m->cur.valid && x == m->cur.keys.local_index) ||
           (m->pending.valid && x == m->pending.keys.local_index));
    return x;
}

void handle_init(struct mux *m, const uint8_t *buf, size_t len, uint8_t link_id,
                 const struct sockaddr *from, socklen_t fromlen)
{
    m->c.hello_rx++;
    char as[ADDR_STRLEN];
    uint8_t kind, lid;
    if (hs_peek(buf, len, &kind, &lid) != 0 || kind != HS_KIND_INIT) {
        m->c.malformed++;
        return;
    }
    /* Nothing is answered to whoever does not know our public key (MAC1)... */
    if (!hs_mac1_ok(buf, len, &m->cfg.self.mine)) {
        m->c.hello_bad++;
        log_limited(&m->lim_hello, LOG_WARN,
                    "handshake from %s is not for this master's public key (check "
                    "master_public_key in the slave's config)",
                    addr_str(from, as, sizeof as));
        return;
    }
    /* ...and under load, an X25519 is spent only on a source that proved its address. */
    uint64_t now = mono_us();
    if (under_load(m, now)) {
        uint8_t cookie[HS_COOKIE_LEN];
        hs_cookie(cookie_secret(m, now), from, fromlen, cookie);
        if (!hs_mac2_ok(buf, len, cookie)) {
            uint8_t out[HS_COOKIE_REPLY_LEN];
            hs_cookie_reply_write(&m->cfg.self.mine, link_id, buf, cookie, out);
            if (m->cb.reply_to) m->cb.reply_to(m->cb.ctx, out, sizeof out, from, fromlen);
            m->c.cookie_tx++;
            return;
        }
    }
    struct hs_server s;
    if (hs_server_read(&s, &m->cfg.self, buf, len) != 0) {
        m->c.hello_bad++;
        log_limited(&m->lim_hello, LOG_WARN, "handshake from %s failed: its Noise message does not "
                    "open (tampered, or another braid version)",
                    addr_str(from, as, sizeof as));
        return;
    }
    if (sodium_memcmp(s.noise.rs, m->cfg.peer.pub, NOISE_KEY_LEN) != 0) {
        char pk[KEY_B64_LEN];
        key_to_b64(s.noise.rs, pk);
        noise_hs_wipe(&s.noise);
        m->c.hello_bad++;
        log_limited(&m->lim_hello, LOG_WARN,
                    "handshake from %s: unknown public key %s (not the site's public_key)",
                    addr_str(from, as, sizeof as), pk);
        return;
    }
    /* The same INIT again (on another link, or retransmitted): the same answer. */
    const struct mux_session *same = NULL;
    if (m->pending.valid && sodium_memcmp(s.e, m->pending.res.e, NOISE_KEY_LEN) == 0)
        same = &m->pending;
    else if (m->cur.valid && sodium_memcmp(s.e, m->cur.res.e, NOISE_KEY_LEN) == 0)
        same = &m->cur;
    if (same) {
        noise_hs_wipe(&s.noise);
        send_response(m, &same->res, link_id, from, fromlen);
        return;
    }
    /* Only a newer INIT than any accepted from the site makes a session: a replayed one
     * changes nothing. */
    if (m->have_last_ts && memcmp(s.ts, m->last_ts, HS_TS_LEN) <= 0) {
        noise_hs_wipe(&s.noise);
        m->c.hello_replay++;
        log_limited(&m->lim_hello, LOG_WARN,
                    "handshake from %s is not newer than the last one accepted (a replay, or "
                    "the slave's clock went back): ignored",
                    addr_str(from, as, sizeof as));
        return;
    }
    window_roll(&m->hello_window_us, &m->hello_count, now);
    if (m->hello_count >= HELLO_RATE_PER_S) {
        noise_hs_wipe(&s.noise);
        m->c.hello_ratelimited++;
        return;
    }
    m->hello_count++;
    struct mux_session ns = {0};
    if (hs_server_answer(&s, &m->cfg.peer, new_index(m), &ns.res) != 0) {
        m->c.hello_bad++;
        return;
    }
    ns.valid = true;
    ns.keys = ns.res.keys;
    m->pending = ns;
    sodium_memzero(&ns, sizeof ns);
    memcpy(m->last_ts, s.ts, HS_TS_LEN);
    m->have_last_ts = true;
    LOGI("handshake from %s (link id %u): offering a new session", addr_str(from, as, sizeof as),
         link_id);
    send_response(m, &m->pending.res, link_id, from, fromlen);
}

void slave_start_handshake(struct mux *m, uint64_t now)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    hs_client_start(&m->hs, &m->cfg.self, &m->cfg.peer, (uint64_t)ts.tv_sec, (uint32_t)ts.tv_nsec);
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
    m->cur.valid = true;
    m->cur.keys = k;
    sodium_memzero(&k, sizeof k);
    session_reset_links(m);
    uint64_t now = mono_us();
    m->last_any_rx_us = now;
    LOGI("session %llu established with the master via link %s",
         (unsigned long long)m->c.sessions, ml->tl->name);
    for (int i = 0; i < m->nlinks; i++) send_beat(m, &m->links[m->order[i]], now);
}

#ifdef BRAID_FUZZ
void mux_fuzz_session(struct mux *m, const struct session_keys *k)
{
    m->hs_active = false;
    m->cur.valid = true;
    m->cur.keys = *k;
    session_reset_links(m);
}
#endif
