/* httpd.h: a small HTTP endpoint on the event loop (libmicrohttpd, no thread of its own) that
 * answers GET requests with text the program makes: braid's Prometheus /metrics. */
#ifndef BRAID_HTTPD_H
#define BRAID_HTTPD_H

#include <ev.h>
#include <stddef.h>

#include "addr.h"
#include "strbuf.h"

/* The body for a GET of path into out; returns the HTTP status (200, or 404 for an unknown
 * path). */
typedef int (*httpd_fn)(void *ctx, const char *path, struct strbuf *out);

struct httpd;
/* Listen on addr (TCP). NULL with what is wrong in err. */
struct httpd *httpd_open(struct ev_loop *loop, const struct addr *addr, httpd_fn fn, void *ctx,
                         char *err, size_t errlen);
void httpd_close(struct httpd *h);

#endif
