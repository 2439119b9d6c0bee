/* socks5.c: the SOCKS5 link: resolve the proxy and master, TCP connect, negotiate, UDP ASSOCIATE,
 * then relay datagrams with the §7 header; or (type "socks5-tcp") CONNECT to the master and
 * carry the datagrams as frames on that connection (PROTOCOL section 11). Any failure takes it
 * down and retries with backoff. */
#include "socks5.h"

#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../common/frame.h"
#include "../common/log.h"
#include "tcp_server.h"
#include "sock.h"
#include "socks5_proto.h"

#define RX_BUFSZ 65536
#define RX_MAX_PER_EVENT 64
#define CTL_BUFSZ 600 /* longer than any reply braid waits for */
#define UNSENT_MAX (64 * 1024) /* socks5-tcp: a datagram waits behind at most this much */

enum s5_state {
    S5_IDLE,            /* not started, or waiting for the next attempt */
    S5_RESOLVE_PROXY,
    S5_RESOLVE_MASTER,
    S5_CONNECTING,
    S5_GREETING,        /* method selection sent */
    S5_AUTH,            /* username/password sent */
    S5_REQUEST,         /* UDP ASSOCIATE (or CONNECT) sent */
    S5_RESOLVE_RELAY,   /* the relay was given as a name */
    S5_MASTER,          /* socks5-tcp: connected through the proxy, the master's greeting due */
    S5_UP,
};

static const char *const state_names[] = {
    [S5_IDLE] = "idle",
    [S5_RESOLVE_PROXY] = "resolving proxy",
    [S5_RESOLVE_MASTER] = "resolving master",
    [S5_CONNECTING] = "connecting",
    [S5_GREETING] = "negotiating",
    [S5_AUTH] = "logging in",
    [S5_REQUEST] = "associating",
    [S5_RESOLVE_RELAY] = "resolving relay",
    [S5_MASTER] = "waiting for the master",
    [S5_UP] = "up",
};

struct s5_drops {
    uint64_t wrong_source; /* not from the relay address */
    uint64_t bad_header;   /* short, RSV != 0, unknown ATYP */
    uint64_t frag;         /* FRAG != 0 */
    uint64_t not_master;   /* the header's source is not the master */
};

struct socks5_link {
    struct link base;
    struct ev_loop *loop;
    struct socks5_link_config cfg;
    char proxy_host[256], master_host[256], user[256], pass[256], ifname[IFNAMSIZ];
    enum s5_state state;
    struct resolve_req *rq;
    struct addr proxy, master, relay, tcp_local;
    int tfd, ufd;
    ev_io tio, uio;
    ev_timer timeout, retry;
    uint8_t ctl[CTL_BUFSZ];
    size_t ctl_len;
    uint8_t udp_hdr[SOCKS5_UDP_HDR_V6];
    size_t udp_hdr_len;
    /* counters */
    unsigned failures;      /* consecutive: since a datagram last came through the relay */
    uint64_t attempts, established, relay_ok;
    double next_retry_s;
    char last_err[200];
    struct s5_drops drops;
    uint8_t buf[RX_BUFSZ];
    /* socks5-tcp: frames in (decoded into dg) and out (what the kernel did not take yet) */
    struct frame_dec *dec;
    uint8_t *dg, *wbuf;
    size_t wlen;
};

static void s5_establish(struct socks5_link *s);

static const char *proxy_str(const struct socks5_link *s, char *buf, size_t len)
{
    if (strchr(s->proxy_host, ':')) snprintf(buf, len, "[%s]:%u", s->proxy_host, s->cfg.proxy_port);
    else snprintf(buf, len, "%s:%u", s->proxy_host, s->cfg.proxy_port);
    return buf;
}

static void s5_close(struct socks5_link *s)
{
    if (s->rq) {
        resolve_cancel(s->rq);
        s->rq = NULL;
    }
    if (s->tfd >= 0) {
        ev_io_stop(s->loop, &s->tio);
        close(s->tfd);
        s->tfd = -1;
    }
    if (s->ufd >= 0) {
        ev_io_stop(s->loop, &s->uio);
        close(s->ufd);
        s->ufd = -1;
    }
    ev_timer_stop(s->loop, &s->timeout);
    s->ctl_len = 0;
    s->wlen = 0;
}

