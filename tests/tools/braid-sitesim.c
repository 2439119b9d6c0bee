/* braid-sitesim.c: many braid slaves in one process, for the many-sites benchmark (bench/s8-sites):
 * each simulated site is a real slave multiplexer (handshake, beats, reports, sealed data) with
 * its own key and direct UDP links to the master, sending light tunnel traffic from its own
 * address. Prints one JSON line of counts when it stops (SIGTERM, SIGINT or --duration).
 *
 * usage: braid-sitesim --master IP:PORT --master-key PUB --keys FILE [--first I] [--sites N]
 *                      [--links L] [--pps P] [--size BYTES] [--duration S]
 *   The traffic (P packets a second per site) starts on SIGUSR1.
 *   --keys: one private key per line (base64); line i is site i, whose tunnel address is
 *   198.19.(i >> 8).(i & 255) (the bench's allowed_ips); --first: the first line used (1). */
#include <ev.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/addr.h"
#include "../../common/keys.h"
#include "../../common/log.h"
#include "../../links/udp.h"
#include "../../mux/mux.h"

struct site {
    int no;
    struct mux *mux;
    struct link *links[8];
    int nlinks;
    uint64_t delivered, sent;
};

static struct site *sites;
static int nsites;
static unsigned pkt_size = 200;

static void deliver(void *ctx, const uint8_t *pkt, size_t len)
{
    (void)pkt;
    (void)len;
    ((struct site *)ctx)->delivered++;
}

static void traffic_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    (void)w;
    uint8_t pkt[1500] = {0};
    for (int i = 0; i < nsites; i++) {
        struct site *s = &sites[i];
        if (!mux_has_session(s->mux)) continue;
        pkt[0] = 0x45;
        pkt[2] = (uint8_t)(pkt_size >> 8);
        pkt[3] = (uint8_t)pkt_size;
        pkt[8] = 64;
        pkt[9] = 17;
        pkt[12] = 198, pkt[13] = 19, pkt[14] = (uint8_t)(s->no >> 8), pkt[15] = (uint8_t)s->no;
        pkt[16] = 198, pkt[17] = 18, pkt[18] = 0, pkt[19] = 1;
        mux_send(s->mux, pkt, pkt_size);
        s->sent++;
    }
}

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static ev_timer traffic;
static double pps = 10;

static void usr1_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)w;
    (void)revents;
    if (pps > 0 && !ev_is_active(&traffic)) {
        ev_timer_init(&traffic, traffic_cb, 1.0 / pps, 1.0 / pps);
        ev_timer_start(loop, &traffic);
    }
}

