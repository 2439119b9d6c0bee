/* resolve.c: c-ares integrated in the libev loop: one ev_io per c-ares socket (sock-state
 * callback), one ev_timer from ares_timeout; results delivered to callbacks from the loop. */
#include "resolve.h"

#include <ares.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SOCKS 16

struct rsock {
    int fd; /* -1: slot free */
    ev_io w;
    struct resolver *r;
};

struct resolver {
    struct ev_loop *loop;
    ares_channel ch;
    ev_timer tmo;
    struct rsock socks[MAX_SOCKS];
    struct resolve_req *dhead, *dtail; /* results waiting for delivery from the loop (FIFO) */
    ev_idle deliver;
    bool freeing;
};

struct resolve_req {
    struct resolver *r;
    resolve_cb cb; /* NULL: cancelled */
    void *ctx;
    unsigned port;
    int family;
    bool in_ares;  /* c-ares still owns a callback for it */
    bool ok;
    struct addr a;
    char err[96];
    struct resolve_req *next;
};

static int lib_refs;

static void rearm_timer(struct resolver *r)
{
    ev_timer_stop(r->loop, &r->tmo);
    struct timeval tv, *t = ares_timeout(r->ch, NULL, &tv);
    if (!t) return;
    double s = (double)t->tv_sec + (double)t->tv_usec / 1e6;
    ev_timer_set(&r->tmo, s > 0 ? s : 0.001, 0.);
    ev_timer_start(r->loop, &r->tmo);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct rsock *s = w->data;
    struct resolver *r = s->r;
    int fd = s->fd;
    ares_process_fd(r->ch, (revents & EV_READ) ? fd : ARES_SOCKET_BAD,
                    (revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
    rearm_timer(r);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct resolver *r = w->data;
    ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    rearm_timer(r);
}

static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
    struct resolver *r = data;
    struct rsock *s = NULL, *free_slot = NULL;
    for (int i = 0; i < MAX_SOCKS; i++) {
        if (r->socks[i].fd == fd) s = &r->socks[i];
        else if (!free_slot && r->socks[i].fd < 0) free_slot = &r->socks[i];
    }
    if (s) ev_io_stop(r->loop, &s->w);
    if (!readable && !writable) {
        if (s) s->fd = -1;
        return;
    }
    if (!s) {
        if (!free_slot) return; /* more than MAX_SOCKS sockets: c-ares times the query out */
        s = free_slot;
        s->fd = fd;
    }
    ev_io_set(&s->w, fd, (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
    ev_io_start(r->loop, &s->w);
}

static void deliver_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)revents;
    struct resolver *r = w->data;
    ev_idle_stop(loop, w);
    /* One at a time from the queue: a callback may cancel or start other requests. */
    while (r->dhead) {
        struct resolve_req *q = r->dhead;
        r->dhead = q->next;
        if (!r->dhead) r->dtail = NULL;
        if (q->cb) q->cb(q->ctx, q->ok, &q->a, q->err);
        free(q);
    }
}

static void defer(struct resolve_req *q)
{
    struct resolver *r = q->r;
    q->next = NULL;
    if (r->dtail) r->dtail->next = q;
    else r->dhead = q;
    r->dtail = q;
    if (!r->freeing) ev_idle_start(r->loop, &r->deliver);
}

static void ares_done(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    (void)timeouts;
    struct resolve_req *q = arg;
    q->in_ares = false;
    if (q->r->freeing || !q->cb) { /* resolver going away, or cancelled */
        if (res) ares_freeaddrinfo(res);
        free(q);
        return;
    }
    q->ok = false;
    if (status == ARES_SUCCESS && res) {
        for (struct ares_addrinfo_node *n = res->nodes; n; n = n->ai_next) {
            if (n->ai_family != AF_INET && n->ai_family != AF_INET6) continue;
            if (q->family != AF_UNSPEC && n->ai_family != q->family) continue;
            if ((size_t)n->ai_addrlen > sizeof q->a.ss) continue;
            memset(&q->a, 0, sizeof q->a);
            memcpy(&q->a.ss, n->ai_addr, (size_t)n->ai_addrlen);
            q->a.len = (socklen_t)n->ai_addrlen;
            if (n->ai_family == AF_INET)
                ((struct sockaddr_in *)&q->a.ss)->sin_port = htons((uint16_t)q->port);
            else
                ((struct sockaddr_in6 *)&q->a.ss)->sin6_port = htons((uint16_t)q->port);
            q->ok = true;
            break;
        }
        if (!q->ok)
            snprintf(q->err, sizeof q->err, "no %s address in the answer",
                     q->family == AF_INET6 ? "IPv6" : q->family == AF_INET ? "IPv4" : "IP");
    } else {
        snprintf(q->err, sizeof q->err, "%s", ares_strerror(status));
    }
    if (res) ares_freeaddrinfo(res);
    defer(q);
}

struct resolver *resolver_new(struct ev_loop *loop, const char *servers, char *err, size_t errlen)
{
    if (lib_refs++ == 0) {
        int rc = ares_library_init(ARES_LIB_INIT_ALL);
        if (rc != ARES_SUCCESS) {
            lib_refs--;
            snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
            return NULL;
        }
    }
    struct resolver *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        goto fail_lib;
    }
    r->loop = loop;
    for (int i = 0; i < MAX_SOCKS; i++) {
        r->socks[i].fd = -1;
        r->socks[i].r = r;
        ev_io_init(&r->socks[i].w, io_cb, 0, EV_READ);
        r->socks[i].w.data = &r->socks[i];
    }
    ev_timer_init(&r->tmo, timer_cb, 1., 0.);
    r->tmo.data = r;
    ev_idle_init(&r->deliver, deliver_cb);
    r->deliver.data = r;
    struct ares_options o;
    memset(&o, 0, sizeof o);
    o.sock_state_cb = sock_state_cb;
    o.sock_state_cb_data = r;
    o.timeout = 2000; /* ms per try */
    o.tries = 2;
    char lookups[] = "fb"; /* /etc/hosts, then DNS */
    o.lookups = lookups;
    int rc = ares_init_options(&r->ch, &o,
                               ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
                                   ARES_OPT_LOOKUPS);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares: cannot initialise: %s", ares_strerror(rc));
        free(r);
        goto fail_lib;
    }
    if (servers && servers[0]) {
        rc = ares_set_servers_ports_csv(r->ch, servers);
        if (rc != ARES_SUCCESS) {
            snprintf(err, errlen, "DNS servers \"%s\": %s", servers, ares_strerror(rc));
            ares_destroy(r->ch);
            free(r);
            goto fail_lib;
        }
    }
    return r;