/* Take the link down with a reason, and schedule the next attempt: 0.5 s doubling up to 2 s,
 * jittered by +-25 %, counted from the last datagram that came through the relay. A reason is
 * logged once (until it changes or the link has worked again); repeats go to the debug log. */
static void s5_fail(struct socks5_link *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void s5_fail(struct socks5_link *s, const char *fmt, ...)
{
    char msg[sizeof s->last_err], ps[ADDR_STRLEN + 260];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bool was_up = s->state == S5_UP;
    s5_close(s);
    s->state = S5_IDLE;
    double d = sock_backoff_s(s->cfg.backoff_min_s, s->cfg.backoff_max_s, s->failures,
                              (double)randombytes_uniform(1001) / 1000.0);
    s->failures++;
    s->next_retry_s = d;
    proxy_str(s, ps, sizeof ps);
    if (strcmp(msg, s->last_err) != 0 || was_up) {
        LOGW("link %s: down: proxy %s %s; retrying in %.1f s (then backing off up to %.0f s)",
             s->base.name, ps, msg, d, s->cfg.backoff_max_s);
        snprintf(s->last_err, sizeof s->last_err, "%s", msg);
    } else {
        LOGD("link %s: proxy %s %s (again); retrying in %.1f s", s->base.name, ps, msg, d);
    }
    ev_timer_stop(s->loop, &s->retry);
    ev_timer_set(&s->retry, d, 0.);
    ev_timer_start(s->loop, &s->retry);
    link_report_state(&s->base, false);
    if (s->cfg.failed) {
        char full[sizeof msg + sizeof ps + 8];
        snprintf(full, sizeof full, "proxy %s %s", ps, msg);
        s->cfg.failed(s->cfg.failed_ctx, full);
    }
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    s5_establish(w->data);
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct socks5_link *s = w->data;
    s5_fail(s, "did not answer in %.1f s (while %s)", s->cfg.timeout_s, state_names[s->state]);
}

/* ---- the UDP side ---- */

static void udp_read(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct socks5_link *s = w->data;
    for (int i = 0; i < RX_MAX_PER_EVENT && s->ufd >= 0; i++) {
        struct addr from;
        from.len = sizeof from.ss;
        ssize_t n = recvfrom(s->ufd, s->buf, sizeof s->buf, MSG_DONTWAIT | MSG_TRUNC,
                             (struct sockaddr *)&from.ss, &from.len);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
            if (sock_error_is_fatal(errno)) {
                s5_fail(s, "relay socket failed: %s", strerror(errno));
                return;
            }
            s->base.c.rx_dropped++;
            continue;
        }
        if ((size_t)n > sizeof s->buf) {
            s->base.c.rx_dropped++;
            continue;
        }
        addr_unmap(&from);
        if (!addr_equal((struct sockaddr *)&from.ss, (struct sockaddr *)&s->relay.ss)) {
            s->drops.wrong_source++;
            s->base.c.rx_dropped++;
            continue;
        }
        struct socks5_udp_src src;
        size_t hl = 0;
        enum socks5_udp_result r = socks5_udp_parse(s->buf, (size_t)n, &src, &hl);
        if (r != SOCKS5_UDP_OK) {
            if (r == SOCKS5_UDP_FRAG) s->drops.frag++;
            else s->drops.bad_header++;
            s->base.c.rx_dropped++;
            continue;
        }
        addr_unmap(&src.addr);
        if (src.atyp == SOCKS5_ATYP_DOMAIN ||
            !addr_equal((struct sockaddr *)&src.addr.ss, (struct sockaddr *)&s->master.ss)) {
            s->drops.not_master++;
            s->base.c.rx_dropped++;
            continue;
        }
        s->base.c.rx_packets++;
        s->base.c.rx_bytes += (uint64_t)n - hl;
        s->relay_ok++;
        if (s->failures) { /* the path works end to end: the next failure starts afresh */
            s->failures = 0;
            s->last_err[0] = '\0';
        }
        if (s->base.h.rx)
            s->base.h.rx(s->base.h.ctx, &s->base, s->buf + hl, (size_t)n - hl,
                         (struct sockaddr *)&s->master.ss, s->master.len);
    }
}

