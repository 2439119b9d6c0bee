/* test_lane_peer.c: the two ends of the TCP lane (lane/peer.c) joined by real TCP connections
 * on loopback, with endpoints in memory: streams carry exact bytes both ways (beyond the window,
 * over several links, half-closed), a link connection lost in the middle loses nothing, nor does
 * one that falls silent (its late records are copied to the other link, never to it), a
 * refused OPEN reaches the slave's endpoint, and the sender picks links by their state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <sodium.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../lane/lane.h"

#define NSTREAMS 3
#define UP_BYTES (6u << 20)   /* more than the window: flow control and the rings wrap */
#define DOWN_BYTES (9u << 20)

struct ep {
    struct lane_stream *s;
    const uint8_t *data;
    size_t total, off;
    bool shut, eof, reset, released;
    int opened;       /* slave: the OPENED status seen, -1 none */
    uint8_t *got;
    size_t ngot, cap;
};

static struct ev_loop *loop;
static struct lane_peer *slave, *master;
static struct ep sep[NSTREAMS], mep[NSTREAMS];
static int nmep;
static uint8_t *up_data, *down_data;
static size_t kill_at; /* drop link 1 once the slave got this many bytes (0: never) */
static bool killed;
static size_t silence_at; /* link 1's relay stops carrying the slave's bytes once the master got
                           * this many (0: never) */
static bool relay_silence(void);
static bool defer_open; /* the master answers OPENs 50 ms late (a destination far away) */
static struct lane_stream *deferred[NSTREAMS];
static int ndeferred;
static ev_timer defer_w;

static void pump(struct ep *e)
{
    while (e->s && e->off < e->total) {
        size_t n = lane_stream_write(e->s, e->data + e->off, e->total - e->off);
        if (n == 0) break;
        e->off += n;
    }
    if (e->s && e->off == e->total && !e->shut) {
        e->shut = true;
        lane_stream_shutdown(e->s);
    }
}

static void maybe_release(struct ep *e)
{
    if (e->s && e->shut && e->eof && !e->released) {
        e->released = true;
        lane_stream_release(e->s);
    }
}

static size_t total_got(void)
{
    size_t n = 0;
    for (int i = 0; i < NSTREAMS; i++) n += sep[i].ngot;
    return n;
}

static size_t on_deliver(void *ctx, void *owner, const uint8_t *d, size_t len)
{
    (void)ctx;
    struct ep *e = owner;
    if (e->ngot + len > e->cap) {
        e->cap = (e->ngot + len) * 2;
        e->got = realloc(e->got, e->cap);
        assert_non_null(e->got);
    }
    memcpy(e->got + e->ngot, d, len);
    e->ngot += len;
    if (kill_at && !killed && total_got() >= kill_at) {
        killed = true;
        lane_peer_drop_link(slave, 1, "test");
        lane_peer_drop_link(master, 1, "test");
    }
    return len;
}

static void on_eof(void *ctx, void *owner)
{
    (void)ctx;
    struct ep *e = owner;
    e->eof = true;
    maybe_release(e);
}

static void on_room(void *ctx, void *owner)
{
    (void)ctx;
    pump(owner);
    maybe_release(owner);
}

static void on_reset(void *ctx, void *owner, int reason)
{
    (void)ctx;
    (void)reason;
    struct ep *e = owner;
    e->reset = true;
    e->s = NULL;
}

static void on_opened(void *ctx, void *owner, int status)
{
    (void)ctx;
    struct ep *e = owner;
    e->opened = status;
    if (status != LANE_OPEN_OK) e->s = NULL;
}

static void on_open(void *ctx, struct lane_stream *s, int family, const uint8_t addr[16],
                    uint16_t port)
{
    (void)ctx;
    assert_int_equal(family, 4);
    assert_int_equal(addr[0], 198);
    if (port == 9) { /* the destination refuses */
        lane_stream_opened(s, NULL, LANE_OPEN_REFUSED);
        return;
    }
    if (defer_open) {
        assert_true(ndeferred < NSTREAMS);
        deferred[ndeferred++] = s;
        if (!ev_is_active(&defer_w)) ev_timer_start(loop, &defer_w);
        return;
    }
    assert_true(nmep < NSTREAMS);
    struct ep *e = &mep[nmep++];
    e->s = s;
    e->data = down_data;
    e->total = port == 7 ? 0 : DOWN_BYTES; /* (7: nothing back) */
    lane_stream_opened(s, e, LANE_OPEN_OK);
    pump(e);
}

