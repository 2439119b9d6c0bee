/* main.c: braid-master: listens on UDP, learns each site's links from authenticated datagrams,
 * and joins them to its tunnel device through the site table (one multiplexer per site). */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/control.h"
#include "../common/ctlcmd.h"
#include "../daemon/daemon.h"
#include "../common/hooks.h"
#include "../common/httpd.h"
#include "../common/log.h"
#include "../links/server.h"
#include "../links/tcp_server.h"
#include "../lane/lane.h"
#include "../mux/mux.h"
#include "sites.h"
#include "../tundev/tundev.h"

static const char prog[] = "braid-master";

struct master {
    struct cfg cfg;
    bool verbose;
    unsigned mtu;
    struct ev_loop *loop;
    struct tundev *tun;
    struct udp_server *srv;
    struct sites *sites;
    struct control *ctl;
    struct httpd *http;
    struct tcp_server *tcp;   /* TCP on the listen address and port (NULL: none) */
    struct lane_server *lane; /* the TCP lane's opening (NULL: tcp_lane = "off") */
};

static struct lane_peer *lane_session(void *ctx, uint32_t index, uint8_t tx[32], uint8_t rx[32])
{
    struct master *M = ctx;
    return sites_lane_session(M->sites, index, tx, rx);
}

static void tun_rx(void *ctx, const uint8_t *pkt, size_t len)
{
    struct master *M = ctx;
    sites_send(M->sites, pkt, len);
}

static void deliver(void *ctx, const uint8_t *pkt, size_t len)
{
    struct master *M = ctx;
    tundev_write(M->tun, pkt, len);
}

static void link_state(void *ctx, const char *site, const char *link, uint8_t id, bool up,
                       int links_up)
{
    struct master *M = ctx;
    daemon_hook_link(M->loop, &M->cfg, M->tun, site, link, id, up, links_up);
}

/* Re-read the config file; a config with an error changes nothing. The outcome goes to the
 * log and to out. */
static void master_reload(struct master *M, struct strbuf *out)
{
    struct strbuf notes;
    sb_init(&notes);
    struct cfg *nc = daemon_reload_begin(&M->cfg, out, &notes);
    if (!nc) {
        sb_free(&notes);
        return;
    }
    struct mux_config mc;
    int rc = daemon_mux_config(&M->cfg, M->mtu, &mc, prog); /* the running settings */
    int changes[3] = {0, 0, 0};
    if (rc == 0) rc = sites_reload(M->sites, &mc, nc->sites, nc->nsites, changes, out);
    sodium_memzero(&mc, sizeof mc);
    if (rc != 0) {
        daemon_reload_refuse(nc, "the sites could not be changed (out of memory)", out);
        sb_free(&notes);
        return;
    }
    daemon_reload_commit(&M->cfg, nc, M->verbose);
    LOGI("reload: done: %d site%s added, %d removed, %d changed", changes[0],
         changes[0] == 1 ? "" : "s", changes[1], changes[2]);
    sb_printf(out, "reloaded: %d added, %d removed, %d changed\n", changes[0], changes[1],
              changes[2]);
    if (notes.len) sb_printf(out, "%.*s", (int)notes.len, notes.buf);
    sb_free(&notes);
}

static int metrics(void *ctx, const char *path, struct strbuf *out)
{
    struct master *M = ctx;
    if (strcmp(path, "/metrics") != 0) {
        sb_printf(out, "braid-master: the metrics are at /metrics\n");
        return 404;
    }
    daemon_metrics_head(&M->cfg, M->tun, out);
    sites_metrics(M->sites, out);
    if (M->tcp) {
        const struct tcp_server_stats *t = tcp_server_stats(M->tcp);
        sb_printf(out,
                  "# HELP braid_tcp_accepted_total TCP connections accepted on the listen port\n"
                  "# TYPE braid_tcp_accepted_total counter\nbraid_tcp_accepted_total %llu\n"
                  "# HELP braid_tcp_refused_total TCP connections closed before they were "
                  "anything (silent, not braid, refused)\n"
                  "# TYPE braid_tcp_refused_total counter\nbraid_tcp_refused_total %llu\n"
                  "# HELP braid_tcp_datagram_connections datagram connections open (socks5-tcp "
                  "links)\n# TYPE braid_tcp_datagram_connections gauge\n"
                  "braid_tcp_datagram_connections %llu\n"
                  "# HELP braid_tcp_datagram_frames_total datagrams carried on them\n"
                  "# TYPE braid_tcp_datagram_frames_total counter\n"
                  "braid_tcp_datagram_frames_total{direction=\"rx\"} %llu\n"
                  "braid_tcp_datagram_frames_total{direction=\"tx\"} %llu\n"
                  "# HELP braid_tcp_datagram_dropped_total datagrams not sent: their connection "
                  "held 64 KiB unsent\n"
                  "# TYPE braid_tcp_datagram_dropped_total counter\n"
                  "braid_tcp_datagram_dropped_total %llu\n",
                  (unsigned long long)t->accepted, (unsigned long long)t->refused,
                  (unsigned long long)(t->dgram_opened - t->dgram_closed),
                  (unsigned long long)t->dgram_rx, (unsigned long long)t->dgram_tx,
                  (unsigned long long)t->dgram_dropped);
    }
    return 200;
}

