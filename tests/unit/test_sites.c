/* test_sites.c: unit tests of the master's site table (master/sites.c, index.c, front.c):
 * receiver-index collisions, handshakes from several sites through the front door, replayed and
 * older INITs, unknown keys, datagrams routed by index, cryptokey routing both ways. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <sodium.h>

#include "../../master/index.h"
#include "../../master/sites.h"
#include "../../mux/mux_int.h"
#include "../../common/log.h"
#include "../../mux/wire.h"

/* ---- the index table ---- */

static void test_index_collisions(void **state)
{
    (void)state;
    struct itab t;
    assert_int_equal(itab_init(&t), 0);
    static uint8_t seen[65536];
    memset(seen, 0, sizeof seen);
    /* every index, each given once, to alternating sites */
    for (uint32_t i = 0; i < 65536; i++) {
        uint32_t x;
        assert_int_equal(itab_claim(&t, i % 3, &x), 0);
        assert_true(x < 65536);
        assert_int_equal(seen[x], 0);
        seen[x] = 1;
        assert_int_equal(itab_lookup(&t, x), (int)(i % 3));
    }
    uint32_t x;
    assert_int_equal(itab_claim(&t, 0, &x), -1); /* full */
    /* another site's index is not released; the owner's is, and is the only one free */
    int owner = itab_lookup(&t, 1234);
    itab_release(&t, (unsigned)(owner + 1) % 3, 1234);
    assert_int_equal(itab_lookup(&t, 1234), owner);
    itab_release(&t, (unsigned)owner, 1234);
    assert_int_equal(itab_lookup(&t, 1234), -1);
    itab_release(&t, (unsigned)owner, 1234); /* twice: nothing more */
    assert_int_equal(t.used, 65535);
    assert_int_equal(itab_claim(&t, 2, &x), 0);
    assert_int_equal(x, 1234);
    assert_int_equal(itab_lookup(&t, 70000), -1);
    assert_int_equal(itab_claim(&t, ITAB_SITES_MAX, &x), -1);
    itab_free(&t);
}

/* ---- a master with sites, and slaves made of the handshake and wire functions ---- */

#define NSITES 3

struct caplink {
    struct link base;
    int sent;
};

static int cap_send(struct link *l, const uint8_t *buf, size_t len)
{
    (void)buf;
    (void)len;
    ((struct caplink *)l)->sent++;
    return 0;
}
static void cap_describe(const struct link *l, char *buf, size_t len)
{
    (void)l;
    snprintf(buf, len, "test");
}
static void cap_destroy(struct link *l)
{
    free(l);
}
static const struct link_ops cap_ops = {
    .kind = "test", .send = cap_send, .describe = cap_describe, .destroy = cap_destroy};

struct cb_listener;
struct fx {
    struct ev_loop *loop;
    struct cb_listener *cbl;
    struct sites *s;
    struct identity master;
    struct identity site[NSITES];
    struct peer master_peer; /* as the slaves see it */
    struct cfg_site cs[NSITES];
    struct session_keys keys[NSITES];
    int delivered;
    uint8_t last[2048];
    size_t last_len;
    uint8_t reply[256];
    size_t reply_len;
    int replies, links;
};

static void io_deliver(void *ctx, const uint8_t *pkt, size_t len)
{
    struct fx *f = ctx;
    f->delivered++;
    memcpy(f->last, pkt, len);
    f->last_len = len;
}
static struct link *io_new_link(void *ctx, const char *site, uint8_t id)
{
    struct fx *f = ctx;
    (void)site;
    struct caplink *c = calloc(1, sizeof *c);
    c->base.ops = &cap_ops;
    c->base.id = id;
    c->base.up = true;
    f->links++;
    return &c->base;
}
static int io_reply(void *ctx, const uint8_t *buf, size_t len, const struct sockaddr *to,
                    socklen_t tolen)
{
    struct fx *f = ctx;
    (void)to;
    (void)tolen;
    assert_true(len <= sizeof f->reply);
    memcpy(f->reply, buf, len);
    f->reply_len = len;
    f->replies++;
    return 0;
}

static struct sockaddr_in from_addr(int site)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(40000 + site))};
    a.sin_addr.s_addr = htonl(0x7f000001);
    return a;
}

/* Keys and site configs; the site table is made by fx_start (a test may change the configs
 * in between). */
