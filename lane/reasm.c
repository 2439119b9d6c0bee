/* reasm.c: one stream direction of the TCP lane put back in order: bytes that arrive at
 * offsets (over several links, again, overlapping, in any order) are held in a ring of the
 * receive window's size, with the ranges held, and read once, in order. */
#include "lane.h"

#include <stdlib.h>
#include <string.h>

#define RANGES_MAX 1024 /* disjoint holes and pieces held at once; more is refused (BAD) */

int lane_reasm_init(struct lane_reasm *r, size_t cap)
{
    memset(r, 0, sizeof *r);
    r->fin = UINT64_MAX;
    r->cap = cap;
    r->ring = malloc(cap ? cap : 1);
    r->maxranges = 16;
    r->ranges = malloc((size_t)r->maxranges * sizeof *r->ranges);
    if (!r->ring || !r->ranges || cap == 0) {
        lane_reasm_free(r);
        return -1;
    }
    return 0;
}

void lane_reasm_free(struct lane_reasm *r)
{
    free(r->ring);
    free(r->ranges);
    r->ring = NULL;
    r->ranges = NULL;
    r->nranges = r->maxranges = 0;
}

/* Copy data into the ring at [start, start + len) (within the window). */
static void ring_put(struct lane_reasm *r, uint64_t start, const uint8_t *data, size_t len)
{
    size_t at = (size_t)(start % r->cap);
    size_t first = r->cap - at < len ? r->cap - at : len;
    memcpy(r->ring + at, data, first);
    memcpy(r->ring, data + first, len - first);
}

/* Add [start, end) to the ranges (merging); -1 when too many pieces. */
static int ranges_add(struct lane_reasm *r, uint64_t start, uint64_t end)
{
    int i = 0;
    while (i < r->nranges && r->ranges[i].end < start) i++;
    int j = i;
    while (j < r->nranges && r->ranges[j].start <= end) j++;
    /* ranges i..j-1 touch or overlap [start, end): merge them into one */
    if (i < j) {
        if (r->ranges[i].start < start) start = r->ranges[i].start;
        if (r->ranges[j - 1].end > end) end = r->ranges[j - 1].end;
        r->ranges[i].start = start;
        r->ranges[i].end = end;
        memmove(&r->ranges[i + 1], &r->ranges[j], (size_t)(r->nranges - j) * sizeof *r->ranges);
        r->nranges -= j - i - 1;
        return 0;
    }
    if (r->nranges == r->maxranges) {
        if (r->maxranges >= RANGES_MAX) return -1;
        int nm = r->maxranges * 2;
        struct lane_range *nr = realloc(r->ranges, (size_t)nm * sizeof *nr);
        if (!nr) return -1;
        r->ranges = nr;
        r->maxranges = nm;
    }
    memmove(&r->ranges[i + 1], &r->ranges[i], (size_t)(r->nranges - i) * sizeof *r->ranges);
    r->ranges[i].start = start;
    r->ranges[i].end = end;
    r->nranges++;
    return 0;
}

/* Bytes of [start, end) already held or delivered. */
static uint64_t held(const struct lane_reasm *r, uint64_t start, uint64_t end)
{
    uint64_t n = 0;
    if (start < r->next) {
        uint64_t e = end < r->next ? end : r->next;
        n += e - start;
        start = e;
    }
    for (int i = 0; i < r->nranges && start < end; i++) {
        uint64_t s = r->ranges[i].start > start ? r->ranges[i].start : start;
        uint64_t e = r->ranges[i].end < end ? r->ranges[i].end : end;
        if (s < e) n += e - s;
    }
    return n;
}

int lane_reasm_add(struct lane_reasm *r, uint64_t offset, const uint8_t *data, size_t len)
{
    if (len == 0 || offset > UINT64_MAX - len) return LANE_REASM_BAD;
    uint64_t end = offset + len;
    if (end > r->fin) return LANE_REASM_BAD;
    if (end <= r->next) {
        r->dup_bytes += len;
        return LANE_REASM_DUP;
    }
    if (end - r->next > r->cap) return LANE_REASM_WINDOW;
    if (offset < r->next) { /* the part already delivered is dropped */
        size_t skip = (size_t)(r->next - offset);
        r->dup_bytes += skip;
        data += skip;
        len -= skip;
        offset = r->next;
    }
    uint64_t old = held(r, offset, end);
    if (old == len) {
        r->dup_bytes += len;
        return LANE_REASM_DUP;
    }
    if (ranges_add(r, offset, end) != 0) return LANE_REASM_BAD;
    ring_put(r, offset, data, len); /* (bytes held again are the same bytes: rewritten) */
    r->dup_bytes += old;
    return LANE_REASM_OK;
}

int lane_reasm_fin(struct lane_reasm *r, uint64_t offset)
{
    if (r->fin != UINT64_MAX) return offset == r->fin ? LANE_REASM_DUP : LANE_REASM_BAD;
    if (offset < r->next) return LANE_REASM_BAD;
    if (r->nranges && r->ranges[r->nranges - 1].end > offset) return LANE_REASM_BAD;
    r->fin = offset;
    return LANE_REASM_OK;
}

size_t lane_reasm_ready(const struct lane_reasm *r)
{
    if (r->nranges == 0 || r->ranges[0].start != r->next) return 0;
    return (size_t)(r->ranges[0].end - r->next);
}

size_t lane_reasm_peek(const struct lane_reasm *r, const uint8_t **p)
{
    size_t n = lane_reasm_ready(r);
    size_t at = (size_t)(r->next % r->cap);
    if (n > r->cap - at) n = r->cap - at;
    *p = r->ring + at;
    return n;
}

void lane_reasm_consume(struct lane_reasm *r, size_t n)
{
    size_t ready = lane_reasm_ready(r);
    if (n > ready) n = ready;
    if (n == 0) return;
    r->next += n;
    if (r->ranges[0].start + n >= r->ranges[0].end) { /* the first range is used up */
        memmove(&r->ranges[0], &r->ranges[1], (size_t)(r->nranges - 1) * sizeof *r->ranges);
        r->nranges--;
    } else {
        r->ranges[0].start = r->next;
    }
}

size_t lane_reasm_read(struct lane_reasm *r, uint8_t *out, size_t max)
{
    size_t n = lane_reasm_ready(r);
    if (n > max) n = max;
    if (n == 0) return 0;
    size_t at = (size_t)(r->next % r->cap);
    size_t first = r->cap - at < n ? r->cap - at : n;
    memcpy(out, r->ring + at, first);
    memcpy(out + first, r->ring, n - first);
    lane_reasm_consume(r, n);
    return n;
}

bool lane_reasm_done(const struct lane_reasm *r)
{
    return r->fin != UINT64_MAX && r->next == r->fin;
}
