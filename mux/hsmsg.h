/* hsmsg.h: the handshake messages of wire version 3 (INIT, RESPONSE, COOKIE_REPLY) around the
 * Noise IKpsk2 messages (mux/noise.h): layout, MAC1/MAC2, cookies, TAI64N timestamps. Pure
 * functions: no I/O, no clocks (times are arguments), no session state.
 *
 * Every handshake message starts with a 4-byte header: byte 0 = version 3, type 2 (0xe0),
 * byte 1 = link id, byte 2 = kind (1 INIT, 2 RESPONSE, 3 COOKIE_REPLY), byte 3 = 0.
 *
 * Indices are 16-bit values in 32-bit fields (the upper half zero): datagrams carry 16 bits.
 *
 *   INIT (initiator -> responder), 149 bytes:
 *     0 header | 4 sender index | 8 Noise message 1 (e 32, s 32+16, payload: TAI64N 12 and
 *     flags 1, +16) | 117 MAC1 16 | 133 MAC2 16
 *   RESPONSE (responder -> initiator), 93 bytes:
 *     0 header | 4 sender index | 8 receiver index | 12 Noise message 2 (e 32, payload: flags
 *     1, +16) | 61 MAC1 16 | 77 MAC2 16
 *   COOKIE_REPLY (responder -> initiator, instead of a RESPONSE under load), 64 bytes:
 *     0 header | 4 receiver index | 8 nonce 24 | 32 cookie 16 + tag 16
 *
 * MAC1 = BLAKE2b-128(key = BLAKE2b-256("braid-v3 mac1" || receiver's static public key),
 *        the message before MAC1): anyone may check it who knows the receiver's public key;
 *        a responder answers nothing without it.
 * MAC2 = BLAKE2b-128(key = the latest cookie from the responder, the message before MAC2), or
 *        zero without a cookie.
 * cookie = BLAKE2b-128(key = responder's secret (random, replaced every 2 minutes), the
 *        initiator's source address and port), sent sealed with XChaCha20-Poly1305 under
 *        BLAKE2b-256("braid-v3 cookie" || responder's static public key), the INIT's MAC1 as
 *        additional data.
 * Responses and cookie replies are smaller than the INIT they answer: a spoofed source gets
 * no amplification. */
#ifndef BRAID_HSMSG_H
#define BRAID_HSMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "noise.h"

#define HS_BYTE0 0xe0 /* version 3, type 2 (handshake), no flags */
#define HS_KIND_INIT 1
#define HS_KIND_RESPONSE 2
#define HS_KIND_COOKIE 3
#define HS_TS_LEN 12
#define HS_INIT_PAYLOAD_LEN (HS_TS_LEN + 1) /* the timestamp and the INIT's flags */
#define HS_RESP_PAYLOAD_LEN 1               /* the RESPONSE's flags */
#define HS_INIT_F_REKEY 0x01      /* INIT: a new session to carry on the current one's link state */
#define HS_RESP_F_CONTINUED 0x01  /* RESPONSE: it does (else the session starts afresh) */
#define HS_MAC_LEN 16
#define HS_COOKIE_LEN 16
#define HS_INIT_LEN (8 + NOISE_MSG1_LEN(HS_INIT_PAYLOAD_LEN) + 2 * HS_MAC_LEN)
#define HS_RESPONSE_LEN (12 + NOISE_MSG2_LEN(HS_RESP_PAYLOAD_LEN) + 2 * HS_MAC_LEN)
#define HS_COOKIE_REPLY_LEN (8 + 24 + HS_COOKIE_LEN + 16)
#define HS_COOKIE_SECRET_US 120000000u /* the cookie secret is replaced this often */
#define HS_PROLOGUE "braid-v3"

#define HS_ERR_FORMAT (-20) /* wrong length, version, type, kind or reserved byte */
#define HS_ERR_MAC1 (-21)   /* not made by someone who knows our public key */
#define HS_ERR_MAC2 (-22)   /* no valid cookie (only checked under load) */
#define HS_ERR_NOISE (-23)  /* the Noise message failed (wrong keys, PSK, tampered) */
#define HS_ERR_COOKIE (-24) /* a cookie reply that does not open */

/* Keys derived from one end's static public key: for MAC1 on messages to it, and for the
 * cookie replies it sends. */
struct hs_peer_keys {
    uint8_t mac1[32];
    uint8_t cookie[32];
};
void hs_peer_keys(const uint8_t pub[NOISE_KEY_LEN], struct hs_peer_keys *k);

/* The header of a handshake message: 0 and its kind and link id, or HS_ERR_FORMAT (length not
 * that of the kind, bad header). */
int hs_peek(const uint8_t *msg, size_t len, uint8_t *kind, uint8_t *link_id);

