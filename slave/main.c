/* main.c: braid-slave: opens one link per configured uplink toward the master and spreads its
 * tunnel device's packets over them through the multiplexer; a reload (SIGHUP, `reload`)
 * adds, removes and changes links without touching the others. */
#include <ifaddrs.h>
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
#include "../links/resolve.h"
#include "../links/socks5.h"
#include "../lane/lane.h"
#include "../links/udp.h"
#include "../mux/mux.h"
#include "../tundev/tundev.h"
#include "probe.h"

static const char prog[] = "braid-slave";

/* A transport a reload took out of service: still delivering what arrives on it for a while
 * (datagrams the master sent before it learned of the change), then destroyed. */
#define DRAIN_S 3.0
struct drain {
    ev_timer t;
    struct link *l;
    struct slave *S;
    struct drain *next;
};

struct slave {
    struct cfg cfg;
    bool verbose;
    struct ev_loop *loop;
    struct tundev *tun;
    struct mux *mux;
    struct control *ctl;
    struct httpd *http;
    struct resolver *res;
    struct link *links[CFG_MAX_LINKS]; /* parallel to cfg.links */
    int nlinks;
    bool id_used[256]; /* link ids used in this process (a removed link's is not reused) */
    struct drain *drains;
    struct lane_slave *lane; /* the TCP lane (NULL: tcp_lane = "off") */
};

static void tun_rx(void *ctx, const uint8_t *pkt, size_t len)
{
    struct slave *S = ctx;
    if (S->lane && lane_slave_input(S->lane, pkt, len)) return;
    mux_send(S->mux, pkt, len);
}

/* ---- the TCP lane's view of the slave */
static void lane_output(void *ctx, const uint8_t *pkt, size_t len)
{
    struct slave *S = ctx;
    tundev_write(S->tun, pkt, len);
}

static bool lane_session(void *ctx, uint32_t *index, uint8_t tx[32], uint8_t rx[32])
{
    struct slave *S = ctx;
    struct session_keys k;
    if (!mux_session_keys(S->mux, &k)) return false;
    *index = k.remote_index;
    memcpy(tx, k.tx, 32);
    memcpy(rx, k.rx, 32);
    sodium_memzero(&k, sizeof k);
    return true;
}

static bool lane_target(void *ctx, uint8_t id, struct lane_connect_target *t)
{
    struct slave *S = ctx;
    for (int i = 0; i < S->nlinks; i++) {
        struct link *l = S->links[i];
        if (l->id != id) continue;
        struct link_stream_target lt;
        if (!l->ops->stream_target || l->ops->stream_target(l, &lt) != 0) return false;
        t->to = lt.to;
        t->tolen = lt.tolen;
        t->bind = lt.bind;
        t->bindlen = lt.bindlen;
        t->proxy = lt.proxy;
        t->proxylen = lt.proxylen;
        memcpy(t->ifname, lt.ifname, sizeof t->ifname);
        memcpy(t->user, lt.user, sizeof t->user);
        memcpy(t->pass, lt.pass, sizeof t->pass);
        sodium_memzero(&lt, sizeof lt);
        return true;
    }
    return false;
}

static void deliver(void *ctx, const uint8_t *pkt, size_t len)
{
    struct slave *S = ctx;
    tundev_write(S->tun, pkt, len);
}

static void link_state(void *ctx, const char *name, uint8_t id, bool up, int links_up)
{
    struct slave *S = ctx;
    if (S->lane) lane_slave_link(S->lane, id, up);
    daemon_hook_link(S->loop, &S->cfg, S->tun, NULL, name, id, up, links_up);
}

/* A link with both "interface" and "bind": the address must be on that interface. Where this
 * host has the address on another interface, say so (file and line) in err; an address on no
 * interface yet (a phone not plugged in) cannot be judged. Returns 0 or -1. */
