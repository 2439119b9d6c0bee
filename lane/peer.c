/* peer.c: one end of the TCP lane for one session: its streams (the terminated connections,
 * each a send buffer and a reassembly), the link connections that carry their records as sealed
 * frames, and which link carries the next record: the one that would deliver it first, from
 * each socket's unsent bytes and the kernel's congestion window and RTT (TCP_INFO). */
#include "lane.h"

#include <errno.h>
#include <ev.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"

#define BUCKETS 1024            /* stream hash (a power of 2) */
#define TX_CAP (LANE_WINDOW + 65536) /* a stream's send buffer: the window and the slave's lwIP
                                      * window on top (the client's bytes in flight to it) */
#define ACK_EVERY 32768         /* an ACK once this many bytes were delivered since the last */
#define ACK_DELAY 0.02          /* else after this (s) */
#define NOTSENT_LOWAT 16384     /* a link takes a record while it has at most this unsent */
#define QUEUE_S 0.01            /* ... and holds at most rate x (min RTT + this) */
#define INFLIGHT_MIN 65536
#define INFO_EVERY_US 2000      /* TCP_INFO read again after */
#define READS_PER_EVENT 8
#define MAX_RECS 9400           /* records in one frame at most (7 bytes each at least) */
#define RST_KEEP_US 10000000    /* a RST is sent again when a link dies within this */
#define RSTQ 256
#define USER_TIMEOUT_MS 30000   /* unacknowledged this long: the link connection closes */
#define REINJECT_MAX 65536      /* bytes sent again on the fastest link when a stream stalls */
#define STALL_CHECK_S 0.025
#define STALL_SLACK_S 0.03      /* a record this late (after its due time and ACK) is lost */
#define SPANS 128               /* parts of a stream a stall check looks at, at most */
#define PRIO_FIRST 32768        /* a stream's first bytes go ahead of bulk bytes, ... */
#define PRIO_AGAIN 16384        /* ... and what it writes after all it sent was acknowledged */
#define EARLY_AHEAD 65536       /* master: DATA for an unknown stream this close above the last
                                 * OPEN is kept for its OPEN (the slave sent it early) ... */
#define EARLY_KEEP_US 10000000  /* ... this long; then the stream is reset */
#define ORPHAN_S 60             /* streams without any link connection this long are reset */
#define RCVD_EVERY 16384        /* the master's RCVD after this many frame bytes read, else
                                 * after ACK_DELAY */
#define MARKS 256               /* (when the bytes written to a link connection passed where) */
#define MARK_EVERY_US 2000
#define E2E_RATE_WIN_US 50000   /* a delivery rate sample spans at least this */
#define E2E_RATE_KEEP_US 1000000 /* the highest sample is kept this long */
#define E2E_MIN_KEEP_US 10000000 /* the lowest RTT sample is kept this long */
#define E2E_RATE_FIRST 125000.0 /* (bytes/s) a proxied link's rate until it is measured */

struct lane_stream {
    struct lane_peer *p;
    uint32_t id;
    void *owner;              /* NULL: released by the endpoint */
    struct lane_stream *hnext;
    TAILQ_ENTRY(lane_stream) all, ctl, data, prio;
    bool in_ctl, in_data, in_prio;
    uint64_t prio_end;        /* bytes below go ahead of bulk bytes (an interactive exchange) */
    /* opening */
    bool opened;              /* the connection to the destination is up */
    bool early;               /* slave: its bytes go before the OPENED (lane_stream_early) */
    bool awaiting_open;       /* master: its DATA came before its OPEN (kept EARLY_KEEP_US) */
    uint64_t created_us;
    bool need_open;           /* slave: OPEN to send (again) */
    uint8_t open_family, open_addr[16];
    uint16_t open_port;
    bool need_opened;         /* master: OPENED to send (again) */
    bool opened_acked;        /* master: the slave answered after OPENED */
    uint8_t status;           /* master: OPENED's status */
    /* send direction: bytes [tx_acked, tx_end) held, [tx_acked, tx_next) sent */
    uint8_t *tx;
    uint64_t tx_acked, tx_next, tx_end;
    bool tx_fin, fin_sent, fin_acked;
    uint64_t fin_us;          /* when the FIN went (the last time) */
    uint64_t tx_held;         /* the far end holds every byte below (its ACKs' second offset) */
    uint64_t progress_us;     /* when tx_held last moved (or sending began from it) */
    uint64_t rs_next, rs_end; /* [rs_next, rs_end): to send again on the fastest link, but
                               * what a link that is not late carries (copy_next) */
    int rs_late;              /* the late link (its id; -1: none but those down or backed off) */
    uint64_t rs_held;         /* tx_held when it was last sent again (+1: never) */
    bool rs_probe;            /* [rs_next, rs_end) is one byte the receiver may hold already
                               * (to make it ACK again), not a copy of a late record */
    /* receive direction */
    struct lane_reasm rx;
    uint64_t ack_sent;        /* the last ACK's offsets */
    uint64_t ack_held;
    bool need_ack, eof_told;
    bool dead;
};

struct plink {
    struct lane_peer *p;
    int fd;
    uint8_t id;
    struct lane_keys keys;
    ev_io rio, wio;
    uint8_t *rbuf;
    size_t rlen;
    uint8_t *wbuf;
    size_t wlen, woff;
    uint64_t info_us;
    double rate;   /* bytes/s: cwnd x MSS / smoothed RTT */
    double srtt_s;
    double min_rtt_s; /* the kernel's minimum RTT of the connection */
    double rttvar_s;  /* how much its RTT varies (the kernel's; through a proxy, smoothed less
                       * minimum RTT end to end) */
    bool suspended; /* the multiplexer has the link down: no new records (it may come back) */
    bool backoff;   /* its TCP is in a retransmission timeout's backoff: no new records */
    bool late;      /* a stream stalled on a record overdue on it, and its far end has
                     * acknowledged nothing since (acked: then): nothing waits for it */
    uint64_t acked, late_acked; /* bytes its far end acknowledged (TCP_INFO, or its RCVDs) */
    /* what DATA it carried, oldest first (a ring; the oldest is forgotten when it is full):
     * sent again on the others when the link goes down */
    struct sent {
        uint32_t id;
        uint64_t start, end;
        uint64_t due_us; /* when the receiver should have it (link_due_us) */
        uint64_t txend;  /* the link's frame bytes up to the end of the frame that carries it
                          * (0: not sealed yet): its far end has it once it has these */
    } *log;
    unsigned log_head, log_n;
    bool log_overflow; /* it forgot an entry the receiver might not have held */
    struct lane_link_stats st;
    /* end to end (RCVD records): frame bytes read here and told in the last RCVD (master);
     * frame bytes written to the socket and the far end's last RCVD (slave; on the master, what
     * the slave's last ask said it read, for link_delivered). For a connection
     * through a proxy, rate and RTT come from these (the kernel sees the hop to the proxy). */
    uint64_t rx_count, rcvd_told, tx_count, rcvd;
    bool proxied; /* (slave) it is; it sends an RCVD to say so (ask: not yet) */
    bool ask;
    bool report;  /* (master) the slave sent an RCVD on it: RCVD reports go back */
    struct mark {
        uint64_t off, us;
    } mark[MARKS];
    unsigned mark_head, mark_n;
    uint64_t prev_rcvd, prev_rcvd_us;
    double e2e_rate, e2e_min_rtt, e2e_srtt;
    uint64_t e2e_rate_us, e2e_min_us;
};
#define LOG_CAP 4096

struct lane_peer {
    struct ev_loop *loop;
    struct lane_peer_cb cb;
    bool is_master;
    int max_streams, nstreams;
    uint32_t next_id;
    uint32_t open_top;        /* master: the highest stream id an OPEN named (serial) */
    bool open_seen;
    struct plink *links[LANE_MAX_LINKS];
    int nlinks;
    struct lane_stream *bucket[BUCKETS];
    struct lane_stream *grave; /* freed, memory not yet (by hnext) */
    TAILQ_HEAD(, lane_stream) all, ctlq, dataq, prioq;
    struct {
        uint32_t id;
        uint8_t reason;
        uint64_t at_us;
        bool pending;
    } rst[RSTQ];
    unsigned rst_head, rst_pending;
    ev_prepare flush_w;
    ev_timer ack_w, stall_w;
    uint64_t nolink_since_us;
    struct lane_rec *recs;
    uint8_t plain[LANE_PLAIN_MAX];
    size_t plen;
    struct lane_peer_stats st;
    struct log_limit lim;
};

/* ---------------------------------------------------------------- streams */

static struct lane_stream *find(struct lane_peer *p, uint32_t id)
{
    for (struct lane_stream *s = p->bucket[id & (BUCKETS - 1)]; s; s = s->hnext)
        if (s->id == id) return s;
    return NULL;
}

static void want_flush(struct lane_peer *p)
{
    if (!ev_is_active(&p->flush_w)) ev_prepare_start(p->loop, &p->flush_w);
}

static void ctl_push(struct lane_stream *s)
{
    if (s->in_ctl || s->dead) return;
    TAILQ_INSERT_TAIL(&s->p->ctlq, s, ctl);
    s->in_ctl = true;
    want_flush(s->p);
}

/* Its bytes may go (the far end is open, or they go early) and it is not gone. */
static bool may_send(const struct lane_stream *s)
{
    return (s->opened || s->early) && !s->dead;
}

static bool has_data(const struct lane_stream *s)
{
    if (!may_send(s)) return false;
    if (s->rs_next < s->rs_end) return true;
    if (s->tx_next < s->tx_end && s->tx_next < s->tx_acked + LANE_WINDOW) return true;
    return s->tx_fin && !s->fin_sent && s->tx_next == s->tx_end;
}

/* New bytes of s within its window below prio_end: they go first, on the link that delivers
 * them first (whatever it holds: they are few). */
static bool has_prio(const struct lane_stream *s)
{
    if (!may_send(s)) return false;
    return s->tx_next < s->prio_end && s->tx_next < s->tx_end &&
           s->tx_next < s->tx_acked + LANE_WINDOW;
}

static void data_push(struct lane_stream *s)
{
    if (!s->in_prio && has_prio(s)) {
        TAILQ_INSERT_TAIL(&s->p->prioq, s, prio);
        s->in_prio = true;
        want_flush(s->p);
    }
    if (s->in_data || !has_data(s)) return;
    TAILQ_INSERT_TAIL(&s->p->dataq, s, data);
    s->in_data = true;
    want_flush(s->p);
}

static struct lane_stream *stream_new(struct lane_peer *p, uint32_t id)
{
    struct lane_stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->tx = malloc(TX_CAP); /* (untouched pages cost nothing: a small stream uses a few) */
    if (!s->tx || lane_reasm_init(&s->rx, LANE_WINDOW) != 0) {
        free(s->tx);
        free(s);
        return NULL;
    }
    s->p = p;
    s->id = id;
    s->created_us = mono_us();
    s->prio_end = PRIO_FIRST;
    s->rs_held = UINT64_MAX;
    s->rs_late = -1;
    unsigned b = id & (BUCKETS - 1);
    s->hnext = p->bucket[b];
    p->bucket[b] = s;
    TAILQ_INSERT_TAIL(&p->all, s, all);
    p->nstreams++;
    p->st.streams_opened++;
    return s;
}

/* Out of every table at once; the memory goes at the next flush (a caller up the stack, in
 * the middle of a callback, may still look at s->dead). */
static void stream_free(struct lane_stream *s)
{
    struct lane_peer *p = s->p;
    if (s->dead) return;
    struct lane_stream **pp = &p->bucket[s->id & (BUCKETS - 1)];
    while (*pp != s) pp = &(*pp)->hnext;
    *pp = s->hnext;
    TAILQ_REMOVE(&p->all, s, all);
    if (s->in_ctl) TAILQ_REMOVE(&p->ctlq, s, ctl);
    if (s->in_data) TAILQ_REMOVE(&p->dataq, s, data);
    if (s->in_prio) TAILQ_REMOVE(&p->prioq, s, prio);
    s->in_ctl = s->in_data = s->in_prio = false;
    s->dead = true;
    s->owner = NULL;
    s->hnext = p->grave;
    p->grave = s;
    p->nstreams--;
    p->st.streams_closed++;
    want_flush(p);
}

static void reap(struct lane_peer *p)
{
    while (p->grave) {
        struct lane_stream *s = p->grave;
        p->grave = s->hnext;
        lane_reasm_free(&s->rx);
        free(s->tx);
        free(s);
    }
}

/* Done: the endpoint let it go, both directions ended and were acknowledged. */
static void maybe_free(struct lane_stream *s)
{
    if (s->owner || !s->fin_acked || !s->eof_told || s->need_ack) return;
    stream_free(s);
}

static void rst_queue(struct lane_peer *p, uint32_t id, uint8_t reason)
{
    unsigned i = p->rst_head++ % RSTQ;
    if (p->rst[i].pending) p->rst_pending--;
    p->rst[i].id = id;
    p->rst[i].reason = reason;
    p->rst[i].at_us = mono_us();
    p->rst[i].pending = true;
    p->rst_pending++;
    p->st.rst_sent++;
    want_flush(p);
}

/* The stream ends at once: RST to the far end (unless it sent one) and no word to the owner. */
static void stream_kill(struct lane_stream *s, bool send_rst, uint8_t reason)
{
    if (send_rst) rst_queue(s->p, s->id, reason);
    stream_free(s);
}

/* ---------------------------------------------------------------- links */

static void link_close(struct plink *l, const char *why);

static void link_info(struct plink *l, uint64_t now)
{
    if (now - l->info_us < INFO_EVERY_US) return;
    l->info_us = now;
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(l->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 || ti.tcpi_rtt == 0) return;
    l->srtt_s = ti.tcpi_rtt / 1e6;
    /* the kernel's latest delivery rate sample; before there is one, what the congestion
     * window allows per RTT */
    double cw = (double)ti.tcpi_snd_cwnd * ti.tcpi_snd_mss / l->srtt_s;
    l->rate = ti.tcpi_delivery_rate ? (double)ti.tcpi_delivery_rate : cw;
    l->backoff = ti.tcpi_backoff > 0 || ti.tcpi_ca_state == 4 /* TCP_CA_Loss */;
    l->acked = l->proxied ? l->rcvd : ti.tcpi_bytes_acked;
    if (l->late && l->acked > l->late_acked) l->late = false;
    l->min_rtt_s = ti.tcpi_min_rtt ? ti.tcpi_min_rtt / 1e6 : l->srtt_s;
    l->rttvar_s = ti.tcpi_rttvar / 1e6;
    if (l->proxied) { /* the far end's reports, once there are some; till then a little */
        l->rate = l->e2e_rate > 0 ? l->e2e_rate : E2E_RATE_FIRST;
        l->srtt_s = l->e2e_srtt > 0 ? l->e2e_srtt : l->srtt_s;
        l->min_rtt_s = l->e2e_min_rtt > 0 ? l->e2e_min_rtt : l->min_rtt_s;
        l->rttvar_s = l->srtt_s > l->min_rtt_s ? l->srtt_s - l->min_rtt_s : 0;
    }
    l->st.rtt_ms = (uint64_t)(l->srtt_s * 1000);
    l->st.cwnd = ti.tcpi_snd_cwnd;
    l->st.rate_kbit = (uint64_t)(l->rate * 8 / 1000);
    l->st.backoff = l->backoff;
}

static size_t link_notsent(const struct plink *l)
{
    int n = 0;
    if (ioctl(l->fd, SIOCOUTQNSD, &n) != 0 || n < 0) return 0;
    return (size_t)n;
}

/* What l's connection holds: written and not acknowledged (in flight and unsent); through a
 * proxy, what the proxy holds too (written, not yet read by the far end). */
static size_t link_held_bytes(const struct plink *l)
{
    if (l->proxied) return (size_t)(l->tx_count - l->rcvd);
    int n = 0;
    if (ioctl(l->fd, SIOCOUTQ, &n) != 0 || n < 0) return 0;
    return (size_t)n;
}

/* The frame bytes of l its far end has: acknowledged by its TCP (or, through a proxy, reported
 * read by the far end). A record whose frame ends within them is there (sent again, it would
 * only cost); what is missing when the receiver does not say so is its ACK. */
static uint64_t link_delivered(const struct plink *l)
{
    /* (master) the slave's side goes through a proxy: the kernel's acknowledgements come from
     * the proxy, which may hold the bytes (its phone's radio gone): only what the slave said it
     * read is there */
    if (l->report) return l->rcvd;
    return l->tx_count - link_held_bytes(l);
}

static bool sent_there(const struct sent *e, uint64_t delivered)
{
    return e->txend && e->txend <= delivered;
}

/* What the policy (pick.c) knows of l now. */
static struct lane_link_state link_state(struct plink *l)
{
    struct lane_link_state x = {.rate_Bps = l->rate, .srtt_s = l->srtt_s,
                                .notsent = link_notsent(l), .pending = l->wlen - l->woff,
                                .late = l->late};
    size_t held = link_held_bytes(l);
    if (l->proxied) { /* the proxy's share counts as unsent */
        double pipe = l->rate * l->min_rtt_s, queued = (double)held - pipe;
        if (queued > (double)x.notsent) x.notsent = (size_t)queued;
        x.srtt_s = l->min_rtt_s;
    }
    /* what the connection holds (in flight and unsent) stays within its rate times its
     * minimum RTT plus QUEUE_S: its TCP does not fill the link's queue (everything else on
     * the link would wait behind it); as the link allows more, the measured rate rises and so
     * does the bound */
    double cap = (l->rate > 1000 ? l->rate : 1000) * (l->min_rtt_s + QUEUE_S);
    if (cap < INFLIGHT_MIN) cap = INFLIGHT_MIN;
    x.ready = x.pending == 0 && link_notsent(l) <= NOTSENT_LOWAT && (double)held <= cap;
    return x;
}

/* The link that would deliver a small record first (whether it is ready or not), for control
 * records and for bytes sent again. With room for a frame; a link that is down only for control
 * records, and only when no other link has room (it may come back; what is sent again never
 * goes there); never avoid (a link id, or -1: the late one, a copy would queue behind). */
static struct plink *ctl_link(struct lane_peer *p, bool data, int avoid)
{
    struct plink *best = NULL;
    double best_eta = 0;
    uint64_t now = mono_us();
    for (int i = 0; i < LANE_MAX_LINKS; i++) {
        struct plink *l = p->links[i];
        if (!l || (data && l->suspended) || l->id == avoid) continue;
        link_info(l, now);
        if (data && l->backoff) continue;
        if (l->wlen - l->woff > LANE_FRAME_HDR + LANE_FRAME_MAX) continue; /* no room for a frame */
        struct lane_link_state x = link_state(l);
        bool last = l->suspended || l->backoff || l->late; /* (last resort) */
        double eta = lane_eta(&x, 64) + (last ? 1e6 : 0);
        if (!best || eta < best_eta) {
            best = l;
            best_eta = eta;
        }
    }
    return best;
}

/* The link for the next data record (size bytes) with backlog bytes of the streams waiting
 * behind it. Links in the order they would deliver the record; the first that can take it now
 * gets it, unless the links before it (busy now) would deliver the whole backlog before it
 * delivered the record: then waiting for them is better (*wait: the first of them). A slow link
 * is used only while the fast ones have more to carry than they can deliver before it. NULL
 * and *wait NULL: no link at all. */
static struct plink *pick_link(struct lane_peer *p, size_t size, uint64_t backlog,
                               struct plink **wait)
{
    struct lane_link_state st[LANE_MAX_LINKS];
    struct plink *ls[LANE_MAX_LINKS];
    int n = 0;
    uint64_t now = mono_us();
    for (int i = 0; i < LANE_MAX_LINKS; i++) {
        struct plink *l = p->links[i];
        if (!l || l->suspended) continue;
        link_info(l, now);
        if (l->backoff) continue; /* (what it holds waits for its retransmission timer) */
        st[n] = link_state(l);
        ls[n++] = l;
    }
    int w;
    int k = lane_pick(st, n, size, backlog, &w);
    *wait = w >= 0 ? ls[w] : NULL;
    return k >= 0 ? ls[k] : NULL;
}

static void link_write(struct plink *l)
{
    while (l->woff < l->wlen) {
        ssize_t n = send(l->fd, l->wbuf + l->woff, l->wlen - l->woff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            link_close(l, strerror(errno));
            return;
        }
        l->woff += (size_t)n;
        l->st.tx_bytes += (uint64_t)n;
        l->tx_count += (uint64_t)n;
        if (l->proxied) {
            uint64_t now = mono_us();
            unsigned last = (l->mark_head + l->mark_n + MARKS - 1) % MARKS;
            if (l->mark_n < MARKS && (!l->mark_n || now - l->mark[last].us >= MARK_EVERY_US)) {
                l->mark[(l->mark_head + l->mark_n) % MARKS] = (struct mark){l->tx_count, now};
                l->mark_n++;
            } else if (l->mark_n) {
                l->mark[last].off = l->tx_count; /* (the latest time it passed) */
                l->mark[last].us = now;
            }
        }
    }
    if (l->woff == l->wlen) l->woff = l->wlen = 0;
    if (l->woff < l->wlen && !ev_is_active(&l->wio)) ev_io_start(l->p->loop, &l->wio);
}

/* Seal plain[0..plen) as one frame on l. */
static int link_seal(struct plink *l, const uint8_t *plain, size_t plen)
{
    if (l->woff > 0 && l->woff == l->wlen) l->woff = l->wlen = 0;
    if (l->woff > 0) { /* (room at the end: move what is left to the front) */
        memmove(l->wbuf, l->wbuf + l->woff, l->wlen - l->woff);
        l->wlen -= l->woff;
        l->woff = 0;
    }
    size_t cap = 2 * (LANE_FRAME_HDR + LANE_FRAME_MAX);
    int n = lane_seal(&l->keys.tx, plain, plen, l->wbuf + l->wlen, cap - l->wlen);
    if (n < 0) {
        link_close(l, l->keys.tx.counter == UINT64_MAX ? "its frame counter is used up"
                                                       : "internal: no room for a frame");
        return -1;
    }
    l->wlen += (size_t)n;
    l->st.tx_frames++;
    for (unsigned k = l->log_n; k > 0; k--) { /* the records this frame carries */
        struct sent *e = &l->log[(l->log_head + k - 1) % LOG_CAP];
        if (e->txend) break;
        e->txend = l->tx_count + (l->wlen - l->woff);
    }
    int fd = l->fd;
    link_write(l);
    return fd < 0 ? -1 : 0;
}

/* Seal the peer's plain buffer as one frame on l. */
static int link_send_frame(struct plink *l)
{
    struct lane_peer *p = l->p;
    size_t n = p->plen;
    p->plen = 0;
    return link_seal(l, p->plain, n);
}

static void ack_later(struct lane_peer *p);

/* How many frame bytes this end read from l (when there is room for it): the master's report;
 * the slave's asks for them. */
static void link_send_rcvd(struct plink *l)
{
    if (l->wlen - l->woff > LANE_FRAME_HDR + LANE_FRAME_MAX) { /* no room: a little later */
        ack_later(l->p);
        return;
    }
    uint8_t plain[16];
    size_t n = 0;
    struct lane_rec r = {.type = LANE_RCVD, .received = l->rx_count};
    if (lane_rec_put(plain, sizeof plain, &n, &r) != 0) return;
    l->rcvd_told = l->rx_count;
    l->ask = false;
    link_seal(l, plain, n);
}

/* The far end read v frame bytes of l: samples of its rate and its RTT end to end. */
static void link_rcvd(struct plink *l, uint64_t v)
{
    if (l->p->is_master) { /* the slave's word that the connection goes through a proxy,
                            * and how much of it the slave read */
        l->report = true;
        if (v <= l->tx_count && v > l->rcvd) l->rcvd = v;
        return;
    }
    if (!l->proxied || v > l->tx_count || v <= l->rcvd) return; /* (old news) */
    uint64_t now = mono_us(), at = 0;
    while (l->mark_n && l->mark[l->mark_head].off <= v) {
        at = l->mark[l->mark_head].us;
        l->mark_head = (l->mark_head + 1) % MARKS;
        l->mark_n--;
    }
    if (at) {
        double rtt = (double)(now - at) / 1e6;
        if (l->e2e_min_rtt <= 0 || rtt <= l->e2e_min_rtt || now - l->e2e_min_us > E2E_MIN_KEEP_US) {
            l->e2e_min_rtt = rtt;
            l->e2e_min_us = now;
        }
        l->e2e_srtt = l->e2e_srtt > 0 ? 0.875 * l->e2e_srtt + 0.125 * rtt : rtt;
    }
    if (!l->prev_rcvd_us) {
        l->prev_rcvd = v;
        l->prev_rcvd_us = now;
    } else if (now - l->prev_rcvd_us >= E2E_RATE_WIN_US) {
        double r = (double)(v - l->prev_rcvd) / ((double)(now - l->prev_rcvd_us) / 1e6);
        if (r >= l->e2e_rate || now - l->e2e_rate_us > E2E_RATE_KEEP_US) {
            l->e2e_rate = r;
            l->e2e_rate_us = now;
        }
        l->prev_rcvd = v;
        l->prev_rcvd_us = now;
    }
    l->rcvd = v;
    l->info_us = 0; /* (read again) */
    want_flush(l->p);
}
static struct lane_stream *find(struct lane_peer *p, uint32_t id);
static void data_push(struct lane_stream *s);

/* When the receiver should have n bytes given to l now: after what l's connection holds (in
 * flight and unsent) and its own buffer, at its rate, plus one way. */
static uint64_t link_due_us(const struct plink *l, uint64_t now, size_t n)
{
    size_t held = link_held_bytes(l);
    double rate = l->rate > 1000 ? l->rate : 1000;
    double t = (double)(held + (l->wlen - l->woff) + n) / rate + l->min_rtt_s / 2;
    return now + (uint64_t)(t * 1e6);
}

static void log_sent(struct plink *l, uint32_t id, uint64_t start, uint64_t end)
{
    if (!l->log) return;
    while (l->log_n > 0) { /* entries the receiver holds are forgotten */
        const struct sent *e = &l->log[l->log_head];
        struct lane_stream *s = find(l->p, e->id);
        if (s && !s->dead && e->end > s->tx_held && l->log_n < LOG_CAP) break;
        if (s && !s->dead && e->end > s->tx_held) l->log_overflow = true; /* (full) */
        l->log_head = (l->log_head + 1) % LOG_CAP;
        l->log_n--;
    }
    l->log[(l->log_head + l->log_n++) % LOG_CAP] =
        (struct sent){id, start, end, link_due_us(l, mono_us(), (size_t)(end - start)), 0};
}

/* Link l's DATA that the receiver may not hold goes again (on the other links). */
static void resend_logged(struct plink *l)
{
    struct lane_peer *p = l->p;
    for (unsigned k = 0; k < l->log_n; k++) {
        const struct sent *e = &l->log[(l->log_head + k) % LOG_CAP];
        struct lane_stream *s = find(p, e->id);
        if (!s || s->dead || e->end <= s->tx_held) continue;
        uint64_t a = e->start > s->tx_held ? e->start : s->tx_held;
        if (s->rs_next < s->rs_end) { /* (one range per stream: the union's hull) */
            if (a > s->rs_next) a = s->rs_next;
            s->rs_end = e->end > s->rs_end ? e->end : s->rs_end;
        } else {
            s->rs_end = e->end;
        }
        s->rs_next = a;
        s->rs_probe = false;
        p->st.resent_bytes += e->end - a;
        data_push(s);
    }
    l->log_head = l->log_n = 0;
}

/* [a, b) of s goes again, ahead of other streams (it holds its receiver's delivery; the stream
 * at the head may be waiting for a link that cannot carry its copy); not on the link late (an
 * id, or -1); probe: one byte the receiver may hold already, to make it ACK again. */
static void copy_range(struct lane_stream *s, uint64_t a, uint64_t b, int late, bool probe)
{
    struct lane_peer *p = s->p;
    s->rs_next = a;
    s->rs_end = b;
    s->rs_late = late;
    s->rs_probe = probe;
    if (s->in_data) TAILQ_REMOVE(&p->dataq, s, data);
    TAILQ_INSERT_HEAD(&p->dataq, s, data);
    s->in_data = true;
    want_flush(p);
}

/* A link whose DATA arrives as it is: up, not backed off, not the one with id avoid. */
static bool data_link(const struct plink *l, int avoid)
{
    return l && !l->suspended && !l->backoff && l->id != avoid;
}

/* Is there a link for data but the one with id late? */
static bool other_link(const struct lane_peer *p, int late)
{
    for (int i = 0; i < LANE_MAX_LINKS; i++)
        if (data_link(p->links[i], late)) return true;
    return false;
}

/* The parts of s's bytes from `from` on that need no copy (the SPANS that start first; the
 * others are left out, which only means more copies): records whose link's far end has them,
 * and with carry, records on links that carry them (data_link). Then, from `from`: past those
 * that cover it, where the next starts (*next; UINT64_MAX: none). */
static uint64_t skip_spans(const struct lane_peer *p, const struct lane_stream *s, uint64_t from,
                           bool carry, uint64_t *next)
{
    struct { uint64_t a, b; } sp[SPANS];
    int n = 0;
    for (int i = 0; i < LANE_MAX_LINKS; i++) {
        const struct plink *l = p->links[i];
        if (!l) continue;
        bool c = carry && data_link(l, s->rs_late);
        uint64_t dl = link_delivered(l);
        for (unsigned k = 0; k < l->log_n; k++) {
            const struct sent *e = &l->log[(l->log_head + k) % LOG_CAP];
            if (e->id != s->id || e->end <= from || !(c || sent_there(e, dl))) continue;
            if (n == SPANS) { /* full: it replaces the last, if it starts before */
                if (e->start >= sp[n - 1].a) continue;
                n--;
            }
            int m = n++;
            while (m > 0 && sp[m - 1].a > e->start) { /* (insertion, by start) */
                sp[m] = sp[m - 1];
                m--;
            }
            sp[m].a = e->start;
            sp[m].b = e->end;
        }
    }
    uint64_t at = from;
    *next = UINT64_MAX;
    for (int k = 0; k < n; k++) {
        if (sp[k].a > at) {
            *next = sp[k].a;
            break;
        }
        if (sp[k].b > at) at = sp[k].b;
    }
    return at;
}

/* Where s's copy goes on from rs_next: past what links that are not late carry and what the
 * far end has already (a copy of it would only cost), up to where such a part starts next or a
 * record's size (*end). rs_end: nothing left to copy. */
static uint64_t copy_next(const struct lane_peer *p, const struct lane_stream *s, uint64_t *end)
{
    uint64_t at = s->rs_next, next;
    if (s->rs_probe) return *end = s->rs_end, at;
    at = skip_spans(p, s, at, true, &next);
    if (at >= s->rs_end) return *end = s->rs_end;
    uint64_t stop = s->rs_end - at > LANE_DATA_MAX ? at + LANE_DATA_MAX : s->rs_end;
    *end = next < stop ? next : stop;
    return at;
}

/* s's bytes beyond its in-order point that the late link (an id, or -1) and the links down or
 * backed off carry go again on the others: TCP delivers a link's records in order, so all that
 * a late link carried after the record that holds s is late too. false: none is known. */
static bool copy_late(struct lane_stream *s, int late)
{
    struct lane_peer *p = s->p;
    uint64_t a = s->tx_held, b = 0; /* (from the in-order point: copy_next skips the rest) */
    for (int i = 0; i < LANE_MAX_LINKS; i++) {
        const struct plink *l = p->links[i];
        if (!l || data_link(l, late)) continue;
        for (unsigned k = 0; k < l->log_n; k++) {
            const struct sent *e = &l->log[(l->log_head + k) % LOG_CAP];
            if (e->id == s->id && e->end > b) b = e->end;
        }
    }
    if (b > s->tx_next) b = s->tx_next;
    if (b <= a) return false;
    if (s->rs_next < s->rs_end) { /* (one range per stream: the union's hull) */
        if (s->rs_next < a) a = s->rs_next;
        if (s->rs_end > b) b = s->rs_end;
    }
    copy_range(s, a, b, late, false);
    return true;
}

void lane_peer_suspend_link(struct lane_peer *p, uint8_t id, bool down)
{
    struct plink *l = p->links[id];
    if (!l || l->suspended == down) return;
    l->suspended = down;
    l->st.suspended = down;
    if (down) {
        LOGD("TCP lane: link %u is down: nothing new on its connection (kept) until it is up",
             id);
        /* the ACKs it carried last may be lost with it: each stream's goes again */
        struct lane_stream *s;
        TAILQ_FOREACH(s, &p->all, all)
            if (!s->dead && (s->rx.next > 0 || lane_reasm_ready(&s->rx) > 0)) {
                s->need_ack = true;
                ctl_push(s);
            }
    }
    want_flush(p);
}

static bool plain_add(struct lane_peer *p, const struct lane_rec *r)
{
    return lane_rec_put(p->plain, sizeof p->plain, &p->plen, r) == 0;
}

/* ---------------------------------------------------------------- sending */

/* Control records (OPEN, OPENED, ACK, FIN-less RSTs) into the plain buffer, as many as fit. */
static void add_control(struct lane_peer *p)
{
    uint64_t now = mono_us();
    for (unsigned k = 0; k < RSTQ && p->rst_pending; k++) {
        if (!p->rst[k].pending) continue;
        struct lane_rec r = {.type = LANE_RST, .conn = p->rst[k].id, .status = p->rst[k].reason};
        if (!plain_add(p, &r)) return;
        p->rst[k].pending = false;
        p->rst[k].at_us = now;
        p->rst_pending--;
    }
    struct lane_stream *s;
    while ((s = TAILQ_FIRST(&p->ctlq))) {
        size_t mark = p->plen;
        bool ok = true;
        if (s->need_open) {
            struct lane_rec r = {.type = LANE_OPEN, .conn = s->id, .family = s->open_family,
                                 .port = s->open_port};
            memcpy(r.addr, s->open_addr, 16);
            ok = plain_add(p, &r);
        }
        if (ok && s->need_opened) {
            struct lane_rec r = {.type = LANE_OPENED, .conn = s->id, .status = s->status};
            ok = plain_add(p, &r);
        }
        uint64_t held = s->rx.next + lane_reasm_ready(&s->rx);
        if (ok && s->need_ack) {
            uint64_t off = s->rx.next + (lane_reasm_done(&s->rx) ? 1 : 0);
            struct lane_rec r = {.type = LANE_ACK, .conn = s->id, .offset = off,
                                 .received = held > off ? held : off};
            ok = plain_add(p, &r);
        }
        if (!ok) {
            p->plen = mark;
            return;
        }
        s->need_open = false;
        if (s->need_opened) {
            s->need_opened = false;
            if (s->status != LANE_OPEN_OK) { /* a refused OPEN: the stream ends with its answer */
                TAILQ_REMOVE(&p->ctlq, s, ctl);
                s->in_ctl = false;
                stream_free(s);
                continue;
            }
        }
        if (s->need_ack) {
            s->need_ack = false;
            s->ack_sent = s->rx.next;
            s->ack_held = held;
            p->st.acks_sent++;
        }
        TAILQ_REMOVE(&p->ctlq, s, ctl);
        s->in_ctl = false;
        if (!s->owner) maybe_free(s);
    }
}

/* Bytes the streams could send now besides the next record of s (the first 64 streams). */
static uint64_t backlog(const struct lane_peer *p, const struct lane_stream *first)
{
    uint64_t b = 0;
    int k = 0;
    const struct lane_stream *s;
    TAILQ_FOREACH(s, &p->dataq, data) {
        if (++k > 64) break;
        uint64_t lim = s->tx_end < s->tx_acked + LANE_WINDOW ? s->tx_end : s->tx_acked + LANE_WINDOW;
        uint64_t n = lim > s->tx_next ? lim - s->tx_next : 0;
        if (s == first) n = n > LANE_DATA_MAX ? n - LANE_DATA_MAX : 0;
        b += n;
    }
    return b;
}

/* How many of s's new bytes one DATA record takes now (below `end`). */
static size_t data_len(const struct lane_stream *s, uint64_t end)
{
    uint64_t lim = s->tx_end < s->tx_acked + LANE_WINDOW ? s->tx_end : s->tx_acked + LANE_WINDOW;
    if (lim > end) lim = end;
    size_t n = lim > s->tx_next ? (size_t)(lim - s->tx_next) : 0;
    if (n > LANE_DATA_MAX) n = LANE_DATA_MAX;
    size_t at = (size_t)(s->tx_next % TX_CAP);
    return n > TX_CAP - at ? TX_CAP - at : n;
}

/* s's next n new bytes (if they fit) and its FIN when they end it, into the plain buffer for
 * l; s goes to the back of the queues. */
static void add_data(struct lane_peer *p, struct plink *l, struct lane_stream *s, size_t n)
{
    if (s->dead) return;
    if (n) {
        struct lane_rec r = {.type = LANE_DATA, .conn = s->id, .offset = s->tx_next,
                             .data = s->tx + (size_t)(s->tx_next % TX_CAP), .len = n};
        if (p->plen + LANE_REC_HDR + 12 + n <= sizeof p->plain && plain_add(p, &r)) {
            if (s->tx_next == s->tx_held) s->progress_us = mono_us();
            log_sent(l, s->id, s->tx_next, s->tx_next + n);
            s->tx_next += n;
            p->st.tx_data_bytes += n;
        }
    }
    if (s->tx_fin && !s->fin_sent && s->tx_next == s->tx_end) {
        struct lane_rec r = {.type = LANE_FIN, .conn = s->id, .offset = s->tx_end};
        if (plain_add(p, &r)) {
            s->fin_sent = true;
            s->fin_us = mono_us();
        }
    }
    if (s->in_data) { /* round robin: to the back */
        TAILQ_REMOVE(&p->dataq, s, data);
        s->in_data = false;
    }
    if (s->in_prio) {
        TAILQ_REMOVE(&p->prioq, s, prio);
        s->in_prio = false;
    }
    data_push(s);
}

static void flush(struct lane_peer *p)
{
    for (int guard = 0; guard < 4096; guard++) {
        bool ctl = p->rst_pending || !TAILQ_EMPTY(&p->ctlq);
        struct lane_stream *q = TAILQ_FIRST(&p->prioq);
        while (q && !has_prio(q)) {
            TAILQ_REMOVE(&p->prioq, q, prio);
            q->in_prio = false;
            q = TAILQ_FIRST(&p->prioq);
        }
        if (q) { /* an interactive exchange's bytes: ahead of the bulk, on the fastest link */
            struct plink *l = ctl_link(p, true, -1);
            if (l) {
                p->plen = 0;
                if (ctl) add_control(p);
                add_data(p, l, q, data_len(q, q->prio_end));
                p->st.prio_records++;
                if (p->plen) link_send_frame(l);
                continue;
            }
        }
        struct lane_stream *s = TAILQ_FIRST(&p->dataq);
        while (s && !has_data(s)) { /* (the window or the end reached since it was queued) */
            TAILQ_REMOVE(&p->dataq, s, data);
            s->in_data = false;
            s = TAILQ_FIRST(&p->dataq);
        }
        if (!ctl && !s) return;
        size_t n = 0;
        if (s && s->rs_next < s->rs_end) { /* a stalled stream's late bytes, again */
            uint64_t end;
            s->rs_next = copy_next(p, s, &end);
            if (s->rs_next == s->rs_end) continue;
            size_t k = (size_t)(end - s->rs_next);
            size_t at = (size_t)(s->rs_next % TX_CAP);
            if (k > TX_CAP - at) k = TX_CAP - at;
            struct plink *l = ctl_link(p, true, s->rs_late);
            if (!l && s->rs_late >= 0 && !other_link(p, s->rs_late)) {
                s->rs_next = s->rs_end; /* (only the late link: it delivers them first) */
                continue;
            }
            if (!l) return; /* (the others' buffers are full: they want a flush when not) */
            p->plen = 0;
            if (ctl) add_control(p);
            struct lane_rec rr = {.type = LANE_DATA, .conn = s->id, .offset = s->rs_next,
                                  .data = s->tx + at, .len = k};
            if (!s->dead && plain_add(p, &rr)) {
                log_sent(l, s->id, s->rs_next, s->rs_next + k);
                s->rs_next += k;
                p->st.reinjected_bytes += k;
                l->st.copied_bytes += k;
            }
            if (p->plen) link_send_frame(l);
            continue;
        }
        if (s) n = data_len(s, UINT64_MAX);
        struct plink *l = NULL;
        if (s) {
            struct plink *w;
            l = pick_link(p, n + 64, backlog(p, s), &w);
            if (!w) return; /* no link connection: everything waits for one */
            if (!l) {
                if (!ev_is_active(&w->wio)) ev_io_start(p->loop, &w->wio);
                if (!ctl) return;
                s = NULL; /* control records only, on the link that delivers them first */
                n = 0;
            }
        }
        if (!l) l = ctl_link(p, false, -1);
        if (!l) return;
        p->plen = 0;
        if (ctl) add_control(p);
        if (s) add_data(p, l, s, n);
        if (p->plen == 0) return;
        if (link_send_frame(l) != 0) continue; /* (the link is gone: its records go again) */
    }
    want_flush(p); /* (more next time round the loop) */
}

static void on_flush(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)revents;
    struct lane_peer *p = w->data;
    ev_prepare_stop(loop, w);
    reap(p);
    flush(p);
}