/* MAC1 of a received INIT or RESPONSE, against our own keys (constant time). */
bool hs_mac1_ok(const uint8_t *msg, size_t len, const struct hs_peer_keys *mine);
/* MAC2 of a received INIT or RESPONSE, against the cookie this source should have. */
bool hs_mac2_ok(const uint8_t *msg, size_t len, const uint8_t cookie[HS_COOKIE_LEN]);
/* The MAC1 of a message (to remember the one an INIT was sent with). */
const uint8_t *hs_mac1_of(const uint8_t *msg, size_t len);
/* MAC1 (for to) and MAC2 (with cookie, or zero for NULL) of an outgoing INIT or RESPONSE. */
void hs_seal_macs(uint8_t *msg, size_t len, const struct hs_peer_keys *to, const uint8_t *cookie);
/* The same message for another link: its link id, then its MACs (they cover the link id). */
void hs_relink(uint8_t *msg, size_t len, uint8_t link_id, const struct hs_peer_keys *to,
               const uint8_t *cookie);

/* TAI64N label of a wall-clock time (seconds since 1970, nanoseconds): 8 bytes 2^62 + seconds,
 * 4 bytes nanoseconds rounded down to 2^24 ns (16.8 ms: the time is not a fine clock for an
 * observer). Greater means later (memcmp). */
void hs_tai64n(uint64_t sec, uint32_t nsec, uint8_t out[HS_TS_LEN]);

/* Initiator: INIT into out. hs: started with noise_hs_init(initiator, HS_PROLOGUE, own static,
 * responder's static, psk); e: ephemeral (NULL: fresh); responder: its keys; cookie: the
 * latest cookie from it (NULL: none, MAC2 zero). Returns 0 or a NOISE_ERR_*. */
int hs_init_write(struct noise_hs *hs, const struct noise_keypair *e, uint8_t link_id,
                  uint32_t sender_index, const uint8_t ts[HS_TS_LEN], uint8_t flags,
                  const struct hs_peer_keys *responder, const uint8_t *cookie,
                  uint8_t out[HS_INIT_LEN]);
/* Responder: read an INIT whose header and MACs the caller checked. hs: started with
 * noise_hs_init(responder, HS_PROLOGUE, own static, NULL, any psk): IKpsk2 mixes the PSK in
 * at the RESPONSE, so the caller looks the initiator up by hs->rs after this and sets hs->psk
 * to its PSK. Returns 0 with the initiator's static key in hs->rs, its sender index,
 * timestamp and flags (flags may be NULL); or HS_ERR_FORMAT / HS_ERR_NOISE (also for flags
 * this version does not know). */
int hs_init_read(struct noise_hs *hs, const uint8_t *msg, size_t len, uint32_t *sender_index,
                 uint8_t ts[HS_TS_LEN], uint8_t *flags);
/* Responder: RESPONSE into out, to the initiator whose keys are initiator. */
int hs_response_write(struct noise_hs *hs, const struct noise_keypair *e, uint8_t link_id,
                      uint32_t sender_index, uint32_t receiver_index, uint8_t flags,
                      const struct hs_peer_keys *initiator, const uint8_t *cookie,
                      uint8_t out[HS_RESPONSE_LEN]);
/* The receiver index of a RESPONSE or COOKIE_REPLY (to find the handshake it answers). */
uint32_t hs_receiver_index(const uint8_t *msg, size_t len);
/* Initiator: read a RESPONSE (header and MAC1 checked by the caller). Returns 0 with the
 * responder's sender index and flags (may be NULL), or HS_ERR_FORMAT / HS_ERR_NOISE. */
int hs_response_read(struct noise_hs *hs, const uint8_t *msg, size_t len, uint32_t *sender_index,
                     uint8_t *flags);

/* Responder's cookie for a source address, from its current secret. */
void hs_cookie(const uint8_t secret[32], const struct sockaddr *from, socklen_t fromlen,
               uint8_t cookie[HS_COOKIE_LEN]);
/* Responder: COOKIE_REPLY to the INIT init (its MAC1 binds the reply to it). */
void hs_cookie_reply_write(const struct hs_peer_keys *mine, uint8_t link_id,
                           const uint8_t *init, const uint8_t cookie[HS_COOKIE_LEN],
                           uint8_t out[HS_COOKIE_REPLY_LEN]);
/* Initiator: open a COOKIE_REPLY to the INIT whose MAC1 was sent_mac1. 0 with the cookie, or
 * HS_ERR_FORMAT / HS_ERR_COOKIE. */
int hs_cookie_reply_read(const struct hs_peer_keys *responder, const uint8_t *msg, size_t len,
                         const uint8_t sent_mac1[HS_MAC_LEN], uint8_t cookie[HS_COOKIE_LEN]);

#endif