static void on_defer(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
    defer_open = false;
    for (int i = 0; i < ndeferred; i++) {
        uint8_t addr[16] = {198, 18, 50, 1};
        on_open(NULL, deferred[i], 4, addr, 80);
    }
    ndeferred = 0;
}

/* A TCP connection on loopback: its two ends (b's receive buffer rcvbuf bytes; 0: the
 * default). */
static void tcp_pair_buf(int *a, int *b, int rcvbuf)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf) assert_int_equal(setsockopt(l, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&sa, &sl), 0);
    *a = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    connect(*a, (struct sockaddr *)&sa, sizeof sa);
    *b = accept4(l, NULL, NULL, SOCK_NONBLOCK);
    assert_true(*b >= 0);
    close(l);
}

static void tcp_pair(int *a, int *b)
{
    tcp_pair_buf(a, b, 0);
}

/* A relay in the middle of a link connection: slave - fd[0] | fd[1] - master. Direction d copies
 * fd[d] to fd[1 - d]; silent: it stops reading the slave's side (the path drops its bytes while
 * the connection stays open and the multiplexer sees nothing; the master's bytes still pass). */
static struct relay {
    int fd[2];
    ev_io rw[2], ww[2];
    uint8_t buf[2][65536];
    size_t len[2], off[2];
    bool silent;
    int sd;         /* the direction that falls silent: 0 the slave's bytes, 1 the master's */
    int slave_fd;   /* (the slave's end) */
    size_t stuck;   /* bytes inside when it fell silent */
    uint64_t tx_at; /* the slave's link 1 bytes written by then */
} relay;

static void relay_pump(int d)
{
    while (relay.off[d] < relay.len[d]) {
        const uint8_t *b = relay.buf[d] + relay.off[d];
        ssize_t n = write(relay.fd[1 - d], b, relay.len[d] - relay.off[d]);
        if (n <= 0) {
            if (n < 0 && errno != EAGAIN) return; /* (the far end went: the test ends) */
            ev_io_start(loop, &relay.ww[d]);
            return;
        }
        relay.off[d] += (size_t)n;
    }
    ev_io_stop(loop, &relay.ww[d]);
    relay.len[d] = relay.off[d] = 0;
    if (!(d == relay.sd && relay.silent)) ev_io_start(loop, &relay.rw[d]);
}

static void on_relay_read(struct ev_loop *l, ev_io *w, int revents)
{
    (void)l;
    (void)revents;
    int d = w == &relay.rw[0] ? 0 : 1;
    ssize_t n = read(relay.fd[d], relay.buf[d], sizeof relay.buf[d]);
    if (n <= 0) {
        if (n == 0 || errno != EAGAIN) ev_io_stop(loop, w);
        return;
    }
    relay.len[d] = (size_t)n;
    relay.off[d] = 0;
    ev_io_stop(loop, w);
    relay_pump(d);
}

static void on_relay_write(struct ev_loop *l, ev_io *w, int revents)
{
    (void)l;
    (void)revents;
    relay_pump(w == &relay.ww[0] ? 0 : 1);
}

/* Bytes on their way through the relay's slave side: in the slave's socket and unread in the
 * relay's. */
static size_t relay_inside(void)
{
    int out = 0, in = 0;
    if (relay.sd == 0) assert_int_equal(ioctl(relay.slave_fd, SIOCOUTQ, &out), 0);
    assert_int_equal(ioctl(relay.fd[relay.sd], FIONREAD, &in), 0);
    return (size_t)out + (size_t)in;
}

static bool relay_silence(void)
{
    if (relay_inside() < 1024) return false; /* (a moment when DATA is inside it) */
    relay.silent = true;
    relay.stuck = relay_inside();
    relay.tx_at = lane_peer_link_stats(relay.sd ? master : slave, 1)->tx_bytes;
    ev_io_stop(loop, &relay.rw[relay.sd]);
    return true;
}

/* Keys for both ends of one link connection (the slave sends with the first). */
static void link_keys(struct lane_keys *ks, struct lane_keys *km)
{
    uint8_t k1[32], k2[32], ch[LANE_CHALLENGE_LEN];
    randombytes_buf(k1, 32);
    randombytes_buf(k2, 32);
    randombytes_buf(ch, sizeof ch);
    lane_keys_derive(k1, k2, ch, ks);
    lane_keys_derive(k2, k1, ch, km);
}

