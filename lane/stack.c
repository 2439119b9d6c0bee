/* stack.c: the slave's TCP terminator: Debian's lwIP run single-threaded inside the event loop
 * (lwip_init, no tcpip thread; its timers on an ev_timer), taking the TCP connections that
 * clients open through the tunnel device to any address. lwIP accepts segments only for its own
 * address, so each connection is rewritten on the way in to come from a synthetic address and
 * port of its own and to go to lwIP's one listener, and back on the way out (docs/LANE.md). */
#include "lane.h"

#include <arpa/inet.h>
#include <ev.h>
#include <stdio.h>

#include <stdlib.h>
#include <string.h>

#include "lwip/init.h"
#include "lwip/ip.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/tcp.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/timeouts.h"

#include "../common/log.h"
#include "../common/util.h"

/* Addresses inside the process only (never on the wire): lwIP's, and the one every rewritten
 * connection comes from (the port tells the connections apart); IPv4 and IPv6 (a ULA). */
static const uint8_t STACK4[4] = {10, 255, 255, 1}, CLIENT4[4] = {10, 255, 255, 2};
static const uint8_t STACK6[16] = {0xfd, 0, 0xb7, 0xa1, 0, 0xd, [15] = 1};
static const uint8_t CLIENT6[16] = {0xfd, 0, 0xb7, 0xa1, 0, 0xd, [15] = 2};
#define LISTEN_PORT 1
#define MAX_CONNS 65534 /* synthetic ports 1 .. 65534 */
#define HASH_BUCKETS 4096 /* (a power of 2) */

struct lane_conn {
    struct lane_stack *s;
    struct tcp_pcb *pcb; /* NULL once lwIP let it go */
    uint16_t port;       /* its synthetic port (the slot + 1) */
    /* the client's view: from caddr:cport to daddr:dport (network order; IPv4: 4 bytes) */
    int family;          /* 4 or 6 */
    uint8_t caddr[16], daddr[16];
    uint16_t cport, dport;
    void *owner;         /* the owner's context (accept's result) */
    bool accepted;       /* lwIP completed the handshake with the client */
    uint8_t *syn;        /* the client's SYN, held until the owner says the far end is open */
    size_t synlen;
    bool in_accept;      /* the owner's accept() is running */
    int early;           /* its lane_conn_proceed's status during accept(), else -1 */
    bool rx_fin, tx_fin; /* the client's FIN came; ours went */
    bool closing;        /* closed for the owner; lwIP still ends it (FIN, ACKs, TIME_WAIT) */
    bool reset_on_accept; /* reset before its handshake ended: a RST once it does */
    struct lane_conn *hnext; /* the next in its hash bucket (by the client's 4-tuple) */
    uint64_t created_us, closed_us;
};

struct lane_stack {
    struct ev_loop *loop;
    struct lane_stack_cb cb;
    struct netif netif;
    struct tcp_pcb *listener, *listener6;
    ev_timer timers;
    struct lane_conn **slot; /* by synthetic port - 1 */
    int nconns, next;        /* slots in use; slots ever used (0 .. next - 1) */
    uint16_t *freed;         /* slots below next that are free again (a stack) */
    int nfreed;
    struct lane_conn *bucket[HASH_BUCKETS]; /* by the client's 4-tuple */
    uint8_t out[65535];
    struct lane_stack_counters c;
    bool no_new; /* SYNs are left to the packet path */
};

/* Only one stack per process: lwIP has global state. */
static struct lane_stack *the_stack;

/* ---------------------------------------------------------------- checksums and rewriting */

static uint32_t sum16(const uint8_t *p, size_t len, uint32_t acc)
{
    for (size_t i = 0; i + 1 < len; i += 2) acc += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (len & 1) acc += (uint32_t)(p[len - 1] << 8);
    return acc;
}

static uint16_t fold(uint32_t acc)
{
    while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
    return (uint16_t)~acc;
}

/* Where a packet's addresses are, and how long they are, by family. */
#define SRC_AT(fam) ((fam) == 4 ? 12 : 8)
#define DST_AT(fam) ((fam) == 4 ? 16 : 24)
#define ALEN(fam) ((size_t)((fam) == 4 ? 4 : 16))

