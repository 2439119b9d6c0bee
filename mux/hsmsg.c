/* hsmsg.c: wire version 3's handshake messages (INIT, RESPONSE, COOKIE_REPLY): layout, MAC1 and
 * MAC2 (keyed BLAKE2b-128), cookies and their sealed replies (XChaCha20-Poly1305), TAI64N. */
#include "hsmsg.h"

#include <netinet/in.h>
#include <sodium.h>
#include <string.h>

#include "../common/addr.h"
#include "../common/util.h"

#define LABEL_MAC1 "braid-v3 mac1"
#define LABEL_COOKIE "braid-v3 cookie"
#define NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES

_Static_assert(HS_INIT_LEN == 149, "INIT is 149 bytes");
_Static_assert(HS_RESPONSE_LEN == 93, "RESPONSE is 93 bytes");
_Static_assert(HS_COOKIE_REPLY_LEN == 64, "COOKIE_REPLY is 64 bytes");
_Static_assert(NONCE_LEN == 24, "XChaCha20 nonce");

static void derive(const char *label, const uint8_t pub[NOISE_KEY_LEN], uint8_t out[32])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const uint8_t *)label, strlen(label));
    crypto_generichash_update(&st, pub, NOISE_KEY_LEN);
    crypto_generichash_final(&st, out, 32);
}

void hs_peer_keys(const uint8_t pub[NOISE_KEY_LEN], struct hs_peer_keys *k)
{
    derive(LABEL_MAC1, pub, k->mac1);
    derive(LABEL_COOKIE, pub, k->cookie);
}

static size_t kind_len(uint8_t kind)
{
    switch (kind) {
    case HS_KIND_INIT: return HS_INIT_LEN;
    case HS_KIND_RESPONSE: return HS_RESPONSE_LEN;
    case HS_KIND_COOKIE: return HS_COOKIE_REPLY_LEN;
    default: return 0;
    }
}

int hs_peek(const uint8_t *msg, size_t len, uint8_t *kind, uint8_t *link_id)
{
    if (len < 4 || msg[0] != HS_BYTE0 || msg[3] != 0) return HS_ERR_FORMAT;
    if (kind_len(msg[2]) == 0 || kind_len(msg[2]) != len) return HS_ERR_FORMAT;
    *kind = msg[2];
    *link_id = msg[1];
    return 0;
}

static void mac(const uint8_t *key, size_t keylen, const uint8_t *msg, size_t len,
                uint8_t out[HS_MAC_LEN])
{
    crypto_generichash(out, HS_MAC_LEN, msg, len, key, keylen);
}

const uint8_t *hs_mac1_of(const uint8_t *msg, size_t len)
{
    return msg + len - 2 * HS_MAC_LEN;
}

bool hs_mac1_ok(const uint8_t *msg, size_t len, const struct hs_peer_keys *mine)
{
    if (len < 2 * HS_MAC_LEN) return false;
    uint8_t m[HS_MAC_LEN];
    mac(mine->mac1, sizeof mine->mac1, msg, len - 2 * HS_MAC_LEN, m);
    return sodium_memcmp(m, msg + len - 2 * HS_MAC_LEN, HS_MAC_LEN) == 0;
}

bool hs_mac2_ok(const uint8_t *msg, size_t len, const uint8_t cookie[HS_COOKIE_LEN])
{
    if (len < 2 * HS_MAC_LEN) return false;
    uint8_t m[HS_MAC_LEN];
    mac(cookie, HS_COOKIE_LEN, msg, len - HS_MAC_LEN, m);
    return sodium_memcmp(m, msg + len - HS_MAC_LEN, HS_MAC_LEN) == 0;
}

void hs_seal_macs(uint8_t *out, size_t len, const struct hs_peer_keys *to, const uint8_t *cookie)
{
    mac(to->mac1, sizeof to->mac1, out, len - 2 * HS_MAC_LEN, out + len - 2 * HS_MAC_LEN);
    if (cookie) mac(cookie, HS_COOKIE_LEN, out, len - HS_MAC_LEN, out + len - HS_MAC_LEN);
    else memset(out + len - HS_MAC_LEN, 0, HS_MAC_LEN);
}

static void header(uint8_t *out, uint8_t link_id, uint8_t kind)
{
    out[0] = HS_BYTE0;
    out[1] = link_id;
    out[2] = kind;
    out[3] = 0;
}

void hs_tai64n(uint64_t sec, uint32_t nsec, uint8_t out[HS_TS_LEN])
{
    put_be64(out, (1ull << 62) + sec);
    put_be32(out + 8, nsec & ~((1u << 24) - 1));
}

int hs_init_write(struct noise_hs *hs, const struct noise_keypair *e, uint8_t link_id,
                  uint32_t sender_index, const uint8_t ts[HS_TS_LEN], uint8_t flags,
                  const struct hs_peer_keys *responder, const uint8_t *cookie,
                  uint8_t out[HS_INIT_LEN])
{
    header(out, link_id, HS_KIND_INIT);
    put_be32(out + 4, sender_index);
    uint8_t payload[HS_INIT_PAYLOAD_LEN];
    memcpy(payload, ts, HS_TS_LEN);
    payload[HS_TS_LEN] = flags;
    int n = noise_write_msg1(hs, e, payload, sizeof payload, out + 8,
                             NOISE_MSG1_LEN(HS_INIT_PAYLOAD_LEN));
    if (n < 0) return n;
    hs_seal_macs(out, HS_INIT_LEN, responder, cookie);
    return 0;
}

