/* noise.c: the Noise IKpsk2 handshake with X25519, ChaCha20-Poly1305 (IETF) and SHA-256, all
 * from libsodium; the symmetric state follows the Noise specification (revision 34, sections
 * 5.1-5.3, 9) step by step. Checked against the Cacophony test vectors (tests/unit/test_noise.c). */
#include "noise.h"

#include <sodium.h>
#include <string.h>

#define PROTOCOL_NAME "Noise_IKpsk2_25519_ChaChaPoly_SHA256"

_Static_assert(crypto_hash_sha256_BYTES == NOISE_HASH_LEN, "SHA-256");
_Static_assert(crypto_scalarmult_BYTES == NOISE_KEY_LEN, "X25519");
_Static_assert(crypto_aead_chacha20poly1305_ietf_ABYTES == NOISE_TAG_LEN, "ChaChaPoly tag");

static void hmac(const uint8_t key[NOISE_HASH_LEN], const uint8_t *a, size_t alen,
                 const uint8_t *b, size_t blen, uint8_t out[NOISE_HASH_LEN])
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, NOISE_HASH_LEN);
    crypto_auth_hmacsha256_update(&st, a, alen);
    if (blen) crypto_auth_hmacsha256_update(&st, b, blen);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof st);
}

void noise_hkdf(const uint8_t ck[NOISE_HASH_LEN], const uint8_t *ikm, size_t ikm_len,
                uint8_t o1[NOISE_HASH_LEN], uint8_t o2[NOISE_HASH_LEN], uint8_t *o3)
{
    uint8_t tk[NOISE_HASH_LEN], t1[NOISE_HASH_LEN], t2[NOISE_HASH_LEN];
    const uint8_t one = 1, two = 2, three = 3;
    hmac(ck, ikm, ikm_len, NULL, 0, tk);
    hmac(tk, &one, 1, NULL, 0, t1);
    hmac(tk, t1, sizeof t1, &two, 1, t2);
    if (o3) hmac(tk, t2, sizeof t2, &three, 1, o3);
    memcpy(o1, t1, sizeof t1); /* (o1 may alias ck) */
    memcpy(o2, t2, sizeof t2);
    sodium_memzero(tk, sizeof tk);
    sodium_memzero(t1, sizeof t1);
    sodium_memzero(t2, sizeof t2);
}

static void mix_hash(struct noise_hs *hs, const uint8_t *data, size_t len)
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, hs->h, sizeof hs->h);
    crypto_hash_sha256_update(&st, data, len);
    crypto_hash_sha256_final(&st, hs->h);
}

static void mix_key(struct noise_hs *hs, const uint8_t *ikm, size_t len)
{
    noise_hkdf(hs->ck, ikm, len, hs->ck, hs->k, NULL);
    hs->has_k = true;
    hs->n = 0;
}

static void mix_key_and_hash(struct noise_hs *hs, const uint8_t *ikm, size_t len)
{
    uint8_t th[NOISE_HASH_LEN];
    noise_hkdf(hs->ck, ikm, len, hs->ck, th, hs->k);
    mix_hash(hs, th, sizeof th);
    sodium_memzero(th, sizeof th);
    hs->has_k = true;
    hs->n = 0;
}

static void nonce(uint64_t n, uint8_t out[crypto_aead_chacha20poly1305_ietf_NPUBBYTES])
{
    memset(out, 0, 4);
    for (int i = 0; i < 8; i++) out[4 + i] = (uint8_t)(n >> (8 * i));
}

/* EncryptAndHash: out gets len + tag bytes (the key is always set where IKpsk2 uses it). */
static void encrypt_and_hash(struct noise_hs *hs, const uint8_t *pt, size_t len, uint8_t *out)
{
    uint8_t nb[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
    nonce(hs->n++, nb);
    crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, pt, len, hs->h, sizeof hs->h, NULL, nb,
                                              hs->k);
    mix_hash(hs, out, len + NOISE_TAG_LEN);
}