/* The TCP checksum's sum over the pseudo-header and the segment (0 when it is right). */
static uint16_t tcp_sum(const uint8_t *pkt, size_t len, size_t off, int fam)
{
    uint32_t acc = sum16(pkt + SRC_AT(fam), 2 * ALEN(fam), 0) + 6 + (uint32_t)(len - off);
    return fold(sum16(pkt + off, len - off, acc));
}

/* Set pkt's checksums (IPv4 header; TCP segment at off). */
static void fix_checksums(uint8_t *pkt, size_t len, size_t off, int fam)
{
    if (fam == 4) {
        pkt[10] = pkt[11] = 0;
        put_be16(pkt + 10, fold(sum16(pkt, off, 0)));
    }
    uint8_t *tcp = pkt + off;
    tcp[16] = tcp[17] = 0;
    put_be16(tcp + 16, tcp_sum(pkt, len, off, fam));
}

/* A TCP segment (IPv4 without fragments, or IPv6 with TCP as the first next header): the TCP
 * header's offset and *fam; 0 when pkt is not one (or is malformed). */
static size_t tcp_at(const uint8_t *pkt, size_t len, int *fam)
{
    size_t off;
    if (len >= 20 && (pkt[0] >> 4) == 4) {
        off = (size_t)(pkt[0] & 15) * 4;
        if (pkt[9] != 6 || off < 20 || len < off + 20 || get_be16(pkt + 2) != len) return 0;
        if (get_be16(pkt + 6) & 0x3fff) return 0; /* a fragment: not ours */
        *fam = 4;
    } else if (len >= 40 && (pkt[0] >> 4) == 6) {
        off = 40;
        if (pkt[6] != 6 || len < off + 20 || get_be16(pkt + 4) != len - 40) return 0;
        *fam = 6;
    } else {
        return 0;
    }
    size_t doff = (size_t)(pkt[off + 12] >> 4) * 4;
    if (doff < 20 || len < off + doff) return 0;
    return off;
}

/* The bucket of a segment's connection: FNV-1a over its family, addresses and ports. */
static unsigned bucket_of(int fam, const uint8_t *pkt, size_t off)
{
    uint32_t h = FNV1A_START ^ (uint32_t)fam;
    h = fnv1a(h, pkt + SRC_AT(fam), ALEN(fam));
    h = fnv1a(h, pkt + DST_AT(fam), ALEN(fam));
    return fnv1a(h, pkt + off, 4) & (HASH_BUCKETS - 1);
}

static struct lane_conn *find(struct lane_stack *s, int fam, const uint8_t *pkt, size_t off)
{
    const uint8_t *src = pkt + SRC_AT(fam), *dst = pkt + DST_AT(fam), *tcp = pkt + off;
    for (struct lane_conn *c = s->bucket[bucket_of(fam, pkt, off)]; c; c = c->hnext)
        if (c->family == fam && memcmp(&c->cport, tcp, 2) == 0 &&
            memcmp(&c->dport, tcp + 2, 2) == 0 && memcmp(c->caddr, src, ALEN(fam)) == 0 &&
            memcmp(c->daddr, dst, ALEN(fam)) == 0)
            return c;
    return NULL;
}

/* A connection for the SYN in pkt: a free slot (its synthetic port), its 4-tuple, hashed. */
static struct lane_conn *conn_new(struct lane_stack *s, int fam, const uint8_t *pkt, size_t off)
{
    int i;
    if (s->nfreed) i = s->freed[--s->nfreed];
    else if (s->next < MAX_CONNS) i = s->next++;
    else return NULL;
    struct lane_conn *c = calloc(1, sizeof *c);
    if (!c) {
        s->freed[s->nfreed++] = (uint16_t)i;
        return NULL;
    }
    c->s = s;
    c->created_us = mono_us();
    c->port = (uint16_t)(i + 1);
    c->family = fam;
    memcpy(c->caddr, pkt + SRC_AT(fam), ALEN(fam));
    memcpy(c->daddr, pkt + DST_AT(fam), ALEN(fam));
    memcpy(&c->cport, pkt + off, 2);
    memcpy(&c->dport, pkt + off + 2, 2);
    unsigned b = bucket_of(fam, pkt, off);
    c->hnext = s->bucket[b];
    s->bucket[b] = c;
    s->slot[i] = c;
    s->nconns++;
    return c;
}