static void on_sighup(void *ctx)
{
    struct strbuf out;
    sb_init(&out);
    master_reload(ctx, &out);
    sb_free(&out);
}

static void status(void *ctx, const char *line, struct strbuf *out)
{
    struct master *M = ctx;
    struct ctlcmd c;
    char err[256];
    if (ctlcmd_parse(line, &c, err, sizeof err) != 0) {
        sb_printf(out, "error: %s\n", err);
    } else if (c.kind == CTL_RELOAD) {
        master_reload(M, out);
    } else if (c.kind == CTL_LINK) {
        sb_printf(out, "error: braid-master learns its links from the slaves; take a link down "
                       "on its slave (`braid-slave link NAME down`)\n");
    } else if (c.kind == CTL_JSON) {
        sb_printf(out, "{");
        sites_status_json(M->sites, out);
        sb_printf(out, ",\"tundev\":");
        daemon_tundev_json(M->tun, out);
        if (M->tcp) {
            const struct tcp_server_stats *t = tcp_server_stats(M->tcp);
            sb_printf(out,
                      ",\"tcp\":{\"accepted\":%llu,\"refused\":%llu,\"to_lane\":%llu,"
                      "\"dgram_open\":%llu,\"dgram_opened\":%llu,\"dgram_rx\":%llu,"
                      "\"dgram_tx\":%llu,\"dgram_dropped\":%llu}",
                      (unsigned long long)t->accepted, (unsigned long long)t->refused,
                      (unsigned long long)t->handed,
                      (unsigned long long)(t->dgram_opened - t->dgram_closed),
                      (unsigned long long)t->dgram_opened, (unsigned long long)t->dgram_rx,
                      (unsigned long long)t->dgram_tx, (unsigned long long)t->dgram_dropped);
        }
        sb_printf(out, "}\n");
    } else {
        sites_status_text(M->sites, out);
        daemon_tundev_text(M->tun, out);
    }
}

