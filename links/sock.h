/* sock.h: socket helpers shared by the link implementations (buffer sizes, error classes).
 * Internal to links/. */
#ifndef BRAID_LINK_SOCK_H
#define BRAID_LINK_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Ask for send/receive buffers of size bytes (forced when privileged). Best effort. */
void sock_set_buffers(int fd, int size);
/* True for send errors meaning the path is gone (interface down or removed, address gone),
 * as opposed to a transient drop (EAGAIN, ENOBUFS) or an ICMP report (ECONNREFUSED). */
bool sock_error_is_fatal(int err);

/* Delay before retry number failures+1 after failures consecutive failures: min_s doubled per
 * failure, at most max_s, times a jitter factor 0.75 + 0.5 * u01 (u01 uniform in [0, 1]) so
 * that links which failed together do not retry in lockstep. */
double sock_backoff_s(double min_s, double max_s, unsigned failures, double u01);

/* Datagrams as frames on a TCP connection (2-byte length ‖ datagram, common/frame.h), with a
 * buffer (wbuf, cap bytes, *wlen used) for what the kernel did not take, so that frames stay
 * whole. Send one: 1 sent or queued, 0 dropped (the kernel holds more than unsent_max bytes
 * not sent yet, or the buffer is full: a late datagram is worse than a lost one), -1 the
 * connection failed (errno). Then flush: 1 the buffer is empty, 0 not yet, -1 failed. */
#define SOCK_FRAME_WBUF (2 + 65535 + 64 * 1024)
int sock_frame_send(int fd, uint8_t *wbuf, size_t *wlen, size_t cap, int unsent_max,
                    const uint8_t *buf, size_t len);
int sock_frame_flush(int fd, uint8_t *wbuf, size_t *wlen);

#endif