static void on_ack_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct lane_peer *p = w->data;
    for (int i = 0; i < LANE_MAX_LINKS; i++) {
        struct plink *l = p->links[i];
        if (l && ((l->report && l->rx_count > l->rcvd_told) || l->ask))
            link_send_rcvd(l); /* (may close it) */
    }
    struct lane_stream *s;
    TAILQ_FOREACH(s, &p->all, all)
        if ((s->rx.next > s->ack_sent || s->rx.next + lane_reasm_ready(&s->rx) > s->ack_held) &&
            !s->dead) {
            s->need_ack = true;
            ctl_push(s);
        }
}

/* Where s's receiver is held (*at): from its in-order point (tx_held), past records whose link's
 * far end has them (their ACK is what did not come: lost, or still on its way), the first byte
 * no such record covers. When the receiver should have had it: the latest of the records there
 * (on links up, not backed off), the original or a copy (*late: the link of the earliest, the
 * one that is late first); 0 (and -1): none is known to hold it. */
static uint64_t held_due(const struct lane_peer *p, const struct lane_stream *s, int *late,
                         uint64_t *at)
{
    uint64_t next, a = skip_spans(p, s, s->tx_held, false, &next);
    *at = a;
    uint64_t due = 0, first = 0;
    *late = -1;
    for (int i = 0; i < LANE_MAX_LINKS; i++) {
        const struct plink *l = p->links[i];
        if (!data_link(l, -1)) continue;
        uint64_t dl = link_delivered(l);
        for (unsigned k = 0; k < l->log_n; k++) {
            const struct sent *e = &l->log[(l->log_head + k) % LOG_CAP];
            if (e->id != s->id || e->start > a || a >= e->end || sent_there(e, dl)) continue;
            if (e->due_us > due) due = e->due_us;
            if (first == 0 || e->due_us < first) {
                first = e->due_us;
                *late = l->id;
            }
        }
    }
    return due;
}

