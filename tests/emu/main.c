/* main.c: braid-emu, a userspace link emulator: a UDP relay (one process per link) that shapes
 * each direction (rate/trace, queue, delay, jitter, loss, blackhole), with a script and control;
 * or (--tun) the same between two TUN devices, for every IP packet routed through them. */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>

#include "../../common/addr.h"
#include "../../common/log.h"
#include "../../common/strbuf.h"
#include "script.h"
#include "shaper.h"

#define BATCH 64
#define RX_ROUNDS 8      /* batches per readable event before returning to the loop */
#define SERVICE_MAX 4096 /* packets released per service call per direction */
#define SOCKBUF (4 << 20)
#define UP 0
#define DOWN 1

static const char *const dir_name[2] = {"up", "down"};

struct pool {
    uint8_t *mem;
    uint32_t slot, count;
    uint32_t *free;
    uint32_t nfree;
};

struct emu {
    struct ev_loop *loop;
    struct addr listen, target, client;
    bool have_client;
    bool tun; /* --tun A,B: lfd and ufd are TUN devices (up: read from A, written to B) */
    int lfd, ufd, tfd, cfd;
    ev_io lw, uw, tw, cw;
    ev_signal sig_term, sig_int;
    struct pool pool[2];
    struct emu_shaper *sh[2];
    struct emu_script script;
    size_t next_ev;
    uint64_t start, armed;
    const char *ctl_path, *stats_path;
    unsigned listen_port, up_port;
    uint64_t dropped_foreign, dropped_noclient, rebinds;
    uint64_t send_errors[2], dropped_oversize[2];
    struct log_limit ll_send, ll_foreign, ll_oversize;
    /* batch I/O */
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_storage names[BATCH];
    uint32_t ids[BATCH];
    uint8_t *scratch;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * EMU_NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* ---- packet pool: fixed slots, free stack; no allocation per packet ---- */
static int pool_init(struct pool *p, uint32_t count, uint32_t slot)
{
    p->mem = malloc((size_t)count * slot);
    p->free = malloc((size_t)count * sizeof(*p->free));
    if (!p->mem || !p->free) return -1;
    p->slot = slot;
    p->count = count;
    for (uint32_t i = 0; i < count; i++)
        p->free[i] = count - 1 - i;
    p->nfree = count;
    return 0;
}

static void pool_free(struct pool *p)
{
    free(p->mem);
    free(p->free);
}

static uint8_t *slot_ptr(struct pool *p, uint32_t id)
{
    return p->mem + (size_t)id * p->slot;
}

static void slot_put(struct pool *p, uint32_t id)
{
    p->free[p->nfree++] = id;
}

/* ---- sockets ---- */
static int open_udp(const struct addr *bind_to, unsigned *port, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int buf = SOCKBUF;
    int fd = socket(bind_to->ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    char a[ADDR_STRLEN];
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    /* Bigger buffers absorb bursts; FORCE works as root, the plain one up to rmem_max. */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof(buf)) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
    if (bind(fd, (const struct sockaddr *)&bind_to->ss, bind_to->len) < 0) {
        snprintf(err, errlen, "cannot bind UDP socket to %s: %s",
                 addr_str((const struct sockaddr *)&bind_to->ss, a, sizeof(a)), strerror(errno));
        close(fd);
        return -1;
    }
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        *port = addr_port((struct sockaddr *)&ss);
    return fd;
}

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    return false;
}

/* The upstream socket: an ephemeral port on loopback (target on loopback) or any address. */
static int open_upstream(struct emu *e, unsigned *port, char *err, size_t errlen)
{
    struct addr b;
    const struct sockaddr *t = (const struct sockaddr *)&e->target.ss;
    bool lo = is_loopback(t);
    if (t->sa_family == AF_INET)
        addr_parse_ip(lo ? "127.0.0.1" : "0.0.0.0", 0, &b);
    else
        addr_parse_ip(lo ? "::1" : "::", 0, &b);
    return open_udp(&b, port, err, errlen);
}

