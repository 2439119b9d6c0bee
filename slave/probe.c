/* probe.c: probe-socks: a SOCKS5 link whose "master" is an echo socket of the probe's own, so
 * each datagram goes out through the proxy's relay and its echo comes back through it; then a
 * CONNECT through the proxy to a TCP socket of the probe's own (what the TCP lane needs). */
#include "probe.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/addr.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../links/socks5.h"
#include "../links/socks5_proto.h"

#define PROBE_COUNT 5
#define PROBE_TIMEOUT_S 3.0  /* for the datagrams, once associated */
#define SETUP_TIMEOUT_S 10.0 /* resolve + connect + negotiate */

struct probe {
    struct ev_loop *loop;
    struct resolver *res;
    struct resolve_req *rq;
    struct link *link;
    char host[256], user[256], pass[256];
    unsigned port;
    int echo_fd;
    struct addr echo;
    ev_io echo_io;
    ev_timer tick, deadline;
    int sent, back;
    uint64_t sent_us[PROBE_COUNT];
    double rtt_ms[PROBE_COUNT];
    struct addr proxy;
    bool have_proxy;
    int result; /* -1 running, else exit status */
    char why[400];
};

static void finish(struct probe *p, int rc, const char *why)
{
    if (p->result >= 0) return;
    p->result = rc;
    if (why) snprintf(p->why, sizeof p->why, "%s", why);
    ev_break(p->loop, EVBREAK_ALL);
}

static void echo_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct probe *p = w->data;
    uint8_t buf[2048];
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(p->echo_fd, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
    if (n > 0) (void)sendto(p->echo_fd, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
}

static void send_one(struct probe *p)
{
    uint8_t msg[16] = "braid-probe";
    msg[12] = (uint8_t)p->sent;
    p->sent_us[p->sent] = mono_us();
    p->sent++;
    link_send(p->link, msg, sizeof msg);
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct probe *p = w->data;
    if (p->sent < PROBE_COUNT) send_one(p);
}

static void link_rx(void *ctx, struct link *l, uint8_t *buf, size_t len,
                    const struct sockaddr *from, socklen_t fromlen)
{
    (void)l;
    (void)from;
    (void)fromlen;
    struct probe *p = ctx;
    if (len != 16 || memcmp(buf, "braid-probe", 11) != 0 || buf[12] >= p->sent) return;
    int i = buf[12];
    if (p->rtt_ms[i] > 0) return; /* duplicate */
    p->rtt_ms[i] = (double)(mono_us() - p->sent_us[i]) / 1000.0;
    if (++p->back == PROBE_COUNT) finish(p, 0, NULL);
}

static void link_state(void *ctx, struct link *l, bool up)
{
    struct probe *p = ctx;
    if (!up) return;
    char d[200];
    l->ops->describe(l, d, sizeof d);
    printf("  associated: %s\n", d);
    ev_timer_stop(p->loop, &p->deadline);
    ev_timer_set(&p->deadline, PROBE_TIMEOUT_S, 0.);
    ev_timer_start(p->loop, &p->deadline);
    send_one(p);
    ev_timer_start(p->loop, &p->tick);
}

static void link_failed(void *ctx, const char *reason)
{
    finish(ctx, 1, reason);
}

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct probe *p = w->data;
    char why[300];
    if (p->sent == 0)
        snprintf(why, sizeof why, "no UDP association within %.0f s", SETUP_TIMEOUT_S);
    else if (p->back == 0)
        snprintf(why, sizeof why,
                 "UDP ASSOCIATE was accepted, but none of %d datagrams came back through the "
                 "relay in %.0f s: the proxy does not relay UDP (or not the replies)",
                 p->sent, PROBE_TIMEOUT_S);
    else
        snprintf(why, sizeof why, "only %d of %d datagrams came back through the relay", p->back,
                 p->sent);
    finish(p, p->back > 0 ? 0 : 1, why);
}