/* A stream whose in-order point stopped while bytes are out (a record late or lost on a slow or
 * dying link holds the receiver's delivery). Once the record that holds it is late, past its due
 * time by 4 x its link's RTT variation, the ACK's way back (half the fastest link's smoothed
 * RTT), the ACK delay and STALL_SLACK_S, it and what its link carried after it go again on the
 * other links (copy_late; the receiver drops what it has twice). Not before: a record still on
 * its way on a slower link is waited for (a copy would cost the fast link more than the wait
 * costs the stream). With no record known to hold it, its oldest 64 KiB go again after twice
 * the fastest RTT + 60 ms; when the far end has every record, one byte (it then ACKs again).
 * Every 25 ms. */
static void on_stall_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct lane_peer *p = w->data;
    /* No link connection for ORPHAN_S: the other end is gone (a slave that restarted or left);
     * its streams are reset, their endpoints told */
    uint64_t t = mono_us();
    if (p->nlinks > 0 || TAILQ_EMPTY(&p->all)) {
        p->nolink_since_us = t;
    } else if (t - p->nolink_since_us > ORPHAN_S * 1000000ull) {
        log_msg(LOG_INFO, "TCP lane: no link connection for %d s: its %d connections are reset",
                ORPHAN_S, p->nstreams);
        struct lane_stream *o;
        while ((o = TAILQ_FIRST(&p->all))) {
            void *owner = o->owner;
            stream_free(o);
            if (owner) p->cb.reset(p->cb.ctx, owner, LANE_RST_SHUTDOWN);
        }
        p->nolink_since_us = t;
    }
    struct lane_stream *s, *next;
    for (s = TAILQ_FIRST(&p->all); s; s = next) {
        next = TAILQ_NEXT(s, all);
        if (s->awaiting_open && t - s->created_us > EARLY_KEEP_US) {
            log_limited(&p->lim, LOG_WARN, "TCP lane: connection %u: bytes but no OPEN in %d s: "
                        "reset", s->id, EARLY_KEEP_US / 1000000);
            stream_kill(s, true, LANE_RST_PROTOCOL);
        }
    }
    double rtt = 0;
    for (int i = 0; i < LANE_MAX_LINKS; i++)
        if (p->links[i] && p->links[i]->srtt_s > 0 && (rtt == 0 || p->links[i]->srtt_s < rtt))
            rtt = p->links[i]->srtt_s;
    if (rtt == 0) return;
    uint64_t now = mono_us(), limit = (uint64_t)((2 * rtt + 0.06) * 1e6);
    uint64_t slack = (uint64_t)((rtt / 2 + ACK_DELAY + STALL_SLACK_S) * 1e6);
    TAILQ_FOREACH(s, &p->all, all) {
        if (!s->dead && s->fin_sent && !s->fin_acked && s->tx_acked == s->tx_end &&
            now - s->fin_us >= limit) { /* every byte delivered, the FIN not: it goes again */
            s->fin_sent = false;
            p->st.stalls++;
            data_push(s);
            continue;
        }
        if (s->dead || s->tx_next <= s->tx_held || s->rs_next < s->rs_end ||
            now - s->progress_us < slack)
            continue;
        /* its in-order point is on a link that is slower, not late: it waits for it; with no
         * record known to hold it, it waits for the longer limit */
        int late;
        uint64_t at;
        uint64_t due = held_due(p, s, &late, &at);
        if (due && late >= 0 && p->links[late]) /* (a link whose RTT varies: more patience) */
            due += (uint64_t)(4 * p->links[late]->rttvar_s * 1e6);
        if (due ? now < due + slack : now - s->progress_us < limit) continue;
        if (s->tx_held == s->rs_held) p->st.stalls_again++; /* (the last copy did not help) */
        s->rs_held = s->tx_held;
        s->progress_us = now;
        p->st.stalls++;
        /* what the late link carried from the record that holds it, and what links that are
         * down (or wait for their retransmission timer) carried, goes again; when no log knows
         * of it, the oldest bytes */
        if (late >= 0 && p->links[late]) { /* (its far end may be gone: see link_info) */
            struct plink *ll = p->links[late];
            link_info(ll, now);
            ll->late = true;
            ll->late_acked = ll->acked;
        }
        if (at >= s->tx_next) { /* the far end has every record: its ACKs went missing (on a
                                 * link that died); a byte it holds makes it ACK again at once */
            p->st.probes++;
            copy_range(s, s->tx_held, s->tx_held + 1, -1, true);
            continue;
        }
        if (copy_late(s, late)) continue;
        copy_range(s, s->tx_held,
                   s->tx_next < s->tx_held + REINJECT_MAX ? s->tx_next : s->tx_held + REINJECT_MAX,
                   -1, false);
    }
}