static void conn_free(struct lane_conn *c)
{
    struct lane_stack *s = c->s;
    /* its bucket, from its own 4-tuple laid out as a segment would carry it */
    uint8_t key[40 + 4] = {0};
    int fam = c->family;
    memcpy(key + SRC_AT(fam), c->caddr, ALEN(fam));
    memcpy(key + DST_AT(fam), c->daddr, ALEN(fam));
    memcpy(key + 40, &c->cport, 2);
    memcpy(key + 42, &c->dport, 2);
    for (struct lane_conn **pp = &s->bucket[bucket_of(fam, key, 40)]; *pp; pp = &(*pp)->hnext)
        if (*pp == c) {
            *pp = c->hnext;
            break;
        }
    s->slot[c->port - 1] = NULL;
    s->freed[s->nfreed++] = (uint16_t)(c->port - 1);
    s->nconns--;
    free(c->syn);
    free(c);
}

static void feed(struct lane_stack *s, struct lane_conn *c, const uint8_t *pkt, size_t len,
                 size_t off);

/* The answer to a held SYN the far end could not take: a RST (refused) or an ICMP
 * destination unreachable (host: unreachable, no answer), from the destination to the client. */
static void refuse_syn(struct lane_stack *s, const struct lane_conn *c, bool icmp)
{
    int fam = c->family;
    const uint8_t *syn = c->syn;
    size_t ioff = fam == 4 ? 20 : 40;
    uint8_t *o = s->out;
    size_t len;
    memset(o, 0, ioff);
    if (icmp) {
        size_t quote = fam == 4 ? (size_t)(syn[0] & 15) * 4 + 8 : c->synlen;
        if (quote > c->synlen) quote = c->synlen;
        if (quote > 1200) quote = 1200;
        len = ioff + 8 + quote;
        memset(o + ioff, 0, 8);
        o[ioff] = fam == 4 ? 3 : 1;     /* destination unreachable */
        o[ioff + 1] = fam == 4 ? 1 : 3; /* host / address unreachable */
        memcpy(o + ioff + 8, syn, quote);
    } else {
        size_t toff = fam == 4 ? (size_t)(syn[0] & 15) * 4 : 40;
        len = ioff + 20;
        uint8_t *t = o + ioff;
        memset(t, 0, 20);
        memcpy(t, &c->dport, 2);
        memcpy(t + 2, &c->cport, 2);
        put_be32(t + 8, get_be32(syn + toff + 4) + 1); /* ACK the SYN */
        t[12] = 5 << 4;
        t[13] = 0x14; /* RST, ACK */
    }
    if (fam == 4) {
        o[0] = 0x45;
        put_be16(o + 2, (uint16_t)len);
        o[8] = 64;
        o[9] = icmp ? 1 : 6;
    } else {
        o[0] = 0x60;
        put_be16(o + 4, (uint16_t)(len - 40));
        o[6] = icmp ? 58 : 6;
        o[7] = 64;
    }
    memcpy(o + SRC_AT(fam), c->daddr, ALEN(fam));
    memcpy(o + DST_AT(fam), c->caddr, ALEN(fam));
    if (!icmp) {
        fix_checksums(o, len, ioff, fam);
    } else {
        uint32_t acc = 0;
        if (fam == 6) acc = sum16(o + SRC_AT(fam), 32, 0) + 58 + (uint32_t)(len - ioff);
        put_be16(o + ioff + 2, fold(sum16(o + ioff, len - ioff, acc)));
        if (fam == 4) put_be16(o + 10, fold(sum16(o, 20, 0)));
    }
    s->c.out_packets++;
    s->cb.output(s->cb.ctx, o, len);
}

