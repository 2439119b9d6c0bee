/* ctlcmd.c: parses a control socket command line into a struct ctlcmd (see ctlcmd.h). */
#include "ctlcmd.h"

#include <stdio.h>
#include <string.h>

#define USAGE "expected status, json, reload, or link NAME up|down"

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

/* The next space-separated word of *p into w (cap bytes with its NUL): 1, or 0 when there is
 * none, or -1 when it is too long (*p is not moved then). */
static int word(const char **p, char *w, size_t cap)
{
    const char *s = *p;
    while (*s == ' ') s++;
    size_t n = 0;
    while (s[n] && s[n] != ' ') n++;
    if (n == 0) return 0;
    if (n >= cap) return -1;
    memcpy(w, s, n);
    w[n] = '\0';
    *p = s + n;
    return 1;
}

static bool printable(const char *s)
{
    for (; *s; s++)
        if (*s < 0x21 || *s > 0x7e) return false;
    return true;
}

int ctlcmd_parse(const char *line, struct ctlcmd *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *p = line;
    char verb[16], name[64], state[16];
    int w = word(&p, verb, sizeof verb);
    if (w == 0) {
        snprintf(err, errlen, "no command; " USAGE);
        return -1;
    }
    if (w < 0) {
        snprintf(err, errlen, "unknown command; " USAGE);
        return -1;
    }
    if (strcmp(verb, "status") == 0) out->kind = CTL_STATUS;
    else if (strcmp(verb, "json") == 0) out->kind = CTL_JSON;
    else if (strcmp(verb, "reload") == 0) out->kind = CTL_RELOAD;
    else if (strcmp(verb, "link") == 0) out->kind = CTL_LINK;
    else {
        if (printable(verb)) snprintf(err, errlen, "unknown command \"%s\"; " USAGE, verb);
        else snprintf(err, errlen, "unknown command; " USAGE);
        return -1;
    }
    if (out->kind == CTL_LINK) {
        if (word(&p, name, sizeof name) != 1 || strlen(name) >= sizeof out->link) {
            snprintf(err, errlen, "link: expected a link's name (1 to %zu characters), then up "
                                  "or down", sizeof out->link - 1);
            return -1;
        }
        for (const char *c = name; *c; c++)
            if (!name_char(*c)) {
                snprintf(err, errlen, "link: a link's name has only letters, digits, '.', '_' "
                                      "and '-'");
                return -1;
            }
        if (word(&p, state, sizeof state) != 1 ||
            (strcmp(state, "up") != 0 && strcmp(state, "down") != 0)) {
            snprintf(err, errlen, "link %s: expected up or down after the name", name);
            return -1;
        }
        memcpy(out->link, name, strlen(name) + 1);
        out->up = strcmp(state, "up") == 0;
    }
    while (*p == ' ') p++;
    if (*p) {
        snprintf(err, errlen, "%s: unexpected words after the command; " USAGE, verb);
        return -1;
    }
    return 0;
}
