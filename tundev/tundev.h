/* tundev.h: the tunnel device interface: IP packets in and out of the host.
 * Two implementations, chosen at build time: tun_linux.c (TUN) and notun.c (TCP frames). */
#ifndef BRAID_TUNDEV_H
#define BRAID_TUNDEV_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/addr.h"

struct tundev_config {
    /* TUN build */
    const char *name;    /* interface name, e.g. "braid0" ("" = kernel picks) */
    const char *address; /* "198.18.0.1/30" or an IPv6 "fd00::1/64", or NULL: leave unset */
    const char *address6; /* optional second (IPv6) address, or NULL */
    unsigned mtu;        /* tunnel MTU (always set, computed by the caller when "auto") */
    /* notun build */
    struct addr listen;  /* TCP address the frame client connects to */
    size_t max_queue;    /* bytes queued toward a slow frame client before dropping (0 = 4 MiB;
                          * at least one maximum frame, 65537, is always allowed) */
};

struct tundev_stats {
    uint64_t rx_packets, rx_bytes;   /* from the host into braid */
    uint64_t tx_packets, tx_bytes;   /* from braid to the host */
    uint64_t rx_rejected;            /* frames larger than the MTU or empty (notun) */
    uint64_t tx_dropped;             /* could not be written (queue full, no client) */
};

/* Packet upcall: one IP packet read from the host. pkt is only valid during the call.
 * It may call tundev_write, but must not call tundev_close on the same device. */
typedef void (*tundev_rx_fn)(void *ctx, const uint8_t *pkt, size_t len);

struct tundev;

/* Open the device (create/configure the TUN interface, or listen for the frame client).
 * Returns NULL with a message in err saying what is wrong and what to do. */
struct tundev *tundev_open(struct ev_loop *loop, const struct tundev_config *cfg, tundev_rx_fn rx,
                           void *ctx, char *err, size_t errlen);
/* Write one packet to the host. Never blocks; returns 0, or -1 if it was dropped (counted). */
int tundev_write(struct tundev *t, const uint8_t *pkt, size_t len);
const struct tundev_stats *tundev_stats(const struct tundev *t);
/* "tun braid0" or "notun 127.0.0.1:7100 (client 127.0.0.1:5555)" */
void tundev_describe(const struct tundev *t, char *buf, size_t len);
/* The host's name for the device ("braid0"); notun: "" (there is no interface). */
const char *tundev_ifname(const struct tundev *t);
/* notun: the address actually listened on (useful with port 0). TUN: NULL. */
const struct addr *tundev_listen_addr(const struct tundev *t);
void tundev_close(struct tundev *t);
/* Which implementation this binary has: "tun" or "notun". */
extern const char tundev_kind[];

#endif
