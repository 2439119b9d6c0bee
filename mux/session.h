/* session.h: identities (static key pairs, peers' public keys and PSKs) and the handshake's
 * crypto steps on each end: the slave's INIT and its reading of the RESPONSE or a COOKIE_REPLY,
 * the master's reading of an INIT and its RESPONSE; the session keys and indices they give.
 * Implements docs/PROTOCOL.md sections 2 and 5 with mux/noise.c and mux/hsmsg.c; no I/O, no
 * timers (times are arguments). */
#ifndef BRAID_SESSION_H
#define BRAID_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hsmsg.h"
#include "noise.h"
#include "wire.h"

/* Must be called once before anything else here (sodium_init). Returns 0 or -1. */
int session_crypto_init(void);

/* This end: its static key pair and the keys derived from its public key. */
struct identity {
    struct noise_keypair key;
    struct hs_peer_keys mine; /* MAC1 of messages to us; the cookie replies we send */
};
/* 0, or -1 if priv is not a usable X25519 private key. */
int identity_init(struct identity *id, const uint8_t priv[NOISE_KEY_LEN]);

/* The other end (the slave's master, or a site of the master): its public key, the PSK shared
 * with it (all zero when none is configured) and the keys derived from its public key. */
struct peer {
    uint8_t pub[NOISE_KEY_LEN];
    uint8_t psk[NOISE_KEY_LEN];
    struct hs_peer_keys keys;
};
void peer_init(struct peer *p, const uint8_t pub[NOISE_KEY_LEN], const uint8_t psk[NOISE_KEY_LEN]);

/* A session's keys from one end's point of view, and its indices: datagrams to this end carry
 * local_index, datagrams to the peer remote_index (section 3). */
struct session_keys {
    uint8_t tx[WIRE_KEY_LEN];
    uint8_t rx[WIRE_KEY_LEN];
    uint32_t local_index;
    uint32_t remote_index;
    bool continued; /* a rekey: the session carries on the previous one's link state (section 5) */
};

/* ---- slave (initiator) ---- */
#define HS_ERR_STALE (-100) /* a RESPONSE or COOKIE_REPLY to another INIT (old or foreign) */
struct hs_client {
    struct noise_hs noise;
    uint32_t index;                  /* our sender index for this handshake */
    uint8_t init[HS_INIT_LEN];       /* the INIT (link id and MACs filled in per link) */
    bool have_cookie;
    uint8_t cookie[HS_COOKIE_LEN];
    uint8_t sent_mac1[HS_MAC_LEN];   /* MAC1 of the last INIT sent (a cookie reply answers it) */
};
/* A new handshake: fresh ephemeral key and index, timestamp from the wall clock given; rekey:
 * asks the master to carry on the current session's link state. The cookie of an earlier
 * handshake, if any, is kept. */
int hs_client_start(struct hs_client *c, const struct identity *me, const struct peer *master,
                    uint64_t wall_sec, uint32_t wall_nsec, bool rekey);
/* The INIT for link_id (MAC2 with the latest cookie, if one came). */
void hs_client_init_msg(struct hs_client *c, const struct peer *master, uint8_t link_id,
                        uint8_t out[HS_INIT_LEN]);
/* A RESPONSE (len bytes): MAC1, index, Noise message 2; the session keys into *out (with
 * out->continued: the master carries on the current session's state). Returns 0,
 * HS_ERR_FORMAT, HS_ERR_MAC1, HS_ERR_STALE (answers another INIT) or HS_ERR_NOISE (wrong
 * keys or PSK, tampered); after an error the handshake is as it was (a forged answer spoils
 * nothing: the real one may still come). */
int hs_client_response(struct hs_client *c, const struct identity *me, const uint8_t *dg,
                       size_t len, struct session_keys *out);
/* A COOKIE_REPLY: the cookie is kept for the next INITs. 0, HS_ERR_FORMAT, HS_ERR_STALE or
 * HS_ERR_COOKIE. */
int hs_client_cookie(struct hs_client *c, const struct peer *master, const uint8_t *dg,
                     size_t len);
/* Wipe the handshake's secrets (the cookie stays). */
void hs_client_wipe(struct hs_client *c);

/* ---- master (responder) ---- */
/* What an INIT said, once read. */
struct hs_server {
    struct noise_hs noise;
    uint32_t remote_index;      /* the initiator's sender index */
    uint8_t ts[HS_TS_LEN];      /* its timestamp */
    uint8_t e[NOISE_KEY_LEN];   /* its ephemeral key: the same INIT again is a retransmission */
    uint8_t flags;              /* HS_INIT_F_* */
};
/* Read an INIT whose header, MAC1 (and MAC2 under load) the caller checked: the initiator's
 * static key is in s->noise.rs afterwards. 0, HS_ERR_FORMAT or HS_ERR_NOISE. */
int hs_server_read(struct hs_server *s, const struct identity *me, const uint8_t *dg, size_t len);
/* The session the master offers in answer. */
struct hs_server_result {
    uint8_t e[NOISE_KEY_LEN];           /* the INIT's ephemeral key */
    uint8_t response[HS_RESPONSE_LEN]; /* the RESPONSE (link 0), kept to answer retransmissions */
    struct session_keys keys;
};
/* Answer with the site's PSK and our index for the session; continued: the session carries on
 * the current one's link state (only for an INIT asking for it). The handshake's secrets are
 * wiped. 0 or HS_ERR_NOISE (a low-order ephemeral key). */
int hs_server_answer(struct hs_server *s, const struct peer *site, uint32_t local_index,
                     bool continued, struct hs_server_result *out);
/* The RESPONSE for a session made by hs_server_answer, sent on link_id. */
void hs_server_response(const struct hs_server_result *res, const struct peer *site,
                        uint8_t link_id, uint8_t out[HS_RESPONSE_LEN]);

#endif
