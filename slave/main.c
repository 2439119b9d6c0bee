/* main.c: braid-slave: opens one link per configured uplink toward the master and spreads its
 * tunnel device's packets over them through the multiplexer. */
#include <ifaddrs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/control.h"
#include "../common/daemon.h"
#include "../common/log.h"
#include "../links/resolve.h"
#include "../links/socks5.h"
#include "../links/udp.h"
#include "../mux/mux.h"
#include "../tundev/tundev.h"
#include "probe.h"

static const char prog[] = "braid-slave";

struct slave {
    struct cfg cfg;
    struct ev_loop *loop;
    struct tundev *tun;
    struct mux *mux;
    struct control *ctl;
    struct resolver *res;
    struct link *links[CFG_MAX_LINKS];
    int nlinks;
};

static void tun_rx(void *ctx, const uint8_t *pkt, size_t len)
{
    struct slave *S = ctx;
    mux_send(S->mux, pkt, len);
}

static void deliver(void *ctx, const uint8_t *pkt, size_t len)
{
    struct slave *S = ctx;
    tundev_write(S->tun, pkt, len);
}

static void status(void *ctx, const char *cmd, struct strbuf *out)
{
    struct slave *S = ctx;
    daemon_status(S->mux, S->tun, cmd, out);
}

/* A link with both "interface" and "bind": the address must be on that interface. Where this
 * host has the address on another interface, say so (file and line); an address on no
 * interface yet (a phone not plugged in) cannot be judged. Returns 0 or 1. */
static int check_bind_interface(const struct cfg *cfg)
{
    struct ifaddrs *ifs = NULL;
    int bad = 0;
    for (int i = 0; i < cfg->nlinks; i++) {
        const struct cfg_link *cl = &cfg->links[i];
        if (!cl->has_bind || !cl->interface[0]) continue;
        if (!ifs && getifaddrs(&ifs) != 0) return 0;
        const struct sockaddr *b = (const struct sockaddr *)&cl->bind.ss;
        for (const struct ifaddrs *f = ifs; f; f = f->ifa_next) {
            if (!f->ifa_addr || f->ifa_addr->sa_family != b->sa_family) continue;
            if (!addr_same_ip(f->ifa_addr, b)) continue;
            if (strcmp(f->ifa_name, cl->interface) == 0) break; /* on it: fine */
            char as[ADDR_STRLEN];
            fprintf(stderr,
                    "%s: %s:%d: links[%d] (\"%s\"): bind %s is an address of interface %s, not "
                    "of interface \"%s\"; give the address of %s, or leave one of the two out\n",
                    prog, cfg->path, cl->line, i, cl->name, addr_ip_str(b, as, sizeof as),
                    f->ifa_name, cl->interface, cl->interface);
            bad = 1;
            break;
        }
    }
    if (ifs) freeifaddrs(ifs);
    return bad;
}

