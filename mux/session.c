/* session.c: identities and the handshake's crypto steps (docs/PROTOCOL.md sections 2 and 5):
 * Noise IKpsk2 (mux/noise.c) inside wire version 3's handshake messages (mux/hsmsg.c). */
#include "session.h"

#include <sodium.h>
#include <string.h>


int session_crypto_init(void)
{
    return sodium_init() >= 0 ? 0 : -1;
}

int identity_init(struct identity *id, const uint8_t priv[NOISE_KEY_LEN])
{
    memcpy(id->key.priv, priv, NOISE_KEY_LEN);
    if (noise_pubkey(id->key.priv, id->key.pub) != 0) {
        sodium_memzero(id, sizeof *id);
        return -1;
    }
    hs_peer_keys(id->key.pub, &id->mine);
    return 0;
}

void peer_init(struct peer *p, const uint8_t pub[NOISE_KEY_LEN], const uint8_t psk[NOISE_KEY_LEN])
{
    memcpy(p->pub, pub, NOISE_KEY_LEN);
    memcpy(p->psk, psk, NOISE_KEY_LEN);
    hs_peer_keys(pub, &p->keys);
}

static void noise_start(struct noise_hs *hs, bool initiator, const struct identity *me,
                        const uint8_t *rs, const uint8_t *psk)
{
    static const uint8_t zero[NOISE_KEY_LEN];
    noise_hs_init(hs, initiator, (const uint8_t *)HS_PROLOGUE, sizeof HS_PROLOGUE - 1, &me->key,
                  rs, psk ? psk : zero);
}

/* ---- slave ---- */

int hs_client_start(struct hs_client *c, const struct identity *me, const struct peer *master,
                    uint64_t wall_sec, uint32_t wall_nsec, bool rekey)
{
    noise_start(&c->noise, true, me, master->pub, master->psk);
    c->index = randombytes_uniform(WIRE_INDEX_MAX + 1);
    uint8_t ts[HS_TS_LEN];
    hs_tai64n(wall_sec, wall_nsec, ts);
    int rc = hs_init_write(&c->noise, NULL, 0, c->index, ts, rekey ? HS_INIT_F_REKEY : 0,
                           &master->keys, NULL, c->init);
    return rc < 0 ? HS_ERR_NOISE : 0;
}

void hs_client_init_msg(struct hs_client *c, const struct peer *master, uint8_t link_id,
                        uint8_t out[HS_INIT_LEN])
{
    memcpy(out, c->init, HS_INIT_LEN);
    hs_relink(out, HS_INIT_LEN, link_id, &master->keys, c->have_cookie ? c->cookie : NULL);
    memcpy(c->sent_mac1, hs_mac1_of(out, HS_INIT_LEN), HS_MAC_LEN);
}

int hs_client_response(struct hs_client *c, const struct identity *me, const uint8_t *dg,
                       size_t len, struct session_keys *out)
{
    uint8_t kind, link;
    if (hs_peek(dg, len, &kind, &link) != 0 || kind != HS_KIND_RESPONSE) return HS_ERR_FORMAT;
    if (!hs_mac1_ok(dg, len, &me->mine)) return HS_ERR_MAC1;
    if (hs_receiver_index(dg, len) != c->index) return HS_ERR_STALE;
    struct noise_hs saved = c->noise; /* (a forged answer must not spoil the handshake) */
    uint32_t remote;
    uint8_t flags = 0;
    int rc = hs_response_read(&c->noise, dg, len, &remote, &flags);
    if (rc != 0) {
        c->noise = saved;
        sodium_memzero(&saved, sizeof saved);
        return rc;
    }
    sodium_memzero(&saved, sizeof saved);
    struct session_keys k = {.local_index = c->index, .remote_index = remote,
                             .continued = (flags & HS_RESP_F_CONTINUED) != 0};
    if (noise_split(&c->noise, k.tx, k.rx, NULL) != 0) return HS_ERR_NOISE;
    *out = k;
    sodium_memzero(&k, sizeof k);
    return 0;
}

int hs_client_cookie(struct hs_client *c, const struct peer *master, const uint8_t *dg,
                     size_t len)
{
    uint8_t kind, link;
    if (hs_peek(dg, len, &kind, &link) != 0 || kind != HS_KIND_COOKIE) return HS_ERR_FORMAT;
    if (hs_receiver_index(dg, len) != c->index) return HS_ERR_STALE;
    uint8_t cookie[HS_COOKIE_LEN];
    int rc = hs_cookie_reply_read(&master->keys, dg, len, c->sent_mac1, cookie);
    if (rc != 0) return rc;
    memcpy(c->cookie, cookie, sizeof cookie);
    c->have_cookie = true;
    return 0;
}

void hs_client_wipe(struct hs_client *c)
{
    noise_hs_wipe(&c->noise);
    sodium_memzero(c->init, sizeof c->init);
}

/* ---- master ---- */

int hs_server_read(struct hs_server *s, const struct identity *me, const uint8_t *dg, size_t len)
{
    noise_start(&s->noise, false, me, NULL, NULL);
    int rc = hs_init_read(&s->noise, dg, len, &s->remote_index, s->ts, &s->flags);
    if (rc != 0) {
        noise_hs_wipe(&s->noise);
        return rc;
    }
    memcpy(s->e, s->noise.re, NOISE_KEY_LEN);
    return 0;
}

int hs_server_answer(struct hs_server *s, const struct peer *site, uint32_t local_index,
                     bool continued, struct hs_server_result *out)
{
    memcpy(s->noise.psk, site->psk, NOISE_KEY_LEN);
    struct hs_server_result r = {0};
    memcpy(r.e, s->e, NOISE_KEY_LEN);
    if (hs_response_write(&s->noise, NULL, 0, local_index, s->remote_index,
                          continued ? HS_RESP_F_CONTINUED : 0, &site->keys, NULL,
                          r.response) != 0) {
        noise_hs_wipe(&s->noise);
        return HS_ERR_NOISE;
    }
    r.keys.local_index = local_index;
    r.keys.remote_index = s->remote_index;
    r.keys.continued = continued;
    /* the responder sends with the second key (responder to initiator) */
    noise_split(&s->noise, r.keys.rx, r.keys.tx, NULL);
    noise_hs_wipe(&s->noise);
    *out = r;
    sodium_memzero(&r, sizeof r);
    return 0;
}

void hs_server_response(const struct hs_server_result *res, const struct peer *site,
                        uint8_t link_id, uint8_t out[HS_RESPONSE_LEN])
{
    memcpy(out, res->response, HS_RESPONSE_LEN);
    hs_relink(out, HS_RESPONSE_LEN, link_id, &site->keys, NULL);
}
