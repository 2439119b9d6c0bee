/* slave.c: the slave's TCP lane: the terminator (stack.c) takes the clients' TCP connections
 * from the tunnel device, each becomes a stream of the peer (peer.c), and one link connection
 * per live link (connect.c) carries the records; it decides when new connections use the lane. */
#include "lane.h"

#include <ev.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/util.h"

#define TICK_S 0.5
#define RETRY_MIN_S 1.0
#define RETRY_MAX_S 30.0
#define REOPEN_AFTER_S 1.0
#define KNOWN_SLOTS 256  /* destinations the master reached lately (a hash, each slot one) */
#define KNOWN_KEEP_S 600.0

struct term {
    struct lane_slave *ls;
    struct lane_conn *c;     /* NULL once the client's connection is gone */
    struct lane_stream *s;   /* NULL once the stream is gone */
    size_t owed;             /* client bytes taken but not yet given back as window */
    bool answered;           /* the client was answered before the master's OPENED */
    struct dest {
        uint8_t family, addr[16];
        uint16_t port;
        double at;           /* (known: when the master last reached it) */
    } dest;
    struct term *next, *prev;
};

struct link_slot {
    bool up;                 /* the mux has the link up */
    struct lane_connect *opening;
    double retry_at;         /* ev_now when the next attempt may start */
    unsigned failures;
    char last_err[128];
    double down_at;          /* ev_now when the mux took it down */
};

struct lane_slave {
    struct ev_loop *loop;
    struct lane_slave_cb cb;
    int mode;
    struct lane_stack *stack;
    struct lane_peer *peer;
    struct link_slot link[LANE_MAX_LINKS];
    ev_timer tick;
    struct term *terms;
    bool fast_open;
    struct dest known[KNOWN_SLOTS];
};

/* ---------------------------------------------------------------- destinations reached */

/* Fast open: a new connection to a destination (address and port) the master reached in the
 * last KNOWN_KEEP_S is answered at once and its bytes go with the OPEN (one round trip less);
 * any other waits for the master's answer, so that a refused port is refused to the client. */
static struct dest *known_slot(struct lane_slave *ls, const struct dest *d)
{
    uint8_t tail[3] = {(uint8_t)(d->port >> 8), (uint8_t)d->port, d->family};
    return &ls->known[fnv1a(fnv1a(FNV1A_START, d->addr, 16), tail, 3) % KNOWN_SLOTS];
}

static bool same_dest(const struct dest *a, const struct dest *b)
{
    return a->family == b->family && a->port == b->port && memcmp(a->addr, b->addr, 16) == 0;
}

static bool dest_known(struct lane_slave *ls, const struct dest *d)
{
    const struct dest *k = known_slot(ls, d);
    return k->at > 0 && same_dest(k, d) && ev_now(ls->loop) - k->at < KNOWN_KEEP_S;
}

static void dest_note(struct lane_slave *ls, const struct dest *d, bool reached)
{
    struct dest *k = known_slot(ls, d);
    if (reached) {
        *k = *d;
        k->at = ev_now(ls->loop);
    } else if (same_dest(k, d)) {
        k->at = 0;
    }
}

/* ---------------------------------------------------------------- client <-> stream */

static void term_free(struct term *t)
{
    if (t->prev) t->prev->next = t->next;
    else t->ls->terms = t->next;
    if (t->next) t->next->prev = t->prev;
    free(t);
}

static void term_maybe_free(struct term *t)
{
    if (t->c || t->s) return;
    term_free(t);
}

static void give_window(struct term *t)
{
    if (!t->c || !t->s || !t->owed || !lane_stream_in_window(t->s)) return;
    lane_conn_recved(t->c, t->owed);
    t->owed = 0;
}

static void *st_accept(void *ctx, struct lane_conn *c, int family, const uint8_t dst[16],
                       uint16_t port)
{
    struct lane_slave *ls = ctx;
    struct term *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->ls = ls;
    t->c = c;
    t->dest.family = (uint8_t)family;
    memcpy(t->dest.addr, dst, 16);
    t->dest.port = port;
    t->s = lane_stream_open(ls->peer, t, family, dst, port);
    if (!t->s) {
        LOGW("TCP lane: the limit of terminated connections (tcp_lane_connections) is "
             "reached: a new one goes by the packet path");
        free(t);
        return NULL;
    }
    if (ls->fast_open && dest_known(ls, &t->dest)) {
        t->answered = true;
        lane_stream_early(t->s);
        lane_conn_proceed(c, 0); /* (the SYN is answered once accept returns) */
    }
    t->next = ls->terms;
    if (ls->terms) ls->terms->prev = t;
    ls->terms = t;
    return t;
}