static void ack_later(struct lane_peer *p)
{
    if (!ev_is_active(&p->ack_w)) {
        ev_timer_set(&p->ack_w, ACK_DELAY, 0);
        ev_timer_start(p->loop, &p->ack_w);
    }
}

/* ---------------------------------------------------------------- receiving */

/* Give the endpoint what is in order; ACK what it took. */
static void deliver(struct lane_stream *s)
{
    struct lane_peer *p = s->p;
    while (s->owner && !s->dead) {
        const uint8_t *d;
        size_t n = lane_reasm_peek(&s->rx, &d);
        if (n == 0) break;
        size_t took = p->cb.deliver(p->cb.ctx, s->owner, d, n);
        if (s->dead) return;
        if (took > n) took = n;
        lane_reasm_consume(&s->rx, took);
        p->st.rx_data_bytes += took;
        if (took < n) break;
    }
    if (s->owner && !s->eof_told && lane_reasm_done(&s->rx)) {
        s->eof_told = true;
        s->need_ack = true;
        ctl_push(s);
        p->cb.eof(p->cb.ctx, s->owner);
        return;
    }
    uint64_t held = s->rx.next + lane_reasm_ready(&s->rx);
    if (s->rx.next - s->ack_sent >= ACK_EVERY || held - s->ack_held >= ACK_EVERY) {
        s->need_ack = true;
        ctl_push(s);
    } else if (s->rx.next > s->ack_sent || held > s->ack_held) {
        ack_later(p);
    }
}

