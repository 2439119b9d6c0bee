/* fuzz_lane_stack.c: libFuzzer target for the slave's TCP terminator: arbitrary IP packets
 * (an input is a series of 2-byte length ‖ packet) go into one stack whose owner accepts every
 * connection, echoes what it receives and closes on FIN; never a crash. Half of the inputs get
 * a valid SYN to 198.18.50.7:80 first, and half have their checksums made right, so that
 * connections and lwIP's own parsing are reached. */
#include <ev.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../lane/lane.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct lane_conn *last;
static void out(void *ctx, const uint8_t *pkt, size_t len)
{
    (void)ctx;
    (void)pkt;
    (void)len;
}
static void *acc(void *ctx, struct lane_conn *c, int family, const uint8_t dst[16], uint16_t port)
{
    (void)ctx;
    (void)family;
    (void)dst;
    (void)port;
    last = c;
    lane_conn_proceed(c, 0);
    return c;
}
static size_t rcv(void *ctx, void *owner, const uint8_t *d, size_t len)
{
    (void)ctx;
    if (len) lane_conn_send(owner, d, len);
    else lane_conn_shutdown(owner);
    return len;
}
static void cls(void *ctx, void *owner, bool reset)
{
    (void)ctx;
    (void)reset;
    if (owner == last) last = NULL;
}

static uint8_t syn[40] = {
    0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 198, 18, 0, 2, 198, 18, 50, 7,
    0x9c, 0x40, 0, 80, 0, 0, 3, 0xe8, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0};

/* Give an IPv4 TCP packet right checksums (so that lwIP's own parsing is reached). */
static uint16_t fold(uint32_t a)
{
    while (a >> 16) a = (a & 0xffff) + (a >> 16);
    return (uint16_t)~a;
}
static uint32_t sum(const uint8_t *p, size_t n, uint32_t a)
{
    for (size_t i = 0; i + 1 < n; i += 2) a += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1) a += (uint32_t)(p[n - 1] << 8);
    return a;
}
static void fix(uint8_t *p, size_t len)
{
    if (len < 40 || (p[0] >> 4) != 4 || p[9] != 6) return;
    size_t ihl = (size_t)(p[0] & 15) * 4;
    if (ihl < 20 || ihl + 20 > len) return;
    p[10] = p[11] = 0;
    uint16_t c = fold(sum(p, ihl, 0));
    p[10] = (uint8_t)(c >> 8);
    p[11] = (uint8_t)c;
    uint8_t *t = p + ihl;
    t[16] = t[17] = 0;
    c = fold(sum(t, len - ihl, sum(p + 12, 8, 0) + 6 + (uint32_t)(len - ihl)));
    t[16] = (uint8_t)(c >> 8);
    t[17] = (uint8_t)c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ev_loop *loop;
    static struct lane_stack *s;
    if (!s) {
        /* the SYN's checksums (the stack drops damaged segments) */
        uint32_t a = 0;
        for (int i = 0; i < 20; i += 2) a += (uint32_t)(syn[i] << 8 | syn[i + 1]);
        while (a >> 16) a = (a & 0xffff) + (a >> 16);
        syn[10] = (uint8_t)(~a >> 8);
        syn[11] = (uint8_t)~a;
        a = 6 + 20;
        for (int i = 12; i < 20; i += 2) a += (uint32_t)(syn[i] << 8 | syn[i + 1]);
        for (int i = 20; i < 40; i += 2) a += (uint32_t)(syn[i] << 8 | syn[i + 1]);
        while (a >> 16) a = (a & 0xffff) + (a >> 16);
        syn[36] = (uint8_t)(~a >> 8);
        syn[37] = (uint8_t)~a;
        loop = ev_default_loop(0);
        struct lane_stack_cb cb = {.output = out, .accept = acc, .recv = rcv, .closed = cls};
        char err[64];
        s = lane_stack_new(loop, &cb, err, sizeof err);
        if (!s) abort();
    }
    if (size && (data[0] & 1)) lane_stack_input(s, syn, sizeof syn); /* (checksums unchecked) */
    static uint8_t pkt[65536];
    size_t off = 1;
    while (off + 2 <= size) {
        size_t len = (size_t)data[off] << 8 | data[off + 1];
        off += 2;
        if (len > size - off) len = size - off;
        memcpy(pkt, data + off, len);
        if (data[0] & 2) fix(pkt, len);
        lane_stack_input(s, pkt, len);
        off += len;
    }
    return 0;
}
