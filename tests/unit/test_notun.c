/* test_notun.c: unit tests for the notun tunnel device (tundev/notun.c) over loopback TCP:
 * frames both ways, rejects in sync, one client at a time, reconnects, drops and queue limits. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

#include "../../common/addr.h"
#include "../../common/util.h"
#include "../../common/frame.h"
#include "../../tundev/tundev.h"

#define DEADLINE_S 5.0
#define MAX_PKTS 256
#define STORE_CAP (1u << 20)

/* Packets seen by one side (the tundev's rx upcall, or a client's frame decoder). */
struct pkts {
    size_t n;
    size_t len[MAX_PKTS];
    size_t off[MAX_PKTS];
    size_t used;
    uint8_t *store;
};

static void pkts_add(struct pkts *p, const uint8_t *data, size_t len)
{
    assert_true(p->n < MAX_PKTS);
    assert_true(p->used + len <= STORE_CAP);
    p->len[p->n] = len;
    p->off[p->n] = p->used;
    memcpy(p->store + p->used, data, len);
    p->used += len;
    p->n++;
}

static const uint8_t *pkts_get(const struct pkts *p, size_t i)
{
    return p->store + p->off[i];
}

struct fixture {
    struct ev_loop *loop;
    struct tundev *t;
    struct pkts rx;
    bool echo; /* rx upcall writes each packet back */
    unsigned port;
};

struct client {
    struct fixture *f;
    int fd;
    ev_io w;
    bool eof;
    int err;
    struct pkts got;
    struct frame_dec dec;
};

static void on_rx(void *ctx, const uint8_t *pkt, size_t len)
{
    struct fixture *f = ctx;
    pkts_add(&f->rx, pkt, len);
    if (f->echo) assert_int_equal(tundev_write(f->t, pkt, len), 0);
}

/* Deterministic packet contents: byte i of packet "tag" is tag*31 + i. */
static void fill(uint8_t *p, size_t len, unsigned tag)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(tag * 31 + i);
}

static bool is_filled(const uint8_t *p, size_t len, unsigned tag)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != (uint8_t)(tag * 31 + i)) return false;
    return true;
}

/* ---- run the loop until a condition holds, or a deadline ---- */

typedef bool (*cond_fn)(void *arg);
struct waiter {
    cond_fn cond;
    void *arg;
};

static void prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)revents;
    struct waiter *wt = w->data;
    if (wt->cond(wt->arg)) ev_break(loop, EVBREAK_ONE);
}

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ONE);
}

static bool run_until(struct fixture *f, cond_fn cond, void *arg)
{
    struct waiter wt = {cond, arg};
    ev_prepare p;
    ev_timer d;
    ev_prepare_init(&p, prepare_cb);
    p.data = &wt;
    ev_timer_init(&d, deadline_cb, DEADLINE_S, 0.);
    ev_prepare_start(f->loop, &p);
    ev_timer_start(f->loop, &d);
    ev_run(f->loop, 0);
    ev_prepare_stop(f->loop, &p);
    ev_timer_stop(f->loop, &d);
    return cond(arg);
}

/* ---- conditions ---- */

struct count_cond {
    const size_t *counter;
    size_t want;
};
static bool count_reached(void *arg)
{
    struct count_cond *c = arg;
    return *c->counter >= c->want;
}
static bool wait_count(struct fixture *f, const size_t *counter, size_t want)
{
    struct count_cond c = {counter, want};
    return run_until(f, count_reached, &c);
}

static bool client_eof(void *arg)
{
    return ((struct client *)arg)->eof;
}

static bool no_client(void *arg)
{
    struct fixture *f = arg;
    char d[128];
    tundev_describe(f->t, d, sizeof d);
    return strstr(d, "(no client)") != NULL;
}

/* ---- fixture ---- */

static struct fixture *fixture_new(size_t max_queue)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->rx.store = malloc(STORE_CAP);
    assert_non_null(f->rx.store);
    f->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(f->loop);
    struct tundev_config cfg = {.mtu = 1500, .max_queue = max_queue};
    assert_int_equal(addr_parse_ip("127.0.0.1", 0, &cfg.listen), 0);
    char err[256] = "";
    f->t = tundev_open(f->loop, &cfg, on_rx, f, err, sizeof err);
    if (!f->t) fail_msg("tundev_open: %s", err);
    const struct addr *la = tundev_listen_addr(f->t);
    assert_non_null(la);
    f->port = addr_port((const struct sockaddr *)&la->ss);
    assert_true(f->port != 0);
    return f;
}

