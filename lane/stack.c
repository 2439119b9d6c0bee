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
#include "lwip/timeouts.h"

#include "../common/log.h"
#include "../common/util.h"

/* Addresses inside the process only (never on the wire): lwIP's, and the one every rewritten
 * connection comes from (the port tells the connections apart). */
#define STACK_ADDR 0x0affff01u  /* 10.255.255.1 */
#define CLIENT_ADDR 0x0affff02u /* 10.255.255.2 */
#define LISTEN_PORT 1
#define MAX_CONNS 65534 /* synthetic ports 1 .. 65534 */

struct lane_conn {
    struct lane_stack *s;
    struct tcp_pcb *pcb; /* NULL once lwIP let it go */
    uint16_t port;       /* its synthetic port (the slot + 1) */
    /* the client's view: from caddr:cport to daddr:dport (IPv4, network order) */
    uint32_t caddr, daddr;
    uint16_t cport, dport;
    void *owner;         /* the owner's context (accept's result) */
    bool accepted;
    bool rx_fin, tx_fin; /* the client's FIN came; ours went */
    uint64_t created_us;
};

struct lane_stack {
    struct ev_loop *loop;
    struct lane_stack_cb cb;
    struct netif netif;
    struct tcp_pcb *listener;
    ev_timer timers;
    struct lane_conn **slot; /* by synthetic port - 1 */
    int nconns, next;
    uint8_t out[65535];
    struct lane_stack_counters c;
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

/* Set the IPv4 header's and the TCP segment's checksums of pkt (ihl: header bytes). */
static void fix_checksums(uint8_t *pkt, size_t len, size_t ihl)
{
    pkt[10] = pkt[11] = 0;
    put_be16(pkt + 10, fold(sum16(pkt, ihl, 0)));
    uint8_t *tcp = pkt + ihl;
    size_t tlen = len - ihl;
    tcp[16] = tcp[17] = 0;
    uint32_t acc = sum16(pkt + 12, 8, 0); /* source and destination addresses */
    acc += 6 + (uint32_t)tlen;            /* protocol, TCP length */
    put_be16(tcp + 16, fold(sum16(tcp, tlen, acc)));
}

/* An IPv4 TCP segment: its header length, or 0 when pkt is not one (or is malformed). */
static size_t tcp4(const uint8_t *pkt, size_t len)
{
    if (len < 20 || (pkt[0] >> 4) != 4 || pkt[9] != 6) return 0;
    size_t ihl = (size_t)(pkt[0] & 15) * 4;
    if (ihl < 20 || len < ihl + 20 || get_be16(pkt + 2) != len) return 0;
    if (get_be16(pkt + 6) & 0x3fff) return 0; /* a fragment: not ours */
    size_t doff = (size_t)(pkt[ihl + 12] >> 4) * 4;
    if (doff < 20 || len < ihl + doff) return 0;
    return ihl;
}

static struct lane_conn *find(struct lane_stack *s, uint32_t caddr, uint16_t cport, uint32_t daddr,
                              uint16_t dport)
{
    /* (a linear look: the first version; a hash when connections are many) */
    for (int i = 0; i < MAX_CONNS && i < s->next; i++) {
        struct lane_conn *c = s->slot[i];
        if (c && c->caddr == caddr && c->cport == cport && c->daddr == daddr && c->dport == dport)
            return c;
    }
    return NULL;
}

static struct lane_conn *conn_new(struct lane_stack *s)
{
    if (s->nconns >= MAX_CONNS) return NULL;
    int i = 0;
    while (i < s->next && s->slot[i]) i++;
    if (i == s->next) {
        if (s->next >= MAX_CONNS) return NULL;
        s->next++;
    }
    struct lane_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->s = s;
    c->created_us = mono_us();
    c->port = (uint16_t)(i + 1);
    s->slot[i] = c;
    s->nconns++;
    return c;
}

static void conn_free(struct lane_conn *c)
{
    struct lane_stack *s = c->s;
    s->slot[c->port - 1] = NULL;
    s->nconns--;
    free(c);
}

/* ---------------------------------------------------------------- lwIP's side */

static err_t netif_out(struct netif *n, struct pbuf *p, const ip4_addr_t *dst)
{
    (void)n;
    (void)dst;
    struct lane_stack *s = the_stack;
    size_t len = pbuf_copy_partial(p, s->out, sizeof s->out, 0);
    size_t ihl = tcp4(s->out, len);
    if (!ihl) { /* lwIP sends only TCP here */
        s->c.out_dropped++;
        return ERR_OK;
    }
    uint8_t *tcp = s->out + ihl;
    uint16_t port = get_be16(tcp + 2);
    struct lane_conn *c = port >= 1 && port <= s->next ? s->slot[port - 1] : NULL;
    if (!c || get_be32(s->out + 16) != CLIENT_ADDR) {
        s->c.out_dropped++;
        return ERR_OK;
    }
    /* from lwIP:LISTEN_PORT to client:port -> from the destination to the client */
    memcpy(s->out + 12, &c->daddr, 4);
    memcpy(s->out + 16, &c->caddr, 4);
    memcpy(tcp, &c->dport, 2);
    memcpy(tcp + 2, &c->cport, 2);
    fix_checksums(s->out, len, ihl);
    s->c.out_packets++;
    s->cb.output(s->cb.ctx, s->out, len);
    return ERR_OK;
}

static err_t netif_init_cb(struct netif *n)
{
    n->mtu = 1500;
    n->output = netif_out;
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
    if (c->accepted) c->s->cb.closed(c->s->cb.ctx, c->owner, err == ERR_RST || err == ERR_ABRT);
    conn_free(c);
}

/* Both sides closed: lwIP may free the pcb (tcp_close); the owner hears of it. */
static void close_if_done(struct lane_conn *c)
{
    if (!c->rx_fin || !c->tx_fin || !c->pcb) return;
    struct lane_stack *s = c->s;
    tcp_arg(c->pcb, NULL);
    if (tcp_close(c->pcb) != ERR_OK) tcp_abort(c->pcb);
    c->pcb = NULL;
    s->c.closed++;
    s->cb.closed(s->cb.ctx, c->owner, false);
    conn_free(c);
}

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
    struct lane_conn *c = arg;
    struct lane_stack *s = c->s;
    (void)err;
    if (!p) { /* the client's FIN */
        c->rx_fin = true;
        s->cb.recv(s->cb.ctx, c->owner, NULL, 0);
        close_if_done(c);
        return ERR_OK;
    }
    for (struct pbuf *q = p; q; q = q->next) s->cb.recv(s->cb.ctx, c->owner, q->payload, q->len);
    tcp_recved(pcb, p->tot_len);
    pbuf_free(p);
    return ERR_OK;
}

