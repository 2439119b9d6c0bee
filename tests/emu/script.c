/* script.c: parser for braid-emu's commands (control socket) and event scripts (--script),
 * with bounds-checked tokenising and messages that give file:line and the expected syntax. */
#include "script.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD_SYNTAX                                                                                 \
    "commands: blackhole up|down|both [for TIME], clear up|down|both, set up|down|both "           \
    "key=value..., rebind, stats, quit"

struct tok {
    const char *p;
    size_t n;
};

static bool tok_is(const struct tok *t, const char *s)
{
    return t->n == strlen(s) && strncmp(t->p, s, t->n) == 0;
}

/* Split line into at most max words; returns the count, or -1 if there are more. */
static int tokenize(const char *line, struct tok *toks, int max)
{
    int n = 0;
    const char *s = line;
    for (;;) {
        size_t len = 0;
        while (isspace((unsigned char)*s))
            s++;
        if (!*s) break;
        while (s[len] && !isspace((unsigned char)s[len]))
            len++;
        if (n == max) return -1;
        toks[n].p = s;
        toks[n].n = len;
        n++;
        s += len;
    }
    return n;
}

static int parse_dir(const struct tok *t, unsigned *dirs, char *err, size_t errlen)
{
    if (tok_is(t, "up"))
        *dirs = EMU_DIR_UP;
    else if (tok_is(t, "down"))
        *dirs = EMU_DIR_DOWN;
    else if (tok_is(t, "both"))
        *dirs = EMU_DIR_BOTH;
    else {
        snprintf(err, errlen, "\"%.*s\": expected a direction: up, down or both", (int)t->n, t->p);
        return -1;
    }
    return 0;
}

#define MAX_TOKS 64

static int parse_toks(const struct tok *tk, int n, struct emu_cmd *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (n == 0) {
        snprintf(err, errlen, "empty command; %s", CMD_SYNTAX);
        return -1;
    }
    if (tok_is(&tk[0], "blackhole")) {
        out->kind = EMU_CMD_BLACKHOLE;
        if (n < 2) {
            snprintf(err, errlen,
                     "blackhole: missing direction; expected blackhole up|down|both "
                     "[for TIME]");
            return -1;
        }
        if (parse_dir(&tk[1], &out->dirs, err, errlen) < 0) return -1;
        if (n == 2) return 0;
        if (n != 4 || !tok_is(&tk[2], "for")) {
            snprintf(err, errlen, "blackhole: expected blackhole up|down|both [for TIME]");
            return -1;
        }
        if (emu_parse_time(tk[3].p, tk[3].n, &out->for_ns, err, errlen) < 0) return -1;
        if (out->for_ns == 0) {
            snprintf(err, errlen, "blackhole ... for 0: the duration must be > 0");
            return -1;
        }
        return 0;
    }
    if (tok_is(&tk[0], "clear")) {
        out->kind = EMU_CMD_CLEAR;
        if (n != 2) {
            snprintf(err, errlen, "clear: expected clear up|down|both");
            return -1;
        }
        return parse_dir(&tk[1], &out->dirs, err, errlen);
    }
    if (tok_is(&tk[0], "set")) {
        out->kind = EMU_CMD_SET;
        if (n < 3) {
            snprintf(err, errlen,
                     "set: expected set up|down|both key=value... (e.g. set up "
                     "rate=2mbit delay=40ms)");
            return -1;
        }
        if (parse_dir(&tk[1], &out->dirs, err, errlen) < 0) return -1;
        for (int i = 2; i < n; i++) {
            /* commas inside a word separate items too */
            const char *p = tk[i].p, *end = tk[i].p + tk[i].n;
            while (p < end) {
                const char *c = memchr(p, ',', (size_t)(end - p));
                size_t len = c ? (size_t)(c - p) : (size_t)(end - p);
                if (len && emu_spec_parse_item(p, len, &out->spec, err, errlen) < 0) {
                    emu_spec_free(&out->spec);
                    return -1;
                }
                p += len + (c ? 1 : 0);
            }
        }
        if ((out->spec.mask & EMU_F_RATE) && (out->spec.mask & EMU_F_TRACE)) {
            snprintf(err, errlen, "set: rate= and trace= cannot be combined");
            emu_spec_free(&out->spec);
            return -1;
        }
        if (out->spec.mask == 0) {
            snprintf(err, errlen, "set: no key=value given");
            return -1;
        }
        return 0;
    }
    if (tok_is(&tk[0], "rebind") || tok_is(&tk[0], "stats") || tok_is(&tk[0], "quit")) {
        out->kind = tok_is(&tk[0], "rebind")  ? EMU_CMD_REBIND
                    : tok_is(&tk[0], "stats") ? EMU_CMD_STATS
                                              : EMU_CMD_QUIT;
        if (n != 1) {
            snprintf(err, errlen, "%.*s takes no arguments", (int)tk[0].n, tk[0].p);
            return -1;
        }
        return 0;
    }
    if (tok_is(&tk[0], "at")) {
        snprintf(err, errlen,
                 "\"at TIME\" is only for scripts (--script); send the command "
                 "itself");
        return -1;
    }
    snprintf(err, errlen, "unknown command \"%.*s\"; %s", (int)tk[0].n, tk[0].p, CMD_SYNTAX);
    return -1;
}

