/* frame.h: incremental decoder for a stream of frames (2-byte big-endian length + packet): the
 * notun tunnel device's and the datagram connections over TCP.
 * Pure: bytes go in, in arbitrary chunks; whole frames come out through a callback. Bounded. */
#ifndef BRAID_FRAME_H
#define BRAID_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_HDR_LEN 2
#define FRAME_MAX_LEN 65535u

/* One complete frame body (1..max bytes); valid only during the call. */
typedef void (*frame_fn)(void *ctx, const uint8_t *frame, size_t len);
/* A frame header announcing len 0 or len > max. Called when the header is read; the len bytes
 * of body that follow are then skipped (never delivered) and decoding continues after them. */
typedef void (*frame_reject_fn)(void *ctx, size_t len);

struct frame_dec_stats {
    uint64_t consumed;      /* bytes fed in total */
    uint64_t frames;        /* frames delivered */
    uint64_t frame_bytes;   /* body bytes of delivered frames */
    uint64_t rejected;      /* rejected frame headers */
    uint64_t skipped_bytes; /* body bytes of rejected frames skipped so far */
};

struct frame_dec {
    size_t max; /* largest accepted frame, 1..FRAME_MAX_LEN */
    frame_fn on_frame;
    frame_reject_fn on_reject;
    void *ctx;
    uint8_t hdr[FRAME_HDR_LEN];
    uint8_t hdr_have; /* header bytes of the current frame read so far */
    bool skipping;    /* the current frame was rejected: its body is being skipped */
    size_t len;       /* body length of the current frame (valid once hdr_have == 2) */
    size_t have;      /* body bytes of the current frame buffered or skipped so far */
    struct frame_dec_stats stats;
    uint8_t buf[FRAME_MAX_LEN];
};

/* Prepare d. max is clamped to 1..FRAME_MAX_LEN. on_reject may be NULL. */
void frame_dec_init(struct frame_dec *d, size_t max, frame_fn on_frame, frame_reject_fn on_reject,
                    void *ctx);
/* Forget a partial frame (the stream was cut); statistics are kept. */
void frame_dec_reset(struct frame_dec *d);
/* Consume all len bytes. The callbacks must not feed or reset d themselves. */
void frame_dec_feed(struct frame_dec *d, const uint8_t *data, size_t len);
/* True when the bytes fed so far end exactly at a frame boundary. */
bool frame_dec_at_boundary(const struct frame_dec *d);
/* Bytes of the current frame consumed but not yet in stats: header bytes, plus the body bytes
 * buffered for a frame being accepted (0 while skipping a rejected frame: those are counted).
 * Always: consumed == 2 * (frames + rejected) + frame_bytes + skipped_bytes + pending. */
size_t frame_dec_pending(const struct frame_dec *d);

/* The 2-byte header for a body of len bytes (1..FRAME_MAX_LEN). */
static inline void frame_put_header(uint8_t hdr[FRAME_HDR_LEN], size_t len)
{
    hdr[0] = (uint8_t)(len >> 8);
    hdr[1] = (uint8_t)len;
}

#endif