static err_t on_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
    struct lane_conn *c = arg;
    (void)pcb;
    if (c->s->cb.sent) c->s->cb.sent(c->s->cb.ctx, c->owner, len);
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
    c->pcb = pcb;
    tcp_arg(pcb, c);
    tcp_err(pcb, on_err);
    uint8_t dst[16] = {0};
    memcpy(dst, &c->daddr, 4);
    c->owner = s->cb.accept(s->cb.ctx, c, 4, dst, ntohs(c->dport));
    if (!c->owner) { /* refused: a reset to the client */
        tcp_arg(pcb, NULL);
        tcp_abort(pcb);
        conn_free(c);
        return ERR_ABRT;
    }
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
        if (c && !c->accepted && now - c->created_us > HALF_OPEN_US) conn_free(c);
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
    if (!s || !s->slot) {
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
    ev_timer_init(&s->timers, on_timers, 0.25, 0.);
    s->timers.data = s;
    ev_timer_start(loop, &s->timers);
    return s;
fail:
    the_stack = NULL;
    free(s->slot);
    free(s);
    return NULL;
}

void lane_stack_free(struct lane_stack *s)
{
    if (!s) return;
    ev_timer_stop(s->loop, &s->timers);
    for (int i = 0; i < s->next; i++) {
        struct lane_conn *c = s->slot[i];
        if (!c) continue;
        if (c->pcb) {
            tcp_arg(c->pcb, NULL);
            tcp_abort(c->pcb);
        }
        free(c);
    }
    tcp_close(s->listener);
    netif_remove(&s->netif);
    free(s->slot);
    free(s);
    the_stack = NULL;
}

bool lane_stack_input(struct lane_stack *s, const uint8_t *pkt, size_t len)
{
    size_t ihl = tcp4(pkt, len);
    if (!ihl) return false;
    const uint8_t *tcp = pkt + ihl;
    uint32_t caddr, daddr;
    uint16_t cport, dport;
    memcpy(&caddr, pkt + 12, 4);
    memcpy(&daddr, pkt + 16, 4);
    memcpy(&cport, tcp, 2);
    memcpy(&dport, tcp + 2, 2);
    uint8_t flags = tcp[13];
    struct lane_conn *c = find(s, caddr, cport, daddr, dport);
    if (!c && (flags & 0x12) != 0x02) return false; /* only a SYN opens one */
    /* a damaged segment is dropped here (the rewriting below would make its checksum right) */
    uint32_t acc = sum16(pkt + 12, 8, 0) + 6 + (uint32_t)(len - ihl);
    if (fold(sum16(tcp, len - ihl, acc)) != 0 || fold(sum16(pkt, ihl, 0)) != 0) {
        s->c.in_dropped++;
        return true;
    }
    if (!c) {
        c = conn_new(s);
        if (!c) {
            s->c.refused++;
            return false; /* (the packet path carries it) */
        }
        c->caddr = caddr;
        c->daddr = daddr;
        c->cport = cport;
        c->dport = dport;
    }
    struct pbuf *p = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_RAM); /* (PBUF_POOL is broken) */
    if (!p) {
        s->c.in_dropped++;
        return true;
    }
    uint8_t *q = p->payload;
    memcpy(q, pkt, len);
    /* from client to destination -> from CLIENT_ADDR:port to STACK_ADDR:LISTEN_PORT */
    put_be32(q + 12, CLIENT_ADDR);
    put_be32(q + 16, STACK_ADDR);
    put_be16(q + ihl, c->port);
    put_be16(q + ihl + 2, LISTEN_PORT);
    fix_checksums(q, len, ihl);
    s->c.in_packets++;
    if (s->netif.input(p, &s->netif) != ERR_OK) pbuf_free(p);
    return true;
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
    if (!c->pcb) return;
    struct tcp_pcb *pcb = c->pcb;
    tcp_arg(pcb, NULL);
    tcp_abort(pcb); /* a RST to the client */
    conn_free(c);
}

const struct lane_stack_counters *lane_stack_counters(const struct lane_stack *s)
{
    return &s->c;
}