static void fixture_free(struct fixture *f)
{
    tundev_close(f->t);
    ev_loop_destroy(f->loop);
    free(f->rx.store);
    free(f);
}

static void client_frame(void *ctx, const uint8_t *p, size_t len)
{
    pkts_add(&((struct client *)ctx)->got, p, len);
}

static void client_reject(void *ctx, size_t len)
{
    (void)ctx;
    fail_msg("the tundev sent a bad frame of length %zu", len);
}

static void client_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct client *c = w->data;
    uint8_t buf[65536];
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n > 0) {
            frame_dec_feed(&c->dec, buf, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        c->eof = true;
        c->err = n < 0 ? errno : 0;
        ev_io_stop(loop, &c->w);
        return;
    }
}

static struct client *client_connect(struct fixture *f)
{
    struct client *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->f = f;
    c->got.store = malloc(STORE_CAP);
    assert_non_null(c->got.store);
    frame_dec_init(&c->dec, FRAME_MAX_LEN, client_frame, client_reject, c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c->fd >= 0);
    struct addr a;
    assert_int_equal(addr_parse_ip("127.0.0.1", f->port, &a), 0);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&a.ss, a.len), 0);
    int one = 1;
    assert_int_equal(setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), 0);
    int fl = fcntl(c->fd, F_GETFL);
    assert_int_equal(fcntl(c->fd, F_SETFL, fl | O_NONBLOCK), 0);
    ev_io_init(&c->w, client_read_cb, c->fd, EV_READ);
    c->w.data = c;
    ev_io_start(f->loop, &c->w);
    return c;
}

static void client_free(struct client *c)
{
    if (!c) return;
    ev_io_stop(c->f->loop, &c->w);
    if (c->fd >= 0) close(c->fd);
    free(c->got.store);
    free(c);
}

/* Close abruptly (RST): the server sees an error at once. */
static void client_reset(struct client *c)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    ev_io_stop(c->f->loop, &c->w);
    close(c->fd);
    c->fd = -1;
}

/* Send all bytes, running the loop (the tundev reads) whenever the socket is full. */
static void client_send(struct client *c, const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t deadline = mono_us() + (uint64_t)(DEADLINE_S * 1e6);
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
        assert_true(mono_us() < deadline);
        ev_run(c->f->loop, EVRUN_ONCE);
    }
}

static void client_send_frame(struct client *c, size_t announced, const uint8_t *body, size_t len)
{
    uint8_t hdr[2] = {(uint8_t)(announced >> 8), (uint8_t)announced};
    client_send(c, hdr, 2);
    if (len) client_send(c, body, len);
}

/* One packet client -> tundev and one back: proves the client is the accepted one. */
static void exchange(struct fixture *f, struct client *c, unsigned tag)
{
    uint8_t pkt[200];
    fill(pkt, sizeof pkt, tag);
    size_t rx0 = f->rx.n, got0 = c->got.n;
    client_send_frame(c, sizeof pkt, pkt, sizeof pkt);
    assert_true(wait_count(f, &f->rx.n, rx0 + 1));
    assert_int_equal(f->rx.n, rx0 + 1);
    assert_int_equal(f->rx.len[rx0], sizeof pkt);
    assert_true(is_filled(pkts_get(&f->rx, rx0), sizeof pkt, tag));
    fill(pkt, 100, tag + 1);
    assert_int_equal(tundev_write(f->t, pkt, 100), 0);
    assert_true(wait_count(f, &c->got.n, got0 + 1));
    assert_int_equal(c->got.len[got0], 100);
    assert_true(is_filled(pkts_get(&c->got, got0), 100, tag + 1));
}

/* ---- tests ---- */