/* Link 1 through the relay, a proxy as far as the slave can tell (its rate, RTT and what its far
 * end has come from the master's RCVD reports, as through a phone's SOCKS5 proxy); the relay's
 * side of the slave's connection takes little (its receive buffer 8 KiB). */
static void join_relayed(void)
{
    struct lane_keys ks, km;
    link_keys(&ks, &km);
    int a, b;
    memset(&relay, 0, sizeof relay);
    tcp_pair_buf(&a, &relay.fd[0], 8192);
    relay.slave_fd = a;
    tcp_pair(&relay.fd[1], &b);
    for (int d = 0; d < 2; d++) {
        ev_io_init(&relay.rw[d], on_relay_read, relay.fd[d], EV_READ);
        ev_io_init(&relay.ww[d], on_relay_write, relay.fd[1 - d], EV_WRITE);
        ev_io_start(loop, &relay.rw[d]);
    }
    assert_int_equal(lane_peer_add_link(slave, a, 1, &ks, NULL, 0), 0);
    assert_int_equal(lane_peer_add_link(master, b, 1, &km, NULL, 0), 0);
    lane_peer_link_proxied(slave, 1); /* (the slave's kernel sees the relay, not the master) */
}

/* (every loop iteration) once the master got silence_at bytes, link 0 is taken out of use for
 * a moment (the multiplexer's view), so that the slave's records go to link 1; link 1 falls
 * silent when some are inside the relay, and link 0 is back */
static void on_relay_check(struct ev_loop *l, ev_check *w, int revents)
{
    (void)revents;
    size_t n = 0;
    for (int i = 0; i < nmep; i++) n += relay.sd ? sep[i].ngot : mep[i].ngot;
    if (n < silence_at) return;
    struct lane_peer *sender = relay.sd ? master : slave;
    lane_peer_suspend_link(sender, 0, true);
    if (!relay_silence()) return;
    lane_peer_suspend_link(sender, 0, false);
    if (relay.sd) lane_peer_suspend_link(sender, 1, true); /* (and the multiplexer saw it) */
    ev_check_stop(l, w);
}

static void relay_free(void)
{
    for (int d = 0; d < 2; d++) {
        ev_io_stop(loop, &relay.rw[d]);
        ev_io_stop(loop, &relay.ww[d]);
        close(relay.fd[d]);
    }
}

static void join(int nlinks)
{
    for (int id = 0; id < nlinks; id++) {
        struct lane_keys ks, km;
        link_keys(&ks, &km);
        int a, b;
        tcp_pair(&a, &b);
        assert_int_equal(lane_peer_add_link(slave, a, (uint8_t)id, &ks, NULL, 0), 0);
        assert_int_equal(lane_peer_add_link(master, b, (uint8_t)id, &km, NULL, 0), 0);
    }
}

static void setup_peers(void)
{
    loop = ev_loop_new(EVFLAG_AUTO);
    struct lane_peer_cb scb = {.opened = on_opened, .deliver = on_deliver, .eof = on_eof,
                               .room = on_room, .reset = on_reset};
    struct lane_peer_cb mcb = {.open = on_open, .deliver = on_deliver, .eof = on_eof,
                               .room = on_room, .reset = on_reset};
    slave = lane_peer_new(loop, false, 16, &scb);
    master = lane_peer_new(loop, true, 16, &mcb);
    assert_non_null(slave);
    assert_non_null(master);
    memset(sep, 0, sizeof sep);
    memset(mep, 0, sizeof mep);
    nmep = 0;
    killed = false;
    kill_at = 0;
    silence_at = 0;
    defer_open = false;
    ndeferred = 0;
    ev_timer_init(&defer_w, on_defer, 0.05, 0);
    up_data = malloc(UP_BYTES);
    down_data = malloc(DOWN_BYTES);
    randombytes_buf(up_data, UP_BYTES);
    randombytes_buf(down_data, DOWN_BYTES);
}

static void teardown_peers(void)
{
    ev_timer_stop(loop, &defer_w);
    lane_peer_free(slave);
    lane_peer_free(master);
    for (int i = 0; i < NSTREAMS; i++) {
        free(sep[i].got);
        free(mep[i].got);
    }
    free(up_data);
    free(down_data);
    ev_loop_destroy(loop);
}

