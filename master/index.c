/* index.c: the master's receiver-index table: random free indices, owned by one site each. */
#include "index.h"

#include <sodium.h>
#include <stdlib.h>

#define ITAB_SIZE 65536u

int itab_init(struct itab *t)
{
    t->used = 0;
    t->site_of = calloc(ITAB_SIZE, sizeof *t->site_of);
    return t->site_of ? 0 : -1;
}

void itab_free(struct itab *t)
{
    free(t->site_of);
    t->site_of = NULL;
    t->used = 0;
}

int itab_claim(struct itab *t, unsigned site, uint32_t *index)
{
    if (site >= ITAB_SITES_MAX || t->used >= ITAB_SIZE) return -1;
    /* random draws find a free index at once while the table is not nearly full (two or three
     * sessions a site); past that, the next free one after a random start */
    uint32_t x = randombytes_uniform(ITAB_SIZE);
    for (int tries = 0; tries < 16 && t->site_of[x]; tries++) x = randombytes_uniform(ITAB_SIZE);
    while (t->site_of[x]) x = (x + 1) % ITAB_SIZE;
    t->site_of[x] = (uint16_t)(site + 1);
    t->used++;
    *index = x;
    return 0;
}

void itab_release(struct itab *t, unsigned site, uint32_t index)
{
    if (index < ITAB_SIZE && site < ITAB_SITES_MAX && t->site_of[index] == site + 1) {
        t->site_of[index] = 0;
        t->used--;
    }
}

size_t itab_bytes(const struct itab *t)
{
    (void)t;
    return ITAB_SIZE * sizeof(uint16_t);
}
