/* udp.h: direct UDP link of the slave, bound to a source address and/or an interface.
 * Reopens itself when its interface or address comes back; a master name is resolved anew then. */
#ifndef BRAID_LINK_UDP_H
#define BRAID_LINK_UDP_H

#include <ev.h>

#include "../common/addr.h"
#include "link.h"
#include "resolve.h"

struct udp_link_config {
    uint8_t id;
    const char *name;
    struct addr master;    /* where to send, when master_host is NULL */
    const char *master_host; /* or: a name, resolved with resolver on every (re)open */
    unsigned master_port;
    struct resolver *resolver;
    bool has_bind;         /* bind to a source address */
    struct addr bind;      /* port 0 = any */
    const char *interface; /* SO_BINDTODEVICE, or NULL */
    double retry_s;        /* how often to retry opening while down (default 1 s) */
    int sndbuf, rcvbuf;    /* socket buffer sizes, 0 = default (braid asks for 4 MiB) */
};

/* Creates the link; it tries to open at once and reports state through its handlers (install
 * them with link_set_handlers before calling udp_link_start). */
struct link *udp_link_new(struct ev_loop *loop, const struct udp_link_config *cfg);
void udp_link_start(struct link *l);

#endif
