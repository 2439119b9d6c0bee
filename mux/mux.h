/* mux.h: the multiplexer: sessions, link state (beats, RTT, loss, rate), scheduling of tunnel
 * packets over links, and in-order delivery on receive. The one interface master and slave use. */
#ifndef BRAID_MUX_H
#define BRAID_MUX_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../common/strbuf.h"
#include "../links/link.h"
#include "session.h"

#define MUX_MAX_LINKS 256

struct mux_config {
    bool is_master;
    struct identity self;      /* this end's static key pair */
    struct peer peer;          /* the other end: its public key and PSK (master: the site) */
    unsigned beat_interval_ms; /* default 100 */
    unsigned dead_timeout_ms;  /* default 300 */
    unsigned reorder_max_ms;   /* default 500: upper bound of the reorder timeout */
    unsigned reorder_slots;    /* default 4096 */
    unsigned rehandshake_ms;   /* slave: default 2000 */
    unsigned rekey_after_ms;   /* new keys after this (default 120000); refused 1.5 x later */
    unsigned mtu;              /* largest tunnel packet */
    char scheduler[16];        /* scheduler policy name (sched_names()); "" = the default */
    char name[32];             /* master: the site's name, for log lines */
};
void mux_config_defaults(struct mux_config *c);

struct mux_callbacks {
    /* In-order tunnel packet for the tundev. */
    void (*deliver)(void *ctx, const uint8_t *pkt, size_t len);
    /* Master: a link with a new id authenticated; return a link to send on (NULL = refuse). */
    struct link *(*new_link)(void *ctx, uint8_t id);
    /* Master: send a handshake reply to an address (not through a link). */
    int (*reply_to)(void *ctx, const uint8_t *buf, size_t len, const struct sockaddr *to,
                    socklen_t tolen);
    /* Master: a receiver index for a new session, unique among the master's sessions (the site
     * table finds the session's mux by it); released when the session ends. Return 0, or -1
     * when none is free. NULL: the mux picks its own. */
    int (*index_claim)(void *ctx, uint32_t *index);
    void (*index_release)(void *ctx, uint32_t index);
    /* Optional: a link went up or down (both ends hear each other on it, or no longer). */
    void (*link_state)(void *ctx, const char *name, uint8_t id, bool up, int links_up);
    void *ctx;
};

struct mux_counters {
    uint64_t malformed;          /* too short/long, bad version, reserved bits, bad CTRL */
    uint64_t no_session;         /* no session for the datagram's receiver index */
    uint64_t replay;             /* replay window rejected the counter */
    uint64_t auth_fail;          /* AEAD authentication failed */
    uint64_t wrong_link;         /* slave: link id differs from the link it arrived on */
    uint64_t hello_rx, hello_ratelimited, hello_bad; /* INITs for this site (master; the site
                                  * table counts the others), RESPONSEs (slave) */
    uint64_t hello_replay;       /* master: INITs not newer than the site's last (replays) */
    uint64_t cookie_rx;          /* slave: cookie replies taken (the master is under load) */
    uint64_t sessions;           /* sessions established (rekeys included) */
    uint64_t rekeys;             /* of which new keys carrying the link state on */
    uint64_t rekey_asked;        /* REKEY requests sent (master) or taken (slave) */
    uint64_t tx_data, tx_data_bytes, tx_no_link; /* tunnel packets sent / dropped: no live link */
    uint64_t tx_too_big;         /* tunnel packet larger than the MTU */
    uint64_t tx_ctrl;
    uint64_t rx_data, rx_ctrl;
    uint64_t rx_late_delivered;  /* arrived after its gap was given up: delivered out of order */
    uint64_t rx_too_big;         /* larger than this end's MTU (the ends disagree on it) */
    uint64_t tx_queue_drop;      /* dropped by the scheduler: every link's send queue full */
    uint64_t tx_relocated;       /* queued on a link that went down, moved to another */
    uint64_t tx_dup;             /* extra copies sent (redundancy), dropped by the receiver */
    uint64_t tx_unordered, rx_unordered; /* small packets sent past the queues */
    uint64_t rx_report_rejected; /* receive reports inconsistent with what was sent */
    uint64_t rx_report_stale;    /* receive reports overtaken by newer ones (ignored) */
    uint64_t rx_gaps_passed;     /* gseqs given up because every link had passed them (lost) */
    uint64_t rx_gaps_timeout;    /* gseqs given up by the reorder timeout */
};

