/* reorder.c: ring of slots indexed by gseq & (slots-1) holding out-of-order packets, released in
 * gseq order; bitmaps of held slots and of recently given-up gseqs (to tell late from dup). */
#include "reorder.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../common/bigmem.h"
#include "../common/util.h"

/* Largest window: far below 2^31 so serial arithmetic on gseqs stays unambiguous. */
#define REORDER_MAX_SLOTS (1u << 24)

/* Layout. Slot i holds gseq g with g & mask == i for g in [next, next + slots): its bytes are at
 * buf + i * max_pkt, with len[i] and arrival[i]; bit i of held_bm says whether it is held.
 * Bit i of skip_bm is history: for the gseq g in [next - slots, next) with g & mask == i, 1 if g
 * was given up, 0 if it was delivered. Both uses of slot i refer to different gseqs, hence two
 * bitmaps. After new/reset the history is unknown and all skip bits are 1, so an old packet is
 * counted as late rather than dup.
 *
 * Complexity: push of an in-window or next gseq is O(1) plus O(1) per packet it releases. Every
 * search for the next held slot walks the held bitmap a word at a time: O(slots / 64) worst case
 * per search, and each search either releases a packet or gives up the gap before it (marking
 * one history bit per given-up gseq, at most slots per call). So push (overflow), expire and
 * release_before cost O(released + given up + slots / 64), bounded by O(slots) per call, O(1)
 * amortised over the gseqs they consume. No allocation after reorder_new. */
struct reorder {
    uint32_t next;
    uint32_t slots, mask;
    size_t max_pkt;
    uint8_t *buf;
    size_t *len;
    uint64_t *arrival;
    uint64_t *held_bm;
    uint64_t *skip_bm;
    uint32_t words;
    reorder_deliver_fn deliver;
    void *ctx;
    struct reorder_stats st;
};

static inline bool bm_get(const uint64_t *bm, uint32_t i)
{
    return (bm[i >> 6] >> (i & 63)) & 1u;
}
static inline void bm_set(uint64_t *bm, uint32_t i)
{
    bm[i >> 6] |= (uint64_t)1 << (i & 63);
}
static inline void bm_clear(uint64_t *bm, uint32_t i)
{
    bm[i >> 6] &= ~((uint64_t)1 << (i & 63));
}

/* Set every skip bit that belongs to a slot (bits past slots in a partial word stay 0). */
static void skip_all(struct reorder *r)
{
    if (r->slots >= 64) {
        memset(r->skip_bm, 0xff, r->words * sizeof *r->skip_bm);
    } else {
        r->skip_bm[0] = ((uint64_t)1 << r->slots) - 1;
    }
}

struct reorder *reorder_new(unsigned slots, size_t max_pkt, reorder_deliver_fn deliver, void *ctx)
{
    if (!deliver || max_pkt == 0 || slots > REORDER_MAX_SLOTS) return NULL;
    uint32_t n = 2;
    while (n < slots)
        n <<= 1;
    if (max_pkt > SIZE_MAX / n) return NULL;

    struct reorder *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->slots = n;
    r->mask = n - 1;
    r->max_pkt = max_pkt;
    r->words = (n + 63) / 64;
    r->deliver = deliver;
    r->ctx = ctx;
    /* (slots are written only for packets held: an idle or in-order receiver leaves most pages
     * of these untouched, and unmapped pages cost nothing) */
    r->buf = bigmem_zalloc(n * max_pkt);
    r->len = bigmem_zalloc(n * sizeof *r->len);
    r->arrival = bigmem_zalloc(n * sizeof *r->arrival);
    r->held_bm = calloc(r->words, sizeof *r->held_bm);
    r->skip_bm = calloc(r->words, sizeof *r->skip_bm);
    if (!r->buf || !r->len || !r->arrival || !r->held_bm || !r->skip_bm) {
        reorder_free(r);
        return NULL;
    }
    reorder_reset(r, 0);
    return r;
}

void reorder_free(struct reorder *r)
{
    if (!r) return;
    bigmem_free(r->buf, r->slots * r->max_pkt);
    bigmem_free(r->len, r->slots * sizeof *r->len);
    bigmem_free(r->arrival, r->slots * sizeof *r->arrival);
    free(r->held_bm);
    free(r->skip_bm);
    free(r);
}

void reorder_reset(struct reorder *r, uint32_t next)
{
    memset(r->held_bm, 0, r->words * sizeof *r->held_bm);
    skip_all(r);
    r->st.held = 0;
    r->next = next;
}

uint32_t reorder_next(const struct reorder *r)
{
    return r->next;
}

const struct reorder_stats *reorder_stats(const struct reorder *r)
{
    return &r->st;
}