static int open_udp(struct socks5_link *s, int family, const struct addr *local)
{
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (s->ifname[0])
        (void)setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, s->ifname, (socklen_t)strlen(s->ifname));
    if (local && local->ss.ss_family == family) {
        struct addr b = *local;
        addr_set_port(&b, s->cfg.has_bind ? addr_port((struct sockaddr *)&s->cfg.bind.ss) : 0);
        if (bind(fd, (struct sockaddr *)&b.ss, b.len) < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
    }
    sock_set_buffers(fd, s->cfg.sndbuf ? s->cfg.sndbuf : 4 << 20);
    return fd;
}

static void s5_associated(struct socks5_link *s)
{
    char rs[ADDR_STRLEN], ps[ADDR_STRLEN + 260], ms[ADDR_STRLEN];
    addr_unmap(&s->relay);
    if (s->relay.ss.ss_family != s->tcp_local.ss.ss_family) {
        /* The relay is of another IP version than the control connection: a new socket. */
        close(s->ufd);
        s->ufd = open_udp(s, s->relay.ss.ss_family, NULL);
        if (s->ufd < 0) {
            s5_fail(s, "gave relay %s: cannot open a UDP socket for it: %s",
                    addr_str((struct sockaddr *)&s->relay.ss, rs, sizeof rs), strerror(errno));
            return;
        }
    }
    ev_timer_stop(s->loop, &s->timeout);
    ev_io_init(&s->uio, udp_read, s->ufd, EV_READ);
    s->uio.data = s;
    ev_io_start(s->loop, &s->uio);
    s->state = S5_UP;
    s->established++;
    LOGI("link %s: transport up (socks5 via %s, relay %s, to master %s)", s->base.name,
         proxy_str(s, ps, sizeof ps), addr_str((struct sockaddr *)&s->relay.ss, rs, sizeof rs),
         addr_str((struct sockaddr *)&s->master.ss, ms, sizeof ms));
    link_report_state(&s->base, true);
}

static void relay_resolved(void *ctx, bool ok, const struct addr *a, const char *err)
{
    struct socks5_link *s = ctx;
    s->rq = NULL;
    if (!ok) {
        s5_fail(s, "gave its relay as a name that does not resolve: %s", err);
        return;
    }
    s->relay = *a;
    s5_associated(s);
}

/* ---- socks5-tcp: the datagrams on the connection to the master ---- */

static void tcp_watch(struct socks5_link *s, int events)
{
    ev_io_stop(s->loop, &s->tio);
    ev_io_set(&s->tio, s->tfd, events);
    ev_io_start(s->loop, &s->tio);
}

static void on_frame(void *ctx, const uint8_t *frame, size_t len)
{
    struct socks5_link *s = ctx;
    if (s->state != S5_UP) return; /* (taken down while the rest was decoded) */
    s->base.c.rx_packets++;
    s->base.c.rx_bytes += len;
    s->relay_ok++;
    if (s->failures) {
        s->failures = 0;
        s->last_err[0] = '\0';
    }
    memcpy(s->dg, frame, len);
    if (s->base.h.rx)
        s->base.h.rx(s->base.h.ctx, &s->base, s->dg, len, (struct sockaddr *)&s->master.ss,
                     s->master.len);
}

static void on_bad_frame(void *ctx, size_t len)
{
    (void)len;
    struct socks5_link *s = ctx;
    s->drops.bad_header++;
    if (s->state == S5_UP) s5_fail(s, "the master sent a frame of length 0");
}

