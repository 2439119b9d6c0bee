/* test_rekey.c: unit tests of rekeying (mux/handshake.c session_timers) with a fake clock: a
 * slave multiplexer and a master's site table joined in memory by queues (no sockets, no event
 * loop time), the session timers driven with times the test chooses: new keys at rekey_after
 * that carry the session on (order, counters and links kept, data both ways under the new
 * keys, the old keys still open for datagrams in flight), the master asking for new keys at
 * 1.25 x, both ends refusing a session without new keys at 1.5 x and a fresh one after. */
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
#include <time.h>

#include "../../common/log.h"
#include "../../common/util.h"
#include "../../master/sites.h"
#include "../../mux/mux_int.h"

#define NLINKS 2
#define QMAX 4096
#define REKEY_MS 30000u

struct dg {
    int link;     /* slave link index */
    bool to_master;
    size_t len;
    uint8_t b[1600];
};

struct pair;

struct qlink {
    struct link base;
    struct pair *p;
    int idx;
    bool master_side;
};

struct pair {
    struct ev_loop *loop;
    struct identity master, slave;
    struct cfg_site cs;
    struct sites *s;
    struct mux *sm; /* the slave */
    struct qlink sl[NLINKS];
    struct dg *q;
    int qn;
    bool drop_handshakes; /* datagrams of type 2 from the slave are lost */
    bool hold_data;       /* the next DATA to the slave goes to held instead */
    struct dg held;
    uint64_t delivered_m, delivered_s;
    uint32_t last_seq_m, last_seq_s;
    uint32_t seq_up, seq_down;
    bool order_ok;
};

static void push(struct pair *p, int link, bool to_master, const uint8_t *b, size_t len)
{
    assert_true(p->qn < QMAX);
    assert_true(len <= sizeof p->q[0].b);
    struct dg *d = &p->q[p->qn++];
    if (p->hold_data && !to_master && len && (b[0] >> 4 & 3) == WIRE_DATA) {
        p->hold_data = false;
        d = &p->held;
        p->qn--;
    }
    d->link = link;
    d->to_master = to_master;
    d->len = len;
    memcpy(d->b, b, len);
}

static int q_send(struct link *l, const uint8_t *buf, size_t len)
{
    struct qlink *ql = (struct qlink *)l;
    push(ql->p, ql->idx, !ql->master_side, buf, len);
    return 0;
}
static void q_describe(const struct link *l, char *buf, size_t len)
{
    snprintf(buf, len, "queue %d", ((const struct qlink *)l)->idx);
}
static void q_destroy_master(struct link *l)
{
    free(l);
}
static void q_destroy_slave(struct link *l)
{
    (void)l;
}
static const struct link_ops master_ops = {
    .kind = "q", .send = q_send, .describe = q_describe, .destroy = q_destroy_master};
static const struct link_ops slave_ops = {
    .kind = "q", .send = q_send, .describe = q_describe, .destroy = q_destroy_slave};

static struct sockaddr_in from_of(int link)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(5000 + link))};
    a.sin_addr.s_addr = htonl(0x7f000001);
    return a;
}

/* Tunnel packets carry a 32-bit sequence number after a minimal IPv4 header. */
static void check_order(struct pair *p, const uint8_t *pkt, size_t len, bool at_master)
{
    if (len < 24) return;
    uint32_t seq = get_be32(pkt + 20);
    uint32_t *last = at_master ? &p->last_seq_m : &p->last_seq_s;
    if (seq != *last + 1) p->order_ok = false;
    *last = seq;
}
static void m_deliver(void *ctx, const uint8_t *pkt, size_t len)
{
    struct pair *p = ctx;
    p->delivered_m++;
    check_order(p, pkt, len, true);
}
static void s_deliver(void *ctx, const uint8_t *pkt, size_t len)
{
    struct pair *p = ctx;
    p->delivered_s++;
    check_order(p, pkt, len, false);
}
static struct link *m_new_link(void *ctx, const char *site, uint8_t id)
{
    (void)site;
    struct qlink *ql = calloc(1, sizeof *ql);
    ql->base.ops = &master_ops;
    ql->base.id = id;
    ql->base.up = true;
    ql->p = ctx;
    ql->idx = id;
    ql->master_side = true;
    return &ql->base;
}
static int m_reply(void *ctx, const uint8_t *buf, size_t len, const struct sockaddr *to,
                   socklen_t tolen)
{
    (void)tolen;
    int link = ntohs(((const struct sockaddr_in *)to)->sin_port) - 5000;
    push(ctx, link, false, buf, len);
    return 0;
}