static int check_bind_interface(const struct cfg *cfg, char *err, size_t errlen)
{
    struct ifaddrs *ifs = NULL;
    int bad = 0;
    for (int i = 0; i < cfg->nlinks && !bad; i++) {
        const struct cfg_link *cl = &cfg->links[i];
        if (!cl->has_bind || !cl->interface[0]) continue;
        if (!ifs && getifaddrs(&ifs) != 0) return 0;
        const struct sockaddr *b = (const struct sockaddr *)&cl->bind.ss;
        for (const struct ifaddrs *f = ifs; f; f = f->ifa_next) {
            if (!f->ifa_addr || f->ifa_addr->sa_family != b->sa_family) continue;
            if (!addr_same_ip(f->ifa_addr, b)) continue;
            if (strcmp(f->ifa_name, cl->interface) == 0) break; /* on it: fine */
            char as[ADDR_STRLEN];
            snprintf(err, errlen,
                     "%s:%d: links[%d] (\"%s\"): bind %s is an address of interface %s, not of "
                     "interface \"%s\"; give the address of %s, or leave one of the two out",
                     cfg->path, cl->line, i, cl->name, addr_ip_str(b, as, sizeof as),
                     f->ifa_name, cl->interface, cl->interface);
            bad = -1;
            break;
        }
    }
    if (ifs) freeifaddrs(ifs);
    return bad;
}

/* The automatic MTU depends on the master's IP version; a name could be either: assume the
 * larger IPv6 headers unless every way to the master is an IPv4 literal. */
static unsigned slave_mtu(const struct cfg *cfg)
{
    bool v6 = false;
    for (int i = 0; i < cfg->nlinks; i++) {
        const struct cfg_link *cl = &cfg->links[i];
        const char *mh = cl->has_master ? cl->master_host : cfg->master_host;
        struct addr ma;
        if (addr_parse_ip(mh, 0, &ma) != 0 || ma.ss.ss_family == AF_INET6) v6 = true;
    }
    return daemon_tunnel_mtu(cfg, v6);
}

/* The link's transport for its settings (not started). NULL when out of memory. */
static struct link *make_link(struct slave *S, const struct cfg *cfg, const struct cfg_link *cl)
{
    const char *mh = cl->has_master ? cl->master_host : cfg->master_host;
    unsigned mp = cl->has_master ? cl->master_port : cfg->master_port;
    if (cl->type == CFG_LINK_SOCKS5 || cl->type == CFG_LINK_SOCKS5_TCP) {
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
            .tcp = cl->type == CFG_LINK_SOCKS5_TCP,
        };
        return socks5_link_new(S->loop, &sc);
    }
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
    return udp_link_new(S->loop, &uc);
}

static void start_link(struct link *l, const struct cfg_link *cl)
{
    if (cl->type != CFG_LINK_UDP) socks5_link_start(l);
    else udp_link_start(l);
}

/* ---------------------------------------------------------------- reload */

static void drain_done(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct drain *d = w->data;
    struct slave *S = d->S;
    for (struct drain **pp = &S->drains; *pp; pp = &(*pp)->next)
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    mux_release_link(S->mux, d->l);
    link_destroy(d->l);
    free(d);
}

static void drain(struct slave *S, struct link *l)
{
    struct drain *d = calloc(1, sizeof *d);
    if (!d) { /* no room to wait: let it go at once */
        mux_release_link(S->mux, l);
        link_destroy(l);
        return;
    }
    d->l = l;
    d->S = S;
    d->next = S->drains;
    S->drains = d;
    ev_timer_init(&d->t, drain_done, DRAIN_S, 0.);
    d->t.data = d;
    ev_timer_start(S->loop, &d->t);
}

static void drain_all(struct slave *S)
{
    while (S->drains) {
        struct drain *d = S->drains;
        S->drains = d->next;
        ev_timer_stop(S->loop, &d->t);
        link_destroy(d->l);
        free(d);
    }
}

