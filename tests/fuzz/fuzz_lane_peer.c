/* fuzz_lane_peer.c: libFuzzer target for what one end of the TCP lane does with the records of
 * an authenticated frame (lane/peer.c): arbitrary records for streams it has, had or never had,
 * at either end (the first byte picks the slave or the master); never a crash or a leak, and
 * the endpoints never get bytes out of order. */
#include <ev.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lane/lane.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_lane_peer: %s (line %d)\n", #c, __LINE__);                       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct ep {
    struct lane_stream *s;
    uint64_t got;
    int opened;
};
static struct ep eps[8];
static int neps;

static size_t deliver(void *ctx, void *owner, const uint8_t *d, size_t len)
{
    (void)ctx;
    (void)d;
    struct ep *e = owner;
    e->got += len;
    return len & 1 ? len / 2 : len; /* sometimes it takes only part */
}
static void eof(void *ctx, void *owner)
{
    (void)ctx;
    struct ep *e = owner;
    if (e->s) lane_stream_release(e->s);
    e->s = NULL;
}
static void room(void *ctx, void *owner)
{
    (void)ctx;
    (void)owner;
}
static void reset(void *ctx, void *owner, int reason)
{
    (void)ctx;
    CHECK(reason >= 0 && reason <= 255);
    ((struct ep *)owner)->s = NULL;
}
static void opened(void *ctx, void *owner, int status)
{
    (void)ctx;
    struct ep *e = owner;
    e->opened = status;
    if (status != LANE_OPEN_OK) e->s = NULL;
}
static void open_cb(void *ctx, struct lane_stream *s, int family, const uint8_t addr[16],
                    uint16_t port)
{
    (void)ctx;
    (void)addr;
    CHECK(family == 4 || family == 6);
    if (neps == 8 || port % 3 == 0) {
        lane_stream_opened(s, NULL, LANE_OPEN_REFUSED);
        return;
    }
    struct ep *e = &eps[neps++];
    e->s = s;
    lane_stream_opened(s, e, LANE_OPEN_OK);
    static const uint8_t hello[] = "hello";
    lane_stream_write(s, hello, 5);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct lane_peer_cb cb = {.open = open_cb, .opened = opened, .deliver = deliver, .eof = eof,
                              .room = room, .reset = reset};
    bool master = data[0] & 1;
    struct lane_peer *p = lane_peer_new(loop, master, 4, &cb);
    memset(eps, 0, sizeof eps);
    neps = 0;
    if (!master) { /* streams 1 and 2 exist */
        uint8_t a[16] = {198, 18, 50, 1};
        for (int i = 0; i < 2; i++) {
            eps[i].opened = -1;
            eps[i].s = lane_stream_open(p, &eps[i], 4, a, 80);
            neps++;
        }
    }
    /* the rest: frames, each a 2-byte length and its records */
    size_t pos = 1;
    while (pos + 2 <= size) {
        size_t n = (size_t)data[pos] << 8 | data[pos + 1];
        pos += 2;
        if (n > size - pos) n = size - pos;
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, data + pos, n);
        lane_peer_fuzz_input(p, copy, n);
        free(copy);
        pos += n;
        ev_run(loop, EVRUN_NOWAIT);
    }
    lane_peer_free(p);
    ev_loop_destroy(loop);
    return 0;
}
