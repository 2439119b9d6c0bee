/* cfg_syntax.c: the config's syntax, checked before libconfig sees the text: a lexer and
 * parser for libconfig's grammar that refuses what libconfig 1.5 mishandles, and names the
 * setting where the text goes wrong. */
#include "cfg_syntax.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* libconfig 1.5 is not trusted with hostile text: it leaks the string token at a syntax error,
 * silently drops an unterminated string or comment at the end, wraps integers beyond the int32
 * range (4294967396 becomes 100), opens any file named by @include, and runs out of parser stack
 * on deep nesting. So the text is first lexed and parsed here with the same grammar (checked
 * against libconfig 1.5 by differential fuzzing: neither accepts what the other refuses, except
 * for the cases above, which only this check refuses); libconfig then only parses well-formed
 * text, and syntax errors name the setting. */

#define SYN_MAX_DEPTH 16    /* braid needs 3: links, a link group, a value */
#define SYN_MAX_VALUES 4096 /* a full braid config has about 300 */

enum tok {
    T_EOF,
    T_NAME,
    T_BOOL,
    T_INT,
    T_INT64,
    T_FLOAT,
    T_STRING,
    T_EQUALS,
    T_COMMA,
    T_SEMI,
    T_GSTART,
    T_GEND,
    T_ASTART,
    T_AEND,
    T_LSTART,
    T_LEND,
    T_GARBAGE,
    T_ERROR,
};

struct syn {
    const char *file; /* for messages: FILE:LINE: SETTING: what */
    char *err;
    size_t errlen;
    const char *p;  /* next character */
    int line;       /* line of p */
    enum tok t;     /* current token */
    const char *ts; /* its text */
    size_t tn;      /* its length */
    int tline;      /* its line */
    int values;
    char path[160]; /* the setting being parsed, for messages */
    /* names of the settings in the open groups, innermost last (duplicates are refused) */
    struct syn_name {
        const char *s;
        size_t n;
        int line;
    } * names;
    int nnames;
};

static bool is_alpha(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}
static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}
static bool is_xdigit(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static size_t count_digits(const char *p)
{
    size_t n = 0;
    while (is_digit(p[n]))
        n++;
    return n;
}
/* Length of "[eE][-+]?[0-9]+" at p, or 0. */
static size_t exponent_len(const char *p)
{
    if (*p != 'e' && *p != 'E') return 0;
    size_t n = 1;
    if (p[n] == '-' || p[n] == '+') n++;
    size_t d = count_digits(p + n);
    return d ? n + d : 0;
}

/* A number token at p (libconfig's integer, integer64, hex, hex64 and float patterns, longest
 * match). Returns its length (0: not a number) and sets *t. */
static size_t lex_number(const char *p, enum tok *t)
{
    size_t best = 0;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X') && is_xdigit(p[2])) {
        size_t n = 2;
        while (is_xdigit(p[n]))
            n++;
        *t = T_INT;
        if (p[n] == 'L') {
            n += p[n + 1] == 'L' ? 2 : 1;
            *t = T_INT64;
        }
        best = n;
    }
    size_t s = (p[0] == '-' || p[0] == '+') ? 1 : 0;
    size_t d = count_digits(p + s);
    if (d) {
        size_t n = s + d;
        enum tok it = T_INT;
        if (p[n] == 'L') {
            n += p[n + 1] == 'L' ? 2 : 1;
            it = T_INT64;
        }
        if (n > best) best = n, *t = it;
    }
    /* [-+]?[0-9]*\.[0-9]*(exp)? */
    if (p[s + d] == '.') {
        size_t n = s + d + 1;
        n += count_digits(p + n);
        n += exponent_len(p + n);
        if (n > best) best = n, *t = T_FLOAT;
    }
    /* [-+]?[0-9]+(\.[0-9]*)?exp */
    if (d) {
        size_t n = s + d;
        if (p[n] == '.') n += 1 + count_digits(p + n + 1);
        size_t e = exponent_len(p + n);
        if (e && n + e > best) best = n + e, *t = T_FLOAT;
    }
    return best;
}

