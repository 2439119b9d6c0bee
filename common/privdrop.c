/* privdrop.c: switches the daemon to an unprivileged user, keeping chosen capabilities
 * (libcap-ng), and says what it kept. */
#include "privdrop.h"

#include <cap-ng.h>
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int privdrop_lookup(const char *user, const char *group, uid_t *uid, gid_t *gid, char *err,
                    size_t errlen)
{
    errno = 0;
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        snprintf(err, errlen, "user \"%s\": no such user%s%s; create one for braid, e.g. "
                 "`adduser --system --group --no-create-home braid`",
                 user, errno ? ": " : "", errno ? strerror(errno) : "");
        return -1;
    }
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    if (group && group[0]) {
        errno = 0;
        struct group *gr = getgrnam(group);
        if (!gr) {
            snprintf(err, errlen, "group \"%s\": no such group", group);
            return -1;
        }
        *gid = gr->gr_gid;
    }
    if (*uid == 0) {
        snprintf(err, errlen, "user \"%s\" is root (uid 0); name an unprivileged user, or leave "
                 "\"user\" out to stay root", user);
        return -1;
    }
    return 0;
}

int privdrop_apply(uid_t uid, gid_t gid, const int *caps, int n, bool ambient, char *err,
                   size_t errlen)
{
    /* Emptying the bounding set takes CAP_SETPCAP; under the shipped units systemd has bounded
     * it already (CapabilityBoundingSet), so without CAP_SETPCAP it stays as it is. */
    capng_get_caps_process();
    bool setpcap = capng_have_capability(CAPNG_EFFECTIVE, CAP_SETPCAP) != 0;
    capng_clear(CAPNG_SELECT_BOTH);
    for (int i = 0; i < n; i++) {
        capng_type_t t = CAPNG_EFFECTIVE | CAPNG_PERMITTED;
        if (ambient) t |= CAPNG_INHERITABLE;
        if (capng_update(CAPNG_ADD, t, (unsigned)caps[i]) != 0) {
            snprintf(err, errlen, "cannot keep capability %d", caps[i]);
            return -1;
        }
    }
    int rc = capng_change_id((int)uid, (int)gid,
                             CAPNG_DROP_SUPP_GRP | (setpcap ? CAPNG_CLEAR_BOUNDING : 0));
    if (rc != 0) {
        snprintf(err, errlen, "cannot switch to uid %u, gid %u (libcap-ng error %d%s)",
                 (unsigned)uid, (unsigned)gid, rc,
                 rc == -4 || rc == -5 ? ": the process lacks CAP_SETUID/CAP_SETGID" : "");
        return -1;
    }
    if (ambient && n > 0) {
        capng_get_caps_process();
        for (int i = 0; i < n; i++) capng_update(CAPNG_ADD, CAPNG_AMBIENT, (unsigned)caps[i]);
        if (capng_apply(CAPNG_SELECT_AMBIENT) != 0) {
            snprintf(err, errlen, "cannot pass the capabilities on to hook commands (ambient)");
            return -1;
        }
    }
    return 0;
}

void privdrop_describe(char *buf, size_t len)
{
    capng_get_caps_process();
    char *s = capng_print_caps_text(CAPNG_PRINT_BUFFER, CAPNG_EFFECTIVE);
    snprintf(buf, len, "%s", s && s[0] ? s : "none");
    free(s);
}
