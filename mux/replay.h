/* replay.h: receive-side replay window over 48-bit per-link counters (RFC 6479 style bitmap).
 * 4096 counters wide; check before authenticating, mark after. */
#ifndef BRAID_REPLAY_H
#define BRAID_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

/* Window width: the REPLAY_WINDOW counters top - 4095 .. top are tracked; anything lower
 * (top - ctr >= REPLAY_WINDOW) is rejected, anything above top is accepted. */
#define REPLAY_WINDOW 4096u
#define REPLAY_BLOCKS (REPLAY_WINDOW / 64u + 1u)

struct replay {
    uint64_t top;  /* highest counter accepted so far */
    bool any;      /* anything accepted yet */
    uint64_t bitmap[REPLAY_BLOCKS];
};

void replay_init(struct replay *r);
/* True if ctr would be accepted: nothing accepted yet, or ctr > top, or
 * top - REPLAY_WINDOW < ctr <= top and ctr not yet marked. */
bool replay_check(const struct replay *r, uint64_t ctr);
/* Mark ctr as seen (call only after the datagram authenticated and replay_check passed).
 * A ctr that is below the window is ignored (it would be rejected by replay_check anyway). */
void replay_mark(struct replay *r, uint64_t ctr);

#endif