static void test_open_describe(void **state)
{
    (void)state;
    assert_string_equal(tundev_kind, "notun");
    struct fixture *f = fixture_new(0);
    char d[128], want[128];
    tundev_describe(f->t, d, sizeof d);
    snprintf(want, sizeof want, "notun 127.0.0.1:%u (no client)", f->port);
    assert_string_equal(d, want);
    struct client *c = client_connect(f);
    exchange(f, c, 1);
    tundev_describe(f->t, d, sizeof d);
    snprintf(want, sizeof want, "notun 127.0.0.1:%u (client 127.0.0.1:", f->port);
    assert_memory_equal(d, want, strlen(want));
    client_free(c);
    fixture_free(f);
}

static void test_open_errors(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(0);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char err[256] = "";
    struct tundev_config cfg = {.mtu = 1500};
    /* the port is taken by f */
    assert_int_equal(addr_parse_ip("127.0.0.1", f->port, &cfg.listen), 0);
    assert_null(tundev_open(loop, &cfg, on_rx, NULL, err, sizeof err));
    assert_non_null(strstr(err, "cannot listen on 127.0.0.1:"));
    assert_non_null(strstr(err, "Address already in use"));
    assert_non_null(strstr(err, "choose another notun_listen port"));
    /* mtu out of range */
    cfg.mtu = 0;
    assert_int_equal(addr_parse_ip("127.0.0.1", 0, &cfg.listen), 0);
    assert_null(tundev_open(loop, &cfg, on_rx, NULL, err, sizeof err));
    assert_non_null(strstr(err, "mtu 0 is out of range"));
    cfg.mtu = 70000;
    assert_null(tundev_open(loop, &cfg, on_rx, NULL, err, sizeof err));
    assert_non_null(strstr(err, "mtu 70000 is out of range"));
    /* no listen address */
    cfg.mtu = 1500;
    memset(&cfg.listen, 0, sizeof cfg.listen);
    assert_null(tundev_open(loop, &cfg, on_rx, NULL, err, sizeof err));
    assert_non_null(strstr(err, "set notun_listen"));
    /* an address this host does not have (198.18.0.0/15 is not configured on loopback) */
    assert_int_equal(addr_parse_ip("198.18.7.7", 0, &cfg.listen), 0);
    assert_null(tundev_open(loop, &cfg, on_rx, NULL, err, sizeof err));
    assert_non_null(strstr(err, "cannot listen on 198.18.7.7:0"));
    ev_loop_destroy(loop);
    fixture_free(f);
}

static void test_frames_both_ways(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(0);
    struct client *c = client_connect(f);
    /* three frames in one send */
    static const size_t sizes[] = {1, 100, 1500};
    uint8_t buf[3 * (2 + 1500)];
    size_t off = 0;
    for (unsigned i = 0; i < 3; i++) {
        frame_put_header(buf + off, sizes[i]);
        fill(buf + off + 2, sizes[i], i);
        off += 2 + sizes[i];
    }
    client_send(c, buf, off);
    assert_true(wait_count(f, &f->rx.n, 3));
    assert_int_equal(f->rx.n, 3);
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(f->rx.len[i], sizes[i]);
        assert_true(is_filled(pkts_get(&f->rx, i), sizes[i], i));
    }
    const struct tundev_stats *st = tundev_stats(f->t);
    assert_int_equal(st->rx_packets, 3);
    assert_int_equal(st->rx_bytes, 1601);
    assert_int_equal(st->rx_rejected, 0);

    /* tundev -> client, including a maximum-size (65535) packet spanning many reads */
    static const size_t out[] = {1, 1400, 1500, 65535};
    uint8_t *pkt = malloc(65535);
    assert_non_null(pkt);
    for (unsigned i = 0; i < 4; i++) {
        fill(pkt, out[i], 10 + i);
        assert_int_equal(tundev_write(f->t, pkt, out[i]), 0);
    }
    free(pkt);
    assert_true(wait_count(f, &c->got.n, 4));
    assert_int_equal(c->got.n, 4);
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(c->got.len[i], out[i]);
        assert_true(is_filled(pkts_get(&c->got, i), out[i], 10 + i));
    }
    assert_int_equal(st->tx_packets, 4);
    assert_int_equal(st->tx_bytes, 1 + 1400 + 1500 + 65535);
    assert_int_equal(st->tx_dropped, 0);

    /* the rx upcall may write: echo 50 packets back in order */
    f->echo = true;
    for (unsigned i = 0; i < 50; i++) {
        uint8_t p[64];
        fill(p, sizeof p, 100 + i);
        client_send_frame(c, sizeof p, p, sizeof p);
    }
    assert_true(wait_count(f, &c->got.n, 54));
    for (unsigned i = 0; i < 50; i++) {
        assert_int_equal(c->got.len[4 + i], 64);
        assert_true(is_filled(pkts_get(&c->got, 4 + i), 64, 100 + i));
    }
    client_free(c);
    fixture_free(f);
}