static struct fx *fx_keys(int nsites, bool with_allowed)
{
    struct fx *f = calloc(1, sizeof *f);
    f->loop = ev_loop_new(EVFLAG_AUTO);
    uint8_t k[32];
    randombytes_buf(k, sizeof k);
    assert_int_equal(identity_init(&f->master, k), 0);
    static const uint8_t nopsk[32];
    peer_init(&f->master_peer, f->master.key.pub, nopsk);
    for (int i = 0; i < nsites; i++) {
        randombytes_buf(k, sizeof k);
        assert_int_equal(identity_init(&f->site[i], k), 0);
        snprintf(f->cs[i].name, sizeof f->cs[i].name, "s%d", i);
        memcpy(f->cs[i].public_key, f->site[i].key.pub, 32);
        if (with_allowed) {
            char p[32], why[128];
            snprintf(p, sizeof p, "198.18.%d.0/24", i);
            assert_int_equal(prefix_parse(p, &f->cs[i].allowed[0], why, sizeof why), 0);
            f->cs[i].nallowed = 1;
        }
    }
    return f;
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

/* The site table over the first nsites configs; mc (may be NULL) gets the base settings. */
static void fx_start(struct fx *f, int nsites, struct mux_config *mc)
{
    struct mux_config base;
    if (!mc) mc = &base;
    mux_config_defaults(mc);
    mc->is_master = true;
    mc->self = f->master;
    struct sites_io io = {.deliver = io_deliver, .ctx = f};
    if (!f->cbl) f->cbl = calloc(1, sizeof *f->cbl);
    assert_non_null(f->cbl);
    *f->cbl = (struct cb_listener){.ls = {.ops = &cbl_ops}, .ctx = f};
    f->s = sites_new(f->loop, mc, f->cs, nsites, &f->cbl->ls, &io);
    assert_non_null(f->s);
}

static struct fx *fx_new(int nsites, bool with_allowed)
{
    struct fx *f = fx_keys(nsites, with_allowed);
    fx_start(f, nsites, NULL);
    return f;
}

static void fx_free(struct fx *f)
{
    sites_free(f->s);
    ev_loop_destroy(f->loop);
    free(f->cbl);
    free(f);
}

static void input(struct fx *f, int site, const uint8_t *dg, size_t len)
{
    uint8_t buf[2048];
    memcpy(buf, dg, len);
    struct sockaddr_in a = from_addr(site);
    sites_input(f->s, buf, len, (struct sockaddr *)&a, sizeof a);
}

/* Site i's slave makes an INIT stamped sec; *c keeps its handshake. */
static void make_init(struct fx *f, int i, uint64_t sec, struct hs_client *c,
                      uint8_t init[HS_INIT_LEN])
{
    memset(c, 0, sizeof *c);
    assert_int_equal(hs_client_start(c, &f->site[i], &f->master_peer, sec, 0, false), 0);
    hs_client_init_msg(c, &f->master_peer, 0, init);
}

/* A whole handshake for site i: the master answers, the slave takes the RESPONSE. */
static void handshake(struct fx *f, int i, uint64_t sec)
{
    struct hs_client c;
    uint8_t init[HS_INIT_LEN];
    make_init(f, i, sec, &c, init);
    int r0 = f->replies;
    input(f, i, init, sizeof init);
    assert_int_equal(f->replies, r0 + 1);
    assert_int_equal(f->reply_len, HS_RESPONSE_LEN);
    assert_int_equal(hs_client_response(&c, &f->site[i], f->reply, f->reply_len, &f->keys[i]), 0);
    hs_client_wipe(&c);
}

/* A DATA datagram from site i's slave carrying an IPv4 packet from src. */
static size_t make_data(struct fx *f, int i, uint64_t counter, uint32_t src, uint8_t *out,
                        size_t cap)
{
    uint8_t pkt[60] = {0};
    pkt[0] = 0x45;
    pkt[3] = sizeof pkt;
    uint32_t s = htonl(src), d = htonl(0xc6120001u);
    memcpy(pkt + 12, &s, 4);
    memcpy(pkt + 16, &d, 4);
    struct wire_hdr h = {.type = WIRE_DATA, .link_id = 0, .counter = counter,
                         .index = (uint16_t)f->keys[i].remote_index, .gseq = (uint32_t)counter};
    int n = wire_seal(out, cap, &h, pkt, sizeof pkt, f->keys[i].tx);
    assert_true(n > 0);
    return (size_t)n;
}

static uint32_t site_ip(int i)
{
    return 0xc6120000u | (uint32_t)i << 8 | 10; /* 198.18.i.10 */
}

static void test_handshakes_and_indices(void **state)
{
    (void)state;
    struct fx *f = fx_new(NSITES, true);
    for (int i = 0; i < NSITES; i++) handshake(f, i, 1000);
    for (int i = 0; i < NSITES; i++) {
        /* the master's index for each site is its own */
        for (int j = 0; j < i; j++) assert_int_not_equal(f->keys[i].remote_index, f->keys[j].remote_index);
        assert_true(f->keys[i].remote_index <= WIRE_INDEX_MAX);
        assert_int_equal(mux_counters(sites_mux(f->s, i))->hello_rx, 1);
    }
    /* a datagram with another site's index does not open there, and changes nothing */
    uint8_t dg[256];
    size_t n = make_data(f, 0, 0, site_ip(0), dg, sizeof dg);
    dg[8] = (uint8_t)(f->keys[1].remote_index >> 8); /* receiver index: bytes 8-9 */
    dg[9] = (uint8_t)f->keys[1].remote_index;
    input(f, 0, dg, n);
    assert_int_equal(mux_counters(sites_mux(f->s, 1))->auth_fail, 1);
    assert_int_equal(f->delivered, 0);
    /* an index nobody has */
    n = make_data(f, 0, 0, site_ip(0), dg, sizeof dg);
    uint16_t free_index = 0;
    while (free_index == f->keys[0].remote_index || free_index == f->keys[1].remote_index ||
           free_index == f->keys[2].remote_index)
        free_index++;
    dg[8] = (uint8_t)(free_index >> 8);
    dg[9] = (uint8_t)free_index;
    input(f, 0, dg, n);
    assert_int_equal(sites_counters(f->s)->no_session, 1);
    /* each site's own DATA opens at its site, makes its link, and is delivered */
    for (int i = 0; i < NSITES; i++) {
        n = make_data(f, i, 0, site_ip(i), dg, sizeof dg);
        input(f, i, dg, n);
        assert_int_equal(f->delivered, i + 1);
        assert_true(mux_has_session(sites_mux(f->s, i)));
    }
    assert_int_equal(f->links, NSITES);
    fx_free(f);
}

static void test_replayed_and_older_inits(void **state)
{
    (void)state;
    struct fx *f = fx_new(2, true);
    struct hs_client c;
    uint8_t init[HS_INIT_LEN];
    make_init(f, 0, 2000, &c, init);
    input(f, 0, init, sizeof init);
    assert_int_equal(f->replies, 1);
    uint8_t first[HS_RESPONSE_LEN];
    memcpy(first, f->reply, sizeof first);
    /* the same INIT again: the same answer, no new session */
    input(f, 0, init, sizeof init);
    assert_int_equal(f->replies, 2);
    assert_memory_equal(first, f->reply, sizeof first);
    /* an INIT as old, or older, from another handshake: nothing */
    struct hs_client c2;
    uint8_t old[HS_INIT_LEN];
    make_init(f, 0, 2000, &c2, old);
    input(f, 0, old, sizeof old);
    make_init(f, 0, 1999, &c2, old);
    input(f, 0, old, sizeof old);
    assert_int_equal(f->replies, 2);
    const struct mux_counters *mc = mux_counters(sites_mux(f->s, 0));
    assert_int_equal(mc->hello_replay, 2);
    /* the other site's timestamps are its own: an older one is fine there */
    handshake(f, 1, 5);
    /* the first answer still makes the session */
    struct session_keys k;
    assert_int_equal(hs_client_response(&c, &f->site[0], first, sizeof first, &k), 0);
    hs_client_wipe(&c);
    hs_client_wipe(&c2);
    fx_free(f);
}

static void test_front_door(void **state)
{
    (void)state;
    struct fx *f = fx_new(2, true);
    /* a key that is no site's: no answer, counted */
    struct identity stranger;
    uint8_t k[32];
    randombytes_buf(k, sizeof k);
    assert_int_equal(identity_init(&stranger, k), 0);
    struct hs_client c = {0};
    uint8_t init[HS_INIT_LEN];
    assert_int_equal(hs_client_start(&c, &stranger, &f->master_peer, 100, 0, false), 0);
    hs_client_init_msg(&c, &f->master_peer, 0, init);
    input(f, 0, init, sizeof init);
    assert_int_equal(f->replies, 0);
    assert_int_equal(sites_counters(f->s)->unknown_key, 1);
    /* MAC1 for another master: no answer, no X25519 */
    make_init(f, 0, 100, &c, init);
    init[HS_INIT_LEN - 2 * HS_MAC_LEN] ^= 1;
    input(f, 0, init, sizeof init);
    assert_int_equal(sites_front_counters(f->s)->mac1_bad, 1);
    /* a tampered Noise message with a good MAC1 */
    make_init(f, 0, 100, &c, init);
    init[20] ^= 1;
    hs_seal_macs(init, sizeof init, &f->master.mine, NULL);
    input(f, 0, init, sizeof init);
    assert_int_equal(sites_front_counters(f->s)->noise_bad, 1);
    assert_int_equal(f->replies, 0);
    /* one source address gets at most its burst (then its rate) of INITs read */
    unsigned sent = 0;
    for (int i = 0; i < 60; i++, sent++) {
        make_init(f, 1, 200 + (uint64_t)i, &c, init);
        input(f, 1, init, sizeof init);
    }
    const struct front_counters *fc = sites_front_counters(f->s);
    /* past 50 a second the master is under load: cookie replies instead */
    assert_true(fc->cookie_tx >= 1);
    assert_true(fc->src_ratelimited >= 1);
    assert_true(mux_counters(sites_mux(f->s, 1))->hello_rx <= FRONT_SRC_BURST + 1);
    /* every answer is smaller than what came in */
    assert_true(f->reply_len < HS_INIT_LEN);
    hs_client_wipe(&c);
    fx_free(f);
}

static void test_cryptokey_routing(void **state)
{
    (void)state;
    struct fx *f = fx_new(NSITES, true);
    uint8_t dg[256];
    for (int i = 0; i < NSITES; i++) handshake(f, i, 3000);
    /* site 1 sends from site 0's and from nobody's addresses, then its own */
    size_t n = make_data(f, 1, 0, site_ip(0), dg, sizeof dg);
    input(f, 1, dg, n);
    n = make_data(f, 1, 1, 0x0a000001u, dg, sizeof dg);
    input(f, 1, dg, n);
    assert_int_equal(f->delivered, 0);
    n = make_data(f, 1, 2, site_ip(1), dg, sizeof dg);
    input(f, 1, dg, n);
    assert_int_equal(f->delivered, 1);
    struct strbuf sb;
    sb_init(&sb);
    sites_status_json(f->s, &sb);
    assert_non_null(strstr(sb.buf, "\"name\":\"s1\",\"allowed_ips\":[\"198.18.1.0/24\"],"
                                   "\"rx_foreign_src\":2,"));
    sb_free(&sb);
    /* from the tunnel device: to the site whose prefix holds the destination */
    uint8_t pkt[40] = {0x45};
    for (int i = 0; i < NSITES; i++) {
        uint32_t d = htonl(site_ip(i) + 5);
        memcpy(pkt + 16, &d, 4);
        uint64_t before = mux_counters(sites_mux(f->s, i))->tx_no_link +
                          mux_counters(sites_mux(f->s, i))->tx_data;
        sites_send(f->s, pkt, sizeof pkt);
        for (int j = 0; j < NSITES; j++) {
            uint64_t now = mux_counters(sites_mux(f->s, j))->tx_no_link +
                           mux_counters(sites_mux(f->s, j))->tx_data;
            if (j == i) assert_int_equal(now, before + 1);
        }
    }
    uint32_t d = htonl(0x0a000001u);
    memcpy(pkt + 16, &d, 4);
    sites_send(f->s, pkt, sizeof pkt);
    assert_int_equal(sites_counters(f->s)->tx_no_route, 1);
    pkt[0] = 0x15;
    sites_send(f->s, pkt, sizeof pkt);
    assert_int_equal(sites_counters(f->s)->tx_not_ip, 1);
    fx_free(f);
}

/* A site's own settings (scheduler, reorder bound) reach its multiplexer, and only its. */
static void test_site_settings(void **state)
{
    (void)state;
    struct fx *f = fx_keys(2, false);
    snprintf(f->cs[0].scheduler, sizeof f->cs[0].scheduler, "weighted");
    f->cs[0].reorder_max_ms = 1500;
    f->cs[0].has_reorder_max_ms = true;
    struct mux_config mc;
    fx_start(f, 2, &mc);
    assert_string_equal(sites_mux(f->s, 0)->sched->name, "weighted");
    assert_int_equal(sites_mux(f->s, 0)->cfg.reorder_max_ms, 1500);
    assert_string_not_equal(sites_mux(f->s, 1)->sched->name, "weighted");
    assert_int_equal(sites_mux(f->s, 1)->cfg.reorder_max_ms, mc.reorder_max_ms);
    fx_free(f);
}

/* One site without allowed_ips takes everything, IP or not. */
static void test_one_site_takes_all(void **state)
{
    (void)state;
    struct fx *f = fx_new(1, false);
    handshake(f, 0, 10);
    uint8_t dg[256];
    size_t n = make_data(f, 0, 0, 0x01020304u, dg, sizeof dg);
    input(f, 0, dg, n);
    assert_int_equal(f->delivered, 1);
    uint8_t junk[3] = {1, 2, 3};
    sites_send(f->s, junk, sizeof junk);
    assert_int_equal(sites_counters(f->s)->tx_not_ip, 0);
    const struct mux_counters *mc = mux_counters(sites_mux(f->s, 0));
    assert_int_equal(mc->tx_no_link + mc->tx_data, 1);
    fx_free(f);
}

int main(void)
{
    if (session_crypto_init() != 0) return 1;
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_collisions),
        cmocka_unit_test(test_handshakes_and_indices),
        cmocka_unit_test(test_replayed_and_older_inits),
        cmocka_unit_test(test_front_door),
        cmocka_unit_test(test_cryptokey_routing),
        cmocka_unit_test(test_one_site_takes_all),
        cmocka_unit_test(test_site_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
