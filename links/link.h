/* link.h: the link interface: one path between slave and master that carries datagrams.
 * Implementations: links/udp.c (direct UDP), links/socks5.c (UDP through a SOCKS5 proxy),
 * links/server.c (the master's view of a slave link). */
#ifndef BRAID_LINK_H
#define BRAID_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../common/strbuf.h"

struct link;

/* Upcalls from a link to its owner (the mux), installed with link_set_handlers. */
struct link_handlers {
    /* A datagram arrived (transport headers already removed). buf is writable and only valid
     * during the call. from is the datagram's source as the transport saw it. */
    void (*rx)(void *ctx, struct link *l, uint8_t *buf, size_t len, const struct sockaddr *from,
               socklen_t fromlen);
    /* The transport came up (socket open, proxy associated) or went down (interface gone,
     * proxy lost, fatal send error). */
    void (*state)(void *ctx, struct link *l, bool up);
    void *ctx;
};

/* The master's address now; the source address to bind (bindlen 0: none) and the interface
 * ("" for none); for a link through a SOCKS5 proxy, the proxy (proxylen 0: none), to which the
 * connection goes first and asks for the master with CONNECT, and its login (user "": none). */
struct link_stream_target {
    struct sockaddr_storage to, bind, proxy;
    socklen_t tolen, bindlen, proxylen;
    char ifname[16];
    char user[256], pass[256];
};

struct link_ops {
    const char *kind; /* "udp", "socks5", "peer" */
    /* Send one datagram. Returns 0 on success (or a drop the kernel will not report, e.g.
     * EAGAIN, counted in the link), -1 when the transport is unusable (the link goes down). */
    int (*send)(struct link *l, const uint8_t *buf, size_t len);
    /* Optional: an authenticated datagram arrived from this source: follow it (master side). */
    void (*peer_seen)(struct link *l, const struct sockaddr *from, socklen_t fromlen);
    /* Optional: nothing has been heard from the peer on this link for a while (the mux calls
     * this every stale interval while it lasts): re-establish the path if that can help (a new
     * source port for a dead NAT mapping, a new SOCKS5 association). */
    void (*stale)(struct link *l);
    /* Human-readable endpoint description for status output. */
    void (*describe)(const struct link *l, char *buf, size_t len);
    /* Optional: transport details for the JSON status, as one JSON object appended to sb
     * (SOCKS5: establishment state, failures, last error, drops by reason). */
    void (*status_json)(const struct link *l, struct strbuf *sb);
    void (*destroy)(struct link *l);
    /* Optional (slave): how a TCP connection along this link reaches the master (the TCP
     * lane). 0, or -1 while that is not known (down, not resolved). */
    int (*stream_target)(const struct link *l, struct link_stream_target *t);
};

struct link_counters {
    uint64_t tx_packets, tx_bytes, tx_errors, tx_dropped; /* dropped: EAGAIN/ENOBUFS */
    uint64_t rx_packets, rx_bytes, rx_dropped;            /* dropped by the transport (wrong source...) */
};

struct link {
    const struct link_ops *ops;
    uint8_t id;
    char name[32];
    bool up;           /* transport state */
    size_t overhead;   /* bytes the transport adds inside the UDP payload (SOCKS5 header) */
    struct link_handlers h;
    struct link_counters c;
};

static inline void link_set_handlers(struct link *l, const struct link_handlers *h)
{
    l->h = *h;
}
static inline int link_send(struct link *l, const uint8_t *buf, size_t len)
{
    return l->ops->send(l, buf, len);
}
static inline void link_destroy(struct link *l)
{
    if (l) l->ops->destroy(l);
}

/* For implementations: report a state change to the owner (no-op if unchanged). */
void link_report_state(struct link *l, bool up);

/* The master's side: one listening socket where the links of every site arrive (links/
 * server.c). Its owner (the site table) takes each datagram through rx, makes the link for a
 * newly authenticated link id with peer_new, and answers handshakes with reply. */
struct listener;
struct listener_ops {
    /* A link for link id, sending through this listener to the address its latest
     * authenticated datagram came from (link_destroy frees it). NULL when out of memory. */
    struct link *(*peer_new)(struct listener *ls, uint8_t id);
    /* Send one datagram to an address (handshake replies). 0, or -1 (dropped, counted). */
    int (*reply)(struct listener *ls, const uint8_t *buf, size_t len, const struct sockaddr *to,
                 socklen_t tolen);
};
struct listener {
    const struct listener_ops *ops;
    /* Installed by the owner: a datagram arrived (buf is writable, valid during the call). */
    void (*rx)(void *ctx, uint8_t *buf, size_t len, const struct sockaddr *from,
               socklen_t fromlen);
    void *ctx;
};

#endif