static void test_rejects_keep_sync(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(0);
    struct client *c = client_connect(f);
    uint8_t *body = malloc(65535);
    assert_non_null(body);
    fill(body, 10, 1);
    client_send_frame(c, 10, body, 10);
    fill(body, 1501, 2);
    client_send_frame(c, 1501, body, 1501); /* one over the MTU */
    client_send_frame(c, 0, NULL, 0);       /* empty */
    fill(body, 20, 3);
    client_send_frame(c, 20, body, 20);
    fill(body, 65535, 4);
    client_send_frame(c, 65535, body, 65535); /* 0xFFFF */
    fill(body, 1500, 5);
    client_send_frame(c, 1500, body, 1500); /* exactly the MTU */
    assert_true(wait_count(f, &f->rx.n, 3));
    const struct tundev_stats *st = tundev_stats(f->t);
    /* all bytes sent so far are read once the 1500-byte frame arrived */
    assert_int_equal(f->rx.n, 3);
    assert_int_equal(st->rx_rejected, 3);
    assert_int_equal(f->rx.len[0], 10);
    assert_true(is_filled(pkts_get(&f->rx, 0), 10, 1));
    assert_int_equal(f->rx.len[1], 20);
    assert_true(is_filled(pkts_get(&f->rx, 1), 20, 3));
    assert_int_equal(f->rx.len[2], 1500);
    assert_true(is_filled(pkts_get(&f->rx, 2), 1500, 5));

    /* a frame trickled in one byte per segment still arrives whole */
    uint8_t fr[2 + 30];
    frame_put_header(fr, 30);
    fill(fr + 2, 30, 6);
    for (size_t i = 0; i < sizeof fr; i++) {
        client_send(c, fr + i, 1);
        ev_run(f->loop, EVRUN_NOWAIT);
    }
    assert_true(wait_count(f, &f->rx.n, 4));
    assert_int_equal(f->rx.len[3], 30);
    assert_true(is_filled(pkts_get(&f->rx, 3), 30, 6));
    assert_int_equal(st->rx_packets, 4);
    assert_int_equal(st->rx_rejected, 3);
    free(body);
    client_free(c);
    fixture_free(f);
}

static void test_second_client_refused(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(0);
    struct client *c1 = client_connect(f);
    exchange(f, c1, 1);
    struct client *c2 = client_connect(f);
    assert_true(run_until(f, client_eof, c2)); /* closed by the tundev at once */
    assert_int_equal(c2->got.n, 0);
    /* the first client is unaffected */
    exchange(f, c1, 3);
    assert_int_equal(c2->got.n, 0);
    assert_int_equal(tundev_stats(f->t)->tx_dropped, 0);
    client_free(c2);
    client_free(c1);
    fixture_free(f);
}

static void test_reconnect(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(0);
    struct client *c1 = client_connect(f);
    exchange(f, c1, 1);
    /* half a frame, then EOF: the partial frame is discarded, not glued to the next client */
    uint8_t half[2 + 50];
    frame_put_header(half, 100);
    fill(half + 2, 50, 9);
    client_send(c1, half, sizeof half);
    shutdown(c1->fd, SHUT_WR);
    assert_true(run_until(f, no_client, f));
    assert_int_equal(f->rx.n, 1);
    uint8_t p[10] = {0};
    assert_int_equal(tundev_write(f->t, p, sizeof p), -1); /* no client now */
    assert_int_equal(tundev_stats(f->t)->tx_dropped, 1);
    struct client *c2 = client_connect(f);
    exchange(f, c2, 5);
    assert_int_equal(f->rx.n, 2);
    assert_int_equal(c1->got.n, 1);
    client_free(c1);
    /* and a third one after the second resets the connection */
    client_reset(c2);
    assert_true(run_until(f, no_client, f));
    struct client *c3 = client_connect(f);
    exchange(f, c3, 7);
    assert_int_equal(f->rx.n, 3);
    client_free(c2);
    client_free(c3);
    fixture_free(f);
}