static size_t st_recv(void *ctx, void *owner, const uint8_t *data, size_t len)
{
    (void)ctx;
    struct term *t = owner;
    if (!t->s) return len; /* (the stream is gone: the client is being reset) */
    if (len == 0) {
        lane_stream_shutdown(t->s);
        return 0;
    }
    size_t n = lane_stream_write(t->s, data, len);
    if (n < len) { /* cannot happen while the client keeps to its window: the lane resets */
        LOGW("TCP lane: connection %u: the client sent beyond its window: reset",
             lane_stream_id(t->s));
        lane_stream_reset(t->s, LANE_RST_PROTOCOL);
        t->s = NULL;
        return len;
    }
    t->owed += len;
    size_t give = lane_stream_in_window(t->s) ? t->owed : 0;
    t->owed -= give;
    return give;
}

static void st_sent(void *ctx, void *owner, size_t len)
{
    (void)ctx;
    (void)len;
    struct term *t = owner;
    if (t->s) lane_stream_resume(t->s);
}

static void st_closed(void *ctx, void *owner, bool reset)
{
    (void)ctx;
    struct term *t = owner;
    t->c = NULL;
    if (t->s) {
        if (reset) lane_stream_reset(t->s, LANE_RST_PEER);
        else lane_stream_release(t->s);
        t->s = NULL;
    }
    term_maybe_free(t);
}

static void st_output(void *ctx, const uint8_t *pkt, size_t len)
{
    struct lane_slave *ls = ctx;
    ls->cb.output(ls->cb.ctx, pkt, len);
}

static void pe_opened(void *ctx, void *owner, int status)
{
    struct lane_slave *ls = ctx;
    struct term *t = owner;
    if (status != LANE_OPEN_LIMIT) dest_note(ls, &t->dest, status == LANE_OPEN_OK);
    if (status == LANE_OPEN_OK) {
        if (t->c && !t->answered) lane_conn_proceed(t->c, 0); /* the SYN is answered now */
        return;
    }
    t->s = NULL; /* (gone with this answer) */
    if (t->c) {
        struct lane_conn *c = t->c;
        t->c = NULL;
        if (t->answered) {
            LOGI("TCP lane: port %u, reached before, refused a new connection after the client "
                 "was answered (fast open): the client gets a reset", t->dest.port);
            lane_conn_reset(c);
        } else {
            lane_conn_proceed(c, status); /* a RST or an ICMP unreachable to the client */
        }
    }
    term_maybe_free(t);
}

static size_t pe_deliver(void *ctx, void *owner, const uint8_t *data, size_t len)
{
    (void)ctx;
    struct term *t = owner;
    if (!t->c) return len;
    return lane_conn_send(t->c, data, len);
}

static void pe_eof(void *ctx, void *owner)
{
    (void)ctx;
    struct term *t = owner;
    if (t->c) lane_conn_shutdown(t->c); /* (may close it: st_closed) */
}

static void pe_room(void *ctx, void *owner)
{
    (void)ctx;
    give_window(owner);
}

static void pe_reset(void *ctx, void *owner, int reason)
{
    (void)ctx;
    (void)reason;
    struct term *t = owner;
    t->s = NULL;
    if (t->c) {
        struct lane_conn *c = t->c;
        t->c = NULL;
        lane_conn_reset(c);
    }
    term_maybe_free(t);
}

/* ---------------------------------------------------------------- link connections */

static void update_accepting(struct lane_slave *ls)
{
    int n = lane_peer_links(ls->peer);
    bool on = ls->mode == LANE_MODE_ON ? n >= 1 : ls->mode == LANE_MODE_AUTO && n >= 2;
    lane_stack_set_accepting(ls->stack, on);
}

static void on_connected(void *ctx, uint8_t id, const char *err)
{
    struct lane_slave *ls = ctx;
    struct link_slot *k = &ls->link[id];
    k->opening = NULL;
    if (err) {
        k->failures++;
        double d = RETRY_MIN_S;
        for (unsigned i = 1; i < k->failures && d < RETRY_MAX_S; i++) d *= 2;
        if (d > RETRY_MAX_S) d = RETRY_MAX_S;
        k->retry_at = ev_now(ls->loop) + d;
        if (strcmp(err, k->last_err) != 0 || k->failures == 1) {
            LOGW("TCP lane: link %u: cannot open its connection to the master: %s (again in "
                 "%.0f s)", id, err, d);
            snprintf(k->last_err, sizeof k->last_err, "%s", err);
        }
    } else {
        k->failures = 0;
        k->last_err[0] = 0;
        LOGI("TCP lane: link %u's connection to the master is up", id);
    }
    update_accepting(ls);
}

