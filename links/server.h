/* server.h: the master's UDP listening socket and the per-link-id "peer" links on top of it.
 * A peer link sends to the address its last authenticated datagram came from. */
#ifndef BRAID_LINK_SERVER_H
#define BRAID_LINK_SERVER_H

#include <ev.h>

#include "../common/addr.h"
#include "link.h"

struct udp_server;

/* Datagram upcall: the mux authenticates, then picks or creates the peer link. */
typedef void (*udp_server_rx_fn)(void *ctx, uint8_t *buf, size_t len, const struct sockaddr *from,
                                 socklen_t fromlen);

/* Bind and start listening. Returns NULL with a message in err on failure. */
struct udp_server *udp_server_new(struct ev_loop *loop, const struct addr *listen, int bufsize,
                                  udp_server_rx_fn rx, void *ctx, char *err, size_t errlen);
void udp_server_free(struct udp_server *s);
/* Send a datagram to an address (handshake replies). Returns 0 or -1. */
int udp_server_sendto(struct udp_server *s, const uint8_t *buf, size_t len,
                      const struct sockaddr *to, socklen_t tolen);
/* A link for a slave link id; it has no address (and drops what it is asked to send) until
 * peer_seen gives it one. Destroyed with link_destroy. */
struct link *udp_server_peer_new(struct udp_server *s, uint8_t id);
/* The bound local address (useful with port 0). */
const struct addr *udp_server_local(const struct udp_server *s);

#endif
