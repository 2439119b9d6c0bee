/* session.c: pre-shared key derivation and the HELLO/HELLO_REPLY handshake (X25519 via
 * crypto_kx, XChaCha20-Poly1305 under K_hs, keyed BLAKE2b session keys), PROTOCOL.md 2 and 5. */
#include "session.h"

#include <assert.h>
#include <sodium.h>
#include <string.h>

#include "../common/util.h"

#define KDF_CONTEXT "braid-v1"
#define KDF_ID_HS 1
#define KDF_ID_MIX 2

/* HELLO / HELLO_REPLY layout (section 5). */
#define HS_NONCE_OFF 8
#define HS_NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define HS_CT_OFF (HS_NONCE_OFF + HS_NONCE_LEN)
#define HS_BODY_LEN 80
#define HS_TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES
#define KEY_LEN 32
/* HELLO body */
#define HELLO_SPK_OFF 0
#define HELLO_FEAT_OFF 32
#define HELLO_ZERO_OFF 36
/* HELLO_REPLY body */
#define REPLY_MPK_OFF 0
#define REPLY_SPK_OFF 32
#define REPLY_PHASE_OFF 64
#define REPLY_ZERO_OFF 65

_Static_assert(sizeof(KDF_CONTEXT) - 1 == crypto_kdf_CONTEXTBYTES, "KDF context is 8 bytes");
_Static_assert(HS_CT_OFF == 32, "handshake ciphertext starts at byte 32");
_Static_assert(HS_CT_OFF + HS_BODY_LEN + HS_TAG_LEN == HELLO_LEN, "HELLO is 128 bytes");
_Static_assert(crypto_kx_PUBLICKEYBYTES == KEY_LEN && crypto_kx_SECRETKEYBYTES == KEY_LEN &&
                   crypto_kx_SESSIONKEYBYTES == KEY_LEN,
               "X25519 key sizes");
_Static_assert(PSK_LEN == crypto_kdf_KEYBYTES, "PSK is a KDF master key");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == KEY_LEN, "K_hs size");

int session_crypto_init(void)
{
    return sodium_init() >= 0 ? 0 : -1;
}

void psk_generate(char *out, size_t outlen)
{
    assert(outlen >= sodium_base64_ENCODED_LEN(PSK_LEN, sodium_base64_VARIANT_ORIGINAL));
    uint8_t raw[PSK_LEN];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(out, outlen, raw, sizeof(raw), sodium_base64_VARIANT_ORIGINAL);
    sodium_memzero(raw, sizeof(raw));
}

void psk_derive(const uint8_t psk[PSK_LEN], struct psk_keys *k)
{
    crypto_kdf_derive_from_key(k->hs, sizeof(k->hs), KDF_ID_HS, KDF_CONTEXT, psk);
    crypto_kdf_derive_from_key(k->mix, sizeof(k->mix), KDF_ID_MIX, KDF_CONTEXT, psk);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

/* K = BLAKE2b-256(key = K_mix, label || kx || spk || mpk). */
static void mix_key(uint8_t out[KEY_LEN], const uint8_t mix[KEY_LEN], const char label[3],
                    const uint8_t kx[KEY_LEN], const uint8_t spk[KEY_LEN],
                    const uint8_t mpk[KEY_LEN])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, mix, KEY_LEN, KEY_LEN);
    crypto_generichash_update(&st, (const uint8_t *)label, 3);
    crypto_generichash_update(&st, kx, KEY_LEN);
    crypto_generichash_update(&st, spk, KEY_LEN);
    crypto_generichash_update(&st, mpk, KEY_LEN);
    crypto_generichash_final(&st, out, KEY_LEN);
    sodium_memzero(&st, sizeof(st));
}

/* Seal an 80-byte body into a 128-byte HELLO or HELLO_REPLY. */
static void hs_seal(const struct psk_keys *k, uint8_t type, uint8_t link_id,
                    const uint8_t body[HS_BODY_LEN], uint8_t out[HELLO_LEN])
{
    out[0] = (uint8_t)((WIRE_VERSION << 6) | (type << 4));
    out[1] = link_id;
    memset(out + 2, 0, 6);
    randombytes_buf(out + HS_NONCE_OFF, HS_NONCE_LEN);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + HS_CT_OFF, NULL, body, HS_BODY_LEN, out,
                                               WIRE_HDR_LEN, NULL, out + HS_NONCE_OFF, k->hs);
}

/* Validate and decrypt a HELLO or HELLO_REPLY of the expected type into body. */
static int hs_open(const struct psk_keys *k, uint8_t type, const uint8_t *dg, size_t len,
                   uint8_t body[HS_BODY_LEN])
{
    struct wire_hdr h;
    int rc = wire_peek(dg, len, &h);
    if (rc != WIRE_OK) return rc;
    if (h.type != type) return WIRE_ERR_TYPE;
    if (!all_zero(dg + 2, 6)) return WIRE_ERR_RESERVED;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(body, NULL, NULL, dg + HS_CT_OFF,
                                                   HS_BODY_LEN + HS_TAG_LEN, dg, WIRE_HDR_LEN,
                                                   dg + HS_NONCE_OFF, k->hs) != 0)
        return WIRE_ERR_AUTH;
    return 0;
}