void lane_conn_proceed(struct lane_conn *c, int status)
{
    struct lane_stack *s = c->s;
    if (!c->syn) return;
    if (c->in_accept) {
        c->early = status;
        return;
    }
    if (status == 0) {
        uint8_t *syn = c->syn;
        size_t len = c->synlen;
        c->syn = NULL;
        int fam = 0;
        size_t off = tcp_at(syn, len, &fam);
        feed(s, c, syn, len, off);
        free(syn);
        return;
    }
    refuse_syn(s, c, status != 1);
    s->c.refused++;
    conn_free(c);
}

/* ---------------------------------------------------------------- lwIP's side */

/* A packet lwIP sends: from its listener to a connection's synthetic port -> from the
 * connection's destination to its client. */
static void emit(struct pbuf *p)
{
    struct lane_stack *s = the_stack;
    size_t len = pbuf_copy_partial(p, s->out, sizeof s->out, 0);
    int fam = 0;
    size_t off = tcp_at(s->out, len, &fam);
    if (!off) { /* lwIP's own IPv6 chatter (MLD, router and neighbour solicitations) */
        s->c.out_other++;
        return;
    }
    uint8_t *tcp = s->out + off;
    uint16_t port = get_be16(tcp + 2);
    struct lane_conn *c = port >= 1 && port <= s->next ? s->slot[port - 1] : NULL;
    if (!c || c->family != fam ||
        memcmp(s->out + DST_AT(fam), fam == 4 ? CLIENT4 : CLIENT6, ALEN(fam)) != 0) {
        s->c.out_dropped++;
        return;
    }
    memcpy(s->out + SRC_AT(fam), c->daddr, ALEN(fam));
    memcpy(s->out + DST_AT(fam), c->caddr, ALEN(fam));
    memcpy(tcp, &c->dport, 2);
    memcpy(tcp + 2, &c->cport, 2);
    fix_checksums(s->out, len, off, fam);
    s->c.out_packets++;
    s->cb.output(s->cb.ctx, s->out, len);
}

static err_t netif_out(struct netif *n, struct pbuf *p, const ip4_addr_t *dst)
{
    (void)n;
    (void)dst;
    emit(p);
    return ERR_OK;
}

static err_t netif_out6(struct netif *n, struct pbuf *p, const ip6_addr_t *dst)
{
    (void)n;
    (void)dst;
    emit(p);
    return ERR_OK;
}

static err_t netif_init_cb(struct netif *n)
{
    n->mtu = 1500;
    n->output = netif_out;
    n->output_ip6 = netif_out6;
    n->flags = 0;
    n->name[0] = 'b';
    n->name[1] = 'l';
    return ERR_OK;
}

static void on_err(void *arg, err_t err)
{
    struct lane_conn *c = arg;
    if (!c) return;
    c->pcb = NULL; /* lwIP freed it */
    if (c->accepted && !c->closing)
        c->s->cb.closed(c->s->cb.ctx, c->owner, err == ERR_RST || err == ERR_ABRT);
    conn_free(c);
}

/* Both sides closed: the owner hears of it; lwIP still ends the connection (its last
 * segments, retransmissions, TIME_WAIT), so the rewriting stays until it must be done
 * (CLOSING_KEEP_US) or lwIP reports the pcb gone (on_err). */
#define CLOSING_KEEP_US 130000000u /* lwIP's TIME_WAIT: 2 x TCP_MSL (60 s), and a margin */