/* Do two configured links (of cfgs a and b) need different transports? */
static bool link_changed(const struct cfg *a, const struct cfg_link *x, const struct cfg *b,
                         const struct cfg_link *y)
{
    const char *mx = x->has_master ? x->master_host : a->master_host;
    const char *my = y->has_master ? y->master_host : b->master_host;
    unsigned px = x->has_master ? x->master_port : a->master_port;
    unsigned py = y->has_master ? y->master_port : b->master_port;
    return x->type != y->type || strcmp(mx, my) != 0 || px != py ||
           x->has_bind != y->has_bind ||
           (x->has_bind && !addr_equal((const struct sockaddr *)&x->bind.ss,
                                       (const struct sockaddr *)&y->bind.ss)) ||
           strcmp(x->interface, y->interface) != 0 || strcmp(x->proxy_host, y->proxy_host) != 0 ||
           x->proxy_port != y->proxy_port || strcmp(x->username, y->username) != 0 ||
           strcmp(x->password, y->password) != 0 || x->proxy_timeout_ms != y->proxy_timeout_ms;
}

/* Re-read the config file: links added, removed or changed (matched by name) take effect now;
 * the others, the session and the tunnel device are not touched. A config with an error
 * changes nothing. The outcome goes to the log and to out. */
static void slave_reload(struct slave *S, struct strbuf *out)
{
    char err[768];
    struct strbuf notes;
    sb_init(&notes);
    struct cfg *nc = daemon_reload_begin(&S->cfg, out, &notes);
    if (!nc) {
        sb_free(&notes);
        return;
    }
    if (check_bind_interface(nc, err, sizeof err) != 0) {
        daemon_reload_refuse(nc, err, out);
        sb_free(&notes);
        return;
    }
    if (slave_mtu(nc) != slave_mtu(&S->cfg)) {
        LOGW("reload: the tunnel MTU would change (%u -> %u): it takes effect at the next "
             "restart", slave_mtu(&S->cfg), slave_mtu(nc));
        sb_printf(&notes, "the tunnel MTU would change: restart needed\n");
    }
    daemon_keep_restart_only(nc, &S->cfg); /* (new links get the running socket_buffer...) */

    /* Match the new links to the running ones by name; a kept link keeps its id. */
    int match[CFG_MAX_LINKS]; /* new index -> running index, or -1 */
    bool kept[CFG_MAX_LINKS] = {false};
    bool id_taken[256];
    memcpy(id_taken, S->id_used, sizeof id_taken);
    for (int j = 0; j < nc->nlinks; j++) {
        match[j] = -1;
        for (int i = 0; i < S->nlinks; i++)
            if (strcmp(S->cfg.links[i].name, nc->links[j].name) == 0) {
                match[j] = i;
                kept[i] = true;
                nc->links[j].id = S->cfg.links[i].id;
                id_taken[nc->links[j].id] = true;
            }
    }
    /* New links: their own id if no link of this process had it, else the lowest such. */
    for (int j = 0; j < nc->nlinks; j++) {
        if (match[j] >= 0) continue;
        unsigned id = nc->links[j].id;
        if (id_taken[id])
            for (id = 0; id < 256 && id_taken[id]; id++) {
            }
        if (id == 256) {
            snprintf(err, sizeof err, "no link id left for link %s (256 used since the "
                     "start); restart braid-slave", nc->links[j].name);
            daemon_reload_refuse(nc, err, out);
            sb_free(&notes);
            return;
        }
        nc->links[j].id = (uint8_t)id;
        id_taken[id] = true;
    }
    int added = 0, removed = 0, changed = 0;
    struct link *nlinks[CFG_MAX_LINKS] = {NULL};
    for (int i = 0; i < S->nlinks; i++) {
        if (kept[i]) continue;
        mux_retire_link(S->mux, S->cfg.links[i].id);
        drain(S, S->links[i]);
        LOGI("reload: link %s removed", S->cfg.links[i].name);
        sb_printf(out, "removed link %s\n", S->cfg.links[i].name);
        removed++;
    }
    for (int j = 0; j < nc->nlinks; j++) {
        const struct cfg_link *cl = &nc->links[j];
        int i = match[j];
        if (i >= 0 && !link_changed(&S->cfg, &S->cfg.links[i], nc, cl)) {
            nlinks[j] = S->links[i];
            continue;
        }
        struct link *l = make_link(S, nc, cl);
        if (!l) { /* keep what runs */
            LOGE("reload: out of memory for link %s", cl->name);
            sb_printf(out, "error: out of memory for link %s\n", cl->name);
            if (i >= 0) {
                nlinks[j] = S->links[i];
                nc->links[j] = S->cfg.links[i];
            }
            continue;
        }
        if (i >= 0) {
            struct link *old = mux_replace_link(S->mux, l);
            if (old) drain(S, old);
            LOGI("reload: link %s changed: new transport, same id %u", cl->name, cl->id);
            sb_printf(out, "changed link %s\n", cl->name);
            changed++;
        } else {
            mux_add_link(S->mux, l);
            S->id_used[cl->id] = true;
            LOGI("reload: link %s added (id %u)", cl->name, cl->id);
            sb_printf(out, "added link %s\n", cl->name);
            added++;
        }
        nlinks[j] = l;
        start_link(l, cl);
    }
    for (int j = 0; j < nc->nlinks; j++) mux_link_backup(S->mux, nc->links[j].id, nc->links[j].backup);
    memcpy(S->links, nlinks, sizeof nlinks);
    S->nlinks = nc->nlinks;
    daemon_reload_commit(&S->cfg, nc, S->verbose);
    LOGI("reload: done: %d link%s added, %d removed, %d changed, %d unchanged", added,
         added == 1 ? "" : "s", removed, changed, S->nlinks - added - changed);
    sb_printf(out, "reloaded: %d added, %d removed, %d changed, %d unchanged\n", added, removed,
              changed, S->nlinks - added - changed);
    if (notes.len) sb_printf(out, "%.*s", (int)notes.len, notes.buf);
    sb_free(&notes);
}