static bool all_done(void)
{
    for (int i = 0; i < NSTREAMS; i++)
        if (!sep[i].eof || !sep[i].shut || i >= nmep || !mep[i].eof || !mep[i].shut) return false;
    return true;
}

static void on_check(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)revents;
    (void)w;
    if (all_done()) ev_break(l, EVBREAK_ALL);
}

/* Run the loop until every stream ended both ways, or 20 s. */
static void run(void)
{
    ev_timer check, limit;
    ev_timer_init(&check, on_check, 0.01, 0.01);
    ev_timer_init(&limit, on_check, 20, 0);
    ev_timer_start(loop, &check);
    ev_timer_start(loop, &limit);
    double t0 = ev_time();
    while (!all_done() && ev_time() - t0 < 20) ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &check);
    ev_timer_stop(loop, &limit);
}

static void open_streams_early(bool early)
{
    uint8_t addr[16] = {198, 18, 50, 1};
    for (int i = 0; i < NSTREAMS; i++) {
        sep[i].opened = -1;
        sep[i].data = up_data;
        sep[i].total = UP_BYTES;
        sep[i].s = lane_stream_open(slave, &sep[i], 4, addr, (uint16_t)(80 + i));
        assert_non_null(sep[i].s);
        if (early) lane_stream_early(sep[i].s);
        pump(&sep[i]);
    }
}

static void open_streams(void)
{
    open_streams_early(false);
}

static void check_exact(void)
{
    assert_true(all_done());
    for (int i = 0; i < NSTREAMS; i++) {
        assert_int_equal(sep[i].opened, LANE_OPEN_OK);
        assert_false(sep[i].reset);
        assert_false(mep[i].reset);
        assert_int_equal(sep[i].ngot, DOWN_BYTES);
        assert_memory_equal(sep[i].got, down_data, DOWN_BYTES);
        assert_int_equal(mep[i].ngot, UP_BYTES);
        assert_memory_equal(mep[i].got, up_data, UP_BYTES);
    }
}

static void test_exact_bytes_over_two_links(void **state)
{
    (void)state;
    setup_peers();
    join(2);
    open_streams();
    run();
    check_exact();
    /* both links carried records; every stream ended on both sides (acknowledged, freed) */
    for (int id = 0; id < 2; id++) {
        const struct lane_link_stats *l = lane_peer_link_stats(slave, (uint8_t)id);
        assert_non_null(l);
        assert_true(l->tx_frames > 0);
    }
    for (int i = 0; i < 50; i++) ev_run(loop, EVRUN_NOWAIT);
    int ns = -1, nm = -1;
    const struct lane_peer_stats *ss = lane_peer_stats(slave, &ns);
    lane_peer_stats(master, &nm);
    assert_int_equal(ss->streams_opened, NSTREAMS);
    assert_int_equal(ss->resent_bytes, 0);
    /* each stream's first 32 KiB went ahead of the bulk (two or three records), no more */
    assert_true(ss->prio_records >= 2 * NSTREAMS && ss->prio_records <= 3 * NSTREAMS);
    teardown_peers();
}

static void test_link_lost_midway(void **state)
{
    (void)state;
    setup_peers();
    join(2);
    kill_at = DOWN_BYTES; /* a third of the way down */
    open_streams();
    run();
    assert_true(killed);
    check_exact();
    assert_null(lane_peer_link_stats(slave, 1));
    const struct lane_peer_stats *ss = lane_peer_stats(slave, NULL);
    const struct lane_peer_stats *ms = lane_peer_stats(master, NULL);
    assert_true(ss->link_losses == 1 && ms->link_losses == 1);
    assert_true(ms->resent_bytes > 0); /* what was in flight went again */
    teardown_peers();
}

/* Link 1 falls silent in the middle of three uploads (its path drops the slave's bytes; the
 * connection stays open; no multiplexer says it is down; link 0 is out of use for the moment
 * before, so that link 1 holds records): each stream held by a record on it gets that record
 * and what link 1 carried after it copied to link 0, never to link 1 (where a copy would wait
 * behind them), and no more than that (not the bytes around them that link 0 carried); nothing
 * waits for link 1 after that, and every byte and FIN arrives. */