fail_lib:
    if (--lib_refs == 0) ares_library_cleanup();
    return NULL;
}

void resolver_free(struct resolver *r)
{
    if (!r) return;
    r->freeing = true;
    ares_destroy(r->ch); /* runs ares_done for every pending query: each frees itself */
    for (int i = 0; i < MAX_SOCKS; i++)
        if (r->socks[i].fd >= 0) ev_io_stop(r->loop, &r->socks[i].w);
    ev_timer_stop(r->loop, &r->tmo);
    ev_idle_stop(r->loop, &r->deliver);
    while (r->dhead) {
        struct resolve_req *q = r->dhead;
        r->dhead = q->next;
        free(q);
    }
    free(r);
    if (--lib_refs == 0) ares_library_cleanup();
}

struct resolve_req *resolve_start(struct resolver *r, const char *host, unsigned port, int family,
                                  resolve_cb cb, void *ctx)
{
    struct resolve_req *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->r = r;
    q->cb = cb;
    q->ctx = ctx;
    q->port = port;
    q->family = family;
    if (addr_parse_ip(host, port, &q->a) == 0) {
        q->ok = family == AF_UNSPEC || q->a.ss.ss_family == family;
        if (!q->ok)
            snprintf(q->err, sizeof q->err, "%s is not an %s address", host,
                     family == AF_INET ? "IPv4" : "IPv6");
        defer(q);
        return q;
    }
    struct ares_addrinfo_hints h;
    memset(&h, 0, sizeof h);
    h.ai_family = family;
    h.ai_socktype = SOCK_DGRAM;
    q->in_ares = true;
    ares_getaddrinfo(r->ch, host, NULL, &h, ares_done, q); /* may call ares_done at once */
    rearm_timer(r);
    return q;
}

void resolve_cancel(struct resolve_req *q)
{
    if (!q) return;
    if (q->in_ares) {
        q->cb = NULL; /* ares_done frees it */
        return;
    }
    /* In the delivery queue: unlink and free. */
    struct resolver *r = q->r;
    struct resolve_req *prev = NULL, *p = r->dhead;
    while (p && p != q) {
        prev = p;
        p = p->next;
    }
    if (!p) return; /* not pending: nothing to do */
    if (prev) prev->next = q->next;
    else r->dhead = q->next;
    if (r->dtail == q) r->dtail = prev;
    free(q);
}
