/* sock.h: socket helpers shared by the link implementations (buffer sizes, error classes).
 * Internal to links/. */
#ifndef BRAID_LINK_SOCK_H
#define BRAID_LINK_SOCK_H

#include <stdbool.h>

/* Ask for send/receive buffers of size bytes (forced when privileged). Best effort. */
void sock_set_buffers(int fd, int size);
/* True for send errors meaning the path is gone (interface down or removed, address gone),
 * as opposed to a transient drop (EAGAIN, ENOBUFS) or an ICMP report (ECONNREFUSED). */
bool sock_error_is_fatal(int err);

#endif