/* Link 1 falls silent in one direction with records inside it, its connection open. sd 0: the
 * slave's uploads, the multiplexer sees nothing. sd 1: the master's downloads, the link is down
 * for the multiplexer (as when a phone's radio goes); a proxy's TCP acknowledged what it holds,
 * so the master's kernel says those records arrived. */
static void silent_link(int sd)
{
    setup_peers();
    join(1);
    join_relayed();
    relay.sd = sd;
    silence_at = 1 << 20;
    ev_check chk;
    ev_check_init(&chk, on_relay_check);
    ev_check_start(loop, &chk);
    uint8_t addr[16] = {198, 18, 50, 1};
    for (int i = 0; i < NSTREAMS; i++) { /* (port 7: nothing comes back) */
        sep[i].opened = -1;
        sep[i].data = up_data;
        sep[i].total = sd ? 0 : UP_BYTES;
        sep[i].s = lane_stream_open(slave, &sep[i], 4, addr, sd ? (uint16_t)(80 + i) : 7);
        assert_non_null(sep[i].s);
        pump(&sep[i]);
    }
    run();
    ev_check_stop(loop, &chk);
    assert_true(relay.silent);
    assert_true(all_done());
    for (int i = 0; i < NSTREAMS; i++) {
        assert_false(sep[i].reset || mep[i].reset);
        const struct ep *rx = sd ? &sep[i] : &mep[i];
        size_t want = sd ? DOWN_BYTES : UP_BYTES;
        assert_int_equal(rx->ngot, want);
        assert_memory_equal(rx->got, sd ? down_data : up_data, want);
    }
    struct lane_peer *sender = sd ? master : slave;
    const struct lane_link_stats *l0 = lane_peer_link_stats(sender, 0);
    const struct lane_link_stats *l1 = lane_peer_link_stats(sender, 1);
    assert_non_null(l1); /* (still open) */
    print_message("inside the relay when it fell silent %zu, written to link 1 after %llu, "
                  "copied to link 0 %llu bytes\n", relay.stuck,
                  (unsigned long long)(l1->tx_bytes - relay.tx_at),
                  (unsigned long long)l0->copied_bytes);
    /* the records inside the silent link went again on link 0, and no more than they (not
     * the bytes around them that link 0 carried) */
    assert_true(l0->copied_bytes > 0);
    assert_true(l0->copied_bytes <= relay.stuck + (l1->tx_bytes - relay.tx_at) + 2 * LANE_DATA_MAX);
    assert_int_equal(l1->copied_bytes, 0);
    assert_true(lane_peer_stats(sender, NULL)->stalls > 0);
    assert_int_equal(lane_peer_stats(sender, NULL)->link_losses, 0);
    relay_free();
    teardown_peers();
}

static void test_silent_link(void **state)
{
    (void)state;
    silent_link(0);
}

static void test_silent_link_behind_a_proxy(void **state)
{
    (void)state;
    silent_link(1);
}

/* An OPEN to a port that refuses (fast open or not: its bytes went already): the slave's
 * endpoint hears the refusal, and both ends forget the stream. */
static void refused_open(bool early)
{
    setup_peers();
    join(1);
    uint8_t addr[16] = {198, 18, 50, 1};
    struct ep e = {.opened = -1};
    e.s = lane_stream_open(slave, &e, 4, addr, 9);
    assert_non_null(e.s);
    if (early) {
        lane_stream_early(e.s);
        assert_int_equal(lane_stream_write(e.s, (const uint8_t *)"GET /", 5), 5);
    }
    double t0 = ev_time();
    while (e.opened < 0 && ev_time() - t0 < 5) ev_run(loop, EVRUN_ONCE);
    assert_int_equal(e.opened, LANE_OPEN_REFUSED);
    assert_null(e.s);
    assert_int_equal(lane_peer_stats(slave, NULL)->early_refused, early ? 1 : 0);
    int n = -1;
    lane_peer_stats(slave, &n);
    assert_int_equal(n, 0);
    for (int i = 0; i < 20; i++) ev_run(loop, EVRUN_NOWAIT);
    lane_peer_stats(master, &n);
    assert_int_equal(n, 0); /* (bytes after the refusal are answered with RSTs) */
    teardown_peers();
}

static void test_refused_open(void **state)
{
    (void)state;
    refused_open(false);
}