static int decrypt_and_hash(struct noise_hs *hs, const uint8_t *ct, size_t len, uint8_t *out)
{
    uint8_t nb[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
    nonce(hs->n++, nb);
    if (crypto_aead_chacha20poly1305_ietf_decrypt(out, NULL, NULL, ct, len, hs->h, sizeof hs->h,
                                                  nb, hs->k) != 0)
        return NOISE_ERR_AUTH;
    mix_hash(hs, ct, len);
    return 0;
}

/* MixKey(DH(priv, pub)); NOISE_ERR_DH for a low-order public key. */
static int mix_dh(struct noise_hs *hs, const uint8_t priv[NOISE_KEY_LEN],
                  const uint8_t pub[NOISE_KEY_LEN])
{
    uint8_t ss[NOISE_KEY_LEN];
    if (crypto_scalarmult(ss, priv, pub) != 0) return NOISE_ERR_DH;
    mix_key(hs, ss, sizeof ss);
    sodium_memzero(ss, sizeof ss);
    return 0;
}

int noise_pubkey(const uint8_t priv[NOISE_KEY_LEN], uint8_t pub[NOISE_KEY_LEN])
{
    return crypto_scalarmult_base(pub, priv) == 0 ? 0 : -1;
}

void noise_keypair_new(struct noise_keypair *kp)
{
    do randombytes_buf(kp->priv, sizeof kp->priv);
    while (noise_pubkey(kp->priv, kp->pub) != 0);
}

void noise_hs_init(struct noise_hs *hs, bool initiator, const uint8_t *prologue, size_t prologue_len,
                   const struct noise_keypair *s, const uint8_t *rs, const uint8_t psk[NOISE_KEY_LEN])
{
    memset(hs, 0, sizeof *hs);
    /* the name is longer than HASHLEN: h = HASH(name) */
    crypto_hash_sha256(hs->h, (const uint8_t *)PROTOCOL_NAME, sizeof PROTOCOL_NAME - 1);
    memcpy(hs->ck, hs->h, sizeof hs->ck);
    mix_hash(hs, prologue, prologue_len);
    hs->initiator = initiator;
    hs->s = *s;
    memcpy(hs->psk, psk, sizeof hs->psk);
    /* pre-message "<- s": the responder's static key */
    if (initiator) memcpy(hs->rs, rs, sizeof hs->rs);
    mix_hash(hs, initiator ? hs->rs : hs->s.pub, NOISE_KEY_LEN);
}

void noise_hs_wipe(struct noise_hs *hs)
{
    sodium_memzero(hs, sizeof *hs);
}

/* The "e" token in a PSK handshake: MixHash(e.pub), then MixKey(e.pub). */
static void token_e(struct noise_hs *hs, const uint8_t pub[NOISE_KEY_LEN])
{
    mix_hash(hs, pub, NOISE_KEY_LEN);
    mix_key(hs, pub, NOISE_KEY_LEN);
}

static void set_e(struct noise_hs *hs, const struct noise_keypair *e)
{
    if (e) hs->e = *e;
    else noise_keypair_new(&hs->e);
}

/* -> e, es, s, ss, payload */
int noise_write_msg1(struct noise_hs *hs, const struct noise_keypair *e, const uint8_t *payload,
                     size_t plen, uint8_t *out, size_t cap)
{
    if (!hs->initiator || hs->step != 0) return NOISE_ERR_STATE;
    if (plen > 65535 || cap < NOISE_MSG1_LEN(plen)) return NOISE_ERR_LEN;
    set_e(hs, e);
    memcpy(out, hs->e.pub, NOISE_KEY_LEN);
    token_e(hs, hs->e.pub);
    int rc = mix_dh(hs, hs->e.priv, hs->rs);
    if (rc) return rc;
    encrypt_and_hash(hs, hs->s.pub, NOISE_KEY_LEN, out + NOISE_KEY_LEN);
    if ((rc = mix_dh(hs, hs->s.priv, hs->rs))) return rc;
    encrypt_and_hash(hs, payload, plen, out + NOISE_KEY_LEN + NOISE_KEY_LEN + NOISE_TAG_LEN);
    hs->step = 1;
    return (int)NOISE_MSG1_LEN(plen);
}

int noise_read_msg1(struct noise_hs *hs, const uint8_t *msg, size_t len, uint8_t *payload,
                    size_t cap)
{
    if (hs->initiator || hs->step != 0) return NOISE_ERR_STATE;
    if (len < NOISE_MSG1_LEN(0) || len - NOISE_MSG1_LEN(0) > cap) return NOISE_ERR_LEN;
    size_t plen = len - NOISE_MSG1_LEN(0);
    memcpy(hs->re, msg, NOISE_KEY_LEN);
    token_e(hs, hs->re);
    int rc = mix_dh(hs, hs->s.priv, hs->re);
    if (rc) return rc;
    const uint8_t *p = msg + NOISE_KEY_LEN;
    if ((rc = decrypt_and_hash(hs, p, NOISE_KEY_LEN + NOISE_TAG_LEN, hs->rs))) return rc;
    if ((rc = mix_dh(hs, hs->s.priv, hs->rs))) return rc;
    p += NOISE_KEY_LEN + NOISE_TAG_LEN;
    if ((rc = decrypt_and_hash(hs, p, plen + NOISE_TAG_LEN, payload))) return rc;
    hs->step = 1;
    return (int)plen;
}

/* <- e, ee, se, psk, payload */
int noise_write_msg2(struct noise_hs *hs, const struct noise_keypair *e, const uint8_t *payload,
                     size_t plen, uint8_t *out, size_t cap)
{
    if (hs->initiator || hs->step != 1) return NOISE_ERR_STATE;
    if (plen > 65535 || cap < NOISE_MSG2_LEN(plen)) return NOISE_ERR_LEN;
    set_e(hs, e);
    memcpy(out, hs->e.pub, NOISE_KEY_LEN);
    token_e(hs, hs->e.pub);
    int rc = mix_dh(hs, hs->e.priv, hs->re);
    if (rc) return rc;
    if ((rc = mix_dh(hs, hs->e.priv, hs->rs))) return rc;
    mix_key_and_hash(hs, hs->psk, sizeof hs->psk);
    encrypt_and_hash(hs, payload, plen, out + NOISE_KEY_LEN);
    hs->step = 2;
    return (int)NOISE_MSG2_LEN(plen);
}

int noise_read_msg2(struct noise_hs *hs, const uint8_t *msg, size_t len, uint8_t *payload,
                    size_t cap)
{
    if (!hs->initiator || hs->step != 1) return NOISE_ERR_STATE;
    if (len < NOISE_MSG2_LEN(0) || len - NOISE_MSG2_LEN(0) > cap) return NOISE_ERR_LEN;
    size_t plen = len - NOISE_MSG2_LEN(0);
    memcpy(hs->re, msg, NOISE_KEY_LEN);
    token_e(hs, hs->re);
    int rc = mix_dh(hs, hs->e.priv, hs->re);
    if (rc) return rc;
    if ((rc = mix_dh(hs, hs->s.priv, hs->re))) return rc;
    mix_key_and_hash(hs, hs->psk, sizeof hs->psk);
    if ((rc = decrypt_and_hash(hs, msg + NOISE_KEY_LEN, plen + NOISE_TAG_LEN, payload))) return rc;
    hs->step = 2;
    return (int)plen;
}

int noise_split(const struct noise_hs *hs, uint8_t i2r[NOISE_KEY_LEN], uint8_t r2i[NOISE_KEY_LEN],
                uint8_t hash[NOISE_HASH_LEN])
{
    if (hs->step != 2) return NOISE_ERR_STATE;
    noise_hkdf(hs->ck, NULL, 0, i2r, r2i, NULL);
    if (hash) memcpy(hash, hs->h, NOISE_HASH_LEN);
    return 0;
}
