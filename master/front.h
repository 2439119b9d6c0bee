/* front.h: the master's handshake front door, before any site is known: MAC1 (keyed by the
 * master's public key), cookie replies under load, a rate limit per source address, and the
 * opening of the INIT's Noise message that tells which site sent it (docs/PROTOCOL.md 5). */
#ifndef BRAID_MASTER_FRONT_H
#define BRAID_MASTER_FRONT_H

#include <stdint.h>
#include <sys/socket.h>

#include "../mux/session.h"

#define FRONT_LOAD_PER_S 50u /* INITs a second above which the master is under load */
#define FRONT_SRC_PER_S 20u  /* INITs a second from one source address (IP) ... */
#define FRONT_SRC_BURST 20u  /* ... after a burst of this many */

struct front_counters {
    uint64_t hello_rx;        /* handshake datagrams */
    uint64_t malformed;       /* not an INIT, or malformed */
    uint64_t mac1_bad;        /* not made with this master's public key */
    uint64_t cookie_tx;       /* cookie replies sent (under load, no valid cookie) */
    uint64_t src_ratelimited; /* dropped: the source address sent too many */
    uint64_t noise_bad;       /* the Noise message did not open */
};

struct front;
struct front *front_new(const struct identity *self);
void front_free(struct front *f);

enum front_verdict {
    FRONT_DROP = 0,   /* nothing to do */
    FRONT_REPLY = 1,  /* send reply (a cookie reply) to the source */
    FRONT_READ = 2,   /* *s holds the opened INIT: the sender's key is s->noise.rs */
};
/* A handshake datagram from the listening socket at time now (us). reply must hold
 * HS_COOKIE_REPLY_LEN bytes. */
enum front_verdict front_init(struct front *f, const uint8_t *buf, size_t len,
                              const struct sockaddr *from, socklen_t fromlen, uint64_t now,
                              struct hs_server *s, uint8_t *reply, size_t *reply_len);
const struct front_counters *front_counters(const struct front *f);

#endif