/* A client closes and the next connects before the tundev has run: the first one's last frame
 * is delivered and the second is taken, not refused as a second client. */
static void test_reconnect_at_once(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(0);
    struct client *c1 = client_connect(f);
    exchange(f, c1, 1);
    uint8_t pkt[80];
    fill(pkt, sizeof pkt, 4);
    client_send_frame(c1, sizeof pkt, pkt, sizeof pkt);
    client_free(c1); /* FIN after the frame; the loop has not read either */
    struct client *c2 = client_connect(f);
    assert_true(wait_count(f, &f->rx.n, 2)); /* read when the second one is accepted */
    assert_int_equal(f->rx.len[1], sizeof pkt);
    assert_true(is_filled(pkts_get(&f->rx, 1), sizeof pkt, 4));
    exchange(f, c2, 5);
    assert_false(c2->eof);
    assert_int_equal(f->rx.n, 3);
    client_free(c2);
    fixture_free(f);
}

static void test_drop_without_client(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(0);
    uint8_t p[100] = {1};
    const struct tundev_stats *st = tundev_stats(f->t);
    for (int i = 0; i < 5; i++)
        assert_int_equal(tundev_write(f->t, p, sizeof p), -1);
    assert_int_equal(st->tx_dropped, 5);
    assert_int_equal(st->tx_packets, 0);
    /* unframeable sizes are dropped even with a client */
    struct client *c = client_connect(f);
    exchange(f, c, 1);
    uint8_t *big = calloc(1, 65536);
    assert_non_null(big);
    assert_int_equal(tundev_write(f->t, big, 0), -1);
    assert_int_equal(tundev_write(f->t, big, 65536), -1);
    free(big);
    assert_int_equal(st->tx_dropped, 7);
    client_free(c);
    fixture_free(f);
}

static void test_queue_limit(void **state)
{
    (void)state;
    /* 1000 is below one maximum frame: the limit becomes 65537 bytes = 43 frames of 1502 */
    struct fixture *f = fixture_new(1000);
    struct client *c = client_connect(f);
    exchange(f, c, 1);
    const struct tundev_stats *st = tundev_stats(f->t);
    uint8_t p[1500];
    int ok = 0, dropped = 0;
    for (uint32_t i = 0; i < 100; i++) {
        fill(p, sizeof p, i);
        put_be32(p, i);
        if (tundev_write(f->t, p, sizeof p) == 0)
            ok++;
        else
            dropped++;
    }
    assert_int_equal(ok, 43);
    assert_int_equal(dropped, 57);
    assert_int_equal(st->tx_dropped, 57);
    assert_true(wait_count(f, &c->got.n, 1 + 43));
    for (uint32_t i = 0; i < 43; i++) {
        assert_int_equal(c->got.len[1 + i], 1500);
        assert_int_equal(get_be32(pkts_get(&c->got, 1 + i)), i);
    }
    assert_int_equal(st->tx_packets, 1 + 43);
    /* once flushed there is room again */
    assert_int_equal(tundev_write(f->t, p, sizeof p), 0);
    assert_true(wait_count(f, &c->got.n, 45));
    client_free(c);
    fixture_free(f);
}

static void test_disconnect_discards_queue(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(0);
    struct client *c = client_connect(f);
    exchange(f, c, 1);
    const struct tundev_stats *st = tundev_stats(f->t);
    uint8_t p[300] = {0};
    for (int i = 0; i < 3; i++)
        assert_int_equal(tundev_write(f->t, p, sizeof p), 0);
    client_reset(c); /* before the loop could send them */
    assert_true(run_until(f, no_client, f));
    assert_int_equal(st->tx_packets, 1);
    assert_int_equal(st->tx_dropped, 3);
    client_free(c);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_describe),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_frames_both_ways),
        cmocka_unit_test(test_rejects_keep_sync),
        cmocka_unit_test(test_second_client_refused),
        cmocka_unit_test(test_reconnect_at_once),
        cmocka_unit_test(test_reconnect),
        cmocka_unit_test(test_drop_without_client),
        cmocka_unit_test(test_queue_limit),
        cmocka_unit_test(test_disconnect_discards_queue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