static void s5_connected(struct socks5_link *s)
{
    char ps[ADDR_STRLEN + 260], ms[ADDR_STRLEN];
    int one = 1;
    (void)setsockopt(s->tfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    frame_dec_reset(s->dec);
    s->wlen = 0;
    ev_timer_stop(s->loop, &s->timeout);
    s->state = S5_UP;
    s->established++;
    LOGI("link %s: transport up (socks5-tcp via %s, connected to master %s)", s->base.name,
         proxy_str(s, ps, sizeof ps), addr_str((struct sockaddr *)&s->master.ss, ms, sizeof ms));
    link_report_state(&s->base, true);
}

/* ---- the TCP control connection ---- */

static int ctl_send(struct socks5_link *s, const uint8_t *buf, size_t len, const char *what)
{
    ssize_t n = send(s->tfd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == (ssize_t)len) return 0;
    s5_fail(s, "control connection: cannot send the %s: %s", what,
            n < 0 ? strerror(errno) : "short write");
    return -1;
}

static void send_request(struct socks5_link *s)
{
    if (s->cfg.tcp) { /* a connection to the master itself */
        uint8_t req[32];
        size_t n = socks5_build_request(req, sizeof req, SOCKS5_CMD_CONNECT,
                                        (struct sockaddr *)&s->master.ss);
        if (ctl_send(s, req, n, "CONNECT request") < 0) return;
        s->state = S5_REQUEST;
        return;
    }
    /* DST.ADDR/DST.PORT of UDP ASSOCIATE: where our datagrams will come from (RFC 1928 §6). */
    struct addr u;
    u.len = sizeof u.ss;
    if (getsockname(s->ufd, (struct sockaddr *)&u.ss, &u.len) < 0) {
        s5_fail(s, "cannot read the UDP socket's address: %s", strerror(errno));
        return;
    }
    uint8_t req[32];
    size_t n = socks5_build_request(req, sizeof req, SOCKS5_CMD_UDP_ASSOCIATE,
                                    (struct sockaddr *)&u.ss);
    if (ctl_send(s, req, n, "UDP ASSOCIATE request") < 0) return;
    s->state = S5_REQUEST;
}

/* Consume what the proxy sent so far, for the current state. */
static void ctl_process(struct socks5_link *s)
{
    char err[200];
    while (s->ctl_len > 0) {
        int n;
        if (s->state == S5_GREETING) {
            uint8_t method = 0;
            n = socks5_parse_method(s->ctl, s->ctl_len, s->user[0] != '\0', &method, err,
                                    sizeof err);
            if (n > 0) {
                memmove(s->ctl, s->ctl + n, s->ctl_len - (size_t)n);
                s->ctl_len -= (size_t)n;
                if (method == SOCKS5_METHOD_USERPASS) {
                    uint8_t a[3 + 255 + 255];
                    size_t al = socks5_build_auth(a, sizeof a, s->user, s->pass);
                    if (ctl_send(s, a, al, "username/password") < 0) return;
                    s->state = S5_AUTH;
                } else {
                    send_request(s);
                    if (s->state != S5_REQUEST) return;
                }
                continue;
            }
        } else if (s->state == S5_AUTH) {
            n = socks5_parse_auth_reply(s->ctl, s->ctl_len, err, sizeof err);
            if (n > 0) {
                memmove(s->ctl, s->ctl + n, s->ctl_len - (size_t)n);
                s->ctl_len -= (size_t)n;
                send_request(s);
                if (s->state != S5_REQUEST) return;
                continue;
            }
        } else if (s->state == S5_REQUEST) {
            struct socks5_reply r;
            uint8_t cmd = s->cfg.tcp ? SOCKS5_CMD_CONNECT : SOCKS5_CMD_UDP_ASSOCIATE;
            n = socks5_parse_reply(s->ctl, s->ctl_len, cmd, &r, err, sizeof err);
            if (n > 0 && s->cfg.tcp) { /* connected to the master: its greeting follows */
                memmove(s->ctl, s->ctl + n, s->ctl_len - (size_t)n);
                s->ctl_len -= (size_t)n;
                s->state = S5_MASTER;
                continue;
            }
            if (n > 0) {
                s->ctl_len = 0; /* nothing more is expected on the control connection */
                if (r.atyp == SOCKS5_ATYP_DOMAIN) {
                    s->state = S5_RESOLVE_RELAY;
                    s->rq = resolve_start(s->cfg.resolver, r.domain, r.port, AF_UNSPEC,
                                          relay_resolved, s);
                    if (!s->rq) s5_fail(s, "cannot resolve the relay name: out of memory");
                    return;
                }
                s->relay = r.addr;
                if (addr_is_unspecified((struct sockaddr *)&s->relay.ss)) {
                    /* "use the address you reached me at" */
                    s->relay = s->proxy;
                    addr_set_port(&s->relay, r.port);
                }
                s5_associated(s);
                return;
            }
        } else if (s->state == S5_MASTER) {
            uint8_t challenge[LINK_TCP_CHALLENGE_LEN];
            int rc = link_tcp_greeting_parse(s->ctl, s->ctl_len, challenge);
            if (rc < 0) {
                s5_fail(s, "connected to %s, which is not a braid master that takes links over "
                        "TCP (an older braid-master, or tcp_links = false there)",
                        addr_str((struct sockaddr *)&s->master.ss, err, sizeof err));
                return;
            }
            if (rc > 0) return;
            if (ctl_send(s, (const uint8_t *)LINK_TCP_DGRAM_MAGIC, 4, "datagram request") < 0)
                return;
            size_t rest = s->ctl_len - LINK_TCP_GREETING_LEN;
            uint8_t early[CTL_BUFSZ];
            memcpy(early, s->ctl + LINK_TCP_GREETING_LEN, rest);
            s->ctl_len = 0;
            s5_connected(s);
            if (rest && s->state == S5_UP) frame_dec_feed(s->dec, early, rest);
            return;
        } else { /* S5_UP or waiting for a relay name: the proxy has nothing more to say */
            s->ctl_len = 0;
            return;
        }
        if (n < 0) {
            s5_fail(s, "%s", err);
            return;
        }
        /* need more */
        if (s->ctl_len >= sizeof s->ctl) {
            s5_fail(s, "sent more than %zu bytes without completing its answer", sizeof s->ctl);
            return;
        }
        return;
    }
}

/* socks5-tcp, up: the master's frames. */
static void frames_read(struct socks5_link *s)
{
    for (int i = 0; i < RX_MAX_PER_EVENT; i++) {
        ssize_t n = recv(s->tfd, s->buf, sizeof s->buf, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
        if (n <= 0) {
            s5_fail(s, "connection to the master %s", n == 0 ? "closed" : strerror(errno));
            return;
        }
        frame_dec_feed(s->dec, s->buf, (size_t)n);
        if (s->tfd < 0 || s->state != S5_UP || (size_t)n < sizeof s->buf) return;
    }
}

static void tcp_read(struct socks5_link *s)
{
    for (;;) {
        if (s->ctl_len == sizeof s->ctl) s->ctl_len = 0; /* only when up: discarded */
        ssize_t n = recv(s->tfd, s->ctl + s->ctl_len, sizeof s->ctl - s->ctl_len, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
            s5_fail(s, "control connection failed%s%s: %s", s->state == S5_UP ? "" : " while ",
                    s->state == S5_UP ? "" : state_names[s->state], strerror(errno));
            return;
        }
        if (n == 0) {
            if (s->state == S5_UP)
                s5_fail(s, "closed the control connection (the UDP association ends with it)");
            else
                s5_fail(s, "closed the connection while %s%s", state_names[s->state],
                        s->ctl_len ? " (after a partial answer)" : "");
            return;
        }
        s->ctl_len += (size_t)n;
        ctl_process(s);
        if (s->tfd < 0 || s->state == S5_IDLE) return;
        if (s->cfg.tcp && s->state == S5_UP) return; /* frames from here (the next event) */
    }
}

static void tcp_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct socks5_link *s = w->data;
    if (s->state == S5_CONNECTING) {
        if (!(revents & EV_WRITE)) return;
        int e = 0;
        socklen_t el = sizeof e;
        if (getsockopt(s->tfd, SOL_SOCKET, SO_ERROR, &e, &el) < 0) e = errno;
        if (e) {
            s5_fail(s, "cannot be reached: TCP connect failed: %s", strerror(e));
            return;
        }
        s->tcp_local.len = sizeof s->tcp_local.ss;
        getsockname(s->tfd, (struct sockaddr *)&s->tcp_local.ss, &s->tcp_local.len);
        addr_unmap(&s->tcp_local);
        if (!s->cfg.tcp) s->ufd = open_udp(s, s->tcp_local.ss.ss_family, &s->tcp_local);
        if (!s->cfg.tcp && s->ufd < 0) {
            s5_fail(s, "cannot open the UDP socket for the relay: %s", strerror(errno));
            return;
        }
        tcp_watch(s, EV_READ);
        uint8_t g[4];
        size_t gl = socks5_build_greeting(g, s->user[0] != '\0');
        if (ctl_send(s, g, gl, "greeting") < 0) return;
        s->state = S5_GREETING;
        return;
    }
    if (revents & EV_WRITE && s->state == S5_UP) {
        int rc = sock_frame_flush(s->tfd, s->wbuf, &s->wlen);
        if (rc < 0) {
            s5_fail(s, "connection to the master failed: %s", strerror(errno));
            return;
        }
        if (rc) tcp_watch(s, EV_READ);
    }
    if (revents & EV_READ) {
        if (s->cfg.tcp && s->state == S5_UP) frames_read(s);
        else tcp_read(s);
    }
}

static void s5_connect(struct socks5_link *s)
{
    char ps[ADDR_STRLEN];
    int fd = socket(s->proxy.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        s5_fail(s, "cannot create a TCP socket: %s", strerror(errno));
        return;
    }
    s->tfd = fd;
    if (s->ifname[0] &&
        setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, s->ifname, (socklen_t)strlen(s->ifname)) < 0) {
        s5_fail(s, "cannot be reached through interface %s: %s%s", s->ifname, strerror(errno),
                errno == EPERM ? " (binding to an interface needs root or CAP_NET_RAW)" : "");
        return;
    }
    if (s->cfg.has_bind) {
        struct addr b = s->cfg.bind;
        addr_set_port(&b, 0); /* a bind port is for the UDP socket */
        if (b.ss.ss_family != s->proxy.ss.ss_family) {
            s5_fail(s, "is at %s, not of the IP version of the link's bind address",
                    addr_str((struct sockaddr *)&s->proxy.ss, ps, sizeof ps));
            return;
        }
        if (bind(fd, (struct sockaddr *)&b.ss, b.len) < 0) {
            s5_fail(s, "cannot be reached from %s: bind failed: %s",
                    addr_str((struct sockaddr *)&b.ss, ps, sizeof ps), strerror(errno));
            return;
        }
    }
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&s->proxy.ss, s->proxy.len) < 0 && errno != EINPROGRESS) {
        s5_fail(s, "cannot be reached: TCP connect failed: %s", strerror(errno));
        return;
    }
    s->state = S5_CONNECTING;
    ev_io_init(&s->tio, tcp_cb, fd, EV_WRITE);
    s->tio.data = s;
    ev_io_start(s->loop, &s->tio);
    ev_timer_stop(s->loop, &s->timeout);
    ev_timer_set(&s->timeout, s->cfg.timeout_s, 0.);
    ev_timer_start(s->loop, &s->timeout);
}

