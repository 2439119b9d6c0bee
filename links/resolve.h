/* resolve.h: asynchronous name resolution for links (proxy and master names) with c-ares in the
 * libev loop. IP literals are parsed directly, without a DNS round trip. */
#ifndef BRAID_RESOLVE_H
#define BRAID_RESOLVE_H

#include <ev.h>

#include "../common/addr.h"

struct resolver;
struct resolve_req;

/* servers: NULL for the system's (/etc/resolv.conf), or c-ares's CSV form
 * "198.18.0.53,[2001:db8::53]:5353". /etc/hosts is consulted first either way.
 * Returns NULL with a message in err. */
struct resolver *resolver_new(struct ev_loop *loop, const char *servers, char *err,
                              size_t errlen);
/* Cancels what is pending (no callback runs). */
void resolver_free(struct resolver *r);

/* ok: a holds the first address of the answer, with port set; otherwise err says why
 * ("Domain name not found", "Timeout while contacting DNS servers"). */
typedef void (*resolve_cb)(void *ctx, bool ok, const struct addr *a, const char *err);

/* Resolve host (a name or an IP literal, without brackets) for family AF_UNSPEC, AF_INET or
 * AF_INET6. The callback always runs later from the loop, never inside resolve_start. Returns
 * NULL only when out of memory. */
struct resolve_req *resolve_start(struct resolver *r, const char *host, unsigned port, int family,
                                  resolve_cb cb, void *ctx);
/* The callback of req will not run. req must be pending (its callback has not run yet). */
void resolve_cancel(struct resolve_req *req);

#endif
