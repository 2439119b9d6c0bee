/* strbuf.c: growable string buffer used for status output.
 * Aborts on allocation failure (status output is not worth a partial answer). */
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sb_init(struct strbuf *sb)
{
    memset(sb, 0, sizeof *sb);
}

void sb_free(struct strbuf *sb)
{
    free(sb->buf);
    memset(sb, 0, sizeof *sb);
}

static void sb_reserve(struct strbuf *sb, size_t more)
{
    if (sb->len + more + 1 <= sb->cap) return;
    size_t cap = sb->cap ? sb->cap : 256;
    while (cap < sb->len + more + 1) cap *= 2;
    char *p = realloc(sb->buf, cap);
    if (!p) abort();
    sb->buf = p;
    sb->cap = cap;
}

void sb_printf(struct strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    sb_reserve(sb, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

void sb_json_str(struct strbuf *sb, const char *s)
{
    sb_printf(sb, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            sb_printf(sb, "\\%c", c);
        else if (c < 0x20)
            sb_printf(sb, "\\u%04x", c);
        else
            sb_printf(sb, "%c", c);
    }
    sb_printf(sb, "\"");
}