static void test_no_link_waits(void **state)
{
    (void)state;
    /* streams opened before any link connection wait for one, then go */
    setup_peers();
    open_streams();
    for (int i = 0; i < 20; i++) ev_run(loop, EVRUN_NOWAIT);
    assert_int_equal(nmep, 0);
    join(1);
    run();
    check_exact();
    teardown_peers();
}

/* Fast open: the slave's bytes go before the OPENED, while the master is still reaching the
 * destination (50 ms): the master holds them and delivers them, exact, once it is open. */
static void test_early_bytes(void **state)
{
    (void)state;
    setup_peers();
    join(2);
    defer_open = true;
    open_streams_early(true);
    for (int i = 0; i < 20; i++) ev_run(loop, EVRUN_NOWAIT);
    assert_int_equal(nmep, 0); /* (not open yet) */
    assert_true(lane_peer_stats(slave, NULL)->tx_data_bytes > 0); /* but the bytes went */
    run();
    check_exact();
    assert_int_equal(lane_peer_stats(slave, NULL)->early_sent, NSTREAMS);
    teardown_peers();
}

static void test_early_refused(void **state)
{
    (void)state;
    refused_open(true);
}

/* A frame of records sealed with d, written to fd. */
static void send_recs(int fd, struct lane_dir *d, const struct lane_rec *r, int n)
{
    uint8_t plain[512], out[600];
    size_t len = 0;
    for (int i = 0; i < n; i++) assert_int_equal(lane_rec_put(plain, sizeof plain, &len, &r[i]), 0);
    int m = lane_seal(d, plain, len, out, sizeof out);
    assert_true(m > 0);
    assert_int_equal(send(fd, out, (size_t)m, 0), m);
}

static void spin(void)
{
    double t0 = ev_time();
    while (ev_time() - t0 < 0.1) ev_run(loop, EVRUN_NOWAIT);
}

/* The master: DATA (and FIN) that come before their stream's OPEN, as they do when the slave's
 * OPEN went on a slower link, are kept and delivered after it; bytes that come twice are ACKed
 * again; DATA for a stream below the last OPEN (one that ended) is answered with a RST. */
static void test_master_data_before_open(void **state)
{
    (void)state;
    setup_peers();
    struct lane_keys ks, km;
    link_keys(&ks, &km);
    int a, b;
    tcp_pair(&a, &b);
    assert_int_equal(lane_peer_add_link(master, b, 0, &km, NULL, 0), 0);
    const char *req = "GET / HTTP/1.0\r\n\r\n";
    size_t rlen = strlen(req);
    struct lane_rec open1 = {.type = LANE_OPEN, .conn = 1000, .family = 4, .port = 7,
                             .addr = {198, 18, 50, 1}};
    send_recs(a, &ks.tx, &open1, 1);
    spin();
    assert_int_equal(nmep, 1);
    /* stream 1001's bytes and FIN, second half first; its OPEN later */
    struct lane_rec early[3] = {
        {.type = LANE_DATA, .conn = 1001, .offset = 4, .data = (const uint8_t *)req + 4,
         .len = rlen - 4},
        {.type = LANE_DATA, .conn = 1001, .offset = 0, .data = (const uint8_t *)req, .len = 4},
        {.type = LANE_FIN, .conn = 1001, .offset = rlen},
    };
    send_recs(a, &ks.tx, early, 3);
    spin();
    const struct lane_peer_stats *ms = lane_peer_stats(master, NULL);
    assert_int_equal(ms->early_kept, 1);
    assert_int_equal(nmep, 1); /* (kept, not opened) */
    struct lane_rec open2 = open1;
    open2.conn = 1001;
    send_recs(a, &ks.tx, &open2, 1);
    spin();
    assert_int_equal(nmep, 2);
    assert_int_equal(mep[1].ngot, rlen);
    assert_memory_equal(mep[1].got, req, rlen);
    assert_true(mep[1].eof);
    /* the same bytes again (the slave lost the master's ACK with a dying link): ACKed again */
    uint64_t acks0 = ms->acks_sent;
    send_recs(a, &ks.tx, &early[1], 1);
    spin();
    assert_int_equal(ms->acks_sent, acks0 + 1);
    assert_int_equal(mep[1].ngot, rlen);
    /* a stream below the last OPEN that the master does not know: RST */
    uint64_t rst0 = ms->rst_sent, unknown0 = ms->rx_unknown;
    struct lane_rec stale = {.type = LANE_DATA, .conn = 990, .offset = 0,
                             .data = (const uint8_t *)req, .len = rlen};
    send_recs(a, &ks.tx, &stale, 1);
    spin();
    assert_int_equal(ms->rst_sent, rst0 + 1);
    assert_int_equal(ms->rx_unknown, unknown0 + 1);
    assert_int_equal(ms->early_kept, 1);
    close(a);
    teardown_peers();
}

