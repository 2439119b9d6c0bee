/* lane-echo.c: test tool for the TCP lane's terminator against a real kernel TCP (root): opens
 * a TUN device, gives its packets to lane_stack, and echoes every terminated connection's bytes
 * back to its client (then closes when the client does). Exits after --seconds (bounded) and
 * prints its counters. Usage: lane-echo TUNNAME SECONDS */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <ev.h>

#include "../../lane/lane.h"

static int tunfd;
static uint64_t echoed, accepted, closed_n, not_ours;

/* One connection: what the client sent that its send buffer had no room for yet. */
struct echo {
    struct lane_conn *c;
    uint8_t *pend;
    size_t npend, cap;
    bool fin; /* the client closed: close once everything is echoed */
};

static void out(void *ctx, const uint8_t *pkt, size_t len)
{
    (void)ctx;
    if (write(tunfd, pkt, len) < 0 && errno != EAGAIN) perror("lane-echo: write");
}

static void flush(struct echo *e)
{
    while (e->npend) {
        size_t k = lane_conn_send(e->c, e->pend, e->npend);
        if (k == 0) break;
        memmove(e->pend, e->pend + k, e->npend - k);
        e->npend -= k;
        echoed += k;
    }
    if (e->fin && e->npend == 0) lane_conn_shutdown(e->c); /* (may free the connection) */
}

static void *acc(void *ctx, struct lane_conn *c, int family, const uint8_t dst[16], uint16_t port)
{
    (void)ctx;
    (void)family;
    (void)dst;
    (void)port;
    struct echo *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->c = c;
    accepted++;
    lane_conn_proceed(c, 0);
    return e;
}

static size_t rcv(void *ctx, void *owner, const uint8_t *data, size_t len)
{
    (void)ctx;
    struct echo *e = owner;
    if (len == 0) {
        e->fin = true;
        flush(e);
        return 0;
    }
    if (e->npend + len > e->cap) {
        size_t nc = (e->npend + len) * 2;
        uint8_t *np = realloc(e->pend, nc);
        if (!np) abort();
        e->pend = np;
        e->cap = nc;
    }
    memcpy(e->pend + e->npend, data, len);
    e->npend += len;
    flush(e);
    return len;
}

static void snt(void *ctx, void *owner, size_t len)
{
    (void)ctx;
    (void)len;
    flush(owner);
}

static void cls(void *ctx, void *owner, bool reset)
{
    (void)ctx;
    (void)reset;
    struct echo *e = owner;
    closed_n++;
    free(e->pend);
    free(e);
}

static void on_tun(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    static uint8_t buf[65536];
    for (int i = 0; i < 64; i++) {
        ssize_t n = read(tunfd, buf, sizeof buf);
        if (n <= 0) return;
        if (!lane_stack_input(w->data, buf, (size_t)n)) not_ours++;
    }
}

static void on_end(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: lane-echo TUNNAME SECONDS\n");
        return 2;
    }
    tunfd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", argv[1]);
    if (tunfd < 0 || ioctl(tunfd, TUNSETIFF, &ifr) < 0) {
        perror("lane-echo: TUN");
        return 1;
    }
    struct ev_loop *loop = ev_default_loop(0);
    struct lane_stack_cb cb = {.output = out, .accept = acc, .recv = rcv, .sent = snt,
                               .closed = cls};
    char err[128];
    struct lane_stack *s = lane_stack_new(loop, &cb, err, sizeof err);
    if (!s) {
        fprintf(stderr, "lane-echo: %s\n", err);
        return 1;
    }
    ev_io io;
    ev_io_init(&io, on_tun, tunfd, EV_READ);
    io.data = s;
    ev_io_start(loop, &io);
    ev_timer end;
    ev_timer_init(&end, on_end, atof(argv[2]), 0.);
    ev_timer_start(loop, &end);
    ev_signal sint, sterm;
    ev_signal_init(&sint, on_signal, SIGINT);
    ev_signal_init(&sterm, on_signal, SIGTERM);
    ev_signal_start(loop, &sint);
    ev_signal_start(loop, &sterm);
    printf("ready\n");
    fflush(stdout);
    ev_run(loop, 0);
    const struct lane_stack_counters *c = lane_stack_counters(s);
    printf("accepted=%llu closed=%llu echoed=%llu not_ours=%llu in=%llu in_dropped=%llu out=%llu "
           "out_dropped=%llu\n",
           (unsigned long long)accepted, (unsigned long long)closed_n,
           (unsigned long long)echoed, (unsigned long long)not_ours,
           (unsigned long long)c->in_packets, (unsigned long long)c->in_dropped,
           (unsigned long long)c->out_packets, (unsigned long long)c->out_dropped);
    lane_stack_free(s);
    return 0;
}
