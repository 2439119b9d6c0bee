/* fuzz_master_rx.c: libFuzzer target for the master's whole receive path (master/sites.c,
 * front.c, the sites' multiplexers): sequences of datagrams from two sites and strangers, real
 * handshakes among them so that sessions exist and sealed DATA/CTRL reach the muxes, mixed with
 * tunnel packets routed by destination.
 * Input: records of 4 bytes then a payload, until the input runs out:
 *   0: op (mod 5)  1: site (mod 3; 2 = a stranger's key)  2: arg  3: payload length
 *   op 0: the payload as a datagram from the site's address
 *   op 1: a real INIT from the site, stamped (1,000,000 + 256 x records so far + arg) s; its
 *         answer, when one comes, gives the site's slave its session keys
 *   op 2: DATA (arg bit 0: CTRL; bit 1: unordered) sealed with the site's session keys, to its
 *         index (arg bit 2: another site's), counter stepping by arg >> 3 (0 replays)
 *   op 3: the payload as a tunnel packet from the tunnel device
 *   op 4: a real INIT from the site with payload[0] flipped at byte payload[1], MACs made
 *         valid again when arg is odd
 * Seeds: tests/fuzz/seeds/fuzz_master_rx. */
#include <arpa/inet.h>
#include <ev.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/log.h"
#include "../../common/util.h"
#include "../../master/sites.h"
#include "../../mux/wire.h"

#define NSITES 2

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
    free(l);
}
static const struct link_ops fake_ops = {
    .kind = "fake", .send = fake_send, .describe = fake_describe, .destroy = fake_destroy};

static struct identity MASTER, SITE[NSITES + 1];
static struct peer TO_MASTER;
static struct cfg_site CS[NSITES];

static uint8_t reply[256];
static size_t reply_len;

static void io_deliver(void *ctx, const uint8_t *pkt, size_t len)
{
    (void)ctx;
    (void)pkt;
    (void)len;
}
static struct link *io_new_link(void *ctx, const char *site, uint8_t id)
{
    (void)ctx;
    (void)site;
    struct fake_link *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->l.ops = &fake_ops;
    f->l.id = id;
    f->l.up = true;
    return &f->l;
}
static int io_reply(void *ctx, const uint8_t *buf, size_t len, const struct sockaddr *to,
                    socklen_t tolen)
{
    (void)ctx;
    (void)to;
    (void)tolen;
    if (len > sizeof reply) abort(); /* every answer is smaller than an INIT */
    memcpy(reply, buf, len);
    reply_len = len;
    return 0;
}

/* The listener the site table answers through: this test's fakes behind the interface. */
struct cb_listener {
    struct listener ls; /* first */
    void *ctx;
};
static struct link *cbl_peer_new(struct listener *ls, uint8_t id)
{
    return io_new_link(((struct cb_listener *)ls)->ctx, NULL, id);
}
static int cbl_reply(struct listener *ls, const uint8_t *buf, size_t len, const struct sockaddr *to,
                     socklen_t tolen)
{
    return io_reply(((struct cb_listener *)ls)->ctx, buf, len, to, tolen);
}
static const struct listener_ops cbl_ops = {.peer_new = cbl_peer_new, .reply = cbl_reply};