/* The listener the site table answers through: this test's fakes behind the interface. */
struct cb_listener {
    struct listener ls; /* first */
    void *ctx;
};
static struct link *cbl_peer_new(struct listener *ls, uint8_t id)
{
    return m_new_link(((struct cb_listener *)ls)->ctx, NULL, id);
}
static int cbl_reply(struct listener *ls, const uint8_t *buf, size_t len, const struct sockaddr *to,
                     socklen_t tolen)
{
    return m_reply(((struct cb_listener *)ls)->ctx, buf, len, to, tolen);
}
static const struct listener_ops cbl_ops = {.peer_new = cbl_peer_new, .reply = cbl_reply};

/* Deliver queued datagrams (and what they cause) until nothing is left; packets the
 * multiplexers' pacing holds back go out on their timers (the event loop runs for them). */
static void pump(struct pair *p)
{
    for (int rounds = 0; rounds < 1000; rounds++) {
        if (!p->qn) {
            if (!p->sm->txq_count && !sites_mux(p->s, 0)->txq_count) break;
            ev_run(p->loop, EVRUN_ONCE);
            continue;
        }
        struct dg *batch = p->q;
        int n = p->qn;
        p->q = calloc(QMAX, sizeof *p->q);
        p->qn = 0;
        for (int i = 0; i < n; i++) {
            struct dg *d = &batch[i];
            if (d->to_master) {
                if (p->drop_handshakes && d->len && (d->b[0] >> 4 & 3) == 2) continue;
                struct sockaddr_in a = from_of(d->link);
                sites_input(p->s, d->b, d->len, (struct sockaddr *)&a, sizeof a);
            } else {
                struct link *l = &p->sl[d->link].base;
                struct sockaddr_in a = from_of(9);
                l->h.rx(l->h.ctx, l, d->b, d->len, (struct sockaddr *)&a, sizeof a);
            }
        }
        free(batch);
    }
    assert_int_equal(p->qn, 0);
}

static struct pair *pair_new(void)
{
    struct pair *p = calloc(1, sizeof *p);
    p->q = calloc(QMAX, sizeof *p->q);
    p->order_ok = true;
    p->loop = ev_loop_new(EVFLAG_AUTO);
    uint8_t k[32];
    randombytes_buf(k, sizeof k);
    assert_int_equal(identity_init(&p->master, k), 0);
    randombytes_buf(k, sizeof k);
    assert_int_equal(identity_init(&p->slave, k), 0);
    static const uint8_t nopsk[32];
    snprintf(p->cs.name, sizeof p->cs.name, "home");
    memcpy(p->cs.public_key, p->slave.key.pub, 32);
    struct mux_config mc;
    mux_config_defaults(&mc);
    mc.is_master = true;
    mc.self = p->master;
    mc.rekey_after_ms = REKEY_MS;
    struct sites_io io = {.deliver = m_deliver, .ctx = p};
    static struct cb_listener cbl;
    cbl = (struct cb_listener){.ls = {.ops = &cbl_ops}, .ctx = p};
    p->s = sites_new(p->loop, &mc, &p->cs, 1, &cbl.ls, &io);
    assert_non_null(p->s);
    mux_config_defaults(&mc);
    mc.self = p->slave;
    peer_init(&mc.peer, p->master.key.pub, nopsk);
    mc.rekey_after_ms = REKEY_MS;
    struct mux_callbacks cb = {.deliver = s_deliver, .ctx = p};
    p->sm = mux_new(p->loop, &mc, &cb);
    assert_non_null(p->sm);
    for (int i = 0; i < NLINKS; i++) {
        p->sl[i].base.ops = &slave_ops;
        p->sl[i].base.id = (uint8_t)i;
        p->sl[i].base.up = true;
        snprintf(p->sl[i].base.name, sizeof p->sl[i].base.name, "q%d", i);
        p->sl[i].p = p;
        p->sl[i].idx = i;
        assert_int_equal(mux_add_link(p->sm, &p->sl[i].base), 0);
    }
    mux_start(p->sm); /* the first INITs */
    sites_start(p->s);
    pump(p);
    return p;
}

