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

/* Delay before retry number failures+1 after failures consecutive failures: min_s doubled per
 * failure, at most max_s, times a jitter factor 0.75 + 0.5 * u01 (u01 uniform in [0, 1]) so
 * that links which failed together do not retry in lockstep. */
double sock_backoff_s(double min_s, double max_s, unsigned failures, double u01);

#endif
