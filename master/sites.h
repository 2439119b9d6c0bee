/* sites.h: the master's sites: one multiplexer per configured site behind one UDP socket and one
 * tunnel device. Datagrams find their site by receiver index (handshakes through the front door,
 * then by the sender's public key); tunnel packets by cryptokey routing: a packet goes to the
 * site whose allowed_ips hold its destination, and a site's decrypted packet whose source is not
 * in its allowed_ips is dropped. Lookups by index, key and prefix: no cost grows with the number
 * of sites. */
#ifndef BRAID_MASTER_SITES_H
#define BRAID_MASTER_SITES_H

#include <ev.h>

#include "../common/cfg.h"
#include "../common/strbuf.h"
#include "../links/link.h"
#include "../mux/mux.h"
#include "front.h"

/* Upward, to the program: what the site table hands on (the links' side is the listener). */
struct sites_io {
    /* A site's in-order tunnel packet, its source checked: for the tundev. */
    void (*deliver)(void *ctx, const uint8_t *pkt, size_t len);
    /* Optional: a site's link went up or down. */
    void (*link_state)(void *ctx, const char *site, const char *link, uint8_t id, bool up,
                       int links_up);
    void *ctx;
};

struct sites_counters {
    uint64_t malformed;   /* not a braid datagram of this version */
    uint64_t no_session;  /* DATA/CTRL whose receiver index is no session's */
    uint64_t unknown_key; /* INITs from a public key that is no site's */
    uint64_t tx_no_route; /* tunnel packets whose destination is in no site's allowed_ips */
    uint64_t tx_not_ip;   /* tunnel packets that are not IPv4 or IPv6 (with routing) */
};

struct sites;
/* One multiplexer per cfg site; base holds the settings they share (timings, MTU, scheduler,
 * this end's identity). The site table takes the listener's datagrams (it installs its rx) and
 * makes its links and answers through it. NULL after logging why not. */
struct sites *sites_new(struct ev_loop *loop, const struct mux_config *base,
                        const struct cfg_site *cs, int n, struct listener *ls,
                        const struct sites_io *io);
/* A reload: the sites of the new config (matched to the running ones by public key). A kept
 * site keeps its session (a new psk, scheduler or reorder_max_ms gives it a new one); a removed
 * site's slave is told its links are gone; new sites are served at once. changes: sites added,
 * removed, changed; out: a line for each. Returns 0, or -1 (out of memory: nothing changed). */
int sites_reload(struct sites *s, const struct mux_config *base, const struct cfg_site *cs,
                 int n, int changes[3], struct strbuf *out);
void sites_start(struct sites *s);
void sites_shutdown(struct sites *s);
void sites_free(struct sites *s);

/* A datagram from the listener (modified: decrypted in place); what its rx calls. */
void sites_input(struct sites *s, uint8_t *buf, size_t len, const struct sockaddr *from,
                 socklen_t fromlen);
/* A tunnel packet from the tundev. */
void sites_send(struct sites *s, const uint8_t *pkt, size_t len);

/* The TCP lane: at most max_conns terminated connections per site (0: the lane is off). */
void sites_set_lane(struct sites *s, int max_conns);
/* The lane's end of the site whose session has this receiver index (made on demand) and the
 * session's keys; NULL when there is none. */
struct lane_peer *sites_lane_session(struct sites *s, uint32_t index, uint8_t tx[32],
                                     uint8_t rx[32]);
int sites_count(const struct sites *s);
struct mux *sites_mux(const struct sites *s, int i);
const struct sites_counters *sites_counters(const struct sites *s);
const struct front_counters *sites_front_counters(const struct sites *s);
/* Bytes of the master's own tables (index, keys, prefixes, front), beside the muxes. */
size_t sites_table_bytes(const struct sites *s);
/* Status as JSON members ("counters":{...},"sites":[...]) and as a table. */
void sites_status_json(const struct sites *s, struct strbuf *out);
/* The sites' metrics (Prometheus text format): every site's multiplexer, labelled by site, and
 * the master's own counters. */
void sites_metrics(const struct sites *s, struct strbuf *out);
void sites_status_text(const struct sites *s, struct strbuf *out);

#endif
