/* server.h: the master's UDP listening socket and the per-link-id "peer" links on top of it.
 * A peer link sends to the address its last authenticated datagram came from. */
#ifndef BRAID_LINK_SERVER_H
#define BRAID_LINK_SERVER_H

#include <ev.h>

#include "../common/addr.h"
#include "link.h"

struct udp_server;

/* Bind and start listening. Returns NULL with a message in err on failure. Datagrams go to the
 * listener's rx (udp_server_listener) once its owner installed one. */
struct udp_server *udp_server_new(struct ev_loop *loop, const struct addr *listen, int bufsize,
                                  char *err, size_t errlen);
void udp_server_free(struct udp_server *s);
/* The server as the link layer's listener: peer_new makes a link for a slave link id (it has no
 * address, and drops what it is asked to send, until its peer_seen gives it one); reply sends
 * a datagram to an address. */
struct listener *udp_server_listener(struct udp_server *s);
/* The bound local address (useful with port 0). */
const struct addr *udp_server_local(const struct udp_server *s);

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
/* For links/server.c: send a datagram on a datagram connection (0, or -1: gone or full, the
 * datagram dropped); an authenticated datagram came on it. And the UDP server's side. */
int tcp_server_send(struct tcp_server *t, uint32_t conn, const uint8_t *buf, size_t len);
void tcp_server_seen(struct tcp_server *t, uint32_t conn);
void udp_server_set_tcp(struct udp_server *s, struct tcp_server *t);

#endif