/* Offset k in [0, limit) (limit <= slots) of the first held gseq next + k, or limit if none. */
static uint32_t find_held(const struct reorder *r, uint32_t limit)
{
    uint32_t k = 0;
    while (k < limit) {
        uint32_t i = (r->next + k) & r->mask;
        uint64_t bits = r->held_bm[i >> 6] >> (i & 63);
        if (bits) {
            uint32_t at = k + (uint32_t)__builtin_ctzll(bits);
            return at < limit ? at : limit;
        }
        /* To the end of this word, or of the ring if it ends inside the word. */
        uint32_t step = 64 - (i & 63);
        if (step > r->slots - i) step = r->slots - i;
        k += step;
    }
    return limit;
}

/* Give up the n missing gseqs from next (none of them held). */
static void give_up(struct reorder *r, uint32_t n, bool overflow)
{
    r->st.skipped += n;
    if (overflow) r->st.overflow += n;
    if (n >= r->slots) {
        skip_all(r);
    } else {
        for (uint32_t k = 0; k < n; k++)
            bm_set(r->skip_bm, (r->next + k) & r->mask);
    }
    r->next += n;
}

/* Release the held packet at next (its slot must be held). */
static void release_one(struct reorder *r)
{
    uint32_t i = r->next & r->mask;
    bm_clear(r->held_bm, i);
    bm_clear(r->skip_bm, i);
    r->st.held--;
    r->st.delivered++;
    r->next++;
    r->deliver(r->ctx, r->buf + (size_t)i * r->max_pkt, r->len[i]);
}

/* Release held packets while next is held. */
static void release_run(struct reorder *r)
{
    while (r->st.held && bm_get(r->held_bm, r->next & r->mask))
        release_one(r);
}

/* Move next to target (which must be after next): give up missing gseqs, release held ones in
 * order. Then release what is consecutive after target. */
static void advance_to(struct reorder *r, uint32_t target, bool overflow)
{
    while (r->next != target) {
        uint32_t d = target - r->next;
        if (r->st.held == 0) {
            give_up(r, d, overflow);
            break;
        }
        uint32_t k = find_held(r, d < r->slots ? d : r->slots);
        if (k) give_up(r, k, overflow);
        if (k < d) release_one(r);
    }
    release_run(r);
}

enum reorder_result reorder_push(struct reorder *r, uint32_t gseq, const uint8_t *pkt, size_t len,
                                 uint64_t now_us)
{
    if (len == 0 || len > r->max_pkt) return REORDER_TOOBIG;

    int32_t d = seq_diff(gseq, r->next);
    if (d < 0) {
        uint32_t back = r->next - gseq;
        if (back <= r->slots && !bm_get(r->skip_bm, gseq & r->mask)) {
            r->st.dup++;
            return REORDER_DUP;
        }
        r->st.late++;
        return REORDER_LATE;
    }
    if ((uint32_t)d >= r->slots) {
        advance_to(r, gseq - r->slots + 1, true);
        d = seq_diff(gseq, r->next); /* now in [0, slots) */
    }
    uint32_t i = gseq & r->mask;
    if (d == 0) {
        bm_clear(r->skip_bm, i);
        r->st.delivered++;
        r->st.direct++;
        r->next++;
        r->deliver(r->ctx, pkt, len);
        release_run(r);
        return REORDER_DELIVERED;
    }
    if (bm_get(r->held_bm, i)) {
        r->st.dup++;
        return REORDER_DUP;
    }
    memcpy(r->buf + (size_t)i * r->max_pkt, pkt, len);
    r->len[i] = len;
    r->arrival[i] = now_us;
    bm_set(r->held_bm, i);
    r->st.held++;
    return REORDER_HELD;
}

void reorder_release_before(struct reorder *r, uint32_t upto)
{
    if (seq_diff(upto, r->next) <= 0) return;
    advance_to(r, upto, false);
}

uint64_t reorder_due(const struct reorder *r, uint64_t timeout_us)
{
    if (!r->st.held) return 0;
    /* next itself is never held (it would have been released), so k >= 1. */
    uint64_t arr = r->arrival[(r->next + find_held(r, r->slots)) & r->mask];
    return arr > UINT64_MAX - timeout_us ? UINT64_MAX : arr + timeout_us;
}

uint64_t reorder_expire(struct reorder *r, uint64_t now_us, uint64_t timeout_us)
{
    while (r->st.held) {
        uint64_t due = reorder_due(r, timeout_us);
        if (due > now_us) return due;
        uint32_t k = find_held(r, r->slots);
        give_up(r, k, false);
        release_run(r);
    }
    return 0;
}
