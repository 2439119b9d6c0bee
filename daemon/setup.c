/* setup.c: what both daemons build from their config: the multiplexer's settings (keys,
 * timings) and the tunnel MTU; at a reload, the new config (without the key file) and the
 * settings that need a restart. */
#include "daemon.h"

#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/keys.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../lane/lane.h"
#include "../mux/mux.h"
#include "../mux/noise.h"
#include "../mux/session.h"
#include "../mux/wire.h"
#include "../tundev/tundev.h"

static int daemon_keys(const struct cfg *cfg, struct mux_config *mc, const char *prog)
{
    if (!cfg->has_private_key) {
        fprintf(stderr, "%s: %s: no private key was read (private_key_file)\n", prog, cfg->path);
        return 1;
    }
    if (identity_init(&mc->self, cfg->private_key) != 0) {
        fprintf(stderr, "%s: %s: the private key is not usable; make a new one with `%s genkey`\n",
                prog, cfg->path, prog);
        return 1;
    }
    if (cfg->is_master) {
        for (int i = 0; i < cfg->nsites; i++) {
            if (sodium_memcmp(cfg->sites[i].public_key, mc->self.key.pub, KEY_LEN) == 0) {
                fprintf(stderr,
                        "%s: %s:%d: sites[%d].public_key is this master's own; expected the "
                        "slave's\n",
                        prog, cfg->path, cfg->sites[i].line, i);
                return 1;
            }
        }
        return 0;
    }
    peer_init(&mc->peer, cfg->peer_key, cfg->psk);
    if (sodium_memcmp(cfg->peer_key, mc->self.key.pub, KEY_LEN) == 0) {
        fprintf(stderr, "%s: %s: the master's public key is this end's own; expected the "
                        "master's\n", prog, cfg->path);
        return 1;
    }
    return 0;
}

int daemon_mux_config(const struct cfg *cfg, unsigned mtu, struct mux_config *mc,
                      const char *prog)
{
    mux_config_defaults(mc);
    mc->is_master = cfg->is_master;
    if (daemon_keys(cfg, mc, prog) != 0) return 1;
    mc->beat_interval_ms = cfg->beat_interval_ms;
    mc->dead_timeout_ms = cfg->dead_timeout_ms;
    mc->reorder_max_ms = cfg->reorder_max_ms;
    mc->reorder_slots = cfg->reorder_slots;
    mc->rehandshake_ms = cfg->rehandshake_ms;
    mc->rekey_after_ms = cfg->rekey_after_s * 1000u;
    snprintf(mc->scheduler, sizeof mc->scheduler, "%s", cfg->scheduler);
    mc->mtu = mtu;
    return 0;
}

unsigned daemon_tunnel_mtu(const struct cfg *cfg, bool ipv6_outer)
{
    if (cfg->mtu) return cfg->mtu;
    unsigned outer = ipv6_outer ? 40 + 8 : 20 + 8;
    unsigned socks_hdr = ipv6_outer ? 22 : 10;
    return cfg->link_mtu - outer - WIRE_OVERHEAD - socks_hdr;
}

/* The settings a reload cannot change (the tunnel device, the keys, the sockets, the mux's
 * timings), as byte ranges of struct cfg: loaded into zeroed memory, equal settings compare
 * equal. */
#define RO(name, field) {name, offsetof(struct cfg, field), sizeof(((struct cfg *)0)->field)}
static const struct {
    const char *name;
    size_t off, len;
} restart_only[] = {
    RO("private_key", private_key),          RO("master_public_key", peer_key),
    RO("psk", psk),                          RO("listen", listen),
    RO("tunnel.name", tun_name),             RO("tunnel.address", tun_address),
    RO("tunnel.address6", tun_address6),     RO("tunnel.mtu", mtu),
    RO("tunnel.link_mtu", link_mtu),         RO("tunnel.notun_listen", notun_listen),
    RO("mux.beat_interval_ms", beat_interval_ms), RO("mux.dead_timeout_ms", dead_timeout_ms),
    RO("mux.reorder_max_ms", reorder_max_ms), RO("mux.reorder_slots", reorder_slots),
    RO("mux.rehandshake_ms", rehandshake_ms), RO("mux.rekey_after_s", rekey_after_s),
    RO("mux.scheduler", scheduler),          RO("control_socket", control_socket),
    RO("log_target", log_target),            RO("socket_buffer", socket_buffer),
    RO("dns_servers", dns_servers),          RO("metrics_listen", metrics_listen),
    RO("user", user),                        RO("group", group),
    RO("tcp_lane", tcp_lane),                RO("tcp_lane_connections", tcp_lane_connections),
    RO("tcp_lane_congestion", tcp_lane_congestion), RO("tcp_links", tcp_links),
};
#undef RO