int emu_cmd_parse(const char *line, struct emu_cmd *out, char *err, size_t errlen)
{
    struct tok tk[MAX_TOKS];
    int n = tokenize(line, tk, MAX_TOKS);
    memset(out, 0, sizeof(*out));
    if (n < 0) {
        snprintf(err, errlen, "too many words (at most %d)", MAX_TOKS);
        return -1;
    }
    return parse_toks(tk, n, out, err, errlen);
}

void emu_cmd_free(struct emu_cmd *c)
{
    emu_spec_free(&c->spec);
}

static int cmp_event(const void *a, const void *b)
{
    const struct emu_event *x = a, *y = b;
    if (x->at_ns != y->at_ns) return x->at_ns < y->at_ns ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

int emu_script_parse(const char *text, size_t len, const char *name, struct emu_script *out,
                     char *err, size_t errlen)
{
    size_t pos = 0, cap = 0;
    unsigned lineno = 0;
    char line[4096], msg[512];
    memset(out, 0, sizeof(*out));
    while (pos < len) {
        size_t end = pos, ll;
        struct tok tk[MAX_TOKS];
        struct emu_event ev;
        int n;
        char *hash;
        while (end < len && text[end] != '\n')
            end++;
        lineno++;
        ll = end - pos;
        if (ll >= sizeof(line)) {
            snprintf(err, errlen, "%s:%u: line too long (at most %zu characters)", name, lineno,
                     sizeof(line) - 1);
            goto fail;
        }
        memcpy(line, text + pos, ll);
        line[ll] = '\0';
        pos = end + 1;
        if (memchr(line, '\0', ll)) {
            snprintf(err, errlen, "%s:%u: NUL byte in the line; a script is text", name, lineno);
            goto fail;
        }
        hash = strchr(line, '#');
        if (hash) *hash = '\0';
        n = tokenize(line, tk, MAX_TOKS);
        if (n == 0) continue;
        if (n < 0) {
            snprintf(err, errlen, "%s:%u: too many words (at most %d)", name, lineno, MAX_TOKS);
            goto fail;
        }
        if (!tok_is(&tk[0], "at") || n < 3) {
            snprintf(err, errlen,
                     "%s:%u: expected \"at TIME COMMAND\" (e.g. at 5s blackhole both "
                     "for 3s)",
                     name, lineno);
            goto fail;
        }
        memset(&ev, 0, sizeof(ev));
        ev.line = lineno;
        if (emu_parse_time(tk[1].p, tk[1].n, &ev.at_ns, msg, sizeof(msg)) < 0) {
            snprintf(err, errlen, "%s:%u: %s", name, lineno, msg);
            goto fail;
        }
        if (parse_toks(tk + 2, n - 2, &ev.cmd, msg, sizeof(msg)) < 0) {
            snprintf(err, errlen, "%s:%u: %s", name, lineno, msg);
            goto fail;
        }
        if (ev.cmd.kind == EMU_CMD_STATS) {
            snprintf(err, errlen,
                     "%s:%u: stats is a control-socket command; use --stats FILE for "
                     "the final counters",
                     name, lineno);
            goto fail;
        }
        if (out->n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct emu_event *nev = realloc(out->ev, ncap * sizeof(*nev));
            if (!nev) {
                emu_cmd_free(&ev.cmd);
                snprintf(err, errlen, "%s: out of memory", name);
                goto fail;
            }
            out->ev = nev;
            cap = ncap;
        }
        out->ev[out->n++] = ev;
    }
    if (out->n > 1) qsort(out->ev, out->n, sizeof(*out->ev), cmp_event);
    return 0;
fail:
    emu_script_free(out);
    return -1;
}

int emu_script_load(const char *path, struct emu_script *out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t len;
    long sz;
    int rc;
    memset(out, 0, sizeof(*out));
    if (!f) {
        snprintf(err, errlen, "cannot open script %s: %s", path, strerror(errno));
        return -1;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        snprintf(err, errlen, "cannot read script %s: %s", path, strerror(errno));
        fclose(f);
        return -1;
    }
    if (sz > (16l << 20)) {
        snprintf(err, errlen, "script %s is larger than 16 MiB", path);
        fclose(f);
        return -1;
    }
    buf = malloc((size_t)sz + 1);
    if (!buf) {
        fclose(f);
        snprintf(err, errlen, "script %s: out of memory", path);
        return -1;
    }
    len = fread(buf, 1, (size_t)sz, f);
    if (ferror(f)) {
        snprintf(err, errlen, "cannot read script %s: %s", path, strerror(errno));
        fclose(f);
        free(buf);
        return -1;
    }
    fclose(f);
    rc = emu_script_parse(buf, len, path, out, err, errlen);
    free(buf);
    return rc;
}

void emu_script_free(struct emu_script *s)
{
    for (size_t i = 0; i < s->n; i++)
        emu_cmd_free(&s->ev[i].cmd);
    free(s->ev);
    s->ev = NULL;
    s->n = 0;
}