static void on_open(struct lane_peer *p, const struct lane_rec *r)
{
    if (!p->is_master) return;
    if (!p->open_seen || seq_lt(p->open_top, r->conn)) p->open_top = r->conn;
    p->open_seen = true;
    struct lane_stream *s = find(p, r->conn);
    if (s && !s->awaiting_open) return; /* (again: it is being opened) */
    if (s) { /* its early bytes came first: kept */
        s->awaiting_open = false;
        p->cb.open(p->cb.ctx, s, r->family, r->addr, r->port);
        return;
    }
    if (p->nstreams < p->max_streams) s = stream_new(p, r->conn);
    if (!s) {
        /* answered without a stream: OPENED with the limit, as a one-off */
        p->st.refused_limit++;
        log_limited(&p->lim, LOG_WARN,
                    "TCP lane: %d connections, the limit (max_connections): refused one to "
                    "port %u", p->nstreams, r->port);
        s = stream_new(p, r->conn);
        if (!s) return;
        s->status = LANE_OPEN_LIMIT;
        s->need_opened = true;
        ctl_push(s);
        return;
    }
    s->owner = NULL;
    p->cb.open(p->cb.ctx, s, r->family, r->addr, r->port);
}

static void on_opened(struct lane_peer *p, struct lane_stream *s, const struct lane_rec *r)
{
    if (p->is_master || s->opened) return;
    s->need_open = false;
    if (r->status != LANE_OPEN_OK) {
        void *owner = s->owner;
        if (s->early) p->st.early_refused++;
        stream_free(s);
        if (owner) p->cb.opened(p->cb.ctx, owner, r->status);
        return;
    }
    s->opened = true;
    s->need_ack = true; /* (tells the master the OPENED arrived) */
    ctl_push(s);
    data_push(s);
    if (s->owner) p->cb.opened(p->cb.ctx, s->owner, LANE_OPEN_OK);
}

