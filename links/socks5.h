/* socks5.h: the slave's SOCKS5 link: UDP relayed through a SOCKS5 proxy (a phone's proxy app)
 * with UDP ASSOCIATE (RFC 1928) and optional username/password (RFC 1929); or, for a proxy
 * that only does CONNECT, the datagrams as frames over a TCP connection to the master through
 * it (PROTOCOL section 11). */
#ifndef BRAID_LINK_SOCKS5_H
#define BRAID_LINK_SOCKS5_H

#include <ev.h>

#include "../common/addr.h"
#include "link.h"
#include "resolve.h"

struct socks5_link_config {
    uint8_t id;
    const char *name;
    const char *proxy_host;   /* name or IP literal (no brackets) */
    unsigned proxy_port;
    const char *username;     /* NULL or "": no authentication */
    const char *password;
    const char *master_host;  /* name or IP literal: where the relay sends our datagrams */
    unsigned master_port;
    bool has_bind;            /* reach the proxy from this source address */
    struct addr bind;
    const char *interface;    /* reach the proxy through this interface (SO_BINDTODEVICE) */
    struct resolver *resolver;
    double timeout_s;         /* TCP connect + negotiation (default 5 s) */
    double backoff_min_s;     /* first retry delay (default 0.5 s), doubling ... */
    double backoff_max_s;     /* ... up to this (default 2 s: a phone's proxy app that
                                 * restarts is used again within seconds; one connection
                                 * attempt per 1.5-2.5 s does not hammer one that is gone),
                                 * each jittered by +-25 % */
    int sndbuf;               /* UDP socket buffer, 0 = 4 MiB */
    bool tcp;                 /* CONNECT to the master and carry the datagrams over TCP
                               * ("socks5-tcp"), instead of UDP ASSOCIATE */
    /* Optional: told every failure, with the reason as logged (probe-socks uses it). */
    void (*failed)(void *ctx, const char *reason);
    void *failed_ctx;
};

/* Creates the link (strings are copied). Install handlers, then socks5_link_start. */
struct link *socks5_link_new(struct ev_loop *loop, const struct socks5_link_config *cfg);
void socks5_link_start(struct link *l);

#endif