int hs_init_read(struct noise_hs *hs, const uint8_t *msg, size_t len, uint32_t *sender_index,
                 uint8_t ts[HS_TS_LEN], uint8_t *flags)
{
    if (len != HS_INIT_LEN || msg[0] != HS_BYTE0 || msg[2] != HS_KIND_INIT || msg[3] != 0)
        return HS_ERR_FORMAT;
    if (get_be32(msg + 4) > 0xffffu) return HS_ERR_FORMAT; /* indices are 16 bits (section 3) */
    uint8_t t[HS_INIT_PAYLOAD_LEN];
    if (noise_read_msg1(hs, msg + 8, NOISE_MSG1_LEN(HS_INIT_PAYLOAD_LEN), t, sizeof t) !=
            HS_INIT_PAYLOAD_LEN ||
        (t[HS_TS_LEN] & ~HS_INIT_F_REKEY))
        return HS_ERR_NOISE;
    memcpy(ts, t, HS_TS_LEN);
    if (flags) *flags = t[HS_TS_LEN];
    *sender_index = get_be32(msg + 4);
    return 0;
}

int hs_response_write(struct noise_hs *hs, const struct noise_keypair *e, uint8_t link_id,
                      uint32_t sender_index, uint32_t receiver_index, uint8_t flags,
                      const struct hs_peer_keys *initiator, const uint8_t *cookie,
                      uint8_t out[HS_RESPONSE_LEN])
{
    header(out, link_id, HS_KIND_RESPONSE);
    put_be32(out + 4, sender_index);
    put_be32(out + 8, receiver_index);
    int n = noise_write_msg2(hs, e, &flags, HS_RESP_PAYLOAD_LEN, out + 12,
                             NOISE_MSG2_LEN(HS_RESP_PAYLOAD_LEN));
    if (n < 0) return n;
    hs_seal_macs(out, HS_RESPONSE_LEN, initiator, cookie);
    return 0;
}

void hs_relink(uint8_t *msg, size_t len, uint8_t link_id, const struct hs_peer_keys *to,
               const uint8_t *cookie)
{
    msg[1] = link_id;
    hs_seal_macs(msg, len, to, cookie);
}

uint32_t hs_receiver_index(const uint8_t *msg, size_t len)
{
    if (len == HS_RESPONSE_LEN) return get_be32(msg + 8);
    if (len == HS_COOKIE_REPLY_LEN) return get_be32(msg + 4);
    return 0;
}

int hs_response_read(struct noise_hs *hs, const uint8_t *msg, size_t len, uint32_t *sender_index,
                     uint8_t *flags)
{
    if (len != HS_RESPONSE_LEN || msg[0] != HS_BYTE0 || msg[2] != HS_KIND_RESPONSE || msg[3] != 0)
        return HS_ERR_FORMAT;
    if (get_be32(msg + 4) > 0xffffu) return HS_ERR_FORMAT; /* indices are 16 bits (section 3) */
    uint8_t f;
    if (noise_read_msg2(hs, msg + 12, NOISE_MSG2_LEN(HS_RESP_PAYLOAD_LEN), &f, 1) != 1 ||
        (f & ~HS_RESP_F_CONTINUED))
        return HS_ERR_NOISE;
    if (flags) *flags = f;
    *sender_index = get_be32(msg + 4);
    return 0;
}

void hs_cookie(const uint8_t secret[32], const struct sockaddr *from, socklen_t fromlen,
               uint8_t cookie[HS_COOKIE_LEN])
{
    /* address and port only (a sockaddr's padding and scope fields are not the source's) */
    uint8_t buf[18] = {0};
    size_t n = 0;
    from = addr_ip_of(from, &fromlen); /* (a TCP connection: its peer) */
    if (from->sa_family == AF_INET && fromlen >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)from;
        memcpy(buf, &a->sin_addr, 4);
        memcpy(buf + 4, &a->sin_port, 2);
        n = 6;
    } else if (from->sa_family == AF_INET6 && fromlen >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)from;
        memcpy(buf, &a->sin6_addr, 16);
        memcpy(buf + 16, &a->sin6_port, 2);
        n = 18;
    }
    crypto_generichash(cookie, HS_COOKIE_LEN, buf, n, secret, 32);
}

void hs_cookie_reply_write(const struct hs_peer_keys *mine, uint8_t link_id,
                           const uint8_t *init, const uint8_t cookie[HS_COOKIE_LEN],
                           uint8_t out[HS_COOKIE_REPLY_LEN])
{
    header(out, link_id, HS_KIND_COOKIE);
    memcpy(out + 4, init + 4, 4); /* the INIT's sender index */
    randombytes_buf(out + 8, NONCE_LEN);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + 8 + NONCE_LEN, NULL, cookie, HS_COOKIE_LEN,
                                               hs_mac1_of(init, HS_INIT_LEN), HS_MAC_LEN, NULL,
                                               out + 8, mine->cookie);
}

int hs_cookie_reply_read(const struct hs_peer_keys *responder, const uint8_t *msg, size_t len,
                         const uint8_t sent_mac1[HS_MAC_LEN], uint8_t cookie[HS_COOKIE_LEN])
{
    if (len != HS_COOKIE_REPLY_LEN || msg[0] != HS_BYTE0 || msg[2] != HS_KIND_COOKIE ||
        msg[3] != 0)
        return HS_ERR_FORMAT;
    uint8_t c[HS_COOKIE_LEN];
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(c, NULL, NULL, msg + 8 + NONCE_LEN,
                                                   HS_COOKIE_LEN + 16, sent_mac1, HS_MAC_LEN,
                                                   msg + 8, responder->cookie) != 0)
        return HS_ERR_COOKIE;
    memcpy(cookie, c, HS_COOKIE_LEN);
    return 0;
}
