/* ctlcmd.h: the control socket's command language: one line, "status", "json", "reload",
 * "link NAME up|down". Parsed here, bounds-checked, for both daemons. */
#ifndef BRAID_CTLCMD_H
#define BRAID_CTLCMD_H

#include <stdbool.h>
#include <stddef.h>

enum ctlcmd_kind { CTL_STATUS = 1, CTL_JSON, CTL_RELOAD, CTL_LINK };

struct ctlcmd {
    enum ctlcmd_kind kind;
    char link[32]; /* CTL_LINK: a link name, 1-31 of [A-Za-z0-9._-] (as in the config) */
    bool up;       /* CTL_LINK: "up" (true) or "down" */
};

/* Parse one command line (without its newline). Returns 0, or -1 with what is wrong (and what
 * the commands are) in err. */
int ctlcmd_parse(const char *line, struct ctlcmd *out, char *err, size_t errlen);

#endif