static void close_if_done(struct lane_conn *c)
{
    if (!c->rx_fin || !c->tx_fin || !c->pcb || c->closing) return;
    struct lane_stack *s = c->s;
    struct tcp_pcb *pcb = c->pcb;
    c->pcb = NULL; /* (lwIP frees it when it is done: no pointer kept) */
    c->closing = true;
    c->closed_us = mono_us();
    if (tcp_close(pcb) != ERR_OK) {
        tcp_arg(pcb, NULL);
        tcp_abort(pcb);
    }
    s->c.closed++;
    void *owner = c->owner;
    c->owner = NULL;
    s->cb.closed(s->cb.ctx, owner, false);
}

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
    struct lane_conn *c = arg;
    (void)err;
    if (!c || c->closing) { /* a connection already given up: nothing more for anyone */
        if (p) {
            tcp_recved(pcb, p->tot_len);
            pbuf_free(p);
        }
        return ERR_OK;
    }
    struct lane_stack *s = c->s;
    if (!p) { /* the client's FIN */
        c->rx_fin = true;
        bool ours_went = c->tx_fin;
        s->cb.recv(s->cb.ctx, c->owner, NULL, 0);
        /* (if the owner closed its side in the callback, the connection is gone already) */
        if (ours_went) close_if_done(c);
        return ERR_OK;
    }
    size_t credit = 0;
    for (struct pbuf *q = p; q && c->pcb == pcb && !c->closing; q = q->next)
        credit += s->cb.recv(s->cb.ctx, c->owner, q->payload, q->len);
    if (credit && c->pcb == pcb) tcp_recved(pcb, (u16_t)credit);
    pbuf_free(p);
    return ERR_OK;
}

static err_t on_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
    struct lane_conn *c = arg;
    (void)pcb;
    if (c && !c->closing && c->s->cb.sent) c->s->cb.sent(c->s->cb.ctx, c->owner, len);
    return ERR_OK;
}

static err_t on_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
    struct lane_stack *s = arg;
    if (err != ERR_OK || !pcb) return ERR_VAL;
    uint16_t port = pcb->remote_port;
    struct lane_conn *c = port >= 1 && port <= s->next ? s->slot[port - 1] : NULL;
    if (!c) {
        tcp_abort(pcb);
        return ERR_ABRT;
    }
    if (c->reset_on_accept) { /* (the owner let it go already) */
        tcp_arg(pcb, NULL);
        tcp_abort(pcb); /* a RST to the client */
        conn_free(c);
        return ERR_ABRT;
    }
    c->pcb = pcb;
    c->closing = c->rx_fin = c->tx_fin = false;
    tcp_arg(pcb, c);
    tcp_err(pcb, on_err);
    c->accepted = true;
    tcp_recv(pcb, on_recv);
    tcp_sent(pcb, on_sent);
    s->c.accepted++;
    return ERR_OK;
}

#define HALF_OPEN_US 30000000u /* a SYN whose handshake never completed: forgotten after */

static void on_timers(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    sys_check_timeouts();
    struct lane_stack *s = w->data;
    uint64_t now = mono_us();
    for (int i = 0; i < s->next; i++) {
        struct lane_conn *c = s->slot[i];
        if (c && !c->accepted && !c->closing && now - c->created_us > HALF_OPEN_US) {
            /* (held for an answer that never came, or a handshake the client never ended) */
            if (c->owner) s->cb.closed(s->cb.ctx, c->owner, true);
            conn_free(c);
        }
        else if (c && c->closing && now - c->closed_us > CLOSING_KEEP_US) conn_free(c);
    }
    u32_t ms = sys_timeouts_sleeptime();
    ev_timer_stop(loop, w);
    ev_timer_set(w, ms == SYS_TIMEOUTS_SLEEPTIME_INFINITE ? 1.0 : ms / 1000.0, 0.);
    ev_timer_start(loop, w);
}

/* ---------------------------------------------------------------- the interface */