static int metrics(void *ctx, const char *path, struct strbuf *out)
{
    struct slave *S = ctx;
    if (strcmp(path, "/metrics") != 0) {
        sb_printf(out, "braid-slave: the metrics are at /metrics\n");
        return 404;
    }
    daemon_metrics_head(&S->cfg, S->tun, out);
    const struct mux *m = S->mux;
    mux_metrics(&m, NULL, 1, out);
    if (S->lane) {
        const struct lane_peer *lp = lane_slave_peer_const(S->lane);
        lane_metrics(&lp, NULL, 1, out);
    }
    return 200;
}

static void on_sighup(void *ctx)
{
    struct strbuf out;
    sb_init(&out);
    slave_reload(ctx, &out);
    sb_free(&out);
}

static void control(void *ctx, const char *line, struct strbuf *out)
{
    struct slave *S = ctx;
    struct ctlcmd c;
    char err[256];
    if (ctlcmd_parse(line, &c, err, sizeof err) != 0) {
        sb_printf(out, "error: %s\n", err);
    } else if (c.kind == CTL_RELOAD) {
        slave_reload(S, out);
    } else if (c.kind == CTL_LINK) {
        if (mux_link_admin(S->mux, c.link, c.up) == 0)
            sb_printf(out, "link %s: %s\n", c.link, c.up ? "up (enabled)" : "down (disabled)");
        else
            sb_printf(out, "error: no link named \"%s\" (`braid-slave status` lists them)\n",
                      c.link);
    } else {
        daemon_status(S->mux, S->tun, S->lane, c.kind == CTL_JSON ? "json" : "status", out);
    }
}