static void on_ack(struct lane_stream *s, uint64_t off, uint64_t held)
{
    struct lane_peer *p = s->p;
    s->opened_acked = true;
    if (held > s->tx_next) held = s->tx_next;
    if (held > s->tx_held) {
        s->tx_held = held;
        s->progress_us = mono_us();
        if (s->rs_next < held) s->rs_next = held;
        if (s->rs_end < s->rs_next) s->rs_end = s->rs_next;
    }
    uint64_t top = s->tx_end + (s->fin_sent ? 1 : 0);
    if (off > top) off = top; /* (never beyond what was sent) */
    if (s->tx_fin && s->fin_sent && off == s->tx_end + 1) {
        s->fin_acked = true;
        off = s->tx_end;
    }
    if (off > s->tx_acked) {
        s->tx_acked = off;
        if (s->tx_held < off) s->tx_held = off;
        if (s->tx_next < off) s->tx_next = off;
        data_push(s);
        if (s->owner) p->cb.room(p->cb.ctx, s->owner);
    }
    maybe_free(s);
}

static int on_record(struct lane_peer *p, const struct lane_rec *r)
{
    if (r->type == LANE_OPEN) {
        on_open(p, r);
        return 0;
    }
    if (r->type == LANE_RCVD) return 0; /* (of a link connection: link_read takes it) */
    struct lane_stream *s = find(p, r->conn);
    if (!s && p->is_master && (r->type == LANE_DATA || r->type == LANE_FIN) &&
        (!p->open_seen || r->conn - p->open_top - 1 < EARLY_AHEAD)) {
        /* bytes of a stream whose OPEN has not come yet (the slave sent them early, on
         * another link): kept for the OPEN; dropped at the limit (the OPEN gets the answer) */
        if (p->nstreams >= p->max_streams || !(s = stream_new(p, r->conn))) {
            p->st.rx_unknown++;
            return 0;
        }
        s->awaiting_open = true;
        p->st.early_kept++;
    }
    if (!s) {
        /* a stream that is gone (or was never): a RST, unless it is one */
        if (r->type != LANE_RST && r->type != LANE_ACK && r->type != LANE_OPENED) {
            p->st.rx_unknown++;
            rst_queue(p, r->conn, LANE_RST_PROTOCOL);
        }
        return 0;
    }
    switch (r->type) {
    case LANE_OPENED:
        on_opened(p, s, r);
        break;
    case LANE_DATA: {
        int rc = lane_reasm_add(&s->rx, r->offset, r->data, r->len);
        if (rc == LANE_REASM_DUP) { /* (sent again: the sender may have lost our last ACK) */
            p->st.rx_dup_bytes += r->len;
            s->need_ack = true;
            ctl_push(s);
        }
        if (rc < 0) {
            log_limited(&p->lim, LOG_WARN, "TCP lane: connection %u: DATA at %llu (%zu bytes) "
                        "%s: reset", s->id, (unsigned long long)r->offset, r->len,
                        rc == LANE_REASM_WINDOW ? "beyond the window" : "after its FIN");
            void *owner = s->owner;
            stream_kill(s, true, LANE_RST_PROTOCOL);
            if (owner) p->cb.reset(p->cb.ctx, owner, LANE_RST_PROTOCOL);
            return 0;
        }
        deliver(s);
        break;
    }
    case LANE_FIN:
        if (lane_reasm_fin(&s->rx, r->offset) < 0) {
            void *owner = s->owner;
            stream_kill(s, true, LANE_RST_PROTOCOL);
            if (owner) p->cb.reset(p->cb.ctx, owner, LANE_RST_PROTOCOL);
            return 0;
        }
        deliver(s);
        break;
    case LANE_RST: {
        void *owner = s->owner;
        p->st.rst_received++;
        stream_kill(s, false, 0);
        if (owner) p->cb.reset(p->cb.ctx, owner, r->status);
        break;
    }
    case LANE_ACK:
        on_ack(s, r->offset, r->received);
        break;
    default:
        break;
    }
    return 0;
}

