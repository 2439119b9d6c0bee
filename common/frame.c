/* frame.c: incremental decoder for a stream of length-prefixed frames (2-byte big-endian
 * length + packet).
 * Frames split across chunks are buffered (at most FRAME_MAX_LEN bytes); rejected ones skipped. */
#include "frame.h"

#include <string.h>

void frame_dec_init(struct frame_dec *d, size_t max, frame_fn on_frame, frame_reject_fn on_reject,
                    void *ctx)
{
    d->max = max == 0 ? 1 : max > FRAME_MAX_LEN ? FRAME_MAX_LEN : max;
    d->on_frame = on_frame;
    d->on_reject = on_reject;
    d->ctx = ctx;
    memset(&d->stats, 0, sizeof d->stats);
    frame_dec_reset(d);
}

void frame_dec_reset(struct frame_dec *d)
{
    d->hdr_have = 0;
    d->skipping = false;
    d->len = 0;
    d->have = 0;
}

bool frame_dec_at_boundary(const struct frame_dec *d)
{
    return d->hdr_have == 0;
}

size_t frame_dec_pending(const struct frame_dec *d)
{
    if (d->hdr_have < FRAME_HDR_LEN) return d->hdr_have;
    return d->skipping ? 0 : FRAME_HDR_LEN + d->have;
}

/* The current frame is complete: start the next one. */
static void next_frame(struct frame_dec *d)
{
    frame_dec_reset(d);
}

static void deliver(struct frame_dec *d, const uint8_t *body, size_t len)
{
    d->stats.frames++;
    d->stats.frame_bytes += len;
    next_frame(d);
    d->on_frame(d->ctx, body, len);
}

void frame_dec_feed(struct frame_dec *d, const uint8_t *data, size_t len)
{
    d->stats.consumed += len;
    while (len > 0) {
        if (d->hdr_have < FRAME_HDR_LEN) {
            d->hdr[d->hdr_have++] = *data++;
            len--;
            if (d->hdr_have < FRAME_HDR_LEN) continue;
            d->len = ((size_t)d->hdr[0] << 8) | d->hdr[1];
            d->have = 0;
            if (d->len == 0 || d->len > d->max) {
                size_t bad = d->len;
                d->stats.rejected++;
                d->skipping = true;
                if (bad == 0) next_frame(d);
                if (d->on_reject) d->on_reject(d->ctx, bad);
            }
            continue;
        }
        size_t want = d->len - d->have;
        size_t take = len < want ? len : want;
        if (d->skipping) {
            d->stats.skipped_bytes += take;
            d->have += take;
            if (d->have == d->len) next_frame(d);
        } else if (d->have == 0 && take == d->len) {
            deliver(d, data, take); /* whole body in this chunk: no copy */
        } else {
            memcpy(d->buf + d->have, data, take);
            d->have += take;
            if (d->have == d->len) deliver(d, d->buf, d->len);
        }
        data += take;
        len -= take;
    }
}