__attribute__((format(printf, 3, 4))) static int syn_fail(struct syn *y, int line, const char *fmt,
                                                          ...)
{
    va_list ap;
    va_start(ap, fmt);
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (line > 0 && y->path[0])
        snprintf(y->err, y->errlen, "%s:%d: %s: %s", y->file, line, y->path, msg);
    else if (line > 0)
        snprintf(y->err, y->errlen, "%s:%d: %s", y->file, line, msg);
    else
        snprintf(y->err, y->errlen, "%s: %s", y->file, msg);
    va_end(ap);
    y->t = T_ERROR;
    return -1;
}

/* Read the next token into y->t / ts / tn / tline. Returns -1 (T_ERROR) with the message set. */
static int syn_next(struct syn *y)
{
    const char *p = y->p;
    for (;;) {
        if (*p == '\n') {
            y->line++;
            p++;
        } else if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\f') {
            p++;
        } else if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
            while (*p && *p != '\n')
                p++;
        } else if (p[0] == '/' && p[1] == '*') {
            int start = y->line;
            for (p += 2; *p && !(p[0] == '*' && p[1] == '/'); p++)
                if (*p == '\n') y->line++;
            if (!*p) {
                y->path[0] = '\0';
                return syn_fail(y, start, "this /* comment is never closed; expected */");
            }
            p += 2;
        } else {
            break;
        }
    }
    y->ts = p;
    y->tline = y->line;
    char c = *p;
    size_t n = 1;
    if (!c) {
        y->t = T_EOF;
        n = 0;
    } else if (c == '"') {
        for (p++; *p != '"'; p++) {
            if (!*p) {
                return syn_fail(y, y->tline,
                                "this string is never closed; expected a '\"' at its end");
            }
            if (*p == '\n') y->line++;
            if (*p == '\\' && (p[1] == '"' || p[1] == '\\')) p++;
        }
        y->t = T_STRING;
        n = (size_t)(p + 1 - y->ts);
    } else if (is_alpha(c) || c == '*') {
        while (is_alpha(p[n]) || is_digit(p[n]) || p[n] == '-' || p[n] == '_' || p[n] == '*')
            n++;
        y->t = ((n == 4 && strncasecmp(p, "true", 4) == 0) ||
                (n == 5 && strncasecmp(p, "false", 5) == 0))
                   ? T_BOOL
                   : T_NAME;
    } else if ((n = lex_number(p, &y->t)) > 0) {
        /* y->t set */
    } else {
        n = 1;
        switch (c) {
        case '=':
        case ':':
            y->t = T_EQUALS;
            break;
        case ',':
            y->t = T_COMMA;
            break;
        case ';':
            y->t = T_SEMI;
            break;
        case '{':
            y->t = T_GSTART;
            break;
        case '}':
            y->t = T_GEND;
            break;
        case '[':
            y->t = T_ASTART;
            break;
        case ']':
            y->t = T_AEND;
            break;
        case '(':
            y->t = T_LSTART;
            break;
        case ')':
            y->t = T_LEND;
            break;
        case '@':
            if (strncmp(p, "@include", 8) == 0)
                return syn_fail(
                    y, y->tline,
                    "@include is not supported; expected all settings in this one file");
            /* fall through */
        default:
            y->t = T_GARBAGE;
            break;
        }
    }
    y->tn = n;
    y->p = y->ts + n;
    return 0;
}

/* The current token, for messages. */
static const char *syn_what(const struct syn *y, char *buf, size_t len)
{
    switch (y->t) {
    case T_EOF:
        return "the end of the file";
    case T_STRING:
        return "a string";
    case T_INT:
    case T_INT64:
    case T_FLOAT:
        return "a number";
    case T_BOOL:
    case T_NAME:
        snprintf(buf, len, "\"%.*s\"", (int)(y->tn > 40 ? 40 : y->tn), y->ts);
        return buf;
    case T_GARBAGE:
        if ((unsigned char)*y->ts < 0x20 || (unsigned char)*y->ts >= 0x7f)
            snprintf(buf, len, "the byte 0x%02x", (unsigned char)*y->ts);
        else
            snprintf(buf, len, "'%c'", *y->ts);
        return buf;
    default:
        snprintf(buf, len, "'%c'", *y->ts);
        return buf;
    }
}

