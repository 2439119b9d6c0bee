/* privdrop.h: after the daemon has opened what needs root (the TUN device, its sockets), run on
 * as an unprivileged user with only the capabilities it still needs (libcap-ng). */
#ifndef BRAID_PRIVDROP_H
#define BRAID_PRIVDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The user's uid and the group's gid (group NULL or "": the user's own group). 0, or -1 with
 * what is wrong in err. */
int privdrop_lookup(const char *user, const char *group, uid_t *uid, gid_t *gid, char *err,
                    size_t errlen);
/* Become uid/gid (no supplementary groups, an empty bounding set when we may empty it), keeping the capabilities
 * caps[0..n-1] (CAP_* numbers); ambient: also pass them to the programs it starts (hook
 * commands). 0, or -1 with what is wrong in err. */
int privdrop_apply(uid_t uid, gid_t gid, const int *caps, int n, bool ambient, char *err,
                   size_t errlen);
/* Our effective capabilities as text ("none", or "net_admin, net_raw"), for the log. */
void privdrop_describe(char *buf, size_t len);

#endif