int main(int argc, char **argv)
{
    struct daemon_args a;
    int rc = daemon_parse_args(argc, argv, prog,
                               "probe-socks [USER:PASSWORD@]HOST:PORT\n"
                               "                             check that a SOCKS5 proxy relays UDP "
                               "(UDP ASSOCIATE)\n",
                               "probe-socks", &a);
    if (rc >= 0) return rc;
    struct slave *S = calloc(1, sizeof *S);
    if (!S) return 1;
    rc = daemon_prepare(&a, prog, false, &S->cfg);
    if (rc >= 0) {
        cfg_free(&S->cfg);
        free(S);
        return rc;
    }
    if (a.cmd == CMD_EXTRA) {
        cfg_free(&S->cfg);
        free(S);
        return probe_socks(prog, a.extra_arg);
    }
    const struct cfg *cfg = &S->cfg;
    /* The automatic MTU depends on the master's IP version; a name could be either: assume the
     * larger IPv6 headers unless every way to the master is an IPv4 literal. */
    bool v6 = false;
    for (int i = 0; i < cfg->nlinks; i++) {
        const struct cfg_link *cl = &cfg->links[i];
        const char *mh = cl->has_master ? cl->master_host : cfg->master_host;
        struct addr ma;
        if (addr_parse_ip(mh, 0, &ma) != 0 || ma.ss.ss_family == AF_INET6) v6 = true;
    }
    unsigned mtu = daemon_tunnel_mtu(cfg, v6);
    if (strcmp(tundev_kind, "notun") == 0 && !cfg->has_notun_listen) {
        fprintf(stderr, "%s: %s: tunnel.notun_listen is required by the notun build (the TCP "
                        "address where the frame client connects, e.g. \"127.0.0.1:7200\")\n",
                prog, cfg->path);
        cfg_free(&S->cfg);
        free(S);
        return 2;
    }
    if (check_bind_interface(cfg) != 0) {
        cfg_free(&S->cfg);
        free(S);
        return 2;
    }
    if (a.cmd == CMD_CHECK) {
        printf("%s: configuration OK: master %s:%u, %d link%s, tunnel MTU %u%s\n", cfg->path,
               cfg->master_host, cfg->master_port, cfg->nlinks, cfg->nlinks == 1 ? "" : "s", mtu,
               cfg->mtu ? "" : " (automatic)");
        cfg_free(&S->cfg);
        free(S);
        return 0;
    }

    char err[512];
    S->loop = ev_default_loop(EVFLAG_AUTO);
    daemon_signals(S->loop);
    rc = 1;
    S->res = resolver_new(S->loop, cfg->dns_servers[0] ? cfg->dns_servers : NULL, err, sizeof err);
    if (!S->res) {
        fprintf(stderr, "%s: %s: %s\n", prog, cfg->path, err);
        goto out;
    }
    struct tundev_config tc = {
        .name = cfg->tun_name,
        .address = cfg->tun_address[0] ? cfg->tun_address : NULL,
        .address6 = cfg->tun_address6[0] ? cfg->tun_address6 : NULL,
        .mtu = mtu,
        .listen = cfg->notun_listen,
    };
    S->tun = tundev_open(S->loop, &tc, tun_rx, S, err, sizeof err);
    if (!S->tun) {
        fprintf(stderr, "%s: %s\n", prog, err);
        goto out;
    }
    struct mux_config mc;
    if (daemon_mux_config(cfg, mtu, &mc, prog) != 0) goto out;
    struct mux_callbacks cb = {.deliver = deliver, .ctx = S};
    S->mux = mux_new(S->loop, &mc, &cb);
    if (!S->mux) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto out;
    }
    for (int i = 0; i < cfg->nlinks; i++) {
        const struct cfg_link *cl = &cfg->links[i];
        const char *mh = cl->has_master ? cl->master_host : cfg->master_host;
        unsigned mp = cl->has_master ? cl->master_port : cfg->master_port;
        struct link *l;
        if (cl->type == CFG_LINK_SOCKS5) {
            struct socks5_link_config sc = {
                .id = cl->id,
                .name = cl->name,
                .proxy_host = cl->proxy_host,
                .proxy_port = cl->proxy_port,
                .username = cl->username,
                .password = cl->password,
                .master_host = mh,
                .master_port = mp,
                .has_bind = cl->has_bind,
                .bind = cl->bind,
                .interface = cl->interface[0] ? cl->interface : NULL,
                .resolver = S->res,
                .timeout_s = cl->proxy_timeout_ms / 1000.0,
                .sndbuf = cfg->socket_buffer,
            };
            l = socks5_link_new(S->loop, &sc);
        } else {
            struct udp_link_config uc = {
                .id = cl->id,
                .name = cl->name,
                .has_bind = cl->has_bind,
                .bind = cl->bind,
                .interface = cl->interface[0] ? cl->interface : NULL,
                .retry_s = 1.0,
                .sndbuf = cfg->socket_buffer,
            };
            if (addr_parse_ip(mh, mp, &uc.master) != 0) { /* a name: resolved on every open */
                uc.master_host = mh;
                uc.master_port = mp;
                uc.resolver = S->res;
            }
            l = udp_link_new(S->loop, &uc);
        }
        if (!l) {
            fprintf(stderr, "%s: out of memory\n", prog);
            goto out;
        }
        S->links[S->nlinks++] = l;
        mux_add_link(S->mux, l);
    }
    if (cfg->control_socket[0]) {
        S->ctl = control_open(S->loop, cfg->control_socket, status, S, err, sizeof err);
        if (!S->ctl) {
            fprintf(stderr, "%s: %s\n", prog, err);
            goto out;
        }
    }
    for (int i = 0; i < S->nlinks; i++) {
        if (cfg->links[i].type == CFG_LINK_SOCKS5) socks5_link_start(S->links[i]);
        else udp_link_start(S->links[i]);
    }
    mux_start(S->mux);
    {
        char td[160];
        tundev_describe(S->tun, td, sizeof td);
        LOGI("braid-slave: master %s:%u, %d links, tunnel %s, MTU %u", cfg->master_host,
             cfg->master_port, S->nlinks, td, mtu);
    }
    ev_run(S->loop, 0);
    mux_shutdown(S->mux);
    rc = 0;
out:
    control_close(S->ctl);
    mux_free(S->mux);
    for (int i = 0; i < S->nlinks; i++) link_destroy(S->links[i]);
    if (S->tun) tundev_close(S->tun);
    resolver_free(S->res);
    if (S->loop) ev_loop_destroy(S->loop);
    cfg_free(&S->cfg);
    free(S);
    return rc;
}