int main(int argc, char **argv)
{
    struct daemon_args a;
    int rc = daemon_parse_args(argc, argv, prog,
                               "link NAME up|down -c FILE\n"
                               "                             take a link down (it carries nothing) "
                               "or let it up again\n"
                               "       braid-slave probe-socks [USER:PASSWORD@]HOST:PORT\n"
                               "                             check that a SOCKS5 proxy relays UDP "
                               "(UDP ASSOCIATE)\n",
                               "probe-socks", &a);
    if (rc >= 0) return rc;
    struct slave *S = calloc(1, sizeof *S);
    if (!S) return 1;
    S->verbose = a.verbose;
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
    unsigned mtu = slave_mtu(cfg);
    char err[768];
    if (daemon_check(cfg, prog) != 0) {
        cfg_free(&S->cfg);
        free(S);
        return 2;
    }
    if (check_bind_interface(cfg, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
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

    S->loop = ev_default_loop(EVFLAG_AUTO);
    daemon_signals(S->loop, on_sighup, S);
    rc = 1;
    S->res = resolver_new(S->loop, cfg->dns_servers[0] ? cfg->dns_servers : NULL, err, sizeof err);
    if (!S->res) {
        fprintf(stderr, "%s: %s: %s\n", prog, cfg->path, err);
        goto out;
    }
    S->tun = daemon_open_tundev(S->loop, cfg, mtu, tun_rx, S, prog);
    if (!S->tun) goto out;
    struct mux_config mc;
    if (daemon_mux_config(cfg, mtu, &mc, prog) != 0) goto out;
    struct mux_callbacks cb = {.deliver = deliver, .link_state = link_state, .ctx = S};
    S->mux = mux_new(S->loop, &mc, &cb);
    sodium_memzero(&mc, sizeof mc);
    if (!S->mux) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto out;
    }
    if (cfg->tcp_lane != CFG_LANE_OFF) {
        if (daemon_lane_congestion(cfg, prog) != 0) goto out;
        struct lane_slave_cb lcb = {.output = lane_output, .session = lane_session,
                                    .target = lane_target, .ctx = S};
        S->lane = lane_slave_new(S->loop, cfg->tcp_lane, cfg->tcp_lane_connections,
                                 cfg->tcp_lane_fast_open, &lcb, err, sizeof err);
        if (!S->lane) {
            fprintf(stderr, "%s: TCP lane: %s\n", prog, err);
            goto out;
        }
    }
    for (int i = 0; i < cfg->nlinks; i++) {
        struct link *l = make_link(S, cfg, &cfg->links[i]);
        if (!l) {
            fprintf(stderr, "%s: out of memory\n", prog);
            goto out;
        }
        S->links[S->nlinks++] = l;
        mux_add_link(S->mux, l);
        mux_link_backup(S->mux, cfg->links[i].id, cfg->links[i].backup);
        S->id_used[cfg->links[i].id] = true;
    }
    if (cfg->control_socket[0]) {
        S->ctl = control_open(S->loop, cfg->control_socket, control, S, err, sizeof err);
        if (!S->ctl) {
            fprintf(stderr, "%s: %s\n", prog, err);
            goto out;
        }
    }
    if (cfg->has_metrics_listen) {
        S->http = httpd_open(S->loop, &cfg->metrics_listen, metrics, S, err, sizeof err);
        if (!S->http) {
            fprintf(stderr, "%s: %s: metrics_listen: %s\n", prog, cfg->path, err);
            goto out;
        }
    }
    daemon_hook_tunnel(cfg, S->tun, mtu, true); /* routes, NAT: before any traffic */
    for (int i = 0; i < S->nlinks; i++) start_link(S->links[i], &cfg->links[i]);
    mux_start(S->mux);
    if (daemon_drop_privileges(cfg, prog) != 0) goto out;
    {
        char td[160];
        tundev_describe(S->tun, td, sizeof td);
        LOGI("braid-slave: master %s:%u, %d links, tunnel %s, MTU %u", cfg->master_host,
             cfg->master_port, S->nlinks, td, mtu);
        daemon_notify("READY=1\nSTATUS=tunnel %s, %d links toward %s:%u", td, S->nlinks,
                      cfg->master_host, cfg->master_port);
    }
    ev_run(S->loop, 0);
    mux_shutdown(S->mux);
    daemon_hook_tunnel(&S->cfg, S->tun, mtu, false);
    rc = 0;
out:
    httpd_close(S->http);
    control_close(S->ctl);
    lane_slave_free(S->lane);
    S->lane = NULL;
    mux_free(S->mux);
    for (int i = 0; i < S->nlinks; i++) link_destroy(S->links[i]);
    drain_all(S);
    if (S->loop) hook_forget_all(S->loop);
    if (S->tun) tundev_close(S->tun);
    resolver_free(S->res);
    if (S->loop) ev_loop_destroy(S->loop);
    cfg_free(&S->cfg);
    free(S);
    return rc;
}
