/* handshake.c: sessions: the master answering HELLOs and promoting a pending session, the
 * slave starting handshakes and taking the reply, and the per-session reset of the links. */
#include "mux_int.h"

#include <string.h>

#include "../common/addr.h"
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
    LOGI("session %llu established with the slave (key phase %u)",
         (unsigned long long)m->c.sessions, m->cur.keys.phase);
}

void handle_hello(struct mux *m, const uint8_t *buf, size_t len, uint8_t link_id,
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

void slave_start_handshake(struct mux *m, uint64_t now)
{
    hs_client_start(&m->hs);
    m->hs_active = true;
    m->hs_started_us = now;
    m->hs_last_tx_us = 0;
}

void slave_send_hellos(struct mux *m, uint64_t now)
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

void handle_reply(struct mux *m, struct mux_link *ml, const uint8_t *buf, size_t len)
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

#ifdef BRAID_FUZZ
void mux_fuzz_session(struct mux *m, const struct session_keys *k)
{
    m->hs_active = false;
    m->cur.valid = true;
    m->cur.keys = *k;
    session_reset_links(m);
}
#endif
