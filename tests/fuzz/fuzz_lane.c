/* fuzz_lane.c: libFuzzer target for the TCP lane's records and reassembly: arbitrary bytes are
 * decoded (never a crash; what decodes re-encodes to the same bytes), then their DATA and FIN
 * records drive a small reassembly whose invariants are checked. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../links/tcp_server.h"
#include "../../lane/lane.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_lane: %s (line %d)\n", #c, __LINE__);                            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A sealed frame's body from hostile bytes: opens or not, never reads or writes past it. */
static void open_frame(const uint8_t *data, size_t size)
{
    static struct lane_dir d = {.key = {1, 2, 3}};
    d.counter = 0;
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return;
    memcpy(copy, data, size);
    int n = lane_open(&d, copy, size);
    CHECK(n == -1 || (n >= 0 && (size_t)n + LANE_TAG_LEN == size));
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    open_frame(data, size);
    /* the opening messages' clear parts */
    uint8_t ch[16];
    int pc = link_tcp_greeting_parse(data, size, ch);
    CHECK(pc >= -1 && pc <= 1 && (pc != 0 || size >= LINK_TCP_GREETING_LEN));
    uint32_t index;
    uint8_t link;
    size_t flen = 0;
    pc = lane_hello_parse(data, size, &index, &link, &flen);
    CHECK(pc >= -1 && pc <= 1 && (pc != 0 || flen == 16 + 1 + LANE_TAG_LEN));
    static struct lane_rec r[64];
    int n = lane_rec_decode(data, size, r, 64);
    CHECK(n >= -1 && n <= 64);
    if (n <= 0) return 0;
    /* re-encoding gives a payload that decodes to the same records */
    static uint8_t buf[64 * (LANE_REC_HDR + 12 + LANE_DATA_MAX)];
    size_t pos = 0;
    for (int i = 0; i < n; i++) CHECK(lane_rec_put(buf, sizeof buf, &pos, &r[i]) == 0);
    static struct lane_rec back[64];
    CHECK(lane_rec_decode(buf, pos, back, 64) == n);
    for (int i = 0; i < n; i++) {
        CHECK(back[i].type == r[i].type && back[i].conn == r[i].conn);
        CHECK(back[i].offset == r[i].offset && back[i].len == r[i].len);
        CHECK(back[i].status == r[i].status && back[i].port == r[i].port);
        CHECK(r[i].len == 0 || memcmp(back[i].data, r[i].data, r[i].len) == 0);
    }
    /* reassembly: offsets taken modulo a small stream so that pieces meet */
    struct lane_reasm ra;
    CHECK(lane_reasm_init(&ra, 256) == 0);
    uint8_t out[300];
    uint64_t read = 0;
    for (int i = 0; i < n; i++) {
        if (r[i].type == LANE_DATA) {
            uint64_t off = r[i].offset % 1024;
            size_t len = r[i].len > 300 ? 300 : r[i].len;
            int rc = lane_reasm_add(&ra, off, r[i].data, len);
            CHECK(rc >= LANE_REASM_BAD && rc <= LANE_REASM_DUP);
        } else if (r[i].type == LANE_FIN) {
            int rc = lane_reasm_fin(&ra, r[i].offset % 1100);
            CHECK(rc >= LANE_REASM_BAD && rc <= LANE_REASM_DUP);
        } else if (r[i].type == LANE_ACK) {
            size_t k = lane_reasm_read(&ra, out, sizeof out);
            read += k;
        }
        /* invariants: ranges sorted, disjoint, not touching, within the window, after next */
        for (int j = 0; j < ra.nranges; j++) {
            CHECK(ra.ranges[j].start < ra.ranges[j].end);
            CHECK(ra.ranges[j].start >= ra.next);
            CHECK(ra.ranges[j].end - ra.next <= ra.cap);
            if (j) CHECK(ra.ranges[j - 1].end < ra.ranges[j].start);
            CHECK(ra.ranges[j].end <= ra.fin);
        }
        CHECK(ra.next == read);
        CHECK(ra.next <= ra.fin);
    }
    lane_reasm_free(&ra);
    return 0;
}
