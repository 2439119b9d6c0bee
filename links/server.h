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

#endif