static void master_resolved(void *ctx, bool ok, const struct addr *a, const char *err)
{
    struct socks5_link *s = ctx;
    s->rq = NULL;
    if (!ok) {
        s5_fail(s, "not tried: the master's name \"%s\" does not resolve: %s", s->master_host, err);
        return;
    }
    s->master = *a;
    addr_unmap(&s->master);
    s->udp_hdr_len = socks5_udp_header(s->udp_hdr, (struct sockaddr *)&s->master.ss);
    s->base.overhead = s->cfg.tcp ? 0 : s->udp_hdr_len;
    s5_connect(s);
}

static void proxy_resolved(void *ctx, bool ok, const struct addr *a, const char *err)
{
    struct socks5_link *s = ctx;
    s->rq = NULL;
    if (!ok) {
        s5_fail(s, "name does not resolve: %s", err);
        return;
    }
    s->proxy = *a;
    s->state = S5_RESOLVE_MASTER;
    s->rq = resolve_start(s->cfg.resolver, s->master_host, s->cfg.master_port, AF_UNSPEC,
                          master_resolved, s);
    if (!s->rq) s5_fail(s, "cannot resolve the master: out of memory");
}

/* One attempt: names are resolved anew every time. */
static void s5_establish(struct socks5_link *s)
{
    s5_close(s);
    s->attempts++;
    s->state = S5_RESOLVE_PROXY;
    int fam = s->cfg.has_bind ? s->cfg.bind.ss.ss_family : AF_UNSPEC;
    s->rq = resolve_start(s->cfg.resolver, s->proxy_host, s->cfg.proxy_port, fam, proxy_resolved,
                          s);
    if (!s->rq) s5_fail(s, "cannot resolve: out of memory");
}

