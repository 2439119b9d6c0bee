/* main.c: braid-slave: opens one link per configured uplink toward the master and spreads its
 * tunnel device's packets over them through the multiplexer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/control.h"
#include "../common/daemon.h"
#include "../common/log.h"
#include "../links/udp.h"
#include "../mux/mux.h"
#include "../tundev/tundev.h"

static const char prog[] = "braid-slave";

struct slave {
    struct cfg cfg;
    struct ev_loop *loop;
    struct tundev *tun;
    struct mux *mux;
    struct control *ctl;
    struct link *links[CFG_MAX_LINKS];
    int nlinks;
    struct addr master;
    struct addr link_master[CFG_MAX_LINKS];
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

int main(int argc, char **argv)
{
    struct daemon_args a;
    int rc = daemon_parse_args(argc, argv, prog, NULL, NULL, &a);
    if (rc >= 0) return rc;
    struct slave *S = calloc(1, sizeof *S);
    if (!S) return 1;
    rc = daemon_prepare(&a, prog, false, &S->cfg);
    if (rc >= 0) {
        free(S);
        return rc;
    }
    const struct cfg *cfg = &S->cfg;
    if (addr_parse_ip(cfg->master_host, cfg->master_port, &S->master) != 0) {
        fprintf(stderr,
                "%s: %s: master \"%s\": this version needs an IP address for the master "
                "(DNS names come with the SOCKS5 link support)\n",
                prog, cfg->path, cfg->master_host);
        free(S);
        return 2;
    }
    for (int i = 0; i < cfg->nlinks; i++) {
        const struct cfg_link *cl = &cfg->links[i];
        S->link_master[i] = S->master;
        if (cl->has_master &&
            addr_parse_ip(cl->master_host, cl->master_port, &S->link_master[i]) != 0) {
            fprintf(stderr,
                    "%s: %s:%d: links[%d].master \"%s\": this version needs an IP address "
                    "(DNS names come with the SOCKS5 link support)\n",
                    prog, cfg->path, cl->line, i, cl->master_host);
            free(S);
            return 2;
        }
        if (cfg->links[i].type != CFG_LINK_UDP) {
            fprintf(stderr, "%s: %s:%d: links[%d]: type \"socks5\" is not supported by this "
                            "version yet; use type \"udp\"\n",
                    prog, cfg->path, cfg->links[i].line, i);
            free(S);
            return 2;
        }
    }
    bool v6 = S->master.ss.ss_family == AF_INET6;
    unsigned mtu = daemon_tunnel_mtu(cfg, v6, false);
    if (strcmp(tundev_kind, "notun") == 0 && !cfg->has_notun_listen) {
        fprintf(stderr, "%s: %s: tunnel.notun_listen is required by the notun build (the TCP "
                        "address where the frame client connects, e.g. \"127.0.0.1:7200\")\n",
                prog, cfg->path);
        free(S);
        return 2;
    }
    if (a.cmd == CMD_CHECK) {
        printf("%s: configuration OK: master %s:%u, %d link%s, tunnel MTU %u%s\n", cfg->path,
               cfg->master_host, cfg->master_port, cfg->nlinks, cfg->nlinks == 1 ? "" : "s", mtu,
               cfg->mtu ? "" : " (automatic)");
        free(S);
        return 0;
    }

    char err[512];
    S->loop = ev_default_loop(EVFLAG_AUTO);
    daemon_signals(S->loop);
    struct tundev_config tc = {
        .name = cfg->tun_name,
        .address = cfg->tun_address[0] ? cfg->tun_address : NULL,
        .address6 = cfg->tun_address6[0] ? cfg->tun_address6 : NULL,
        .mtu = mtu,
        .listen = cfg->notun_listen,
    };
    rc = 1;
    S->tun = tundev_open(S->loop, &tc, tun_rx, S, err, sizeof err);
    if (!S->tun) {
        fprintf(stderr, "%s: %s\n", prog, err);
        goto out;
    }
    struct mux_config mc;
    mux_config_defaults(&mc);
    mc.is_master = false;
    psk_derive(cfg->psk, &mc.keys);
    mc.beat_interval_ms = cfg->beat_interval_ms;
    mc.dead_timeout_ms = cfg->dead_timeout_ms;
    mc.reorder_max_ms = cfg->reorder_max_ms;
    mc.reorder_slots = cfg->reorder_slots;
    mc.rehandshake_ms = cfg->rehandshake_ms;
    mc.mtu = mtu;
    struct mux_callbacks cb = {.deliver = deliver, .ctx = S};
    S->mux = mux_new(S->loop, &mc, &cb);
    if (!S->mux) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto out;
    }
    for (int i = 0; i < cfg->nlinks; i++) {
        const struct cfg_link *cl = &cfg->links[i];
        struct udp_link_config uc = {
            .id = cl->id,
            .name = cl->name,
            .master = S->link_master[i],
            .has_bind = cl->has_bind,
            .bind = cl->bind,
            .interface = cl->interface[0] ? cl->interface : NULL,
            .retry_s = 1.0,
            .sndbuf = cfg->socket_buffer,
        };
        struct link *l = udp_link_new(S->loop, &uc);
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
    for (int i = 0; i < S->nlinks; i++) udp_link_start(S->links[i]);
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
    if (S->loop) ev_loop_destroy(S->loop);
    free(S);
    return rc;
}