static void setup(void)
{
    if (sodium_init() < 0) abort();
    log_set_level(LOG_ERROR);
    uint8_t k[32];
    memset(k, 0x42, sizeof k);
    if (identity_init(&MASTER, k) != 0) abort();
    static const uint8_t nopsk[32];
    peer_init(&TO_MASTER, MASTER.key.pub, nopsk);
    for (int i = 0; i <= NSITES; i++) {
        memset(k, 0x10 + i, sizeof k);
        if (identity_init(&SITE[i], k) != 0) abort();
    }
    for (int i = 0; i < NSITES; i++) {
        snprintf(CS[i].name, sizeof CS[i].name, "s%d", i);
        memcpy(CS[i].public_key, SITE[i].key.pub, 32);
        char p[32], why[128];
        snprintf(p, sizeof p, "198.18.%d.0/24", i);
        if (prefix_parse(p, &CS[i].allowed[0], why, sizeof why) != 0) abort();
        CS[i].nallowed = 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ev_loop *loop;
    if (!loop) {
        setup();
        loop = ev_default_loop(0);
    }
    struct mux_config mc;
    mux_config_defaults(&mc);
    mc.is_master = true;
    mc.mtu = 1428;
    mc.reorder_slots = 256; /* (smaller than the default: more inputs a second) */
    mc.self = MASTER;
    struct sites_io io = {.deliver = io_deliver};
    static struct cb_listener cbl = {.ls = {.ops = &cbl_ops}};
    struct sites *s = sites_new(loop, &mc, CS, NSITES, &cbl.ls, &io);
    if (!s) abort();
    sites_start(s);

    struct session_keys keys[NSITES + 1];
    bool have_keys[NSITES + 1] = {0};
    uint64_t counter[NSITES + 1] = {0};
    static uint8_t dg[2048];
    size_t pos = 0;
    unsigned records = 0;
    while (size - pos >= 4) {
        const uint8_t *r = data + pos;
        int op = r[0] % 5, site = r[1] % (NSITES + 1);
        uint8_t arg = r[2];
        size_t plen = r[3];
        pos += 4;
        if (plen > size - pos) plen = size - pos;
        const uint8_t *payload = data + pos;
        pos += plen;
        records++;
        struct sockaddr_in from = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(9000 + site))};
        from.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)site);
        size_t n = 0;
        if (op == 0) {
            memcpy(dg, payload, plen);
            n = plen;
        } else if (op == 1 || op == 4) {
            struct hs_client c;
            memset(&c, 0, sizeof c);
            if (hs_client_start(&c, &SITE[site], &TO_MASTER, 1000000u + 256u * records + arg, 0, false) != 0)
                abort();
            hs_client_init_msg(&c, &TO_MASTER, (uint8_t)(arg & 3), dg);
            n = HS_INIT_LEN;
            if (op == 4 && plen >= 2) {
                dg[payload[1] % HS_INIT_LEN] ^= payload[0];
                if (arg & 1) hs_seal_macs(dg, n, &MASTER.mine, NULL);
            }
            reply_len = 0;
            sites_input(s, dg, n, (struct sockaddr *)&from, sizeof from);
            if (op == 1 && reply_len == HS_RESPONSE_LEN &&
                hs_client_response(&c, &SITE[site], reply, reply_len, &keys[site]) == 0)
                have_keys[site] = true;
            hs_client_wipe(&c);
            n = 0;
        } else if (op == 2) {
            if (!have_keys[site]) continue;
            struct wire_hdr h = {0};
            h.type = (arg & 1) ? WIRE_CTRL : WIRE_DATA;
            h.unordered = (arg & 3) == 2;
            h.link_id = plen ? payload[0] & 3 : 0;
            counter[site] += arg >> 3;
            h.counter = counter[site] & WIRE_COUNTER_MAX;
            int other = (site + 1) % (NSITES + 1);
            h.index = (uint16_t)((arg & 4) && have_keys[other] ? keys[other].remote_index
                                                                 : keys[site].remote_index);
            h.gseq = (uint32_t)(counter[site] * 3u);
            h.ts = wire_ts(mono_us());
            if (h.type == WIRE_DATA && plen == 0) continue;
            int w = wire_seal(dg, sizeof dg, &h, payload, plen, keys[site].tx);
            if (w < 0) continue;
            n = (size_t)w;
        } else {
            if (plen) sites_send(s, payload, plen);
        }
        if (n) sites_input(s, dg, n, (struct sockaddr *)&from, sizeof from);
        ev_run(loop, EVRUN_NOWAIT);
    }
    struct strbuf sb;
    sb_init(&sb);
    sites_status_json(s, &sb);
    sites_status_text(s, &sb);
    sb_free(&sb);
    sites_shutdown(s);
    sites_free(s);
    sodium_memzero(keys, sizeof keys);
    return 0;
}