struct lane_stack *lane_stack_new(struct ev_loop *loop, const struct lane_stack_cb *cb, char *err,
                                  size_t errlen)
{
    if (the_stack) {
        snprintf(err, errlen, "one TCP lane stack per process");
        return NULL;
    }
    struct lane_stack *s = calloc(1, sizeof *s);
    if (s) s->slot = calloc(MAX_CONNS, sizeof *s->slot);
    if (s) s->freed = calloc(MAX_CONNS, sizeof *s->freed);
    if (!s || !s->slot || !s->freed) {
        if (s) free(s->slot);
        if (s) free(s->freed);
        if (s) free(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->loop = loop;
    s->cb = *cb;
    the_stack = s;
    static bool initialised;
    if (!initialised) {
        lwip_init(); /* no tcpip thread: everything runs in this loop */
        initialised = true;
    }
    ip4_addr_t addr, mask, gw;
    IP4_ADDR(&addr, 10, 255, 255, 1);
    IP4_ADDR(&mask, 255, 255, 255, 0);
    IP4_ADDR(&gw, 0, 0, 0, 0);
    if (!netif_add(&s->netif, &addr, &mask, &gw, NULL, netif_init_cb, ip_input)) {
        snprintf(err, errlen, "lwIP refused its interface");
        goto fail;
    }
    netif_set_default(&s->netif);
    netif_set_link_up(&s->netif);
    netif_set_up(&s->netif);
    struct tcp_pcb *pcb = tcp_new();
    ip_addr_t any4;
    ip_addr_copy_from_ip4(any4, addr);
    if (!pcb || tcp_bind(pcb, &any4, LISTEN_PORT) != ERR_OK) {
        snprintf(err, errlen, "lwIP refused its listener");
        if (pcb) tcp_close(pcb);
        netif_remove(&s->netif);
        goto fail;
    }
    s->listener = tcp_listen_with_backlog(pcb, 255);
    if (!s->listener) {
        snprintf(err, errlen, "lwIP refused to listen");
        netif_remove(&s->netif);
        goto fail;
    }
    tcp_arg(s->listener, s);
    tcp_accept(s->listener, on_accept);
    /* IPv6: lwIP's address in a slot of its own, usable at once (no duplicate detection) */
    ip6_addr_t a6;
    memcpy(&a6.addr, STACK6, 16);
    ip6_addr_clear_zone(&a6);
    netif_ip6_addr_set(&s->netif, 1, &a6);
    netif_ip6_addr_set_state(&s->netif, 1, IP6_ADDR_PREFERRED);
    struct tcp_pcb *pcb6 = tcp_new_ip_type(IPADDR_TYPE_V6);
    ip_addr_t any6;
    ip_addr_copy_from_ip6(any6, a6);
    if (!pcb6 || tcp_bind(pcb6, &any6, LISTEN_PORT) != ERR_OK ||
        !(s->listener6 = tcp_listen_with_backlog(pcb6, 255))) {
        snprintf(err, errlen, "lwIP refused its IPv6 listener");
        if (pcb6 && !s->listener6) tcp_close(pcb6);
        tcp_close(s->listener);
        netif_remove(&s->netif);
        goto fail;
    }
    tcp_arg(s->listener6, s);
    tcp_accept(s->listener6, on_accept);
    ev_timer_init(&s->timers, on_timers, 0.25, 0.);
    s->timers.data = s;
    ev_timer_start(loop, &s->timers);
    return s;
fail:
    the_stack = NULL;
    free(s->slot);
    free(s->freed);
    free(s);
    return NULL;
}

void lane_stack_free(struct lane_stack *s)
{
    if (!s) return;
    ev_timer_stop(s->loop, &s->timers);
    /* Every connection lwIP has (live ones, and closing ones whose pcb is no longer ours to
     * point at) is reset while the rewriting still knows it, so the clients hear it and
     * nothing of this stack is left in lwIP's lists; then the connections are freed. */
    for (struct tcp_pcb **list = &tcp_active_pcbs; list; list = list == &tcp_active_pcbs
                                                                ? &tcp_tw_pcbs : NULL) {
        while (*list) {
            struct tcp_pcb *pcb = *list;
            tcp_arg(pcb, NULL);
            tcp_abort(pcb); /* (removes it from the list) */
        }
    }
    for (int i = 0; i < s->next; i++) {
        free(s->slot[i]);
        s->slot[i] = NULL;
    }
    tcp_close(s->listener);
    tcp_close(s->listener6);
    netif_remove(&s->netif);
    free(s->slot);
    free(s->freed);
    free(s);
    the_stack = NULL;
}

bool lane_stack_input(struct lane_stack *s, const uint8_t *pkt, size_t len)
{
    int fam = 0;
    size_t off = tcp_at(pkt, len, &fam);
    if (!off) return false;
    const uint8_t *tcp = pkt + off;
    uint8_t flags = tcp[13];
    struct lane_conn *c = find(s, fam, pkt, off);
    if (!c && ((flags & 0x12) != 0x02 || s->no_new)) return false; /* only a SYN opens one */
    /* a damaged segment is dropped here (the rewriting below would make its checksum right) */
    if (tcp_sum(pkt, len, off, fam) != 0 || (fam == 4 && fold(sum16(pkt, off, 0)) != 0)) {
        s->c.in_dropped++;
        return true;
    }
    if (!c) {
        c = conn_new(s, fam, pkt, off);
        if (c && (c->syn = malloc(len))) {
            memcpy(c->syn, pkt, len); /* held until lane_conn_proceed */
            c->synlen = len;
            c->early = -1;
            c->in_accept = true;
            c->owner = s->cb.accept(s->cb.ctx, c, fam, c->daddr, ntohs(c->dport));
            c->in_accept = false;
        }
        if (!c || !c->owner) {
            if (c) conn_free(c);
            s->c.refused++;
            return false; /* (the packet path carries it) */
        }
        if (c->early >= 0) lane_conn_proceed(c, c->early);
        return true;
    }
    if (c->syn) return true; /* (the client's SYN again, while the far end is being opened) */
    feed(s, c, pkt, len, off);
    return true;
}

/* A segment of connection c into lwIP, rewritten. */
static void feed(struct lane_stack *s, struct lane_conn *c, const uint8_t *pkt, size_t len,
                 size_t off)
{
    int fam = c->family;
    struct pbuf *p = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_RAM); /* (PBUF_POOL is broken) */
    if (!p) {
        s->c.in_dropped++;
        return;
    }
    uint8_t *q = p->payload;
    memcpy(q, pkt, len);
    /* from client to destination -> from the synthetic client:port to lwIP's listener */
    memcpy(q + SRC_AT(fam), fam == 4 ? CLIENT4 : CLIENT6, ALEN(fam));
    memcpy(q + DST_AT(fam), fam == 4 ? STACK4 : STACK6, ALEN(fam));
    put_be16(q + off, c->port);
    put_be16(q + off + 2, LISTEN_PORT);
    fix_checksums(q, len, off, fam);
    s->c.in_packets++;
    if (s->netif.input(p, &s->netif) != ERR_OK) pbuf_free(p);
}

size_t lane_conn_send(struct lane_conn *c, const uint8_t *data, size_t len)
{
    if (!c->pcb) return 0;
    size_t room = tcp_sndbuf(c->pcb);
    if (len > room) len = room;
    if (len > 0xffff) len = 0xffff;
    if (len == 0) return 0;
    if (tcp_write(c->pcb, data, (u16_t)len, TCP_WRITE_FLAG_COPY) != ERR_OK) return 0;
    tcp_output(c->pcb);
    return len;
}

void lane_conn_recved(struct lane_conn *c, size_t len)
{
    while (c->pcb && len) {
        u16_t n = len > 0xffff ? 0xffff : (u16_t)len;
        tcp_recved(c->pcb, n);
        len -= n;
    }
}

void lane_conn_shutdown(struct lane_conn *c)
{
    if (!c->pcb || c->tx_fin) return;
    c->tx_fin = true;
    tcp_shutdown(c->pcb, 0, 1);
    tcp_output(c->pcb);
    close_if_done(c);
}

void lane_conn_reset(struct lane_conn *c)
{
    if (c->syn) { /* never answered: its SYN is refused */
        lane_conn_proceed(c, 1);
        return;
    }
    if (!c->pcb) { /* answered, but the client has not ended the handshake yet */
        if (!c->accepted && !c->closing) {
            c->owner = NULL;
            c->reset_on_accept = true;
        }
        return;
    }
    struct tcp_pcb *pcb = c->pcb;
    tcp_arg(pcb, NULL);
    tcp_abort(pcb); /* a RST to the client */
    conn_free(c);
}

void lane_stack_set_accepting(struct lane_stack *s, bool on)
{
    s->no_new = !on;
}

const struct lane_stack_counters *lane_stack_counters(const struct lane_stack *s)
{
    return &s->c;
}
