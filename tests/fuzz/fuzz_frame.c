/* fuzz_frame.c: libFuzzer target for the notun frame decoder (tundev/frame.c).
 * Input: [max lo, max hi, chunk-size seed...] then stream bytes; checks chunking invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/frame.h"

/* Events are folded into a running hash so whole-input and chunked decoding can be compared
 * without storing them. */
struct sink {
    size_t max;
    uint64_t hash;
    uint64_t frames, bytes, rejects;
};

static void mix(struct sink *s, uint64_t v)
{
    s->hash = (s->hash ^ v) * 0x100000001b3ull;
}

static void on_frame(void *ctx, const uint8_t *p, size_t len)
{
    struct sink *s = ctx;
    if (len < 1 || len > s->max) abort(); /* every frame is 1..max bytes */
    mix(s, 1);
    mix(s, len);
    for (size_t i = 0; i < len; i++)
        mix(s, p[i]);
    s->frames++;
    s->bytes += len;
}

static void on_reject(void *ctx, size_t len)
{
    struct sink *s = ctx;
    if (len != 0 && len <= s->max) abort(); /* only empty or oversized frames are rejected */
    mix(s, 2);
    mix(s, len);
    s->rejects++;
}

static void check(const struct frame_dec *d, const struct sink *s)
{
    const struct frame_dec_stats *st = &d->stats;
    if (st->consumed != 2 * (st->frames + st->rejected) + st->frame_bytes + st->skipped_bytes +
                            frame_dec_pending(d))
        abort();
    if (st->frames != s->frames || st->frame_bytes != s->bytes || st->rejected != s->rejects)
        abort();
    if (frame_dec_pending(d) > FRAME_HDR_LEN + d->max) abort();
}

static struct frame_dec dec; /* 64 KiB: not on the stack */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    size_t max = ((size_t)data[0] << 8) | data[1];
    uint8_t seed = data[2];
    data += 3;
    size -= 3;

    struct sink whole = {.hash = 0xcbf29ce484222325ull};
    frame_dec_init(&dec, max, on_frame, on_reject, &whole);
    whole.max = dec.max;
    frame_dec_feed(&dec, data, size);
    check(&dec, &whole);
    struct frame_dec_stats ref = dec.stats;
    size_t ref_pending = frame_dec_pending(&dec);
    int ref_boundary = frame_dec_at_boundary(&dec);

    /* the same bytes in chunks whose sizes come from the input itself */
    struct sink chunked = {.hash = 0xcbf29ce484222325ull};
    frame_dec_init(&dec, max, on_frame, on_reject, &chunked);
    chunked.max = dec.max;
    size_t off = 0, k = 0;
    while (off < size) {
        size_t c = (size_t)((data[k % size] ^ seed) % 67) + 1;
        k++;
        if (c > size - off) c = size - off;
        frame_dec_feed(&dec, data + off, c);
        check(&dec, &chunked);
        off += c;
    }
    if (chunked.hash != whole.hash) abort();
    if (memcmp(&ref, &dec.stats, sizeof ref) != 0) abort();
    if (ref_pending != frame_dec_pending(&dec) || ref_boundary != frame_dec_at_boundary(&dec))
        abort();
    return 0;
}
