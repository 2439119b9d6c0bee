/* index.h: the master's receiver-index table: which site a session's 16-bit receiver index
 * (docs/PROTOCOL.md section 3) belongs to. Lookups are one array read; indices are drawn at
 * random so that they say nothing about sites or order. */
#ifndef BRAID_MASTER_INDEX_H
#define BRAID_MASTER_INDEX_H

#include <stddef.h>
#include <stdint.h>

#define ITAB_SITES_MAX 65534 /* site numbers 0 .. ITAB_SITES_MAX - 1 */

struct itab {
    uint16_t *site_of; /* index -> 1 + site number; 0: free */
    uint32_t used;
};

/* 0, or -1 on allocation failure. */
int itab_init(struct itab *t);
void itab_free(struct itab *t);
/* A free index, now the site's. 0, or -1 when every index is taken. */
int itab_claim(struct itab *t, unsigned site, uint32_t *index);
/* The index is free again, if it is the site's (else nothing changes). */
void itab_release(struct itab *t, unsigned site, uint32_t index);
/* The site of an index, or -1 when it is free or out of range. */
static inline int itab_lookup(const struct itab *t, uint32_t index)
{
    return index < 65536u && t->site_of[index] ? t->site_of[index] - 1 : -1;
}
size_t itab_bytes(const struct itab *t);

#endif
