/* cfg_syntax.h: the syntax check of a config's text (libconfig's grammar), before libconfig
 * parses it; see cfg_syntax.c for why libconfig is not trusted with it alone. */
#ifndef BRAID_CFG_SYNTAX_H
#define BRAID_CFG_SYNTAX_H

#include <stddef.h>

#define CFG_INT_SETTING_MAX 268435456 /* the largest value any integer setting accepts */

/* 0 when text is well-formed; else -1 with "FILE:LINE: SETTING: what is wrong; what is
 * expected" in err (file names the text in messages). */
int cfg_syntax_check(const char *text, const char *file, char *err, size_t errlen);

#endif