static void pe_link_gone(void *ctx, uint8_t id)
{
    struct lane_slave *ls = ctx;
    ls->link[id].retry_at = ev_now(ls->loop) + RETRY_MIN_S;
    update_accepting(ls);
}

static void try_links(struct lane_slave *ls)
{
    double now = ev_now(ls->loop);
    uint32_t index;
    uint8_t tx[32], rx[32];
    bool have = false;
    for (int id = 0; id < LANE_MAX_LINKS; id++) {
        struct link_slot *k = &ls->link[id];
        if (!k->up || k->opening || now < k->retry_at || lane_peer_link_stats(ls->peer, (uint8_t)id))
            continue;
        if (!have) {
            if (!ls->cb.session(ls->cb.ctx, &index, tx, rx)) return;
            have = true;
        }
        struct lane_connect_target t;
        memset(&t, 0, sizeof t);
        if (!ls->cb.target(ls->cb.ctx, (uint8_t)id, &t)) continue;
        char err[160];
        k->opening = lane_connect_start(ls->loop, ls->peer, (uint8_t)id, &t, index, tx, rx,
                                        on_connected, ls, err, sizeof err);
        if (!k->opening) on_connected(ls, (uint8_t)id, err);
    }
    sodium_memzero(tx, sizeof tx);
    sodium_memzero(rx, sizeof rx);
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    try_links(w->data);
}

void lane_slave_link(struct lane_slave *ls, uint8_t id, bool up)
{
    struct link_slot *k = &ls->link[id];
    if (k->up == up) return;
    k->up = up;
    lane_peer_suspend_link(ls->peer, id, !up);
    if (!up) k->down_at = ev_now(ls->loop);
    /* back after a long outage: the old connection is likely in a retransmission backoff at
     * either end (its next try seconds away): a new one is faster */
    if (up && ev_now(ls->loop) - k->down_at >= REOPEN_AFTER_S &&
        lane_peer_link_stats(ls->peer, id))
        lane_peer_drop_link(ls->peer, id, "the link is back after an outage: a new connection");
    if (up) {
        k->retry_at = 0;
        k->failures = 0;
        try_links(ls);
    } else if (k->opening) {
        lane_connect_cancel(k->opening);
        k->opening = NULL;
    }
}

/* ---------------------------------------------------------------- the lane */

bool lane_slave_input(struct lane_slave *ls, const uint8_t *pkt, size_t len)
{
    return lane_stack_input(ls->stack, pkt, len);
}

struct lane_slave *lane_slave_new(struct ev_loop *loop, int mode, int max_conns, bool fast_open,
                                  const struct lane_slave_cb *cb, char *err, size_t errlen)
{
    struct lane_slave *ls = calloc(1, sizeof *ls);
    if (!ls) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ls->loop = loop;
    ls->cb = *cb;
    ls->mode = mode;
    ls->fast_open = fast_open;
    struct lane_stack_cb scb = {.output = st_output, .accept = st_accept, .recv = st_recv,
                                .sent = st_sent, .closed = st_closed, .ctx = ls};
    ls->stack = lane_stack_new(loop, &scb, err, errlen);
    struct lane_peer_cb pcb = {.opened = pe_opened, .deliver = pe_deliver, .eof = pe_eof,
                               .room = pe_room, .reset = pe_reset, .link_gone = pe_link_gone,
                               .ctx = ls};
    ls->peer = ls->stack ? lane_peer_new(loop, false, max_conns, &pcb) : NULL;
    if (!ls->peer) {
        if (ls->stack) snprintf(err, errlen, "out of memory");
        lane_stack_free(ls->stack);
        free(ls);
        return NULL;
    }
    update_accepting(ls);
    ev_timer_init(&ls->tick, on_tick, TICK_S, TICK_S);
    ls->tick.data = ls;
    ev_timer_start(loop, &ls->tick);
    return ls;
}

void lane_slave_free(struct lane_slave *ls)
{
    if (!ls) return;
    ev_timer_stop(ls->loop, &ls->tick);
    for (int id = 0; id < LANE_MAX_LINKS; id++) lane_connect_cancel(ls->link[id].opening);
    /* the terminator first: its connections are reset (their terms freed without a word to
     * the peer, which goes next) */
    lane_stack_free(ls->stack);
    lane_peer_free(ls->peer);
    while (ls->terms) term_free(ls->terms);
    free(ls);
}

const struct lane_peer *lane_slave_peer_const(const struct lane_slave *ls)
{
    return ls->peer;
}

const struct lane_stack_counters *lane_slave_stack_counters(const struct lane_slave *ls)
{
    return lane_stack_counters(ls->stack);
}