static void link_read(struct plink *l)
{
    struct lane_peer *p = l->p;
    size_t cap = LANE_FRAME_HDR + LANE_FRAME_MAX;
    for (int rounds = 0; rounds < READS_PER_EVENT; rounds++) {
        ssize_t n = recv(l->fd, l->rbuf + l->rlen, cap - l->rlen, 0);
        if (n == 0) {
            link_close(l, "closed by the other end");
            return;
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            link_close(l, strerror(errno));
            return;
        }
        l->rlen += (size_t)n;
        l->st.rx_bytes += (uint64_t)n;
        size_t pos = 0;
        while (l->rlen - pos >= LANE_FRAME_HDR) {
            size_t blen = (size_t)l->rbuf[pos] << 8 | l->rbuf[pos + 1];
            if (l->rlen - pos < LANE_FRAME_HDR + blen) break;
            int plen = lane_open(&l->keys.rx, l->rbuf + pos + LANE_FRAME_HDR, blen);
            if (plen < 0) {
                link_close(l, "a frame that does not authenticate");
                return;
            }
            int nr = lane_rec_decode(l->rbuf + pos + LANE_FRAME_HDR, (size_t)plen, p->recs,
                                     MAX_RECS);
            if (nr < 0) {
                link_close(l, "a malformed frame");
                return;
            }
            l->st.rx_frames++;
            l->rx_count += LANE_FRAME_HDR + blen;
            uint8_t id = l->id;
            for (int i = 0; i < nr; i++) {
                if (p->recs[i].type == LANE_RCVD) link_rcvd(l, p->recs[i].received);
                else on_record(p, &p->recs[i]);
                if (p->links[id] != l) return; /* (closed meanwhile) */
            }
            pos += LANE_FRAME_HDR + blen;
        }
        memmove(l->rbuf, l->rbuf + pos, l->rlen - pos);
        l->rlen -= pos;
        if ((size_t)n < cap) break;
    }
    if (l->report && l->rx_count - l->rcvd_told >= RCVD_EVERY) link_send_rcvd(l);
    else if (l->report && l->rx_count > l->rcvd_told) ack_later(p);
}

static void on_link_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct plink *l = w->data;
    if (revents & EV_WRITE) {
        ev_io_stop(l->p->loop, &l->wio);
        link_write(l);
        if (l->fd < 0) return;
        want_flush(l->p);
        return;
    }
    link_read(l);
}

/* ---------------------------------------------------------------- link connections */

static void link_free(struct plink *l)
{
    ev_io_stop(l->p->loop, &l->rio);
    ev_io_stop(l->p->loop, &l->wio);
    if (l->fd >= 0) close(l->fd);
    sodium_memzero(&l->keys, sizeof l->keys);
    free(l->rbuf);
    free(l->wbuf);
    free(l->log);
    free(l);
}

static void link_close(struct plink *l, const char *why)
{
    struct lane_peer *p = l->p;
    uint8_t id = l->id;
    log_msg(LOG_INFO, "TCP lane: link %u's connection closed: %s", id, why);
    p->links[id] = NULL;
    p->nlinks--;
    p->st.link_losses++;
    /* what it carried may be lost: the DATA it carried that the receiver may not hold goes
     * again on the others (everything not acknowledged, if its log forgot some) */
    bool all = l->log_overflow;
    if (!all) resend_logged(l);
    link_free(l);
    uint64_t now = mono_us();
    struct lane_stream *s;
    TAILQ_FOREACH(s, &p->all, all) {
        if (all) {
            if (s->tx_next > s->tx_acked) p->st.resent_bytes += s->tx_next - s->tx_acked;
            s->tx_next = s->tx_acked;
            s->tx_held = s->tx_acked;
            s->rs_next = s->rs_end = s->tx_acked;
        }
        if (!s->fin_acked) s->fin_sent = false;
        if (!p->is_master && !s->opened) s->need_open = true;
        if (p->is_master && s->opened && !s->opened_acked) s->need_opened = true;
        if (s->need_open || s->need_opened || s->rx.next > 0 || lane_reasm_done(&s->rx)) {
            s->need_ack = s->need_ack || s->rx.next > 0 || s->eof_told;
            ctl_push(s);
        }
        data_push(s);
    }
    for (unsigned k = 0; k < RSTQ; k++)
        if (p->rst[k].at_us && now - p->rst[k].at_us < RST_KEEP_US && !p->rst[k].pending) {
            p->rst[k].pending = true;
            p->rst_pending++;
        }
    if (p->cb.link_gone) p->cb.link_gone(p->cb.ctx, id);
}

static char congestion[16]; /* the link connections' TCP congestion control, "" the system's */

int lane_set_congestion(const char *name)
{
    snprintf(congestion, sizeof congestion, "%s", name ? name : "");
    if (!congestion[0]) return 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int rc = fd >= 0 ? setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, congestion,
                                  (socklen_t)strlen(congestion))
                     : -1;
    if (fd >= 0) close(fd);
    return rc;
}

int lane_apply_congestion(int fd)
{
    if (!congestion[0]) return 0;
    char cur[16] = "";
    socklen_t len = sizeof cur - 1;
    if (getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cur, &len) == 0 && strcmp(cur, congestion) == 0)
        return 0; /* (inherited from the listener: setting it again may need privileges) */
    return setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, congestion, (socklen_t)strlen(congestion));
}