struct mux;

/* NULL on allocation failure or an unknown cfg->scheduler (logged). */
struct mux *mux_new(struct ev_loop *loop, const struct mux_config *cfg,
                    const struct mux_callbacks *cb);
/* Slave: register a configured link (the caller keeps ownership; destroy it after mux_free),
 * at start or at run time (a reload). Installs the link's handlers. Returns 0, or -1 if the id
 * is already used (by a live or a retired link). */
int mux_add_link(struct mux *m, struct link *l);
/* Slave, at run time (a configuration reload). The link with id is taken out: the master is
 * told it is down, nothing more is sent on it (its queue moves to the others), it leaves the
 * status; what still arrives on its transport is delivered until mux_release_link. Its id is
 * not used again in this process: the master keeps the id's packet counters for the session. */
void mux_retire_link(struct mux *m, uint8_t id);
/* The link with l's id gets the new transport l (changed address, interface, proxy...): the
 * same id, so the master follows it as it follows a NAT rebinding. Returns the old transport
 * (NULL if there is no such live link), whose late datagrams still count until
 * mux_release_link. */
struct link *mux_replace_link(struct mux *m, struct link *l);
/* Slave: the admin takes the link with this name down (it carries nothing, the master is told)
 * or lets it up again. Returns 0, or -1 when there is no such link. */
int mux_link_admin(struct mux *m, const char *name, bool up);
/* A backup link carries data only while no other link can (it keeps its beats); set on the
 * slave by its config, on the master by the slave's BEATs (flag BACKUP). */
void mux_link_backup(struct mux *m, uint8_t id, bool backup);
/* The retired or replaced transport l is no longer used by the mux: the caller destroys it. */
void mux_release_link(struct mux *m, struct link *l);
/* Start timers (beats, handshake). */
void mux_start(struct mux *m);
/* Tell the peer we are going away (LINK_DOWN shutdown on every link), stop timers. */
void mux_shutdown(struct mux *m);
/* Master links created through new_link are destroyed here. */
void mux_free(struct mux *m);

/* A tunnel packet from the tundev. */
void mux_send(struct mux *m, const uint8_t *pkt, size_t len);
/* Master: a DATA or CTRL datagram for this mux's sessions (the site table found it by its
 * receiver index). buf is modified (decrypted in place). */
void mux_input(struct mux *m, uint8_t *buf, size_t len, const struct sockaddr *from,
               socklen_t fromlen);
/* Master: an INIT whose MAC1 (and cookie), Noise message and sender's key (this mux's peer) the
 * site table checked. A retransmission is answered again; an INIT not newer than the last one
 * accepted changes nothing (a replay); else, at most 10 a second, a new pending session and the
 * RESPONSE (through reply_to). s is wiped. */
void mux_accept_init(struct mux *m, struct hs_server *s, uint8_t link_id,
                     const struct sockaddr *from, socklen_t fromlen);

#ifdef BRAID_FUZZ
/* Fuzzing only: take these session keys as if a handshake had made them. */
void mux_fuzz_session(struct mux *m, const struct session_keys *k);
#endif

const struct mux_counters *mux_counters(const struct mux *m);
bool mux_has_session(const struct mux *m);
/* The current session's keys and indices (for the TCP lane's link connections); false when
 * there is none. The caller wipes *out after use. */
bool mux_session_keys(const struct mux *m, struct session_keys *out);
/* Number of links up (usable for data) now. */
int mux_links_up(const struct mux *m);
/* The n multiplexers' metrics in the Prometheus text format; site[k] labels mux[k]'s samples
 * (site NULL: no site label, the slave). */
void mux_metrics(const struct mux *const *mux, const char *const *site, int n,
                 struct strbuf *out);
/* Status as JSON object text, and as a human-readable table. */
void mux_status_json(const struct mux *m, struct strbuf *out);
void mux_status_text(const struct mux *m, struct strbuf *out);

#endif