static void pair_free(struct pair *p)
{
    mux_free(p->sm);
    sites_free(p->s);
    ev_loop_destroy(p->loop);
    free(p->q);
    free(p);
}

static void send_both(struct pair *p, int n)
{
    uint8_t pkt[100] = {0x45};
    pkt[3] = sizeof pkt;
    uint32_t src = htonl(0xc6120002u), dst = htonl(0xc6120001u);
    for (int i = 0; i < n; i++) {
        memcpy(pkt + 12, &src, 4);
        memcpy(pkt + 16, &dst, 4);
        put_be32(pkt + 20, ++p->seq_up);
        mux_send(p->sm, pkt, sizeof pkt);
        memcpy(pkt + 12, &dst, 4);
        memcpy(pkt + 16, &src, 4);
        put_be32(pkt + 20, ++p->seq_down);
        mux_send(sites_mux(p->s, 0), pkt, sizeof pkt);
        pump(p);
    }
}

/* INIT timestamps (TAI64N) have a granularity of 2^24 ns: a later handshake must be at least
 * that much later on the wall clock, or the master takes it for a replay (as WireGuard). */
static void wall_step(void)
{
    struct timespec ts = {0, 20000000};
    nanosleep(&ts, NULL);
}

static struct mux *master_mux(struct pair *p)
{
    return sites_mux(p->s, 0);
}

static void test_rekey_carries_session_on(void **state)
{
    (void)state;
    struct pair *p = pair_new();
    struct mux *mm = master_mux(p);
    assert_true(p->sm->cur.valid);
    assert_true(mm->cur.valid);
    send_both(p, 50);
    assert_int_equal(p->delivered_m, 50);
    assert_int_equal(p->delivered_s, 50);
    uint32_t old_index = mm->cur.keys.local_index;
    uint64_t tx_before = p->sm->links[0].tx_counter + p->sm->links[1].tx_counter;
    uint32_t gseq_before = p->sm->tx_gseq;
    uint64_t t = p->sm->cur.created_us;

    /* before rekey_after: nothing; at it: the slave starts a rekey handshake */
    wall_step();
    session_timers(p->sm, t + REKEY_MS * 1000u - 1);
    assert_false(p->sm->hs_active);
    session_timers(p->sm, t + REKEY_MS * 1000u);
    assert_true(p->sm->hs_active);
    assert_true(p->sm->hs_rekey);
    slave_send_hellos(p->sm, t + REKEY_MS * 1000u);
    pump(p);
    assert_false(p->sm->hs_active);
    /* both carried it on: one more session, a rekey; nothing reset */
    assert_int_equal(mux_counters(p->sm)->sessions, 2);
    assert_int_equal(mux_counters(p->sm)->rekeys, 1);
    assert_int_equal(mux_counters(mm)->rekeys, 1);
    assert_true(p->sm->prev.valid);
    assert_true(mm->prev.valid);
    assert_int_not_equal(mm->cur.keys.local_index, old_index);
    assert_int_equal(p->sm->tx_gseq, gseq_before);
    assert_true(p->sm->links[0].tx_counter + p->sm->links[1].tx_counter >= tx_before);
    assert_true(p->sm->links[0].up || p->sm->links[1].up);
    /* data both ways under the new keys, in order, nothing dropped */
    send_both(p, 50);
    assert_int_equal(p->delivered_m, 100);
    assert_int_equal(p->delivered_s, 100);
    assert_true(p->order_ok);
    const struct mux_counters *c = mux_counters(mm);
    assert_int_equal(c->replay + c->auth_fail + c->no_session + c->malformed, 0);
    c = mux_counters(p->sm);
    assert_int_equal(c->replay + c->auth_fail + c->no_session + c->malformed, 0);
    pair_free(p);
}