/* The policy with fake link states: 20 Mbit/s at 20 ms, 5 Mbit/s at 120 ms. */
static void test_pick_policy(void **state)
{
    (void)state;
    struct lane_link_state l[2] = {
        {.rate_Bps = 2.5e6, .srtt_s = 0.02, .notsent = 0, .ready = true},
        {.rate_Bps = 0.625e6, .srtt_s = 0.12, .notsent = 0, .ready = true},
    };
    int w;
    /* both ready: the fast one */
    assert_int_equal(lane_pick(l, 2, 16384, 0, &w), 0);
    assert_int_equal(w, 0);
    /* the fast one full: with little behind the record, waiting for it is better */
    l[0].ready = false;
    l[0].notsent = 20000;
    assert_int_equal(lane_pick(l, 2, 16384, 0, &w), -1);
    assert_int_equal(w, 0);
    /* with 1 MB behind it the fast link needs 0.4 s: the slow one (0.09 s) takes the record */
    assert_int_equal(lane_pick(l, 2, 16384, 1000000, &w), 1);
    /* the slow link has a queue of its own (0.5 s): waiting is better again */
    l[1].notsent = 16000;
    l[1].pending = 300000;
    l[1].ready = false;
    assert_int_equal(lane_pick(l, 2, 16384, 1000000, &w), -1);
    /* expected arrival: queued and the record at the rate, plus half the RTT */
    assert_true(lane_eta(&l[0], 16384) > 0.0245 && lane_eta(&l[0], 16384) < 0.0246);
    /* no links: nothing to wait for */
    assert_int_equal(lane_pick(l, 0, 100, 0, &w), -1);
    assert_int_equal(w, -1);
    /* a late link (a record on it overdue, its far end silent since) that is not ready is not
     * waited for: the next takes the record; not late, it would be waited for */
    struct lane_link_state d[2] = {
        {.rate_Bps = 2.5e6, .srtt_s = 0.02, .notsent = 20000, .late = true},
        {.rate_Bps = 1.25e6, .srtt_s = 0.04, .ready = true},
    };
    assert_int_equal(lane_pick(d, 2, 16384, 0, &w), 1);
    d[0].late = false;
    assert_int_equal(lane_pick(d, 2, 16384, 0, &w), -1);
    assert_int_equal(w, 0);
    /* late, and the other one busy: the wait is for the other one */
    d[0].late = true;
    d[1].ready = false;
    d[1].notsent = 20000;
    assert_int_equal(lane_pick(d, 2, 16384, 0, &w), -1);
    assert_int_equal(w, 1);
    /* late but ready: it may take a record */
    d[0].ready = true;
    d[0].notsent = 0;
    assert_int_equal(lane_pick(d, 2, 16384, 0, &w), 0);
    /* three links, the middle one (by arrival) ready: used only when the first cannot deliver
     * the backlog before it */
    struct lane_link_state t[3] = {
        {.rate_Bps = 0.1e6, .srtt_s = 0.3, .ready = true},                    /* slow */
        {.rate_Bps = 2.5e6, .srtt_s = 0.02, .notsent = 30000, .ready = false}, /* fast, full */
        {.rate_Bps = 1.25e6, .srtt_s = 0.06, .ready = true},                   /* middle */
    };
    assert_int_equal(lane_pick(t, 3, 16384, 0, &w), -1);
    assert_int_equal(w, 1);
    assert_int_equal(lane_pick(t, 3, 16384, 200000, &w), 2);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_bytes_over_two_links),
        cmocka_unit_test(test_link_lost_midway),
        cmocka_unit_test(test_silent_link),
        cmocka_unit_test(test_silent_link_behind_a_proxy),
        cmocka_unit_test(test_refused_open),
        cmocka_unit_test(test_no_link_waits),
        cmocka_unit_test(test_pick_policy),
        cmocka_unit_test(test_early_bytes),
        cmocka_unit_test(test_early_refused),
        cmocka_unit_test(test_master_data_before_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