/* ---- slave side ---- */

void hs_client_start(struct hs_client *c)
{
    crypto_kx_keypair(c->pk, c->sk);
}

void hs_client_wipe(struct hs_client *c)
{
    sodium_memzero(c, sizeof(*c));
}

void hs_client_hello(const struct hs_client *c, const struct psk_keys *k, uint8_t link_id,
                     uint8_t out[HELLO_LEN])
{
    uint8_t body[HS_BODY_LEN] = {0};
    memcpy(body + HELLO_SPK_OFF, c->pk, KEY_LEN);
    put_be32(body + HELLO_FEAT_OFF, 0); /* features: none defined */
    hs_seal(k, WIRE_HELLO, link_id, body, out);
}

int hs_client_reply(const struct hs_client *c, const struct psk_keys *k, const uint8_t *dg,
                    size_t len, struct session_keys *out)
{
    uint8_t body[HS_BODY_LEN];
    int rc = hs_open(k, WIRE_HELLO_REPLY, dg, len, body);
    if (rc != 0) return rc;

    const uint8_t *mpk = body + REPLY_MPK_OFF;
    uint8_t phase = body[REPLY_PHASE_OFF];
    uint8_t kx_m2s[KEY_LEN], kx_s2m[KEY_LEN];
    if (phase > 1 || !all_zero(body + REPLY_ZERO_OFF, HS_BODY_LEN - REPLY_ZERO_OFF)) {
        rc = WIRE_ERR_RESERVED;
    } else if (sodium_memcmp(body + REPLY_SPK_OFF, c->pk, KEY_LEN) != 0) {
        rc = HS_ERR_STALE;
    } else if (crypto_kx_client_session_keys(kx_m2s, kx_s2m, c->pk, c->sk, mpk) != 0) {
        rc = HS_ERR_CRYPTO;
    } else {
        mix_key(out->tx, k->mix, "s2m", kx_s2m, c->pk, mpk);
        mix_key(out->rx, k->mix, "m2s", kx_m2s, c->pk, mpk);
        out->phase = phase;
    }
    sodium_memzero(kx_m2s, sizeof(kx_m2s));
    sodium_memzero(kx_s2m, sizeof(kx_s2m));
    sodium_memzero(body, sizeof(body));
    return rc;
}

/* ---- master side ---- */

int hs_server_open_hello(const struct psk_keys *k, const uint8_t *dg, size_t len, uint8_t spk[32])
{
    uint8_t body[HS_BODY_LEN];
    int rc = hs_open(k, WIRE_HELLO, dg, len, body);
    if (rc != 0) return rc;
    /* features (bytes 32-35) are ignored: none are defined; the padding must be zero. */
    if (!all_zero(body + HELLO_ZERO_OFF, HS_BODY_LEN - HELLO_ZERO_OFF)) return WIRE_ERR_RESERVED;
    memcpy(spk, body + HELLO_SPK_OFF, KEY_LEN);
    return 0;
}

int hs_server_answer(const struct psk_keys *k, const uint8_t spk[32], uint8_t phase,
                     struct hs_server_result *out)
{
    if (phase > 1) return WIRE_ERR_INVAL;
    uint8_t mpk[KEY_LEN], msk[KEY_LEN], kx_s2m[KEY_LEN], kx_m2s[KEY_LEN];
    crypto_kx_keypair(mpk, msk);
    int rc = crypto_kx_server_session_keys(kx_s2m, kx_m2s, mpk, msk, spk);
    sodium_memzero(msk, sizeof(msk));
    if (rc != 0) {
        rc = HS_ERR_CRYPTO;
    } else {
        memmove(out->spk, spk, KEY_LEN); /* spk may point into *out */
        memcpy(out->mpk, mpk, KEY_LEN);
        mix_key(out->keys.rx, k->mix, "s2m", kx_s2m, spk, mpk);
        mix_key(out->keys.tx, k->mix, "m2s", kx_m2s, spk, mpk);
        out->keys.phase = phase;
    }
    sodium_memzero(kx_s2m, sizeof(kx_s2m));
    sodium_memzero(kx_m2s, sizeof(kx_m2s));
    return rc;
}

void hs_server_reply(const struct psk_keys *k, const struct hs_server_result *res, uint8_t link_id,
                     uint8_t out[HELLO_LEN])
{
    uint8_t body[HS_BODY_LEN] = {0};
    memcpy(body + REPLY_MPK_OFF, res->mpk, KEY_LEN);
    memcpy(body + REPLY_SPK_OFF, res->spk, KEY_LEN);
    body[REPLY_PHASE_OFF] = res->keys.phase;
    hs_seal(k, WIRE_HELLO_REPLY, link_id, body, out);
}
