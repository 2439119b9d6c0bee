/* session.h: pre-shared key handling, HELLO/HELLO_REPLY handshake and per-session keys.
 * Implements docs/PROTOCOL.md sections 2 and 5 with libsodium; no I/O, no timers. */
#ifndef BRAID_SESSION_H
#define BRAID_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

#define PSK_LEN 32
#define HELLO_LEN 128
#define PSK_B64_MAXLEN 64

/* Keys derived once from the configured pre-shared key. */
struct psk_keys {
    uint8_t hs[32];  /* K_hs */
    uint8_t mix[32]; /* K_mix */
};

/* Must be called once before anything else here (sodium_init). Returns 0 or -1. */
int session_crypto_init(void);

/* Fresh random PSK as base64 (NUL-terminated, libsodium "original" variant with padding) into
 * out (>= PSK_B64_MAXLEN bytes). The config loader (common/cfg.c) decodes it. */
void psk_generate(char *out, size_t outlen);
void psk_derive(const uint8_t psk[PSK_LEN], struct psk_keys *k);

/* Session keys for one direction pair, from the point of view of one end. */
struct session_keys {
    uint8_t tx[WIRE_KEY_LEN];
    uint8_t rx[WIRE_KEY_LEN];
    uint8_t phase;
};

/* ---- slave side ---- */
struct hs_client {
    uint8_t pk[32];
    uint8_t sk[32];
};
/* New ephemeral key pair. */
void hs_client_start(struct hs_client *c);
/* Wipe the ephemeral key pair (sodium_memzero) once the session keys are made or abandoned. */
void hs_client_wipe(struct hs_client *c);
/* Build a HELLO for link_id into out[HELLO_LEN]. */
void hs_client_hello(const struct hs_client *c, const struct psk_keys *k, uint8_t link_id,
                     uint8_t out[HELLO_LEN]);
/* Check a HELLO_REPLY (len bytes): authenticates, checks the echoed spk is ours, derives the
 * session keys (tx = K_s2m, rx = K_m2s, phase from the reply). Returns 0, or a negative
 * wire_err / -100 when the echo does not match (a stale or foreign reply). Errors: the
 * wire_peek errors (length != HELLO_LEN, version, reserved/P/E bits), WIRE_ERR_TYPE (not a
 * HELLO_REPLY), WIRE_ERR_RESERVED (bytes 2-7 nonzero, phase byte > 1, nonzero body padding),
 * WIRE_ERR_AUTH (wrong key or tampered), HS_ERR_STALE, HS_ERR_CRYPTO (mpk unusable).
 * *out is written only on success. */
#define HS_ERR_STALE (-100)
#define HS_ERR_CRYPTO (-101)
int hs_client_reply(const struct hs_client *c, const struct psk_keys *k, const uint8_t *dg,
                    size_t len, struct session_keys *out);

/* ---- master side ---- */
/* Result of a valid HELLO: the session it offers. */
struct hs_server_result {
    uint8_t spk[32];
    uint8_t mpk[32];
    struct session_keys keys; /* tx = K_m2s, rx = K_s2m, phase as given */
};
/* Authenticate a HELLO (len bytes) and extract spk. Returns 0 or a negative error: the
 * wire_peek errors, WIRE_ERR_TYPE (not a HELLO), WIRE_ERR_RESERVED (bytes 2-7 or body bytes
 * 36-79 nonzero; the features word is ignored), WIRE_ERR_AUTH (wrong key or tampered). */
int hs_server_open_hello(const struct psk_keys *k, const uint8_t *dg, size_t len, uint8_t spk[32]);
/* Make a fresh ephemeral key pair and the session keys for spk with the given phase.
 * Returns 0, or HS_ERR_CRYPTO if spk is not a valid public key (e.g. a low-order point),
 * or WIRE_ERR_INVAL if phase > 1. The ephemeral secret key is wiped before returning. */
int hs_server_answer(const struct psk_keys *k, const uint8_t spk[32], uint8_t phase,
                     struct hs_server_result *out);
/* Build the HELLO_REPLY for a session made by hs_server_answer, sent on link_id. */
void hs_server_reply(const struct psk_keys *k, const struct hs_server_result *res, uint8_t link_id,
                     uint8_t out[HELLO_LEN]);

#endif