/* An integer literal beyond the int32 range (libconfig 1.5 would wrap it). */
static bool syn_int_too_big(const struct syn *y)
{
    const char *s = y->ts, *e = y->ts + y->tn;
    while (e > s && e[-1] == 'L')
        e--;
    if (*s == '-' || *s == '+') s++;
    bool hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
    if (hex) s += 2;
    while (s < e - 1 && *s == '0')
        s++;
    size_t nd = (size_t)(e - s);
    if (hex) return nd > 8 || (nd == 8 && *s > '7');
    return nd > 10 || (nd == 10 && strncmp(s, "2147483647", 10) > 0);
}

static int syn_settings(struct syn *y, int depth, enum tok end, int open_line);

/* One value; y->path names it. */
static int syn_value(struct syn *y, int depth)
{
    char what[64];
    if (++y->values > SYN_MAX_VALUES)
        return syn_fail(y, y->tline,
                        "more than %d values; a braid config has a few hundred at most",
                        SYN_MAX_VALUES);
    switch (y->t) {
    case T_INT:
    case T_INT64:
        if (syn_int_too_big(y))
            return syn_fail(y, y->tline,
                            "the number %.*s%s is out of range; no braid setting takes an integer "
                            "beyond %d",
                            (int)(y->tn > 40 ? 40 : y->tn), y->ts, y->tn > 40 ? "..." : "",
                            CFG_INT_SETTING_MAX);
        return syn_next(y);
    case T_BOOL:
    case T_FLOAT:
        return syn_next(y);
    case T_STRING:
        while (y->t == T_STRING) /* "a" "b" is "ab" */
            if (syn_next(y) < 0) return -1;
        return 0;
    case T_ASTART: {
        static const char *const kinds[] = {
            "", "integers", "64-bit integers (with L)", "decimal numbers", "true/false", "strings"};
        int open = y->tline, kind = 0;
        if (syn_next(y) < 0) return -1;
        if (y->t == T_AEND) return syn_next(y);
        for (;;) {
            if (y->t == T_EOF)
                return syn_fail(y, open, "the '[' here is never closed; expected ']'");
            if (y->t != T_INT && y->t != T_INT64 && y->t != T_BOOL && y->t != T_FLOAT &&
                y->t != T_STRING)
                return syn_fail(y, y->tline,
                                "found %s in an array [ ]; expected numbers, strings or "
                                "true/false separated by ','",
                                syn_what(y, what, sizeof what));
            /* libconfig wants one type in an array */
            int k = y->t == T_INT     ? 1
                    : y->t == T_INT64 ? 2
                    : y->t == T_FLOAT ? 3
                    : y->t == T_BOOL  ? 4
                                      : 5;
            if (kind && k != kind)
                return syn_fail(y, y->tline, "the array mixes %s and %s; expected one type",
                                kinds[kind], kinds[k]);
            kind = k;
            if (syn_value(y, depth) < 0) return -1;
            if (y->t == T_AEND) return syn_next(y);
            if (y->t == T_EOF)
                return syn_fail(y, open, "the '[' here is never closed; expected ']'");
            if (y->t != T_COMMA)
                return syn_fail(y, y->tline, "found %s in an array; expected ',' or ']'",
                                syn_what(y, what, sizeof what));
            if (syn_next(y) < 0) return -1;
        }
    }
    case T_LSTART: {
        int open = y->tline;
        if (depth >= SYN_MAX_DEPTH)
            return syn_fail(y, y->tline,
                            "nested more than %d levels deep; a braid config needs 3 at most",
                            SYN_MAX_DEPTH);
        if (syn_next(y) < 0) return -1;
        if (y->t == T_LEND) return syn_next(y);
        size_t plen = strlen(y->path);
        for (int i = 0;; i++) {
            if (y->t == T_EOF)
                return syn_fail(y, open, "the '(' here is never closed; expected ')'");
            snprintf(y->path + plen, sizeof y->path - plen, "[%d]", i);
            if (syn_value(y, depth + 1) < 0) return -1;
            y->path[plen] = '\0';
            if (y->t == T_LEND) return syn_next(y);
            if (y->t == T_EOF)
                return syn_fail(y, open, "the '(' here is never closed; expected ')'");
            if (y->t != T_COMMA)
                return syn_fail(y, y->tline, "found %s in a list; expected ',' or ')'",
                                syn_what(y, what, sizeof what));
            if (syn_next(y) < 0) return -1;
        }
    }
    case T_GSTART: {
        int open = y->tline;
        if (depth >= SYN_MAX_DEPTH)
            return syn_fail(y, y->tline,
                            "nested more than %d levels deep; a braid config needs 3 at most",
                            SYN_MAX_DEPTH);
        if (syn_next(y) < 0) return -1;
        if (syn_settings(y, depth + 1, T_GEND, open) < 0) return -1;
        return syn_next(y);
    }
    default:
        return syn_fail(y, y->tline,
                        "found %s where a value belongs; expected a number, a \"string\", "
                        "true/false, a group { }, a list ( ) or an array [ ]",
                        syn_what(y, what, sizeof what));
    }
}

