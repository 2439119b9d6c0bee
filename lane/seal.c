/* seal.c: the TCP lane's frames on a link connection: per-connection keys derived from the
 * session's and the master's challenge, ChaCha20-Poly1305 with counter nonces (libsodium). */
#include "lane.h"

#include <sodium.h>
#include <string.h>

#include "../common/util.h"

static const char LABEL[] = "braid lane v1";

static void derive(const uint8_t key[32], const uint8_t challenge[LANE_CHALLENGE_LEN],
                   uint8_t out[32])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, 32, 32);
    crypto_generichash_update(&st, (const uint8_t *)LABEL, sizeof LABEL - 1);
    crypto_generichash_update(&st, challenge, LANE_CHALLENGE_LEN);
    crypto_generichash_final(&st, out, 32);
}

void lane_keys_derive(const uint8_t session_tx[32], const uint8_t session_rx[32],
                      const uint8_t challenge[LANE_CHALLENGE_LEN], struct lane_keys *out)
{
    memset(out, 0, sizeof *out);
    derive(session_tx, challenge, out->tx.key);
    derive(session_rx, challenge, out->rx.key);
}

static void nonce_of(uint64_t counter, uint8_t n[crypto_aead_chacha20poly1305_ietf_NPUBBYTES])
{
    memset(n, 0, crypto_aead_chacha20poly1305_ietf_NPUBBYTES);
    for (int i = 0; i < 8; i++) n[4 + i] = (uint8_t)(counter >> (8 * i));
}

int lane_seal(struct lane_dir *d, const uint8_t *plain, size_t len, uint8_t *out, size_t cap)
{
    if (len > LANE_PLAIN_MAX || cap < LANE_FRAME_HDR + len + LANE_TAG_LEN ||
        d->counter == UINT64_MAX)
        return -1;
    put_be16(out, (uint16_t)(len + LANE_TAG_LEN));
    uint8_t n[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
    nonce_of(d->counter, n);
    unsigned long long clen;
    crypto_aead_chacha20poly1305_ietf_encrypt(out + LANE_FRAME_HDR, &clen, plain, len, out,
                                              LANE_FRAME_HDR, NULL, n, d->key);
    d->counter++;
    return (int)(LANE_FRAME_HDR + clen);
}

int lane_open(struct lane_dir *d, uint8_t *body, size_t blen)
{
    if (blen < LANE_TAG_LEN || blen > LANE_FRAME_MAX || d->counter == UINT64_MAX) return -1;
    uint8_t hdr[LANE_FRAME_HDR];
    put_be16(hdr, (uint16_t)blen);
    uint8_t n[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
    nonce_of(d->counter, n);
    unsigned long long mlen;
    if (crypto_aead_chacha20poly1305_ietf_decrypt(body, &mlen, NULL, body, blen, hdr,
                                                  LANE_FRAME_HDR, n, d->key) != 0)
        return -1;
    d->counter++;
    return (int)mlen;
}