/* ---- link operations ---- */

static int s5_send(struct link *l, const uint8_t *buf, size_t len)
{
    struct socks5_link *s = (struct socks5_link *)l;
    if (s->state != S5_UP) return -1;
    if (s->cfg.tcp) {
        int rc = sock_frame_send(s->tfd, s->wbuf, &s->wlen, SOCK_FRAME_WBUF, UNSENT_MAX, buf, len);
        if (rc < 0) {
            l->c.tx_errors++;
            s5_fail(s, "connection to the master failed: %s", strerror(errno));
            return -1;
        }
        if (rc == 0) {
            l->c.tx_dropped++;
            return 0;
        }
        if (s->wlen) tcp_watch(s, EV_READ | EV_WRITE);
        l->c.tx_packets++;
        l->c.tx_bytes += len;
        return 0;
    }
    struct iovec iov[2] = {{.iov_base = s->udp_hdr, .iov_len = s->udp_hdr_len},
                           {.iov_base = (void *)buf, .iov_len = len}};
    struct msghdr mh = {.msg_name = &s->relay.ss, .msg_namelen = s->relay.len, .msg_iov = iov,
                        .msg_iovlen = 2};
    if (sendmsg(s->ufd, &mh, MSG_DONTWAIT) < 0) {
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) {
            l->c.tx_dropped++;
            return 0;
        }
        l->c.tx_errors++;
        if (sock_error_is_fatal(e)) {
            s5_fail(s, "relay unreachable: send failed: %s", strerror(e));
            return -1;
        }
        return 0;
    }
    l->c.tx_packets++;
    l->c.tx_bytes += len;
    return 0;
}