/* The probe's echo socket: on the address this host reaches the proxy from, so the proxy can
 * reach it too. */
static int open_echo(struct probe *p, const struct addr *proxy)
{
    int fd = socket(proxy->ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct addr local;
    local.len = sizeof local.ss;
    if (connect(fd, (const struct sockaddr *)&proxy->ss, proxy->len) < 0 ||
        getsockname(fd, (struct sockaddr *)&local.ss, &local.len) < 0) {
        close(fd);
        return -1;
    }
    close(fd);
    addr_set_port(&local, 0);
    fd = socket(proxy->ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (bind(fd, (struct sockaddr *)&local.ss, local.len) < 0) {
        close(fd);
        return -1;
    }
    p->echo.len = sizeof p->echo.ss;
    getsockname(fd, (struct sockaddr *)&p->echo.ss, &p->echo.len);
    p->echo_fd = fd;
    return 0;
}

static void proxy_resolved(void *ctx, bool ok, const struct addr *a, const char *err)
{
    struct probe *p = ctx;
    p->rq = NULL;
    char why[400], ip[ADDR_STRLEN], es[ADDR_STRLEN];
    if (!ok) {
        snprintf(why, sizeof why, "proxy name \"%s\" does not resolve: %s", p->host, err);
        finish(p, 1, why);
        return;
    }
    if (open_echo(p, a) < 0) {
        snprintf(why, sizeof why, "no route to the proxy %s: %s",
                 addr_str((const struct sockaddr *)&a->ss, ip, sizeof ip), strerror(errno));
        finish(p, 1, why);
        return;
    }
    p->proxy = *a;
    p->have_proxy = true;
    addr_str((const struct sockaddr *)&a->ss, ip, sizeof ip);
    addr_str((const struct sockaddr *)&p->echo.ss, es, sizeof es);
    printf("  proxy %s, echo socket %s\n", ip, es);
    ev_io_init(&p->echo_io, echo_cb, p->echo_fd, EV_READ);
    p->echo_io.data = p;
    ev_io_start(p->loop, &p->echo_io);
    /* the link resolves again: give it literals */
    char lit[ADDR_STRLEN], elit[ADDR_STRLEN];
    addr_ip_str((const struct sockaddr *)&a->ss, lit, sizeof lit);
    addr_ip_str((const struct sockaddr *)&p->echo.ss, elit, sizeof elit);
    struct socks5_link_config c = {
        .id = 0,
        .name = "probe",
        .proxy_host = lit,
        .proxy_port = p->port,
        .username = p->user,
        .password = p->pass,
        .master_host = elit,
        .master_port = addr_port((const struct sockaddr *)&p->echo.ss),
        .resolver = p->res,
        .timeout_s = 5.0,
        .failed = link_failed,
        .failed_ctx = p,
    };
    p->link = socks5_link_new(p->loop, &c);
    if (!p->link) {
        finish(p, 1, "out of memory");
        return;
    }
    struct link_handlers h = {.rx = link_rx, .state = link_state, .ctx = p};
    link_set_handlers(p->link, &h);
    socks5_link_start(p->link);
}

/* Read exactly n bytes within ms (0, or -1). */
static int read_n(int fd, uint8_t *buf, size_t n, int ms)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, ms) <= 0) return -1;
        ssize_t k = recv(fd, buf + got, n - got, 0);
        if (k <= 0) return -1;
        got += (size_t)k;
    }
    return 0;
}

/* A SOCKS5 reply: read until it parses (0) or fails (-1, why). */
static int read_reply(int fd, uint8_t *buf, size_t cap, int (*parse)(const uint8_t *, size_t,
                                                                     void *, char *, size_t),
                      void *out, char *why, size_t whylen)
{
    size_t len = 0;
    for (;;) {
        int n = parse(buf, len, out, why, whylen);
        if (n > 0) return 0;
        if (n < 0) return -1;
        if (len == cap || read_n(fd, buf + len, 1, 3000) < 0) {
            snprintf(why, whylen, "the proxy did not answer in time, or closed the connection");
            return -1;
        }
        len++;
    }
}

