/* sock.c: socket helpers shared by the link implementations.
 * Buffer sizing, classification of send errors, retry backoff. */
#include "sock.h"

#include <errno.h>
#include <sys/socket.h>

void sock_set_buffers(int fd, int size)
{
    if (size <= 0) return;
    /* The FORCE variants ignore net.core.[rw]mem_max but need CAP_NET_ADMIN. */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
}

bool sock_error_is_fatal(int err)
{
    switch (err) {
    case ENETDOWN:
    case ENETUNREACH:
    case ENODEV:
    case ENXIO:
    case EADDRNOTAVAIL:
    case EINVAL:
    case EBADF:
    case ENOTCONN:
    case EPIPE:
        return true;
    default:
        return false;
    }
}

double sock_backoff_s(double min_s, double max_s, unsigned failures, double u01)
{
    double d = min_s;
    for (unsigned i = 0; i < failures && d < max_s; i++) d *= 2;
    if (d > max_s) d = max_s;
    if (u01 < 0) u01 = 0;
    if (u01 > 1) u01 = 1;
    return d * (0.75 + 0.5 * u01);
}
