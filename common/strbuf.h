/* strbuf.h: growable string buffer with printf-style appending.
 * Used for status output and messages; aborts on out-of-memory. */
#ifndef BRAID_STRBUF_H
#define BRAID_STRBUF_H

#include <stddef.h>

struct strbuf {
    char *buf;
    size_t len, cap;
};

void sb_init(struct strbuf *sb);
void sb_free(struct strbuf *sb);
void sb_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s as a JSON string literal (quoted and escaped). */
void sb_json_str(struct strbuf *sb, const char *s);

#endif
