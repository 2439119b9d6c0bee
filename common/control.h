/* control.h: the daemons' local control socket (UNIX stream) for status queries.
 * A client writes one command line ("status" or "json"), reads the answer until EOF. */
#ifndef BRAID_CONTROL_H
#define BRAID_CONTROL_H

#include <ev.h>
#include <stdio.h>

#include "strbuf.h"

/* Produce the answer for cmd ("status", "json") into out. */
typedef void (*control_fn)(void *ctx, const char *cmd, struct strbuf *out);

struct control;
/* Listen on path (an existing socket file is replaced). NULL with err on failure. */
struct control *control_open(struct ev_loop *loop, const char *path, control_fn fn, void *ctx,
                             char *err, size_t errlen);
void control_close(struct control *c); /* also unlinks the path */

/* Client side: send cmd to the socket at path and copy the answer to out. Returns 0, or -1
 * with a message on stderr. */
int control_query(const char *path, const char *cmd, FILE *out);

#endif
