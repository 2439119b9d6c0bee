/* reorder.h: bounded receive-side reorder buffer releasing tunnel packets in gseq order.
 * Pure data structure: time is passed in; the mux owns the timer. */
#ifndef BRAID_REORDER_H
#define BRAID_REORDER_H

#include <stddef.h>
#include <stdint.h>

typedef void (*reorder_deliver_fn)(void *ctx, const uint8_t *pkt, size_t len);

struct reorder_stats {
    uint64_t delivered; /* packets released to deliver() */
    uint64_t direct;    /* of which released without being buffered */
    uint64_t dup;       /* dropped: this gseq was already buffered or already released */
    uint64_t late;      /* dropped: arrived after its gap was given up (or too old to tell) */
    uint64_t skipped;   /* gseqs given up (never arrived in time) */
    uint64_t overflow;  /* of which given up because a packet arrived beyond the window */
    uint64_t held;      /* packets held right now */
};

enum reorder_result {
    REORDER_DELIVERED = 0, /* released at once (possibly followed by buffered ones) */
    REORDER_HELD = 1,      /* stored, waiting for a gap before it */
    REORDER_DUP = 2,
    REORDER_LATE = 3,
    REORDER_TOOBIG = 4, /* len > max_pkt or len == 0: dropped */
};

struct reorder;

/* slots: window size, rounded up to a power of two (>= 2, at most 2^24). max_pkt: largest packet
 * stored (> 0); slots * max_pkt bytes are allocated here, nothing later. The first expected gseq
 * is 0 (reorder_reset changes it). Returns NULL on allocation failure or invalid arguments. */
struct reorder *reorder_new(unsigned slots, size_t max_pkt, reorder_deliver_fn deliver, void *ctx);
void reorder_free(struct reorder *r);

/* Forget everything held (not delivered), next expected gseq = next. Stats are kept (held = 0).
 * Packets before next are then counted late until next has moved on. */
void reorder_reset(struct reorder *r, uint32_t next);

/* Offer packet gseq received at now_us. Packets are delivered synchronously from inside this
 * call, in gseq order. A gseq at or beyond next + slots first gives up the oldest gaps (releasing
 * what is held) until it fits (counted as overflow). A gseq before next is DUP if it was
 * delivered, LATE if it was given up; beyond the last `slots` gseqs history is not kept and it
 * counts as LATE. deliver() must not call back into this reorder buffer; its pkt pointer is valid
 * only during the call. O(1) amortised; see reorder.c for the bounds. */
enum reorder_result reorder_push(struct reorder *r, uint32_t gseq, const uint8_t *pkt, size_t len,
                                 uint64_t now_us);

/* Give up every missing gseq before upto: release all held packets with gseq < upto in order,
 * then everything consecutive after them. No effect if upto is not after next. */
void reorder_release_before(struct reorder *r, uint32_t upto);

/* Give up gaps whose first held packet after them has waited at least timeout_us (arrival +
 * timeout_us <= now_us): releases in order, repeatedly. Returns the time (us) at which the next
 * such expiry is due (arrival of the first held packet after next + timeout_us), or 0 if nothing
 * is held. */
uint64_t reorder_expire(struct reorder *r, uint64_t now_us, uint64_t timeout_us);

/* When reorder_expire would next give a gap up: the arrival of the first held packet after next
 * + timeout_us, or 0 if nothing is held. Changes nothing. */
uint64_t reorder_due(const struct reorder *r, uint64_t timeout_us);

/* The next gseq the buffer waits for. */
uint32_t reorder_next(const struct reorder *r);
const struct reorder_stats *reorder_stats(const struct reorder *r);

#endif
