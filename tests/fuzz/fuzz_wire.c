/* fuzz_wire.c: libFuzzer target for the datagram codec: wire_peek, wire_open and ctrl_decode on
 * raw bytes, and seal-then-open round trips that reach ctrl_decode on authenticated payloads. */
/* Input: byte 0 selects the mode, the rest is the data.
 *   mode 0: the data is a received datagram: wire_peek, wire_open (fixed key), and ctrl_decode
 *           of the plaintext if it is an authenticated CTRL.
 *   mode 1: the data is 16 bytes of header fields then a payload: seal it with the fixed key,
 *           open it again (must round-trip exactly), ctrl_decode the payload if CTRL, and
 *           re-encode what was decoded (must decode to the same messages).
 *   mode 2: the data is a CTRL payload: ctrl_decode with the full and a small output array.
 * Seeds: build with -DFUZZ_WRITE_SEEDS (plain gcc, linked with libbraid.a and libsodium) to get
 * a program that writes tests/fuzz/seeds/fuzz_wire/ files into the directory given. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/util.h"
#include "../../mux/wire.h"

static const uint8_t FUZZ_KEY[WIRE_KEY_LEN] = {
    0x62, 0x72, 0x61, 0x69, 0x64, 0x2d, 0x66, 0x75, 0x7a, 0x7a, 0x2d, 0x6b, 0x65, 0x79, 0x2d, 0x30,
    0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x00};

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_wire: check failed: %s (line %d)\n", #cond, __LINE__);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void decode_and_reencode(const uint8_t *p, size_t len)
{
    struct ctrl_msg m[CTRL_MAX_MSGS];
    int n = ctrl_decode(p, len, m, CTRL_MAX_MSGS);
    CHECK(n == WIRE_ERR_SHORT || (n >= 0 && n <= CTRL_MAX_MSGS));
    if (n <= 0) return;
    uint8_t buf[CTRL_MAX_MSGS * (2 + CTRL_REPORT_LEN)];
    size_t pos = 0;
    for (int i = 0; i < n; i++) {
        if (m[i].kind == CTRL_BEAT) {
            CHECK(ctrl_put_beat(buf, sizeof(buf), &pos, &m[i].u.beat) == 0);
        } else if (m[i].kind == CTRL_REPORT) {
            CHECK(ctrl_put_report(buf, sizeof(buf), &pos, &m[i].u.report) == 0);
        } else if (m[i].kind == CTRL_REKEY) {
            CHECK(ctrl_put_rekey(buf, sizeof(buf), &pos) == 0);
        } else if (m[i].kind == CTRL_LINK_NAME) {
            CHECK(ctrl_put_link_name(buf, sizeof(buf), &pos, &m[i].u.name) == 0);
        } else {
            CHECK(m[i].kind == CTRL_LINK_DOWN);
            CHECK(ctrl_put_link_down(buf, sizeof(buf), &pos, &m[i].u.down) == 0);
        }
    }
    struct ctrl_msg back[CTRL_MAX_MSGS];
    CHECK(ctrl_decode(buf, pos, back, CTRL_MAX_MSGS) == n);
    for (int i = 0; i < n; i++) {
        CHECK(back[i].kind == m[i].kind);
        if (m[i].kind == CTRL_BEAT) {
            CHECK(back[i].u.beat.flags == m[i].u.beat.flags);
            CHECK(back[i].u.beat.interval_ms == m[i].u.beat.interval_ms);
            CHECK(back[i].u.beat.report_us == m[i].u.beat.report_us);
            CHECK(back[i].u.beat.rx_packets == m[i].u.beat.rx_packets);
            CHECK(back[i].u.beat.rx_bytes == m[i].u.beat.rx_bytes);
            CHECK(back[i].u.beat.rx_highest == m[i].u.beat.rx_highest);
        } else if (m[i].kind == CTRL_LINK_NAME) {
            CHECK(back[i].u.name.link_id == m[i].u.name.link_id);
            CHECK(strcmp(back[i].u.name.name, m[i].u.name.name) == 0);
            CHECK(strlen(m[i].u.name.name) >= 1 && strlen(m[i].u.name.name) <= CTRL_LINK_NAME_MAX);
        } else if (m[i].kind == CTRL_REPORT) {
            CHECK(back[i].u.report.link_id == m[i].u.report.link_id);
            CHECK(back[i].u.report.flags == m[i].u.report.flags);
            CHECK(back[i].u.report.tx_wait_100us == m[i].u.report.tx_wait_100us);
            CHECK(back[i].u.report.report_us == m[i].u.report.report_us);
            CHECK(back[i].u.report.rx_highest == m[i].u.report.rx_highest);
            CHECK(back[i].u.report.rx_packets == m[i].u.report.rx_packets);
            CHECK(back[i].u.report.rx_bytes == m[i].u.report.rx_bytes);
            CHECK(back[i].u.report.ack_delay_us == m[i].u.report.ack_delay_us);
            CHECK(back[i].u.report.owd_min_rel_us == m[i].u.report.owd_min_rel_us);
            CHECK(back[i].u.report.owd_queue_us == m[i].u.report.owd_queue_us);
            CHECK(back[i].u.report.tx_data_end == m[i].u.report.tx_data_end);
        } else if (m[i].kind == CTRL_LINK_DOWN) {
            CHECK(back[i].u.down.link_id == m[i].u.down.link_id);
            CHECK(back[i].u.down.reason == m[i].u.down.reason);
        }
    }
}

static void mode_raw(const uint8_t *data, size_t size)
{
    struct wire_hdr h;
    int peek = wire_peek(data, size, &h);
    uint8_t *dg = malloc(size ? size : 1);
    CHECK(dg != NULL);
    if (size) memcpy(dg, data, size);
    uint8_t *pl = NULL;
    size_t pll = 0;
    int rc = wire_open(dg, size, FUZZ_KEY, &h, &pl, &pll);
    /* wire_open fails whenever wire_peek does, with the same error */
    if (peek != WIRE_OK) CHECK(rc == peek);
    if (rc == WIRE_OK) {
        CHECK(pl == dg + WIRE_HDR_LEN + WIRE_INNER_LEN && pll + WIRE_OVERHEAD == size);
        CHECK(h.type != WIRE_DATA || pll > 0);
        if (h.type == WIRE_CTRL) decode_and_reencode(pl, pll);
    }
    free(dg);
}

