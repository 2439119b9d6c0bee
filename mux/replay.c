/* replay.c: per-link receive replay window over 48-bit counters, a ring of 64-bit blocks in the
 * style of RFC 6479: counters top-4095..top are tracked, older ones rejected, newer accepted. */
#include "replay.h"

#include <string.h>

/* 65 blocks of 64 bits: the 4096 tracked counters span at most 65 consecutive blocks, so each
 * lives in its own slot (block index mod REPLAY_BLOCKS) and a slot is cleared when the top
 * moves into the block that reuses it. */
_Static_assert(REPLAY_WINDOW % 64u == 0, "window is a whole number of blocks");
_Static_assert(REPLAY_BLOCKS * 64u >= REPLAY_WINDOW + 63u, "ring holds the whole window");

#define BLOCK_OF(ctr) ((ctr) >> 6)
#define SLOT_OF(ctr) ((size_t)(BLOCK_OF(ctr) % REPLAY_BLOCKS))
#define BIT_OF(ctr) (UINT64_C(1) << ((ctr)&63u))

void replay_init(struct replay *r)
{
    memset(r, 0, sizeof(*r));
}

bool replay_check(const struct replay *r, uint64_t ctr)
{
    if (!r->any || ctr > r->top) return true;
    if (r->top - ctr >= REPLAY_WINDOW) return false;
    return (r->bitmap[SLOT_OF(ctr)] & BIT_OF(ctr)) == 0;
}

void replay_mark(struct replay *r, uint64_t ctr)
{
    if (!r->any) {
        memset(r->bitmap, 0, sizeof(r->bitmap));
        r->any = true;
        r->top = ctr;
    } else if (ctr > r->top) {
        uint64_t blocks = BLOCK_OF(ctr) - BLOCK_OF(r->top);
        if (blocks >= REPLAY_BLOCKS) {
            memset(r->bitmap, 0, sizeof(r->bitmap));
        } else {
            for (uint64_t i = 1; i <= blocks; i++)
                r->bitmap[(BLOCK_OF(r->top) + i) % REPLAY_BLOCKS] = 0;
        }
        r->top = ctr;
    } else if (r->top - ctr >= REPLAY_WINDOW) {
        return; /* below the window: never accepted, nothing to record */
    }
    r->bitmap[SLOT_OF(ctr)] |= BIT_OF(ctr);
}