static void end_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    const char *master = NULL, *master_key = NULL, *keys = NULL;
    int first = 1, want = 1 << 30, nlinks = 4;
    double duration = 0;
    static const struct option opts[] = {
        {"master", required_argument, 0, 'm'}, {"master-key", required_argument, 0, 'k'},
        {"keys", required_argument, 0, 'f'},   {"first", required_argument, 0, 'i'},
        {"sites", required_argument, 0, 'n'},  {"links", required_argument, 0, 'l'},
        {"pps", required_argument, 0, 'p'},    {"size", required_argument, 0, 's'},
        {"duration", required_argument, 0, 'd'}, {0, 0, 0, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'm': master = optarg; break;
        case 'k': master_key = optarg; break;
        case 'f': keys = optarg; break;
        case 'i': first = atoi(optarg); break;
        case 'n': want = atoi(optarg); break;
        case 'l': nlinks = atoi(optarg); break;
        case 'p': pps = atof(optarg); break;
        case 's': pkt_size = (unsigned)atoi(optarg); break;
        case 'd': duration = atof(optarg); break;
        default: return 2;
        }
    }
    if (!master || !master_key || !keys || nlinks < 1 || nlinks > 8 || pkt_size < 28 ||
        pkt_size > 1400 || first < 1 || pps < 0) {
        fprintf(stderr, "usage: braid-sitesim --master IP:PORT --master-key PUB --keys FILE "
                        "[--first I] [--sites N] [--links 1-8] [--pps P] [--size 28-1400] "
                        "[--duration S]\n");
        return 2;
    }
    if (session_crypto_init() != 0) return 1;
    log_set_level(LOG_WARN);
    struct addr maddr;
    char err[256];
    uint8_t mpub[32];
    if (addr_parse(master, &maddr, err, sizeof err) != 0 ||
        key_from_b64(master_key, mpub, err, sizeof err) != 0) {
        fprintf(stderr, "braid-sitesim: %s\n", err);
        return 2;
    }
    FILE *f = fopen(keys, "r");
    if (!f) {
        perror(keys);
        return 2;
    }
    struct ev_loop *loop = ev_default_loop(0);
    static const uint8_t nopsk[32];
    char line[256];
    int lineno = 0;
    sites = calloc(65536, sizeof *sites);
    while (fgets(line, sizeof line, f) && nsites < want) {
        if (++lineno < first) continue;
        struct site *s = &sites[nsites];
        s->no = lineno;
        uint8_t priv[32];
        struct mux_config mc;
        mux_config_defaults(&mc);
        mc.mtu = 1428;
        if (key_from_b64(line, priv, err, sizeof err) != 0 || identity_init(&mc.self, priv) != 0) {
            fprintf(stderr, "braid-sitesim: %s line %d: %s\n", keys, lineno, err);
            return 2;
        }
        peer_init(&mc.peer, mpub, nopsk);
        struct mux_callbacks cb = {.deliver = deliver, .ctx = s};
        s->mux = mux_new(loop, &mc, &cb);
        if (!s->mux) return 1;
        for (int l = 0; l < nlinks; l++) {
            char name[32];
            snprintf(name, sizeof name, "s%dl%d", s->no, l);
            struct udp_link_config lc = {.id = (uint8_t)l, .name = name, .master = maddr,
                                         .sndbuf = 65536, .rcvbuf = 65536};
            s->links[l] = udp_link_new(loop, &lc);
            if (!s->links[l] || mux_add_link(s->mux, s->links[l]) != 0) return 1;
        }
        s->nlinks = nlinks;
        for (int l = 0; l < nlinks; l++) udp_link_start(s->links[l]);
        mux_start(s->mux);
        nsites++;
    }
    fclose(f);
    ev_signal sig_int, sig_term, sig_usr1;
    ev_signal_init(&sig_int, stop_cb, SIGINT);
    ev_signal_init(&sig_term, stop_cb, SIGTERM);
    ev_signal_init(&sig_usr1, usr1_cb, SIGUSR1);
    ev_signal_start(loop, &sig_int);
    ev_signal_start(loop, &sig_term);
    ev_signal_start(loop, &sig_usr1);
    ev_timer end;
    if (duration > 0) {
        ev_timer_init(&end, end_cb, duration, 0);
        ev_timer_start(loop, &end);
    }
    fprintf(stderr, "braid-sitesim: %d sites, %d links each\n", nsites, nlinks);
    ev_run(loop, 0);
    uint64_t sent = 0, delivered = 0;
    int with = 0;
    for (int i = 0; i < nsites; i++) {
        sent += sites[i].sent;
        delivered += sites[i].delivered;
        with += mux_has_session(sites[i].mux);
        mux_shutdown(sites[i].mux);
    }
    ev_run(loop, EVRUN_NOWAIT);
    printf("{\"sites\":%d,\"with_session\":%d,\"sent\":%llu,\"delivered\":%llu}\n", nsites, with,
           (unsigned long long)sent, (unsigned long long)delivered);
    for (int i = 0; i < nsites; i++) {
        mux_free(sites[i].mux);
        for (int l = 0; l < sites[i].nlinks; l++) link_destroy(sites[i].links[l]);
    }
    free(sites);
    return 0;
}