/* Settings up to end (T_EOF at the top, T_GEND in a group); y->path is the enclosing group. */
static int syn_settings(struct syn *y, int depth, enum tok end, int open_line)
{
    char what[64];
    size_t plen = strlen(y->path);
    int base = y->nnames;
    for (;;) {
        y->path[plen] = '\0';
        if (y->t == end) {
            y->nnames = base;
            return 0;
        }
        if (y->t == T_EOF)
            return syn_fail(y, open_line, "the '{' here is never closed; expected '}'");
        if (y->t != T_NAME)
            return syn_fail(y, y->tline,
                            "found %s where a setting belongs; expected name = value; (names are "
                            "letters, digits, '-' and '_', starting with a letter)",
                            syn_what(y, what, sizeof what));
        snprintf(y->path + plen, sizeof y->path - plen, "%s%.*s", plen ? "." : "",
                 (int)(y->tn > 64 ? 64 : y->tn), y->ts);
        for (int i = base; i < y->nnames; i++)
            if (y->names[i].n == y->tn && memcmp(y->names[i].s, y->ts, y->tn) == 0)
                return syn_fail(y, y->tline,
                                "set twice in the same group (first on line %d); "
                                "expected it once",
                                y->names[i].line);
        if (y->nnames > SYN_MAX_VALUES)
            return syn_fail(y, y->tline,
                            "more than %d settings; a braid config has a few "
                            "hundred at most",
                            SYN_MAX_VALUES);
        y->names[y->nnames++] = (struct syn_name){y->ts, y->tn, y->tline};
        if (syn_next(y) < 0) return -1;
        if (y->t != T_EQUALS)
            return syn_fail(y, y->tline, "found %s after the name; expected '=' and a value",
                            syn_what(y, what, sizeof what));
        if (syn_next(y) < 0) return -1;
        if (syn_value(y, depth) < 0) return -1;
        if (y->t == T_SEMI || y->t == T_COMMA)
            if (syn_next(y) < 0) return -1;
    }
}

int cfg_syntax_check(const char *text, const char *file, char *err, size_t errlen)
{
    /* libconfig keeps line numbers in 16 bits */
    int lines = 1;
    for (const char *p = strchr(text, '\n'); p; p = strchr(p + 1, '\n'))
        if (++lines > 65535) {
            snprintf(err, errlen, "%s: more than 65535 lines; expected a braid config", file);
            return -1;
        }
    struct syn y;
    memset(&y, 0, sizeof y);
    y.file = file;
    y.err = err;
    y.errlen = errlen;
    y.p = text;
    y.line = 1;
    y.names = malloc((SYN_MAX_VALUES + 1) * sizeof *y.names);
    if (!y.names) {
        snprintf(err, errlen, "%s: out of memory", file);
        return -1;
    }
    int rc = syn_next(&y);
    if (rc == 0) rc = syn_settings(&y, 0, T_EOF, 0);
    free(y.names);
    return rc;
}
