/* tcp_server.h: the master's TCP listener beside its UDP socket (links/tcp_server.c), and the
 * greeting every connection to it starts with (links/greeting.c, PROTOCOL section 11). */
#ifndef BRAID_LINK_TCP_SERVER_H
#define BRAID_LINK_TCP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server.h"

/* The master's TCP listener on the same address and port (links/tcp_server.c, PROTOCOL
 * section 11). Every connection is greeted with "BRL" ‖ 1 ‖ 16 random bytes; one whose first
 * four bytes are "BRD" ‖ 1 carries datagrams as frames (2-byte length ‖ datagram) to and from
 * the UDP server's listener, from a stream address (common/addr.h); any other goes to the
 * stream handler. */
#define LINK_TCP_GREETING_LEN 20
#define LINK_TCP_CHALLENGE_LEN 16
#define LINK_TCP_DGRAM_MAGIC "BRD\x01"
/* The greeting for challenge; and the challenge of one read so far (0, 1 more bytes needed,
 * -1 not a braid master's greeting). */
void link_tcp_greeting_put(uint8_t out[LINK_TCP_GREETING_LEN],
                           const uint8_t challenge[LINK_TCP_CHALLENGE_LEN]);
int link_tcp_greeting_parse(const uint8_t *p, size_t len,
                            uint8_t challenge[LINK_TCP_CHALLENGE_LEN]);
struct tcp_server;
struct tcp_server_stats {
    uint64_t accepted, refused, handed;             /* connections; handed to the handler */
    uint64_t dgram_opened, dgram_closed;            /* datagram connections */
    uint64_t dgram_rx, dgram_tx, dgram_dropped;     /* their frames */
};
/* Takes a connection that is not a datagram connection: its fd (the handler owns it), the
 * greeting's random bytes, and the first bytes it sent. */
typedef void (*tcp_stream_fn)(void *ctx, int fd, const uint8_t challenge[LINK_TCP_CHALLENGE_LEN],
                              const uint8_t *first, size_t nfirst);
/* Listen (dgrams: accept datagram connections). NULL with a message in err on failure. */
struct tcp_server *tcp_server_new(struct ev_loop *loop, struct udp_server *udp, bool dgrams,
                                  char *err, size_t errlen);
void tcp_server_free(struct tcp_server *t);
int tcp_server_fd(const struct tcp_server *t);
void tcp_server_set_stream_handler(struct tcp_server *t, tcp_stream_fn fn, void *ctx);
const struct tcp_server_stats *tcp_server_stats(const struct tcp_server *t);

#endif