int main(int argc, char **argv)
{
    struct daemon_args a;
    int rc = daemon_parse_args(argc, argv, prog, NULL, NULL, &a);
    if (rc >= 0) return rc;
    if (a.cmd == CMD_LINK) {
        fprintf(stderr, "%s: link: braid-master learns its links from the slaves; take a link "
                        "down on its slave (`braid-slave link NAME down -c FILE`)\n", prog);
        return 2;
    }
    struct master *M = calloc(1, sizeof *M);
    if (!M) return 1;
    rc = daemon_prepare(&a, prog, true, &M->cfg);
    if (rc >= 0) {
        free(M);
        return rc;
    }
    const struct cfg *cfg = &M->cfg;
    M->verbose = a.verbose;
    bool v6 = cfg->listen.ss.ss_family == AF_INET6;
    unsigned mtu = M->mtu = daemon_tunnel_mtu(cfg, v6);
    if (daemon_check(cfg, prog) != 0) {
        cfg_free(&M->cfg);
        free(M);
        return 2;
    }
    if (a.cmd == CMD_CHECK) {
        char as[ADDR_STRLEN];
        printf("%s: configuration OK: listen %s, %d site%s, tunnel MTU %u%s\n", cfg->path,
               addr_str((const struct sockaddr *)&cfg->listen.ss, as, sizeof as), cfg->nsites,
               cfg->nsites == 1 ? "" : "s", mtu, cfg->mtu ? "" : " (automatic)");
        cfg_free(&M->cfg);
        free(M);
        return 0;
    }

    char err[512];
    M->loop = ev_default_loop(EVFLAG_AUTO);
    daemon_signals(M->loop, on_sighup, M);
    rc = 1;
    M->tun = daemon_open_tundev(M->loop, cfg, mtu, tun_rx, M, prog);
    if (!M->tun) goto out;
    M->srv = udp_server_new(M->loop, &cfg->listen, cfg->socket_buffer, err, sizeof err);
    if (!M->srv) {
        fprintf(stderr, "%s: %s\n", prog, err);
        goto out;
    }
    struct mux_config mc;
    if (daemon_mux_config(cfg, mtu, &mc, prog) != 0) goto out;
    struct sites_io io = {.deliver = deliver, .link_state = link_state, .ctx = M};
    M->sites = sites_new(M->loop, &mc, cfg->sites, cfg->nsites, udp_server_listener(M->srv), &io);
    sodium_memzero(&mc, sizeof mc);
    if (!M->sites) goto out;
    if (cfg->tcp_links || cfg->tcp_lane != CFG_LANE_OFF) {
        M->tcp = tcp_server_new(M->loop, M->srv, cfg->tcp_links, err, sizeof err);
        if (!M->tcp && (cfg->tcp_links_set || cfg->tcp_lane != CFG_LANE_OFF)) {
            fprintf(stderr, "%s: %s: %s (another program has that TCP port? %s)\n", prog,
                    cfg->path, err,
                    cfg->tcp_lane != CFG_LANE_OFF ? "tcp_lane = \"off\" turns the TCP lane off"
                                                  : "tcp_links = false turns TCP off");
            goto out;
        }
        if (!M->tcp) /* (the default: a master that starts as before) */
            LOGW("%s: no links over TCP (type \"socks5-tcp\") until a restart; set tcp_links "
                 "= false to say so", err);
    }
    if (cfg->tcp_lane != CFG_LANE_OFF) {
        if (daemon_lane_congestion(cfg, prog) != 0) goto out;
        struct lane_server_cb lcb = {.session = lane_session, .ctx = M};
        M->lane = lane_server_new(M->loop, &lcb);
        if (!M->lane) {
            fprintf(stderr, "%s: out of memory\n", prog);
            goto out;
        }
        /* (accepted link connections inherit it, set before privileges are dropped) */
        lane_apply_congestion(tcp_server_fd(M->tcp));
        tcp_server_set_stream_handler(M->tcp, lane_server_adopt, M->lane);
        sites_set_lane(M->sites, cfg->tcp_lane_connections);
    }
    if (cfg->control_socket[0]) {
        M->ctl = control_open(M->loop, cfg->control_socket, status, M, err, sizeof err);
        if (!M->ctl) {
            fprintf(stderr, "%s: %s\n", prog, err);
            goto out;
        }
    }
    if (cfg->has_metrics_listen) {
        M->http = httpd_open(M->loop, &cfg->metrics_listen, metrics, M, err, sizeof err);
        if (!M->http) {
            fprintf(stderr, "%s: %s: metrics_listen: %s\n", prog, cfg->path, err);
            goto out;
        }
    }
    daemon_hook_tunnel(cfg, M->tun, mtu, true);
    sites_start(M->sites);
    if (daemon_drop_privileges(cfg, prog) != 0) goto out;
    {
        char as[ADDR_STRLEN], td[160];
        tundev_describe(M->tun, td, sizeof td);
        LOGI("braid-master listening on %s, tunnel %s, MTU %u, %d site%s",
             addr_str((const struct sockaddr *)&udp_server_local(M->srv)->ss, as, sizeof as), td,
             mtu, cfg->nsites, cfg->nsites == 1 ? "" : "s");
        daemon_notify("READY=1\nSTATUS=listening on %s, tunnel %s, %d site%s", as, td,
                      cfg->nsites, cfg->nsites == 1 ? "" : "s");
    }
    ev_run(M->loop, 0);
    sites_shutdown(M->sites);
    daemon_hook_tunnel(&M->cfg, M->tun, mtu, false);
    rc = 0;
out:
    httpd_close(M->http);
    control_close(M->ctl);
    tcp_server_free(M->tcp);
    lane_server_free(M->lane);
    sites_free(M->sites);
    udp_server_free(M->srv);
    if (M->loop) hook_forget_all(M->loop);
    if (M->tun) tundev_close(M->tun);
    if (M->loop) ev_loop_destroy(M->loop);
    cfg_free(&M->cfg);
    free(M);
    return rc;
}