/* A TUN device (no packet information header), non-blocking. */
static int open_tun(const char *name, char *err, size_t errlen)
{
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "/dev/net/tun: %s (root is needed)", strerror(errno));
        return -1;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        snprintf(err, errlen, "cannot create TUN device %s: %s", name, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- timer: one timerfd (ns resolution; libev's epoll timeout is rounded to whole ms) ---- */
static uint64_t next_wakeup(const struct emu *e)
{
    uint64_t t = EMU_NEVER;
    for (int d = 0; d < 2; d++) {
        uint64_t x = emu_shaper_next(e->sh[d]);
        if (x < t) t = x;
    }
    if (e->next_ev < e->script.n) {
        uint64_t x = e->start + e->script.ev[e->next_ev].at_ns;
        if (x < t) t = x;
    }
    return t;
}

static void rearm(struct emu *e)
{
    uint64_t t = next_wakeup(e);
    struct itimerspec its;
    if (t == e->armed) return;
    memset(&its, 0, sizeof(its));
    if (t != EMU_NEVER) {
        if (t == 0) t = 1;
        its.it_value.tv_sec = (time_t)(t / EMU_NS_PER_S);
        its.it_value.tv_nsec = (long)(t % EMU_NS_PER_S);
    }
    if (timerfd_settime(e->tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
        LOGE("timerfd_settime: %s", strerror(errno));
    e->armed = t;
}

/* ---- sending ---- */
static void send_batch(struct emu *e, int d, int n)
{
    int fd = d == UP ? e->ufd : e->lfd;
    int sent = 0;
    while (sent < n) {
        int r = sendmmsg(fd, e->msgs + sent, (unsigned)(n - sent), MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR) continue;
            log_limited(&e->ll_send, LOG_WARN, "%s: send failed: %s (packet dropped)", dir_name[d],
                        strerror(errno));
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
                e->send_errors[d] += (uint64_t)(n - sent);
                break;
            }
            e->send_errors[d]++;
            sent++;
            continue;
        }
        sent += r;
    }
    for (int i = 0; i < n; i++)
        slot_put(&e->pool[d], e->ids[i]);
}

static int exec_cmd(struct emu *e, const struct emu_cmd *c, uint64_t now, char *err, size_t errlen);

/* Run due script events, release every due packet, re-arm the timer. */
static void service(struct emu *e, uint64_t now)
{
    while (e->next_ev < e->script.n && e->start + e->script.ev[e->next_ev].at_ns <= now) {
        const struct emu_event *ev = &e->script.ev[e->next_ev++];
        char err[256];
        if (exec_cmd(e, &ev->cmd, now, err, sizeof(err)) < 0)
            LOGE("script line %u: %s", ev->line, err);
    }
    for (int d = 0; d < 2; d++) {
        struct pool *p = &e->pool[d];
        struct emu_out o;
        int n = 0, total = 0;
        while (total < SERVICE_MAX && emu_shaper_pop(e->sh[d], now, &o)) {
            total++;
            if (e->tun) { /* one packet per write, into the other device */
                if (!o.dropped &&
                    write(d == UP ? e->ufd : e->lfd, slot_ptr(p, o.id), o.len) < 0) {
                    e->send_errors[d]++;
                    log_limited(&e->ll_send, LOG_WARN, "%s: write failed: %s (packet dropped)",
                                dir_name[d], strerror(errno));
                }
                slot_put(p, o.id);
                continue;
            }
            if (o.dropped || (d == DOWN && !e->have_client)) {
                if (!o.dropped) e->dropped_noclient++;
                slot_put(p, o.id);
                continue;
            }
            e->ids[n] = o.id;
            e->iov[n].iov_base = slot_ptr(p, o.id);
            e->iov[n].iov_len = o.len;
            memset(&e->msgs[n], 0, sizeof(e->msgs[n]));
            e->msgs[n].msg_hdr.msg_iov = &e->iov[n];
            e->msgs[n].msg_hdr.msg_iovlen = 1;
            if (d == UP) {
                e->msgs[n].msg_hdr.msg_name = &e->target.ss;
                e->msgs[n].msg_hdr.msg_namelen = e->target.len;
            } else {
                e->msgs[n].msg_hdr.msg_name = &e->client.ss;
                e->msgs[n].msg_hdr.msg_namelen = e->client.len;
            }
            if (++n == BATCH) {
                send_batch(e, d, n);
                n = 0;
            }
        }
        if (n) send_batch(e, d, n);
    }
    rearm(e);
}

/* ---- receiving ---- */
/* TUN mode: IP packets from one device into the direction's shaper. */
static void rx_tun(struct emu *e, int d)
{
    struct pool *p = &e->pool[d];
    int fd = d == UP ? e->lfd : e->ufd;
    for (int i = 0; i < RX_ROUNDS * BATCH; i++) {
        bool scratch = p->nfree == 0;
        uint32_t id = scratch ? UINT32_MAX : p->free[--p->nfree];
        uint8_t *buf = scratch ? e->scratch : slot_ptr(p, id);
        ssize_t n = read(fd, buf, p->slot);
        if (n <= 0) {
            if (!scratch) slot_put(p, id);
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                LOGW("%s: read failed: %s", dir_name[d], strerror(errno));
            break;
        }
        bool keep = emu_shaper_arrive(e->sh[d], now_ns(), scratch ? 0 : id, (uint32_t)n) ==
                    EMU_ACCEPTED;
        if (keep && scratch) {
            LOGE("internal: shaper accepted a packet while the pool is empty");
            abort();
        }
        if (!keep && !scratch) slot_put(p, id);
    }
    service(e, now_ns());
}

static void rx(struct emu *e, int d)
{
    if (e->tun) {
        rx_tun(e, d);
        return;
    }
    struct pool *p = &e->pool[d];
    int fd = d == UP ? e->lfd : e->ufd;
    for (int round = 0; round < RX_ROUNDS; round++) {
        int want = p->nfree < BATCH ? (int)p->nfree : BATCH;
        bool scratch = want == 0;
        int r;
        uint64_t now;
        if (scratch) want = BATCH; /* pool empty: receive to drop (the shaper is full too) */
        for (int i = 0; i < want; i++) {
            uint8_t *buf;
            if (scratch) {
                e->ids[i] = UINT32_MAX;
                buf = e->scratch + (size_t)i * p->slot;
            } else {
                e->ids[i] = p->free[--p->nfree];
                buf = slot_ptr(p, e->ids[i]);
            }
            e->iov[i].iov_base = buf;
            e->iov[i].iov_len = p->slot;
            memset(&e->msgs[i], 0, sizeof(e->msgs[i]));
            e->msgs[i].msg_hdr.msg_iov = &e->iov[i];
            e->msgs[i].msg_hdr.msg_iovlen = 1;
            e->msgs[i].msg_hdr.msg_name = &e->names[i];
            e->msgs[i].msg_hdr.msg_namelen = sizeof(e->names[i]);
        }
        r = recvmmsg(fd, e->msgs, (unsigned)want, MSG_DONTWAIT, NULL);
        now = now_ns();
        if (r < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                LOGW("%s: receive failed: %s", dir_name[d], strerror(errno));
            r = 0;
        }
        for (int i = 0; i < r; i++) {
            const struct sockaddr *from = (const struct sockaddr *)&e->names[i];
            uint32_t id = e->ids[i];
            uint32_t len = e->msgs[i].msg_len;
            bool keep = false;
            if (d == UP) {
                memcpy(&e->client.ss, &e->names[i], e->msgs[i].msg_hdr.msg_namelen);
                e->client.len = e->msgs[i].msg_hdr.msg_namelen;
                e->have_client = true;
            } else if (!addr_equal(from, (const struct sockaddr *)&e->target.ss)) {
                char a[ADDR_STRLEN];
                e->dropped_foreign++;
                log_limited(&e->ll_foreign, LOG_WARN,
                            "dropped a datagram from %s on the upstream socket: only the target "
                            "may send there",
                            addr_str(from, a, sizeof(a)));
                goto done;
            }
            if (e->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
                e->dropped_oversize[d]++;
                log_limited(&e->ll_oversize, LOG_WARN,
                            "%s: dropped a datagram larger than %u bytes; raise --max-packet",
                            dir_name[d], p->slot);
                goto done;
            }
            keep = emu_shaper_arrive(e->sh[d], now, scratch ? 0 : id, len) == EMU_ACCEPTED;
            if (keep && scratch) { /* cannot happen: pool and shaper have the same capacity */
                LOGE("internal: shaper accepted a packet while the pool is empty");
                abort();
            }
        done:
            if (!keep && !scratch) slot_put(p, id);
        }
        if (!scratch)
            for (int i = want - 1; i >= r; i--)
                slot_put(p, e->ids[i]);
        if (r < want) break;
    }
    service(e, now_ns());
}

static void on_listen(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    rx(w->data, UP);
}

static void on_upstream(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    rx(w->data, DOWN);
}

static void on_timer(struct ev_loop *loop, ev_io *w, int revents)
{
    struct emu *e = w->data;
    uint64_t expirations;
    (void)loop;
    (void)revents;
    if (read(e->tfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
        LOGW("timerfd read: %s", strerror(errno));
    e->armed = EMU_NEVER; /* one-shot: it has expired */
    service(e, now_ns());
}

/* ---- commands ---- */
static int do_rebind(struct emu *e, char *err, size_t errlen)
{
    if (e->tun) {
        snprintf(err, errlen, "rebind: not in --tun mode (there is no upstream socket)");
        return -1;
    }
    unsigned port = 0;
    int fd = open_upstream(e, &port, err, errlen); /* open first: the port is sure to change */
    if (fd < 0) return -1;
    ev_io_stop(e->loop, &e->uw);
    close(e->ufd);
    e->ufd = fd;
    ev_io_set(&e->uw, fd, EV_READ);
    ev_io_start(e->loop, &e->uw);
    LOGI("rebind: upstream port %u -> %u", e->up_port, port);
    e->up_port = port;
    e->rebinds++;
    return 0;
}

static int exec_cmd(struct emu *e, const struct emu_cmd *c, uint64_t now, char *err, size_t errlen)
{
    char desc[512];
    for (int d = 0; d < 2; d++) {
        if (!(c->dirs & (d == UP ? EMU_DIR_UP : EMU_DIR_DOWN))) continue;
        switch (c->kind) {
        case EMU_CMD_BLACKHOLE:
            emu_shaper_blackhole(e->sh[d], now, c->for_ns ? now + c->for_ns : EMU_NEVER);
            LOGI("%s: blackhole %s%.3f s", dir_name[d], c->for_ns ? "for " : "until cleared",
                 c->for_ns ? (double)c->for_ns / 1e9 : 0.0);
            break;
        case EMU_CMD_CLEAR:
            emu_shaper_clear(e->sh[d], now);
            LOGI("%s: blackhole cleared", dir_name[d]);
            break;
        case EMU_CMD_SET:
            emu_shaper_apply(e->sh[d], &c->spec, now);
            emu_shaper_describe(e->sh[d], desc, sizeof(desc));
            LOGI("%s: %s", dir_name[d], desc);
            break;
        default:
            break;
        }
    }
    switch (c->kind) {
    case EMU_CMD_REBIND:
        return do_rebind(e, err, errlen);
    case EMU_CMD_QUIT:
        LOGI("quit");
        ev_break(e->loop, EVBREAK_ALL);
        return 0;
    default:
        return 0;
    }
}

static void stats_json(struct emu *e, struct strbuf *sb)
{
    char a[ADDR_STRLEN];
    sb_printf(sb, "{\"uptime_ms\":%llu,\"listen_port\":%u,\"upstream_port\":%u,\"client\":",
              (unsigned long long)((now_ns() - e->start) / EMU_NS_PER_MS), e->listen_port,
              e->up_port);
    if (e->have_client)
        sb_json_str(sb, addr_str((struct sockaddr *)&e->client.ss, a, sizeof(a)));
    else
        sb_printf(sb, "null");
    sb_printf(sb, ",\"target\":");
    sb_json_str(sb, addr_str((struct sockaddr *)&e->target.ss, a, sizeof(a)));
    sb_printf(sb, ",\"rebinds\":%llu,\"dropped_foreign\":%llu,\"dropped_noclient\":%llu",
              (unsigned long long)e->rebinds, (unsigned long long)e->dropped_foreign,
              (unsigned long long)e->dropped_noclient);
    for (int d = 0; d < 2; d++) {
        const struct emu_stats *s = emu_shaper_stats(e->sh[d]);
        sb_printf(sb,
                  ",\"%s\":{\"rx_packets\":%llu,\"rx_bytes\":%llu,\"tx_packets\":%llu,"
                  "\"tx_bytes\":%llu,\"dropped_loss\":%llu,\"dropped_queue\":%llu,"
                  "\"dropped_blackhole\":%llu,\"dropped_oversize\":%llu,\"send_errors\":%llu,"
                  "\"queued_bytes\":%llu,\"queued_packets\":%llu,\"inflight_bytes\":%llu,"
                  "\"inflight_packets\":%llu,\"blackhole\":%s}",
                  dir_name[d], (unsigned long long)s->rx_packets, (unsigned long long)s->rx_bytes,
                  (unsigned long long)s->tx_packets, (unsigned long long)s->tx_bytes,
                  (unsigned long long)s->dropped_loss, (unsigned long long)s->dropped_queue,
                  (unsigned long long)s->dropped_blackhole,
                  (unsigned long long)e->dropped_oversize[d], (unsigned long long)e->send_errors[d],
                  (unsigned long long)s->queued_bytes, (unsigned long long)s->queued_packets,
                  (unsigned long long)s->inflight_bytes, (unsigned long long)s->inflight_packets,
                  emu_shaper_blackholed(e->sh[d], now_ns()) ? "true" : "false");
    }
    sb_printf(sb, "}");
}

static void on_control(struct ev_loop *loop, ev_io *w, int revents)
{
    struct emu *e = w->data;
    (void)loop;
    (void)revents;
    for (int i = 0; i < 32; i++) {
        char buf[4096], err[512];
        struct sockaddr_un from;
        socklen_t fl = sizeof(from);
        struct strbuf reply;
        struct emu_cmd cmd;
        ssize_t n = recvfrom(e->cfd, buf, sizeof(buf) - 1, MSG_DONTWAIT | MSG_TRUNC,
                             (struct sockaddr *)&from, &fl);
        uint64_t now = now_ns();
        if (n < 0) break;
        sb_init(&reply);
        if ((size_t)n >= sizeof(buf)) {
            sb_printf(&reply, "error: command longer than %zu bytes", sizeof(buf) - 1);
        } else if (buf[n] = '\0', strlen(buf) != (size_t)n) {
            sb_printf(&reply, "error: NUL byte in the command; send one text command");
        } else if (emu_cmd_parse(buf, &cmd, err, sizeof(err)) < 0) {
            sb_printf(&reply, "error: %s", err);
        } else {
            if (cmd.kind == EMU_CMD_STATS)
                stats_json(e, &reply);
            else if (exec_cmd(e, &cmd, now, err, sizeof(err)) < 0)
                sb_printf(&reply, "error: %s", err);
            else
                sb_printf(&reply, "ok");
            emu_cmd_free(&cmd);
        }
        if (fl > sizeof(sa_family_t)) {
            if (sendto(e->cfd, reply.buf, reply.len, MSG_DONTWAIT, (struct sockaddr *)&from, fl) <
                0)
                LOGW("control: cannot reply: %s", strerror(errno));
        } else {
            LOGW("control: command from an unbound socket, no reply possible (bind the client "
                 "socket)");
        }
        sb_free(&reply);
        service(e, now_ns());
    }
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    LOGI("signal %d: exiting", w->signum);
    ev_break(loop, EVBREAK_ALL);
}

static int open_control(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "control socket path too long (at most %zu bytes): %s",
                 sizeof(sa.sun_path) - 1, path);
        return -1;
    }
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "%s exists and is not a socket; choose another --control path",
                     path);
            return -1;
        }
        unlink(path); /* a stale socket from an earlier run */
    }
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket(AF_UNIX): %s", strerror(errno));
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        snprintf(err, errlen, "cannot bind control socket %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- client mode: braid-emu --ctl PATH COMMAND... ---- */
static int ctl_client(const char *path, int argc, char **argv)
{
    struct sockaddr_un sa, self;
    char cmd[4096], reply[65536];
    size_t len = 0;
    struct pollfd pfd;
    ssize_t n;
    int fd;
    cmd[0] = '\0';
    for (int i = 0; i < argc; i++) {
        int w = snprintf(cmd + len, sizeof(cmd) - len, "%s%s", i ? " " : "", argv[i]);
        if (w < 0 || (size_t)w >= sizeof(cmd) - len) {
            fprintf(stderr, "braid-emu: command too long\n");
            return 2;
        }
        len += (size_t)w;
    }
    if (len == 0) {
        fprintf(stderr, "braid-emu: --ctl PATH needs a command, e.g. --ctl %s stats\n", path);
        return 2;
    }
    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "braid-emu: control socket path too long: %s\n", path);
        return 2;
    }
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("braid-emu: socket");
        return 1;
    }
    memset(&self, 0, sizeof(self));
    self.sun_family = AF_UNIX;
    if (bind(fd, (struct sockaddr *)&self, sizeof(sa_family_t)) < 0) { /* autobind */
        perror("braid-emu: bind");
        close(fd);
        return 1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (sendto(fd, cmd, len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        fprintf(stderr,
                "braid-emu: cannot send to %s: %s (is braid-emu running with --control "
                "%s?)\n",
                path, strerror(errno), path);
        close(fd);
        return 1;
    }
    pfd.fd = fd;
    pfd.events = POLLIN;
    if (poll(&pfd, 1, 3000) <= 0) {
        fprintf(stderr, "braid-emu: no reply from %s within 3 s\n", path);
        close(fd);
        return 1;
    }
    n = recv(fd, reply, sizeof(reply) - 1, 0);
    close(fd);
    if (n < 0) {
        perror("braid-emu: recv");
        return 1;
    }
    reply[n] = '\0';
    printf("%s\n", reply);
    return strncmp(reply, "error", 5) == 0 ? 1 : 0;
}

/* ---- main ---- */
static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: braid-emu --listen ADDR:PORT --target ADDR:PORT [--up SPEC] [--down SPEC]\n"
        "                 [--script FILE] [--control PATH] [--seed N] [--stats FILE]\n"
        "                 [--pool N] [--max-packet BYTES] [--quiet | --verbose]\n"
        "       braid-emu --tun A,B [--up SPEC] [--down SPEC] [options as above]\n"
        "       braid-emu --ctl PATH COMMAND...\n"
        "A UDP relay that emulates one link: datagrams from the client at --listen go \"up\" to\n"
        "--target; the target's replies go \"down\" to the latest client address.\n"
        "--tun A,B: creates TUN devices A and B (root); IP packets routed into A go \"up\" and\n"
        "come out of B, those routed into B go \"down\" and come out of A (sizes: IP packets).\n"
        "SPEC: comma-separated rate=20mbit | trace=FILE, delay=30ms, jitter=5ms, reorder=0|1,\n"
        "      loss=0.01, queue=200ms|300kb|150p|auto, blackhole=0|1, overhead=BYTES\n"
        "Commands (--script lines start with \"at TIME\"): blackhole up|down|both [for TIME],\n"
        "      clear up|down|both, set up|down|both SPEC, rebind, stats, quit\n"
        "See tests/emu/README.md.\n");
}

