/* noise.h: the Noise IKpsk2 handshake (Noise_IKpsk2_25519_ChaChaPoly_SHA256, Noise revision 34)
 * built from libsodium primitives: the two handshake messages and the split into transport keys.
 * No I/O, no clocks, no wire format (the caller frames the messages and their payloads). */
#ifndef BRAID_NOISE_H
#define BRAID_NOISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NOISE_KEY_LEN 32
#define NOISE_HASH_LEN 32
#define NOISE_TAG_LEN 16
/* Message 1 (initiator -> responder): e, encrypted s, encrypted payload. */
#define NOISE_MSG1_LEN(payload) (NOISE_KEY_LEN + NOISE_KEY_LEN + NOISE_TAG_LEN + (payload) + NOISE_TAG_LEN)
/* Message 2 (responder -> initiator): e, encrypted payload. */
#define NOISE_MSG2_LEN(payload) (NOISE_KEY_LEN + (payload) + NOISE_TAG_LEN)

#define NOISE_ERR_STATE (-1)  /* this message is not the next one for this end */
#define NOISE_ERR_LEN (-2)    /* a buffer or message of the wrong size */
#define NOISE_ERR_DH (-3)     /* a public key that gives an all-zero shared secret */
#define NOISE_ERR_AUTH (-4)   /* authentication failed: wrong keys, PSK or prologue, or tampered */

struct noise_keypair {
    uint8_t pub[NOISE_KEY_LEN];
    uint8_t priv[NOISE_KEY_LEN];
};

/* A handshake in progress, for one end. Wipe with noise_hs_wipe when done. */
struct noise_hs {
    uint8_t ck[NOISE_HASH_LEN]; /* chaining key */
    uint8_t h[NOISE_HASH_LEN];  /* handshake hash */
    uint8_t k[NOISE_KEY_LEN];   /* current cipher key (valid once has_k) */
    bool has_k;
    uint64_t n;
    bool initiator;
    int step; /* 0: message 1 next, 1: message 2 next, 2: done */
    struct noise_keypair s, e;
    uint8_t rs[NOISE_KEY_LEN]; /* the peer's static key (initiator: given; responder: learnt) */
    uint8_t re[NOISE_KEY_LEN];
    uint8_t psk[NOISE_KEY_LEN];
};

/* The public key of a private one (X25519 base point multiplication). 0, or -1 if priv is
 * unusable. */
int noise_pubkey(const uint8_t priv[NOISE_KEY_LEN], uint8_t pub[NOISE_KEY_LEN]);
/* A fresh key pair. */
void noise_keypair_new(struct noise_keypair *kp);

/* Start a handshake. s: this end's static key pair; rs: the responder's public key (initiator
 * only, NULL for the responder); psk: 32 bytes (all zero when none is configured). */
void noise_hs_init(struct noise_hs *hs, bool initiator, const uint8_t *prologue, size_t prologue_len,
                   const struct noise_keypair *s, const uint8_t *rs, const uint8_t psk[NOISE_KEY_LEN]);
void noise_hs_wipe(struct noise_hs *hs);

/* Initiator: message 1 into out (NOISE_MSG1_LEN(plen) bytes of cap at least) with the ephemeral
 * key pair e (NULL: a fresh one). Returns its length or a NOISE_ERR_*. */
int noise_write_msg1(struct noise_hs *hs, const struct noise_keypair *e, const uint8_t *payload,
                     size_t plen, uint8_t *out, size_t cap);
/* Responder: read message 1; the payload goes to payload (cap at least len - NOISE_MSG1_LEN(0)),
 * the initiator's static key to hs->rs. Returns the payload length or a NOISE_ERR_*; on error
 * the state must be thrown away. */
int noise_read_msg1(struct noise_hs *hs, const uint8_t *msg, size_t len, uint8_t *payload,
                    size_t cap);
/* Responder: message 2 (after noise_read_msg1). Returns its length or a NOISE_ERR_*. */
int noise_write_msg2(struct noise_hs *hs, const struct noise_keypair *e, const uint8_t *payload,
                     size_t plen, uint8_t *out, size_t cap);
/* Initiator: read message 2. Returns the payload length or a NOISE_ERR_*. */
int noise_read_msg2(struct noise_hs *hs, const uint8_t *msg, size_t len, uint8_t *payload,
                    size_t cap);

/* After both messages: the transport keys (i2r: initiator to responder) and the handshake
 * hash (NULL: not wanted). Returns 0, or NOISE_ERR_STATE before the handshake is done. */
int noise_split(const struct noise_hs *hs, uint8_t i2r[NOISE_KEY_LEN], uint8_t r2i[NOISE_KEY_LEN],
                uint8_t hash[NOISE_HASH_LEN]);

/* HMAC-SHA256-based HKDF as Noise defines it (outputs 2 or 3 blocks of 32 bytes; o3 may be
 * NULL). Exposed for the handshake's MAC and cookie keys and for tests. */
void noise_hkdf(const uint8_t ck[NOISE_HASH_LEN], const uint8_t *ikm, size_t ikm_len,
                uint8_t o1[NOISE_HASH_LEN], uint8_t o2[NOISE_HASH_LEN], uint8_t *o3);

#endif