static int restart_notes(const struct cfg *a, const struct cfg *b, struct strbuf *out)
{
    int n = 0;
    for (size_t i = 0; i < ARRAY_LEN(restart_only); i++) {
        const char *x = (const char *)a + restart_only[i].off;
        const char *y = (const char *)b + restart_only[i].off;
        if (memcmp(x, y, restart_only[i].len) == 0) continue;
        LOGW("reload: %s changed: it takes effect at the next restart", restart_only[i].name);
        sb_printf(out, "%s%s", n ? ", " : "restart needed for: ", restart_only[i].name);
        n++;
    }
    if (n) sb_printf(out, "\n");
    return n;
}

/* The key file is not read again: the running key stays, unless the file named changed. */
static void keep_key(const struct cfg *running, struct cfg *nc)
{
    if (nc->private_key_file[0] && strcmp(nc->private_key_file, running->private_key_file) == 0) {
        memcpy(nc->private_key, running->private_key, sizeof nc->private_key);
        nc->has_private_key = running->has_private_key;
    }
}

void daemon_keep_restart_only(struct cfg *cur, const struct cfg *old)
{
    for (size_t i = 0; i < ARRAY_LEN(restart_only); i++)
        memcpy((char *)cur + restart_only[i].off, (const char *)old + restart_only[i].off,
               restart_only[i].len);
    cur->has_psk = old->has_psk;
}

struct cfg *daemon_reload_begin(const struct cfg *running, struct strbuf *out,
                                struct strbuf *notes)
{
    char err[768];
    struct cfg *nc = calloc(1, sizeof *nc);
    if (!nc) {
        LOGE("reload: out of memory; the running configuration stays");
        sb_printf(out, "error: out of memory; the running configuration stays\n");
        return NULL;
    }
    if (cfg_reload(running->path, running->is_master, nc, err, sizeof err) != 0) {
        struct strbuf why;
        sb_init(&why);
        sb_printf(&why, "%s", err);
        if (running->user[0] && strstr(err, "Permission denied")) {
            const char *g = running->group[0] ? running->group : running->user;
            sb_printf(&why, " (braid runs as user %s since its start: let it read the file and "
                      "its folder, e.g. `chgrp %s %s; chmod 640 %s`, and the folder group %s, "
                      "mode 750)", running->user, g, running->path, running->path, g);
        }
        daemon_reload_refuse(nc, why.buf, out);
        sb_free(&why);
        return NULL;
    }
    keep_key(running, nc);
    if (nc->warning[0]) LOGW("%s", nc->warning);
    restart_notes(running, nc, notes);
    return nc;
}

void daemon_reload_refuse(struct cfg *nc, const char *why, struct strbuf *out)
{
    LOGE("reload: %s; the running configuration stays", why);
    sb_printf(out, "error: %s; the running configuration stays\n", why);
    cfg_free(nc);
    sodium_memzero(nc, sizeof *nc);
    free(nc);
}

void daemon_reload_commit(struct cfg *running, struct cfg *nc, bool verbose)
{
    struct cfg old = *running;
    *running = *nc;
    daemon_keep_restart_only(running, &old);
    if (!verbose) log_set_level((enum log_level)running->log_level);
    sodium_memzero(nc, sizeof *nc);
    free(nc);
    cfg_free(&old);
}

int daemon_check(const struct cfg *cfg, const char *prog)
{
    if (strcmp(tundev_kind, "notun") == 0 && !cfg->has_notun_listen) {
        fprintf(stderr, "%s: %s: tunnel.notun_listen is required by the notun build (the TCP "
                        "address where the frame client connects, e.g. \"127.0.0.1:%u\")\n",
                prog, cfg->path, cfg->is_master ? 7100u : 7200u);
        return 2;
    }
    return daemon_check_user(cfg, prog);
}

struct tundev *daemon_open_tundev(struct ev_loop *loop, const struct cfg *cfg, unsigned mtu,
                                  void (*rx)(void *ctx, const uint8_t *pkt, size_t len), void *ctx,
                                  const char *prog)
{
    struct tundev_config tc = {
        .name = cfg->tun_name,
        .address = cfg->tun_address[0] ? cfg->tun_address : NULL,
        .address6 = cfg->tun_address6[0] ? cfg->tun_address6 : NULL,
        .mtu = mtu,
        .listen = cfg->notun_listen,
    };
    char err[512];
    struct tundev *t = tundev_open(loop, &tc, rx, ctx, err, sizeof err);
    if (!t) fprintf(stderr, "%s: %s\n", prog, err);
    return t;
}

int daemon_lane_congestion(const struct cfg *cfg, const char *prog)
{
    if (lane_set_congestion(cfg->tcp_lane_congestion) == 0) return 0;
    fprintf(stderr, "%s: %s: tcp_lane_congestion \"%s\" is not available in this kernel (see "
            "/proc/sys/net/ipv4/tcp_available_congestion_control)\n", prog, cfg->path,
            cfg->tcp_lane_congestion);
    return 1;
}