/* Nothing heard through the relay for a while: the association may be dead on the proxy's side
 * (an app that lost its mobile data, a relay that stopped forwarding); make a new one. */
static void s5_stale(struct link *l)
{
    struct socks5_link *s = (struct socks5_link *)l;
    if (s->state != S5_UP) return;
    if (s->cfg.tcp)
        s5_fail(s, "connection is silent: nothing from the master on it; making a new one");
    else
        s5_fail(s, "relay is silent: nothing from the master through it; making a new association");
}

static void s5_describe(const struct link *l, char *buf, size_t len)
{
    const struct socks5_link *s = (const struct socks5_link *)l;
    char ps[ADDR_STRLEN + 260], rs[ADDR_STRLEN] = "-";
    proxy_str(s, ps, sizeof ps);
    const char *kind = s->cfg.tcp ? "socks5-tcp" : "socks5";
    if (s->state == S5_UP) {
        addr_str((const struct sockaddr *)(s->cfg.tcp ? &s->master.ss : &s->relay.ss), rs,
                 sizeof rs);
        snprintf(buf, len, "%s via %s %s %s%s%s", kind, ps, s->cfg.tcp ? "to" : "relay", rs,
                 s->ifname[0] ? " dev " : "", s->ifname);
    } else {
        snprintf(buf, len, "%s via %s (%s)%s%s", kind, ps, state_names[s->state],
                 s->ifname[0] ? " dev " : "", s->ifname);
    }
}

static void s5_status_json(const struct link *l, struct strbuf *sb)
{
    const struct socks5_link *s = (const struct socks5_link *)l;
    char ps[ADDR_STRLEN + 260], rs[ADDR_STRLEN] = "";
    sb_printf(sb, "{\"kind\":\"%s\",\"proxy\":", s->cfg.tcp ? "socks5-tcp" : "socks5");
    sb_json_str(sb, proxy_str(s, ps, sizeof ps));
    sb_printf(sb, ",\"state\":");
    sb_json_str(sb, state_names[s->state]);
    if (s->state == S5_UP && !s->cfg.tcp)
        addr_str((const struct sockaddr *)&s->relay.ss, rs, sizeof rs);
    sb_printf(sb, ",\"relay\":");
    sb_json_str(sb, rs);
    sb_printf(sb,
              ",\"attempts\":%llu,\"established\":%llu,\"failures\":%u,\"retry_in_s\":%.3f,"
              "\"relay_rx\":%llu,\"drop_wrong_source\":%llu,\"drop_bad_header\":%llu,"
              "\"drop_frag\":%llu,\"drop_not_master\":%llu,\"last_error\":",
              (unsigned long long)s->attempts, (unsigned long long)s->established, s->failures,
              s->state == S5_IDLE && ev_is_active(&s->retry)
                  ? ev_timer_remaining(s->loop, (ev_timer *)&s->retry)
                  : 0.0,
              (unsigned long long)s->relay_ok, (unsigned long long)s->drops.wrong_source,
              (unsigned long long)s->drops.bad_header, (unsigned long long)s->drops.frag,
              (unsigned long long)s->drops.not_master);
    sb_json_str(sb, s->last_err);
    sb_printf(sb, "}");
}

