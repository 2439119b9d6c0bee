/* sock.c: socket helpers shared by the link implementations.
 * Buffer sizing, classification of send errors, retry backoff, datagrams as frames on TCP. */
#include "sock.h"

#include <errno.h>
#include <linux/sockios.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "../common/frame.h"

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

int sock_frame_send(int fd, uint8_t *wbuf, size_t *wlen, size_t cap, int unsent_max,
                    const uint8_t *buf, size_t len)
{
    if (len == 0 || len > FRAME_MAX_LEN) return 0;
    uint8_t hdr[FRAME_HDR_LEN];
    frame_put_header(hdr, len);
    size_t total = sizeof hdr + len;
    if (*wlen) { /* the kernel is full already: queue it whole, or drop it */
        if (*wlen + total > cap) return 0;
        memcpy(wbuf + *wlen, hdr, sizeof hdr);
        memcpy(wbuf + *wlen + sizeof hdr, buf, len);
        *wlen += total;
        return 1;
    }
    int unsent = 0;
    if (ioctl(fd, SIOCOUTQNSD, &unsent) == 0 && unsent > unsent_max) return 0;
    struct iovec iov[2] = {{.iov_base = hdr, .iov_len = sizeof hdr},
                           {.iov_base = (void *)buf, .iov_len = len}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
        n = 0;
    }
    size_t done = (size_t)n;
    if (done < total) { /* the rest waits for the kernel */
        if (done < sizeof hdr) {
            memcpy(wbuf, hdr + done, sizeof hdr - done);
            memcpy(wbuf + sizeof hdr - done, buf, len);
        } else {
            memcpy(wbuf, buf + (done - sizeof hdr), total - done);
        }
        *wlen = total - done;
    }
    return 1;
}

int sock_frame_flush(int fd, uint8_t *wbuf, size_t *wlen)
{
    while (*wlen) {
        ssize_t n = send(fd, wbuf, *wlen, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
            return -1;
        }
        memmove(wbuf, wbuf + n, *wlen - (size_t)n);
        *wlen -= (size_t)n;
    }
    return 1;
}