int lane_peer_add_link(struct lane_peer *p, int fd, uint8_t id, const struct lane_keys *keys,
                       const uint8_t *rest, size_t nrest)
{
    if (p->links[id]) link_close(p->links[id], "replaced by a new connection");
    struct plink *l = calloc(1, sizeof *l);
    if (!l) return -1;
    l->log = malloc(LOG_CAP * sizeof *l->log);
    l->rbuf = malloc(LANE_FRAME_HDR + LANE_FRAME_MAX);
    l->wbuf = malloc(2 * (LANE_FRAME_HDR + LANE_FRAME_MAX));
    if (!l->rbuf || !l->wbuf || !l->log || nrest > LANE_FRAME_HDR + LANE_FRAME_MAX) {
        free(l->log);
        free(l->rbuf);
        free(l->wbuf);
        free(l);
        return -1;
    }
    l->p = p;
    l->fd = fd;
    l->id = id;
    l->keys = *keys;
    if (nrest) memcpy(l->rbuf, rest, nrest);
    l->rlen = nrest;
    int lowat = NOTSENT_LOWAT, one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    unsigned utimeout = USER_TIMEOUT_MS; /* a link gone for good: its connection ends */
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &utimeout, sizeof utimeout);
    if (lane_apply_congestion(fd) != 0) {
        static struct log_limit lim;
        log_limited(&lim, LOG_WARN, "TCP lane: cannot set tcp_lane_congestion \"%s\" on a link "
                    "connection: %s (the system's default is used)", congestion, strerror(errno));
    }
    ev_io_init(&l->rio, on_link_io, fd, EV_READ);
    ev_io_init(&l->wio, on_link_io, fd, EV_WRITE);
    l->rio.data = l->wio.data = l;
    ev_io_start(p->loop, &l->rio);
    p->links[id] = l;
    p->nlinks++;
    link_info(l, mono_us() + INFO_EVERY_US);
    /* a new link: what waited for one goes now; what is unacknowledged may have been lost
     * with an earlier connection of this link (closed before this end noticed) */
    struct lane_stream *s;
    TAILQ_FOREACH(s, &p->all, all) {
        if (s->need_open || s->need_opened || s->need_ack) ctl_push(s);
        data_push(s);
    }
    want_flush(p);
    if (nrest) link_read(l);
    return 0;
}

void lane_peer_link_proxied(struct lane_peer *p, uint8_t id)
{
    struct plink *l = p->links[id];
    if (!l) return;
    l->proxied = true;
    l->rate = E2E_RATE_FIRST; /* (the proxy's hop is not the link) */
    l->info_us = 0;
    l->ask = true; /* (the RCVD that asks the master for its reports goes from the timer) */
    ack_later(p);
}

void lane_peer_drop_link(struct lane_peer *p, uint8_t id, const char *why)
{
    if (p->links[id]) link_close(p->links[id], why);
}

int lane_peer_links(const struct lane_peer *p)
{
    return p->nlinks;
}

/* ---------------------------------------------------------------- the peer */

struct lane_peer *lane_peer_new(struct ev_loop *loop, bool is_master, int max_streams,
                                const struct lane_peer_cb *cb)
{
    struct lane_peer *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->recs = malloc(MAX_RECS * sizeof *p->recs);
    if (!p->recs) {
        free(p);
        return NULL;
    }
    p->loop = loop;
    p->cb = *cb;
    p->is_master = is_master;
    p->max_streams = max_streams;
    /* a random first id: a master still holding a restarted slave's streams does not take the
     * new ones for them */
#ifdef BRAID_FUZZ
    p->next_id = 1; /* (the fuzz target's records name streams 1 and 2) */
#else
    p->next_id = randombytes_uniform(0xfffffff0u) + 1;
#endif
    p->nolink_since_us = mono_us();
    TAILQ_INIT(&p->all);
    TAILQ_INIT(&p->ctlq);
    TAILQ_INIT(&p->dataq);
    TAILQ_INIT(&p->prioq);
    ev_prepare_init(&p->flush_w, on_flush);
    p->flush_w.data = p;
    ev_timer_init(&p->ack_w, on_ack_timer, ACK_DELAY, 0);
    p->ack_w.data = p;
    ev_timer_init(&p->stall_w, on_stall_timer, STALL_CHECK_S, STALL_CHECK_S);
    p->stall_w.data = p;
    ev_timer_start(loop, &p->stall_w);
    return p;
}

void lane_peer_free(struct lane_peer *p)
{
    if (!p) return;
    ev_prepare_stop(p->loop, &p->flush_w);
    ev_timer_stop(p->loop, &p->ack_w);
    ev_timer_stop(p->loop, &p->stall_w);
    for (int i = 0; i < LANE_MAX_LINKS; i++)
        if (p->links[i]) link_free(p->links[i]);
    struct lane_stream *s;
    while ((s = TAILQ_FIRST(&p->all))) stream_free(s);
    reap(p);
    free(p->recs);
    free(p);
}

const struct lane_peer_stats *lane_peer_stats(const struct lane_peer *p, int *nstreams)
{
    if (nstreams) *nstreams = p->nstreams;
    return &p->st;
}

const struct lane_link_stats *lane_peer_link_stats(const struct lane_peer *p, uint8_t id)
{
    return p->links[id] ? &p->links[id]->st : NULL;
}

/* ---------------------------------------------------------------- the endpoints' side */

struct lane_stream *lane_stream_open(struct lane_peer *p, void *owner, int family,
                                     const uint8_t addr[16], uint16_t port)
{
    if (p->is_master || p->nstreams >= p->max_streams) return NULL;
    uint32_t id = p->next_id++;
    if (p->next_id == 0) p->next_id = 1;
    struct lane_stream *s = stream_new(p, id);
    if (!s) return NULL;
    s->owner = owner;
    s->need_open = true;
    s->open_family = (uint8_t)family;
    memcpy(s->open_addr, addr, 16);
    s->open_port = port;
    ctl_push(s);
    return s;
}

void lane_stream_opened(struct lane_stream *s, void *owner, int status)
{
    s->status = (uint8_t)status;
    s->need_opened = true;
    ctl_push(s);
    if (status != LANE_OPEN_OK) {
        s->owner = NULL; /* (freed once its OPENED is out) */
        return;
    }
    s->owner = owner;
    s->opened = true;
    data_push(s);
    deliver(s); /* (bytes that came with the OPEN or before it) */
}

size_t lane_stream_room(const struct lane_stream *s)
{
    if (s->tx_fin || s->dead) return 0;
    return TX_CAP - (size_t)(s->tx_end - s->tx_acked);
}

bool lane_stream_in_window(const struct lane_stream *s)
{
    return s->tx_end - s->tx_acked <= LANE_WINDOW;
}

size_t lane_stream_write(struct lane_stream *s, const uint8_t *data, size_t len)
{
    if (s->tx_end == s->tx_acked && s->prio_end < s->tx_end + PRIO_AGAIN)
        s->prio_end = s->tx_end + PRIO_AGAIN; /* (all it sent arrived: an exchange) */
    size_t room = lane_stream_room(s);
    if (len > room) len = room;
    size_t done = 0;
    while (done < len) {
        size_t at = (size_t)(s->tx_end % TX_CAP);
        size_t n = TX_CAP - at < len - done ? TX_CAP - at : len - done;
        memcpy(s->tx + at, data + done, n);
        s->tx_end += n;
        done += n;
    }
    if (done) data_push(s);
    return done;
}

void lane_stream_shutdown(struct lane_stream *s)
{
    if (s->tx_fin) return;
    s->tx_fin = true;
    data_push(s);
}

void lane_stream_resume(struct lane_stream *s)
{
    deliver(s);
}

void lane_stream_reset(struct lane_stream *s, int reason)
{
    s->p->st.rst_local++;
    stream_kill(s, true, (uint8_t)reason);
}

void lane_stream_release(struct lane_stream *s)
{
    s->owner = NULL;
    maybe_free(s);
}

void lane_stream_early(struct lane_stream *s)
{
    if (s->p->is_master || s->opened || s->early) return;
    s->early = true;
    s->p->st.early_sent++;
    data_push(s);
}

uint32_t lane_stream_id(const struct lane_stream *s)
{
    return s->id;
}

#ifdef BRAID_FUZZ
int lane_peer_fuzz_input(struct lane_peer *p, const uint8_t *plain, size_t len)
{
    int nr = lane_rec_decode(plain, len, p->recs, MAX_RECS);
    for (int i = 0; i < nr; i++) on_record(p, &p->recs[i]);
    reap(p);
    return nr;
}
#endif
