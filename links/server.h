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

/* Peer links whose address is a stream address (common/addr.h) send their datagrams on a
 * stream connection; whoever carries those (links/tcp_server.c) installs its ops here (NULL:
 * none; such datagrams are dropped). send: 0, or -1 when the connection is gone or full (the
 * datagram dropped); seen: an authenticated datagram came on connection conn. */
struct stream_carrier {
    int (*send)(void *ctx, uint32_t conn, const uint8_t *buf, size_t len);
    void (*seen)(void *ctx, uint32_t conn);
    void *ctx;
};
void udp_server_set_carrier(struct udp_server *s, const struct stream_carrier *c);

#endif