static void s5_destroy(struct link *l)
{
    struct socks5_link *s = (struct socks5_link *)l;
    s5_close(s);
    ev_timer_stop(s->loop, &s->retry);
    sodium_memzero(s->pass, sizeof s->pass);
    free(s->dec);
    free(s->dg);
    free(s->wbuf);
    free(s);
}

static int s5_stream_target(const struct link *l, struct link_stream_target *t)
{
    const struct socks5_link *s = (const struct socks5_link *)l;
    if (!l->up || s->proxy.len == 0 || s->master.len == 0) return -1;
    memset(t, 0, sizeof *t);
    t->to = s->master.ss;
    t->tolen = s->master.len;
    t->proxy = s->proxy.ss;
    t->proxylen = s->proxy.len;
    if (s->cfg.has_bind) {
        t->bind = s->cfg.bind.ss;
        t->bindlen = s->cfg.bind.len;
    }
    snprintf(t->ifname, sizeof t->ifname, "%s", s->ifname);
    snprintf(t->user, sizeof t->user, "%s", s->user);
    snprintf(t->pass, sizeof t->pass, "%s", s->pass);
    return 0;
}

static const struct link_ops socks5_ops = {
    .stream_target = s5_stream_target,
    .kind = "socks5",
    .send = s5_send,
    .peer_seen = NULL,
    .stale = s5_stale,
    .describe = s5_describe,
    .status_json = s5_status_json,
    .destroy = s5_destroy,
};

struct link *socks5_link_new(struct ev_loop *loop, const struct socks5_link_config *cfg)
{
    struct socks5_link *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->base.ops = &socks5_ops;
    s->base.id = cfg->id;
    snprintf(s->base.name, sizeof s->base.name, "%s", cfg->name ? cfg->name : "link");
    s->loop = loop;
    s->cfg = *cfg;
    snprintf(s->proxy_host, sizeof s->proxy_host, "%s", cfg->proxy_host);
    snprintf(s->master_host, sizeof s->master_host, "%s", cfg->master_host);
    if (cfg->username) snprintf(s->user, sizeof s->user, "%s", cfg->username);
    if (cfg->password) snprintf(s->pass, sizeof s->pass, "%s", cfg->password);
    if (cfg->interface) snprintf(s->ifname, sizeof s->ifname, "%s", cfg->interface);
    s->cfg.name = s->cfg.proxy_host = s->cfg.master_host = NULL;
    s->cfg.username = s->cfg.password = s->cfg.interface = NULL;
    if (s->cfg.timeout_s <= 0) s->cfg.timeout_s = 5.0;
    if (s->cfg.backoff_min_s <= 0) s->cfg.backoff_min_s = 0.5;
    if (s->cfg.backoff_max_s < s->cfg.backoff_min_s) s->cfg.backoff_max_s = 2.0;
    s->base.overhead = cfg->tcp ? 0 : SOCKS5_UDP_HDR_V4;
    if (cfg->tcp) {
        s->dec = malloc(sizeof *s->dec);
        s->dg = malloc(FRAME_MAX_LEN);
        s->wbuf = malloc(SOCK_FRAME_WBUF);
        if (!s->dec || !s->dg || !s->wbuf) {
            free(s->dec);
            free(s->dg);
            free(s->wbuf);
            free(s);
            return NULL;
        }
        frame_dec_init(s->dec, FRAME_MAX_LEN, on_frame, on_bad_frame, s);
    }
    s->tfd = s->ufd = -1;
    s->state = S5_IDLE;
    ev_timer_init(&s->timeout, timeout_cb, 1., 0.);
    s->timeout.data = s;
    ev_timer_init(&s->retry, retry_cb, 1., 0.);
    s->retry.data = s;
    return &s->base;
}

void socks5_link_start(struct link *l)
{
    s5_establish((struct socks5_link *)l);
}