/* Like addr_parse, but port 0 is allowed (the kernel picks one; "stats" tells which). */
static int parse_listen(const char *s, struct addr *out, char *err, size_t errlen)
{
    char tmp[300];
    size_t n = strlen(s);
    if (n < 2 || n >= sizeof(tmp) || s[n - 1] != '0' || s[n - 2] != ':')
        return addr_parse(s, out, err, errlen);
    memcpy(tmp, s, n + 1);
    tmp[n - 1] = '1';
    if (addr_parse(tmp, out, err, errlen) < 0) return -1;
    if (out->ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&out->ss)->sin_port = 0;
    else
        ((struct sockaddr_in6 *)&out->ss)->sin6_port = 0;
    return 0;
}

static int parse_u32(const char *opt, const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    unsigned long long v;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (!*s || *end || errno || s[0] == '-' || v < min || v > max) {
        fprintf(stderr, "braid-emu: %s %s: expected a whole number from %u to %u\n", opt, s, min,
                max);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"listen", required_argument, NULL, 'l'},
                                         {"target", required_argument, NULL, 't'},
                                         {"up", required_argument, NULL, 'u'},
                                         {"down", required_argument, NULL, 'd'},
                                         {"script", required_argument, NULL, 's'},
                                         {"control", required_argument, NULL, 'c'},
                                         {"seed", required_argument, NULL, 'S'},
                                         {"stats", required_argument, NULL, 'o'},
                                         {"pool", required_argument, NULL, 'p'},
                                         {"max-packet", required_argument, NULL, 'm'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"ctl", required_argument, NULL, 'C'},
                                         {"tun", required_argument, NULL, 'T'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *listen_s = NULL, *target_s = NULL, *script_s = NULL, *tun_s = NULL;
    const char *spec_s[2] = {NULL, NULL};
    struct emu_spec spec[2];
    struct emu *e;
    char err[1024];
    uint32_t pool_n = 8192, max_packet = 2048;
    unsigned long long seed = 1;
    int opt, rc = 0;

    memset(spec, 0, sizeof(spec));
    e = calloc(1, sizeof(*e));
    if (!e) return 1;
    e->lfd = e->ufd = e->tfd = e->cfd = -1;
    while ((opt = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (opt) {
        case 'l':
            listen_s = optarg;
            break;
        case 't':
            target_s = optarg;
            break;
        case 'u':
            spec_s[UP] = optarg;
            break;
        case 'd':
            spec_s[DOWN] = optarg;
            break;
        case 's':
            script_s = optarg;
            break;
        case 'c':
            e->ctl_path = optarg;
            break;
        case 'o':
            e->stats_path = optarg;
            break;
        case 'S': {
            char *end;
            errno = 0;
            seed = strtoull(optarg, &end, 0);
            if (!*optarg || *end || errno || optarg[0] == '-') {
                fprintf(stderr, "braid-emu: --seed %s: expected a whole number >= 0\n", optarg);
                free(e);
                return 2;
            }
            break;
        }
        case 'p':
            if (parse_u32("--pool", optarg, 16, 1u << 20, &pool_n) < 0) goto usage_err;
            break;
        case 'm':
            if (parse_u32("--max-packet", optarg, 64, 65535, &max_packet) < 0) goto usage_err;
            break;
        case 'q':
            log_set_level(LOG_WARN);
            break;
        case 'v':
            log_set_level(LOG_DEBUG);
            break;
        case 'T':
            tun_s = optarg;
            break;
        case 'C':
            free(e);
            return ctl_client(optarg, argc - optind, argv + optind);
        case 'h':
            usage(stdout);
            free(e);
            return 0;
        default:
            goto usage_err;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "braid-emu: unexpected argument \"%s\"\n", argv[optind]);
        goto usage_err;
    }
    if (tun_s) {
        const char *comma = strchr(tun_s, ',');
        if (listen_s || target_s || !comma || comma == tun_s || !comma[1] ||
            (size_t)(comma - tun_s) >= IFNAMSIZ || strlen(comma + 1) >= IFNAMSIZ) {
            fprintf(stderr, "braid-emu: --tun A,B: two device names (at most 15 characters "
                            "each), and neither --listen nor --target\n");
            goto usage_err;
        }
        e->tun = true;
    } else if (!listen_s || !target_s) {
        fprintf(stderr, "braid-emu: --listen and --target are required (or --tun A,B)\n");
        goto usage_err;
    }
    if (e->tun) {
        /* (no addresses) */
    } else if (parse_listen(listen_s, &e->listen, err, sizeof(err)) < 0) {
        fprintf(stderr, "braid-emu: --listen: %s\n", err);
        goto usage_err;
    }
    if (!e->tun && addr_parse(target_s, &e->target, err, sizeof(err)) < 0) {
        fprintf(stderr, "braid-emu: --target: %s\n", err);
        goto usage_err;
    }
    if (!e->tun && addr_port((struct sockaddr *)&e->target.ss) == 0) {
        fprintf(stderr, "braid-emu: --target %s: port 0 is not a destination\n", target_s);
        goto usage_err;
    }
    for (int d = 0; d < 2; d++) {
        if (spec_s[d] && emu_spec_parse(spec_s[d], &spec[d], err, sizeof(err)) < 0) {
            fprintf(stderr, "braid-emu: --%s: %s\n", dir_name[d], err);
            goto usage_err;
        }
    }
    if (script_s && emu_script_load(script_s, &e->script, err, sizeof(err)) < 0) {
        fprintf(stderr, "braid-emu: --script: %s\n", err);
        goto usage_err;
    }

    (void)prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* wake up on time, not 50 us late */
    signal(SIGPIPE, SIG_IGN);
    e->loop = ev_default_loop(EVFLAG_AUTO);
    if (!e->loop) {
        fprintf(stderr, "braid-emu: cannot create the event loop\n");
        rc = 1;
        goto out;
    }
    e->start = now_ns();
    e->armed = EMU_NEVER;
    for (int d = 0; d < 2; d++) {
        if (pool_init(&e->pool[d], pool_n, max_packet) < 0 ||
            !(e->sh[d] =
                  emu_shaper_new(pool_n, seed ^ (d ? 0x5851F42D4C957F2Dull : 0), e->start))) {
            fprintf(stderr, "braid-emu: out of memory for a pool of %u x %u bytes\n", pool_n,
                    max_packet);
            rc = 1;
            goto out;
        }
        emu_shaper_apply(e->sh[d], &spec[d], e->start);
    }
    e->scratch = malloc((size_t)BATCH * max_packet);
    if (!e->scratch) {
        rc = 1;
        goto out;
    }
    if (e->tun) {
        const char *comma = strchr(tun_s, ',');
        char a[IFNAMSIZ];
        memcpy(a, tun_s, (size_t)(comma - tun_s));
        a[comma - tun_s] = 0;
        if ((e->lfd = open_tun(a, err, sizeof(err))) < 0 ||
            (e->ufd = open_tun(comma + 1, err, sizeof(err))) < 0) {
            fprintf(stderr, "braid-emu: --tun: %s\n", err);
            rc = 1;
            goto out;
        }
        e->have_client = true;
    }
    if ((!e->tun && (e->lfd = open_udp(&e->listen, &e->listen_port, err, sizeof(err))) < 0) ||
        (!e->tun && (e->ufd = open_upstream(e, &e->up_port, err, sizeof(err))) < 0) ||
        (e->ctl_path && (e->cfd = open_control(e->ctl_path, err, sizeof(err))) < 0)) {
        fprintf(stderr, "braid-emu: %s\n", err);
        rc = 1;
        goto out;
    }
    e->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (e->tfd < 0) {
        fprintf(stderr, "braid-emu: timerfd_create: %s\n", strerror(errno));
        rc = 1;
        goto out;
    }
    ev_io_init(&e->lw, on_listen, e->lfd, EV_READ);
    ev_io_init(&e->uw, on_upstream, e->ufd, EV_READ);
    ev_io_init(&e->tw, on_timer, e->tfd, EV_READ);
    e->lw.data = e->uw.data = e->tw.data = e;
    ev_io_start(e->loop, &e->lw);
    ev_io_start(e->loop, &e->uw);
    ev_io_start(e->loop, &e->tw);
    if (e->cfd >= 0) {
        ev_io_init(&e->cw, on_control, e->cfd, EV_READ);
        e->cw.data = e;
        ev_io_start(e->loop, &e->cw);
    }
    ev_signal_init(&e->sig_term, on_signal, SIGTERM);
    ev_signal_init(&e->sig_int, on_signal, SIGINT);
    ev_signal_start(e->loop, &e->sig_term);
    ev_signal_start(e->loop, &e->sig_int);
    {
        char a[ADDR_STRLEN], b[ADDR_STRLEN], desc[512];
        struct addr la = e->listen;
        if (la.ss.ss_family == AF_INET)
            ((struct sockaddr_in *)&la.ss)->sin_port = htons((uint16_t)e->listen_port);
        else
            ((struct sockaddr_in6 *)&la.ss)->sin6_port = htons((uint16_t)e->listen_port);
        if (e->tun) LOGI("TUN devices %s (up in, down out)", tun_s);
        else LOGI("listening on %s, target %s, upstream port %u%s%s",
             addr_str((struct sockaddr *)&la.ss, a, sizeof(a)),
             addr_str((struct sockaddr *)&e->target.ss, b, sizeof(b)), e->up_port,
             e->ctl_path ? ", control " : "", e->ctl_path ? e->ctl_path : "");
        for (int d = 0; d < 2; d++) {
            emu_shaper_describe(e->sh[d], desc, sizeof(desc));
            LOGI("%s: %s", dir_name[d], desc);
        }
        if (e->script.n) LOGI("script: %zu events", e->script.n);
    }
    service(e, now_ns());
    ev_run(e->loop, 0);

    if (e->stats_path) {
        struct strbuf sb;
        FILE *f = fopen(e->stats_path, "w");
        sb_init(&sb);
        stats_json(e, &sb);
        if (!f || fprintf(f, "%s\n", sb.buf) < 0 || fclose(f) != 0) {
            LOGE("cannot write --stats %s: %s", e->stats_path, strerror(errno));
            rc = 1;
        }
        sb_free(&sb);
    }
out:
    if (e->loop) {
        ev_io_stop(e->loop, &e->lw);
        ev_io_stop(e->loop, &e->uw);
        ev_io_stop(e->loop, &e->tw);
        ev_io_stop(e->loop, &e->cw);
        ev_signal_stop(e->loop, &e->sig_term);
        ev_signal_stop(e->loop, &e->sig_int);
        ev_loop_destroy(e->loop);
    }
    if (e->lfd >= 0) close(e->lfd);
    if (e->ufd >= 0) close(e->ufd);
    if (e->tfd >= 0) close(e->tfd);
    if (e->cfd >= 0) {
        close(e->cfd);
        unlink(e->ctl_path);
    }
    for (int d = 0; d < 2; d++) {
        emu_shaper_free(e->sh[d]);
        pool_free(&e->pool[d]);
        emu_spec_free(&spec[d]);
    }
    emu_script_free(&e->script);
    free(e->scratch);
    free(e);
    return rc;
usage_err:
    for (int d = 0; d < 2; d++)
        emu_spec_free(&spec[d]);
    emu_script_free(&e->script);
    free(e);
    fprintf(stderr, "run braid-emu --help for the usage\n");
    return 2;
}