static void mode_sealed(const uint8_t *data, size_t size)
{
    if (size < 16) return;
    struct wire_hdr h = {
        .type = data[0] & 1u,
        .index = (data[0] >> 1) & 1u ? 0xffffu : (uint16_t)(data[0] * 0x0193u),
        .echo_valid = (data[0] >> 2) & 1u,
        .link_id = data[1],
        .counter = get_be48(data + 2),
        .gseq = get_be32(data + 8),
        .ts = get_be16(data + 12),
        .echo = get_be16(data + 14),
    };
    const uint8_t *payload = data + 16;
    size_t plen = size - 16;
    if (plen > WIRE_MAX_DGRAM - WIRE_OVERHEAD) plen = WIRE_MAX_DGRAM - WIRE_OVERHEAD;
    size_t cap = plen + WIRE_OVERHEAD;
    uint8_t *dg = malloc(cap);
    CHECK(dg != NULL);
    int n = wire_seal(dg, cap, &h, payload, plen, FUZZ_KEY);
    if (h.type == WIRE_DATA && plen == 0) {
        CHECK(n == WIRE_ERR_EMPTY);
        free(dg);
        return;
    }
    CHECK(n == (int)cap);
    struct wire_hdr o;
    uint8_t *pl = NULL;
    size_t pll = 0;
    CHECK(wire_open(dg, cap, FUZZ_KEY, &o, &pl, &pll) == WIRE_OK);
    CHECK(o.type == h.type && o.index == h.index && o.echo_valid == h.echo_valid);
    CHECK(o.link_id == h.link_id && o.counter == h.counter && o.gseq == h.gseq);
    CHECK(o.ts == h.ts && o.echo == h.echo);
    CHECK(pll == plen && (plen == 0 || memcmp(pl, payload, plen) == 0));
    if (o.type == WIRE_CTRL) decode_and_reencode(pl, pll);
    free(dg);
}

static void mode_ctrl(const uint8_t *data, size_t size)
{
    decode_and_reencode(data, size);
    struct ctrl_msg m[2];
    int n = ctrl_decode(data, size, m, 2);
    CHECK(n == WIRE_ERR_SHORT || n == WIRE_ERR_SPACE || (n >= 0 && n <= 2));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        if (sodium_init() < 0) abort();
        init = 1;
    }
    if (size < 1) return 0;
    switch (data[0] % 3) {
    case 0:
        mode_raw(data + 1, size - 1);
        break;
    case 1:
        mode_sealed(data + 1, size - 1);
        break;
    default:
        mode_ctrl(data + 1, size - 1);
        break;
    }
    return 0;
}

#ifdef FUZZ_WRITE_SEEDS
static void write_seed(const char *dir, const char *name, uint8_t mode, const uint8_t *p,
                       size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fputc(mode, f) == EOF || fwrite(p, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2 || sodium_init() < 0) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 1;
    }
    uint8_t ctrl[64], dg[128], pkt[20] = {0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, 17};
    size_t pos = 0;
    struct ctrl_beat b = {.flags = CTRL_BEAT_F_HEARS,
                          .interval_ms = 100,
                          .report_us = 123456,
                          .rx_packets = 1000,
                          .rx_bytes = 1400000,
                          .rx_highest = 1010};
    struct ctrl_link_down d = {.link_id = 2, .reason = CTRL_DOWN_TRANSPORT};
    if (ctrl_put_beat(ctrl, sizeof(ctrl), &pos, &b) ||
        ctrl_put_link_down(ctrl, sizeof(ctrl), &pos, &d))
        return 1;

    struct wire_hdr h = {.type = WIRE_DATA, .link_id = 1, .counter = 5, .gseq = 77, .ts = 9};
    int n = wire_seal(dg, sizeof(dg), &h, pkt, sizeof(pkt), FUZZ_KEY);
    write_seed(argv[1], "raw_data", 0, dg, (size_t)n);
    h.type = WIRE_CTRL;
    h.index = 0xc0ffu;
    h.echo_valid = true;
    h.echo = 3;
    n = wire_seal(dg, sizeof(dg), &h, ctrl, pos, FUZZ_KEY);
    write_seed(argv[1], "raw_ctrl", 0, dg, (size_t)n);

    uint8_t fields[16 + 64] = {0x07, 3, 0, 0, 0, 0, 1, 0, 0, 0, 0, 42, 0, 1, 0, 2};
    memcpy(fields + 16, ctrl, pos);
    write_seed(argv[1], "sealed_ctrl", 1, fields, 16 + pos);
    fields[0] = 0x00;
    memcpy(fields + 16, pkt, sizeof(pkt));
    write_seed(argv[1], "sealed_data", 1, fields, 16 + sizeof(pkt));
    write_seed(argv[1], "ctrl_payload", 2, ctrl, pos);
    return 0;
}
#endif