static void test_old_keys_open_in_flight(void **state)
{
    (void)state;
    struct pair *p = pair_new();
    struct mux *mm = master_mux(p);
    send_both(p, 5);
    /* a master datagram sealed under the old keys, held back... */
    uint8_t pkt[100] = {0x45};
    pkt[3] = sizeof pkt;
    uint32_t a = htonl(0xc6120001u), b = htonl(0xc6120002u);
    memcpy(pkt + 12, &a, 4);
    memcpy(pkt + 16, &b, 4);
    put_be32(pkt + 20, ++p->seq_down);
    p->hold_data = true;
    mux_send(mm, pkt, sizeof pkt);
    pump(p);
    assert_false(p->hold_data);
    struct dg held = p->held;
    assert_int_equal(p->delivered_s, 5);
    /* ...new keys... */
    wall_step();
    uint64_t t = p->sm->cur.created_us + REKEY_MS * 1000u;
    session_timers(p->sm, t);
    slave_send_hellos(p->sm, t);
    pump(p);
    assert_int_equal(mux_counters(mm)->rekeys, 1);
    /* ...then it arrives: it opens under the previous session's keys, in its place */
    push(p, held.link, false, held.b, held.len);
    pump(p);
    assert_int_equal(p->delivered_s, 6);
    assert_true(p->order_ok);
    /* replaying it changes nothing */
    push(p, held.link, false, held.b, held.len);
    pump(p);
    assert_int_equal(p->delivered_s, 6);
    assert_int_equal(mux_counters(p->sm)->replay, 1);
    pair_free(p);
}

static void test_master_asks_then_refuses(void **state)
{
    (void)state;
    struct pair *p = pair_new();
    struct mux *mm = master_mux(p);
    send_both(p, 5);
    uint64_t t = mm->cur.created_us;
    /* the slave's own rekeys get lost */
    p->drop_handshakes = true;
    wall_step();
    session_timers(mm, t + REKEY_MS * 1000u); /* the master only asks later */
    assert_int_equal(mux_counters(mm)->rekey_asked, 0);
    session_timers(mm, t + REKEY_MS * 1250u);
    assert_int_equal(mux_counters(mm)->rekey_asked, 1);
    session_timers(mm, t + REKEY_MS * 1250u + 1000); /* at most once a second */
    assert_int_equal(mux_counters(mm)->rekey_asked, 1);
    pump(p);
    /* the slave took the request: a rekey handshake (its INITs are lost) */
    assert_true(mux_counters(p->sm)->rekey_asked >= 1); /* (on every link) */
    assert_true(p->sm->hs_active);
    assert_true(p->sm->hs_rekey);
    /* 1.5 x: both ends refuse the session; the slave starts afresh */
    wall_step();
    session_timers(mm, t + REKEY_MS * 1500u);
    assert_false(mm->cur.valid);
    session_timers(p->sm, p->sm->cur.created_us + REKEY_MS * 1500u);
    assert_false(p->sm->cur.valid);
    assert_true(p->sm->hs_active);
    assert_false(p->sm->hs_rekey);
    /* nothing goes through meanwhile */
    send_both(p, 1);
    assert_int_equal(p->delivered_m, 5);
    /* handshakes pass again: a fresh session (not a rekey) */
    p->drop_handshakes = false;
    slave_send_hellos(p->sm, mono_us());
    pump(p);
    assert_true(p->sm->cur.valid);
    assert_int_equal(mux_counters(p->sm)->rekeys, 0);
    assert_int_equal(mux_counters(p->sm)->sessions, 2);
    pair_free(p);
}

int main(void)
{
    if (session_crypto_init() != 0) return 1;
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rekey_carries_session_on),
        cmocka_unit_test(test_old_keys_open_in_flight),
        cmocka_unit_test(test_master_asks_then_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