struct method_ctx {
    bool auth;
    uint8_t method;
};
static int parse_method(const uint8_t *b, size_t n, void *o, char *e, size_t el)
{
    struct method_ctx *m = o;
    return socks5_parse_method(b, n, m->auth, &m->method, e, el);
}
static int parse_auth(const uint8_t *b, size_t n, void *o, char *e, size_t el)
{
    (void)o;
    return socks5_parse_auth_reply(b, n, e, el);
}
static int parse_reply(const uint8_t *b, size_t n, void *o, char *e, size_t el)
{
    return socks5_parse_reply(b, n, SOCKS5_CMD_CONNECT, o, e, el);
}

/* CONNECT through the proxy to a TCP socket of the probe's own, and 5 bytes through it: 0, or
 * -1 with why. */
static int probe_connect(struct probe *p, char *why, size_t whylen)
{
    int ls = -1, fd = -1, in = -1, rc = -1;
    struct addr la = p->echo;
    addr_set_port(&la, 0);
    ls = socket(la.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    la.len = la.ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (ls < 0 || bind(ls, (struct sockaddr *)&la.ss, la.len) < 0 || listen(ls, 1) < 0 ||
        getsockname(ls, (struct sockaddr *)&la.ss, &la.len) < 0) {
        snprintf(why, whylen, "cannot open a TCP socket to connect to: %s", strerror(errno));
        goto out;
    }
    fd = socket(p->proxy.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&p->proxy.ss, p->proxy.len) < 0) {
        snprintf(why, whylen, "cannot connect to the proxy: %s", strerror(errno));
        goto out;
    }
    uint8_t buf[600];
    struct method_ctx m = {.auth = p->user[0] != 0};
    size_t gl = socks5_build_greeting(buf, m.auth);
    if (send(fd, buf, gl, MSG_NOSIGNAL) != (ssize_t)gl ||
        read_reply(fd, buf, sizeof buf, parse_method, &m, why, whylen) < 0)
        goto out;
    if (m.method == SOCKS5_METHOD_USERPASS) {
        size_t al = socks5_build_auth(buf, sizeof buf, p->user, p->pass);
        if (!al || send(fd, buf, al, MSG_NOSIGNAL) != (ssize_t)al ||
            read_reply(fd, buf, sizeof buf, parse_auth, NULL, why, whylen) < 0)
            goto out;
    }
    size_t rl = socks5_build_request(buf, sizeof buf, SOCKS5_CMD_CONNECT,
                                     (struct sockaddr *)&la.ss);
    struct socks5_reply rep;
    if (!rl || send(fd, buf, rl, MSG_NOSIGNAL) != (ssize_t)rl ||
        read_reply(fd, buf, sizeof buf, parse_reply, &rep, why, whylen) < 0)
        goto out;
    struct pollfd pf = {.fd = ls, .events = POLLIN};
    if (poll(&pf, 1, 3000) <= 0 || (in = accept(ls, NULL, NULL)) < 0) {
        snprintf(why, whylen, "the proxy said it connected, but nothing arrived");
        goto out;
    }
    uint8_t got[5];
    if (send(fd, "braid", 5, MSG_NOSIGNAL) != 5 || read_n(in, got, 5, 3000) < 0 ||
        memcmp(got, "braid", 5) != 0) {
        snprintf(why, whylen, "bytes sent through the connection did not arrive");
        goto out;
    }
    rc = 0;
out:
    if (in >= 0) close(in);
    if (fd >= 0) close(fd);
    if (ls >= 0) close(ls);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int probe_socks(const char *prog, const char *arg)
{
    struct probe *p = calloc(1, sizeof *p);
    if (!p) return 1;
    p->result = -1;
    p->echo_fd = -1;
    /* [USER:PASSWORD@]HOST:PORT; the password may contain '@' and ':' (split at the last '@') */
    const char *hp = arg;
    const char *at = strrchr(arg, '@');
    if (at) {
        const char *colon = memchr(arg, ':', (size_t)(at - arg));
        size_t ul = colon ? (size_t)(colon - arg) : 0;
        size_t pl = colon ? (size_t)(at - colon - 1) : 0;
        if (!colon || ul == 0 || ul > 255 || pl == 0 || pl > 255) {
            fprintf(stderr,
                    "%s: probe-socks \"%s\": expected USER:PASSWORD@HOST:PORT, each of USER and "
                    "PASSWORD 1 to 255 bytes\n",
                    prog, arg);
            free(p);
            return 2;
        }
        memcpy(p->user, arg, ul);
        memcpy(p->pass, colon + 1, pl);
        hp = at + 1;
    }
    char err[320];
    if (addr_split(hp, p->host, sizeof p->host, &p->port, err, sizeof err) < 0) {
        fprintf(stderr, "%s: probe-socks: %s; expected [USER:PASSWORD@]HOST:PORT, e.g. "
                        "192.168.43.1:1080\n",
                prog, err);
        free(p);
        return 2;
    }
    log_set_level(LOG_ERROR); /* the link's own log lines would repeat what the probe prints */
    p->loop = ev_loop_new(EVFLAG_AUTO);
    p->res = resolver_new(p->loop, NULL, err, sizeof err);
    if (!p->res) {
        fprintf(stderr, "%s: %s\n", prog, err);
        ev_loop_destroy(p->loop);
        free(p);
        return 1;
    }
    printf("probing SOCKS5 proxy %s%s\n", hp, p->user[0] ? " with username/password" : "");
    ev_timer_init(&p->tick, tick_cb, 0.2, 0.2);
    p->tick.data = p;
    ev_timer_init(&p->deadline, deadline_cb, SETUP_TIMEOUT_S, 0.);
    p->deadline.data = p;
    ev_timer_start(p->loop, &p->deadline);
    p->rq = resolve_start(p->res, p->host, p->port, AF_UNSPEC, proxy_resolved, p);
    if (p->rq) ev_run(p->loop, 0);
    else finish(p, 1, "out of memory");

    int rc = p->result < 0 ? 1 : p->result;
    if (p->back > 0) {
        double r[PROBE_COUNT];
        int n = 0;
        for (int i = 0; i < p->sent; i++)
            if (p->rtt_ms[i] > 0) r[n++] = p->rtt_ms[i];
        qsort(r, (size_t)n, sizeof r[0], cmp_double);
        printf("  %d of %d datagrams came back through the relay; round trip ms: min %.2f "
               "median %.2f max %.2f\n",
               n, p->sent, r[0], r[n / 2], r[n - 1]);
    }
    if (rc == 0)
        printf("probe ok: %s supports UDP ASSOCIATE%s%s\n", hp, p->why[0] ? "; but " : "",
               p->why);
    else
        printf("probe failed: %s\n", p->why[0] ? p->why : "unknown error");
    if (p->have_proxy && p->echo_fd >= 0) {
        char cwhy[300] = "";
        if (probe_connect(p, cwhy, sizeof cwhy) == 0)
            printf("CONNECT: ok (the TCP lane can use this proxy)\n");
        else
            printf("CONNECT: failed: %s (the TCP lane cannot use this proxy)\n", cwhy);
    }
    ev_timer_stop(p->loop, &p->tick);
    ev_timer_stop(p->loop, &p->deadline);
    if (p->rq) resolve_cancel(p->rq);
    link_destroy(p->link);
    if (p->echo_fd >= 0) {
        ev_io_stop(p->loop, &p->echo_io);
        close(p->echo_fd);
    }
    resolver_free(p->res);
    ev_loop_destroy(p->loop);
    sodium_memzero(p->pass, sizeof p->pass);
    free(p);
    return rc;
}
