/* fuzz_mux_rx.c: libFuzzer target for the multiplexer's receive path: authenticated DATA and CTRL
 * datagrams with fuzzer-chosen fields and payloads on three slave links, mixed with sends. */
/* Input: records of 8 bytes then a payload, until the input runs out:
 *   0: link (mod 3)  1: what (mod 4: 0 DATA, 1 CTRL, 2 unordered DATA, 3 a tunnel packet sent)
 *   2-5: gseq  6: counter step (0 replays the last counter)  7: payload length
 * Datagrams are sealed with the session's receive key, so everything after the AEAD check is
 * reached: beats, receive reports (hostile counters, times and delays) against the path model
 * and the scheduler, LINK_DOWN, the reorder buffer, the send queues. Seeds: tests/fuzz/seeds/
 * fuzz_mux_rx (made by tests/fuzz/mux_rx_seeds.py). */
#include <arpa/inet.h>
#include <ev.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/util.h"
#include "../../mux/mux.h"
#include "../../mux/wire.h"

#define NLINKS 3

struct fake_link {
    struct link l;
};

static int fake_send(struct link *l, const uint8_t *buf, size_t len)
{
    (void)buf;
    l->c.tx_packets++;
    l->c.tx_bytes += len;
    return 0;
}

static void fake_describe(const struct link *l, char *buf, size_t len)
{
    snprintf(buf, len, "fake %u", l->id);
}

static void fake_destroy(struct link *l)
{
    (void)l;
}

static const struct link_ops fake_ops = {
    .kind = "fake", .send = fake_send, .describe = fake_describe, .destroy = fake_destroy};

static void on_deliver(void *ctx, const uint8_t *pkt, size_t len)
{
    (void)ctx;
    (void)pkt;
    (void)len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ev_loop *loop;
    if (!loop) {
        if (sodium_init() < 0) abort();
        loop = ev_default_loop(0);
    }
    struct mux_config cfg;
    mux_config_defaults(&cfg);
    cfg.mtu = 1428;
    struct mux_callbacks cb = {.deliver = on_deliver};
    struct mux *m = mux_new(loop, &cfg, &cb);
    if (!m) abort();
    struct fake_link fl[NLINKS];
    for (int i = 0; i < NLINKS; i++) {
        memset(&fl[i], 0, sizeof fl[i]);
        fl[i].l.ops = &fake_ops;
        fl[i].l.id = (uint8_t)(i * 7 + 1);
        snprintf(fl[i].l.name, sizeof fl[i].l.name, "f%d", i);
        fl[i].l.up = true;
        if (mux_add_link(m, &fl[i].l) != 0) abort();
    }
    struct session_keys k;
    memset(&k, 0, sizeof k);
    memset(k.rx, 0x5a, sizeof k.rx);
    memset(k.tx, 0xa5, sizeof k.tx);
    mux_fuzz_session(m, &k);

    uint64_t counter[NLINKS] = {0};
    static uint8_t dg[2048];
    struct sockaddr_in from = {.sin_family = AF_INET, .sin_port = htons(7000)};
    size_t pos = 0;
    while (size - pos >= 8) {
        const uint8_t *r = data + pos;
        int li = r[0] % NLINKS;
        int what = r[1] % 4;
        uint32_t gseq = get_be32(r + 2);
        size_t plen = r[7];
        pos += 8;
        if (plen > size - pos) plen = size - pos;
        const uint8_t *payload = data + pos;
        pos += plen;
        if (what == 3) {
            if (plen) mux_send(m, payload, plen);
            continue;
        }
        counter[li] += r[6];
        struct wire_hdr h = {0};
        h.type = what == 1 ? WIRE_CTRL : WIRE_DATA;
        h.unordered = what == 2;
        h.link_id = fl[li].l.id;
        h.counter = counter[li] & WIRE_COUNTER_MAX;
        h.gseq = gseq;
        h.ts = wire_ts(mono_us()) - r[6];
        h.echo_valid = (r[6] & 1) != 0;
        h.echo = (uint16_t)(gseq >> 16);
        if (h.type == WIRE_DATA && plen == 0) continue;
        int n = wire_seal(dg, sizeof dg, &h, payload, plen, k.rx);
        if (n < 0) continue;
        fl[li].l.h.rx(fl[li].l.h.ctx, &fl[li].l, dg, (size_t)n, (struct sockaddr *)&from,
                      sizeof from);
        ev_run(loop, EVRUN_NOWAIT);
    }
    struct strbuf sb;
    sb_init(&sb);
    mux_status_json(m, &sb);
    sb_free(&sb);
    mux_shutdown(m);
    mux_free(m);
    return 0;
}
