/* bigmem.h: zeroed memory for large arrays that are used sparsely (a multiplexer's link table,
 * the reorder buffer's slots): mapped anonymously, so a page costs RAM only once it is written,
 * whatever malloc's thresholds are. One master holds such arrays for every site it serves. */
#ifndef BRAID_BIGMEM_H
#define BRAID_BIGMEM_H

#include <stddef.h>

/* n zeroed bytes (n > 0), or NULL. */
void *bigmem_zalloc(size_t n);
/* Give back what bigmem_zalloc(n) returned (NULL: nothing). */
void bigmem_free(void *p, size_t n);

#endif
