/* daemon.c: command line, sub-commands (genkey, pubkey, genpsk, status), signal handling and MTU arithmetic
 * shared by braid-master and braid-slave. */
#include "daemon.h"

#include <signal.h>
#include <sodium.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <linux/capability.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "../mux/mux.h"
#include "../mux/sched.h"
#include "../mux/session.h"
#include "../mux/wire.h"
#include "../tundev/tundev.h"
#include "control.h"
#include "hooks.h"
#include "privdrop.h"
#include "keys.h"
#include "log.h"
#include "util.h"

static void usage(FILE *f, const char *prog, const char *usage_extra)
{
    fprintf(f,
            "usage: %s -c FILE [-v]      run (TUN or notun build: this one is \"%s\")\n"
            "       %s -t -c FILE        check the configuration and exit\n"
            "       %s genkey            print a new private key (for private_key_file)\n"
            "       %s pubkey            read a private key on stdin, print its public key\n"
            "       %s genpsk            print a new pre-shared key (the optional psk)\n"
            "       %s status -c FILE [--watch]\n"
            "                             print link status from the running daemon (--watch:\n"
            "                             every second, with each link's rates, until ^C)\n"
            "       %s json -c FILE      the same as JSON\n"
            "       %s reload -c FILE    check FILE, then make the daemon running with it re-read\n"
            "                             it (as SIGHUP does); says what changed\n"
            "       %s --version         print the version and exit\n",
            prog, tundev_kind, prog, prog, prog, prog, prog, prog, prog, prog);
    if (usage_extra) fprintf(f, "       %s %s", prog, usage_extra);
}

static void version(const char *prog)
{
    printf("%s %s (%s build, wire version %d)\n", prog, BRAID_VERSION, tundev_kind, WIRE_VERSION);
}

static bool scheduler_known(const char *name)
{
    return sched_find(name) != NULL;
}
static const struct cfg_names scheduler_names = {scheduler_known, sched_names};

int daemon_parse_args(int argc, char **argv, const char *prog, const char *usage_extra,
                      const char *extra_cmd, struct daemon_args *a)
{
    memset(a, 0, sizeof *a);
    a->cmd = CMD_RUN;
    int i = 1;
    if (i < argc && (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0 ||
                     strcmp(argv[i], "version") == 0)) {
        version(prog);
        return 0;
    }
    if (i < argc && argv[i][0] != '-') {
        const char *c = argv[i++];
        if (strcmp(c, "genkey") == 0) a->cmd = CMD_GENKEY;
        else if (strcmp(c, "pubkey") == 0) a->cmd = CMD_PUBKEY;
        else if (strcmp(c, "genpsk") == 0) a->cmd = CMD_GENPSK;
        else if (strcmp(c, "status") == 0) a->cmd = CMD_STATUS;
        else if (strcmp(c, "json") == 0) a->cmd = CMD_JSON;
        else if (strcmp(c, "reload") == 0) a->cmd = CMD_RELOAD;
        else if (strcmp(c, "link") == 0) {
            a->cmd = CMD_LINK;
            if (i + 1 >= argc || (strcmp(argv[i + 1], "up") != 0 &&
                                  strcmp(argv[i + 1], "down") != 0)) {
                fprintf(stderr, "%s: link needs a link's name and up or down, e.g. `%s link "
                                "phone down -c FILE`\n", prog, prog);
                return 2;
            }
            a->extra_arg = argv[i++];
            a->extra_arg2 = argv[i++];
        }
        else if (extra_cmd && strcmp(c, extra_cmd) == 0) {
            a->cmd = CMD_EXTRA;
            a->extra = c;
            if (i >= argc || argv[i][0] == '-') {
                fprintf(stderr, "%s: %s needs an argument\n", prog, c);
                usage(stderr, prog, usage_extra);
                return 2;
            }
            a->extra_arg = argv[i++];
        } else {
            fprintf(stderr, "%s: unknown command \"%s\"\n", prog, c);
            usage(stderr, prog, usage_extra);
            return 2;
        }
    }
    for (; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) a->config = argv[++i];
        else if (strcmp(argv[i], "-t") == 0 && a->cmd == CMD_RUN) a->cmd = CMD_CHECK;
        else if (strcmp(argv[i], "-v") == 0) a->verbose = true;
        else if (strcmp(argv[i], "--watch") == 0 && a->cmd == CMD_STATUS) a->watch = true;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout, prog, usage_extra);
            return 0;
        } else {
            fprintf(stderr, "%s: unexpected argument \"%s\"\n", prog, argv[i]);
            usage(stderr, prog, usage_extra);
            return 2;
        }
    }
    if (!a->config && a->cmd != CMD_GENKEY && a->cmd != CMD_PUBKEY && a->cmd != CMD_GENPSK &&
        a->cmd != CMD_EXTRA) {
        fprintf(stderr, "%s: no configuration file given (-c FILE); examples are in conf/\n",
                prog);
        usage(stderr, prog, usage_extra);
        return 2;
    }
    return -1;
}

int daemon_prepare(const struct daemon_args *a, const char *prog, bool is_master, struct cfg *cfg)
{
    if (session_crypto_init() != 0) {
        fprintf(stderr, "%s: libsodium failed to initialise\n", prog);
        return 1;
    }
    if (a->cmd == CMD_GENKEY || a->cmd == CMD_GENPSK) {
        char key[KEY_B64_LEN];
        key_generate_b64(key);
        printf("%s\n", key);
        sodium_memzero(key, sizeof key);
        return 0;
    }
    if (a->cmd == CMD_PUBKEY) {
        char line[256];
        uint8_t priv[KEY_LEN], pub[KEY_LEN];
        char why[128];
        size_t n = fread(line, 1, sizeof line - 1, stdin);
        line[n] = 0;
        int rc = key_from_b64(line, priv, why, sizeof why);
        sodium_memzero(line, sizeof line);
        if (rc != 0 || noise_pubkey(priv, pub) != 0) {
            fprintf(stderr, "%s pubkey: the private key on stdin: %s (e.g. `%s pubkey < FILE`)\n",
                    prog, rc != 0 ? why : "not usable", prog);
            sodium_memzero(priv, sizeof priv);
            return 1;
        }
        sodium_memzero(priv, sizeof priv);
        char out[KEY_B64_LEN];
        key_to_b64(pub, out);
        printf("%s\n", out);
        return 0;
    }
    if (!a->config) return -1;
    char err[512];
    cfg_set_scheduler_names(&scheduler_names);
    if (cfg_load(a->config, is_master, cfg, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 2;
    }
    if (a->cmd == CMD_STATUS || a->cmd == CMD_JSON || a->cmd == CMD_RELOAD ||
        a->cmd == CMD_LINK) {
        if (!cfg->control_socket[0]) {
            fprintf(stderr, "%s: %s has no control_socket setting; add one to query status%s\n",
                    prog, a->config, a->cmd == CMD_RELOAD ? " (or send the daemon SIGHUP)" : "");
            cfg_free(cfg);
            return 2;
        }
        int rc;
        if (a->cmd == CMD_RELOAD || a->cmd == CMD_LINK) { /* the answer says if it worked */
            char *ans = NULL, line[128];
            size_t alen = 0;
            snprintf(line, sizeof line, "link %.40s %s", a->extra_arg ? a->extra_arg : "",
                     a->extra_arg2 ? a->extra_arg2 : "");
            FILE *mf = open_memstream(&ans, &alen);
            rc = mf ? control_query(cfg->control_socket, a->cmd == CMD_RELOAD ? "reload" : line,
                                    mf)
                    : -1;
            if (mf) fclose(mf);
            if (ans) fputs(ans, stdout);
            if (rc == 0 && (!ans || strncmp(ans, "error", 5) == 0 || strstr(ans, "\nerror") ||
                            (a->cmd == CMD_RELOAD && strncmp(ans, "reloaded", 8) != 0 &&
                             !strstr(ans, "\nreloaded"))))
                rc = -1;
            free(ans);
        } else if (a->watch) {
            bool tty = isatty(1);
            for (;;) { /* until ^C, or the daemon goes away */
                if (tty) fputs("\033[H\033[2J", stdout);
                rc = control_query(cfg->control_socket, "status", stdout);
                fflush(stdout);
                if (rc != 0) break;
                struct timespec second = {1, 0};
                nanosleep(&second, NULL);
            }
        } else {
            rc = control_query(cfg->control_socket, a->cmd == CMD_STATUS ? "status" : "json",
                               stdout);
        }
        cfg_free(cfg);
        return rc == 0 ? 0 : 1;
    }
    log_set_level(a->verbose ? LOG_DEBUG : (enum log_level)cfg->log_level);
    if (a->cmd == CMD_RUN) log_set_target((enum log_target)cfg->log_target, prog);
    if (cfg->warning[0]) {
        if (a->cmd == CMD_RUN) LOGW("%s", cfg->warning);
        else fprintf(stderr, "%s: warning: %s\n", prog, cfg->warning);
    }
    return -1;
}

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

static ev_signal sig_int, sig_term, sig_hup;
static ev_timer watchdog;
static void (*reload_fn)(void *ctx);
static void *reload_ctx;

static void on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    LOGI("SIGHUP: re-reading the configuration");
    if (reload_fn) reload_fn(reload_ctx);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    LOGI("signal %d: shutting down", w->signum);
    sd_notify(0, "STOPPING=1");
    ev_break(loop, EVBREAK_ALL);
}

static void on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    sd_notify(0, "WATCHDOG=1");
}

void daemon_signals(struct ev_loop *loop, void (*reload)(void *ctx), void *ctx)
{
    signal(SIGPIPE, SIG_IGN);
    ev_signal_init(&sig_int, on_signal, SIGINT);
    ev_signal_init(&sig_term, on_signal, SIGTERM);
    ev_signal_init(&sig_hup, on_hup, SIGHUP);
    ev_signal_start(loop, &sig_int);
    ev_signal_start(loop, &sig_term);
    ev_signal_start(loop, &sig_hup);
    reload_fn = reload;
    reload_ctx = ctx;
    /* WatchdogSec= in the unit: prove the event loop turns, at half the interval */
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        ev_timer_init(&watchdog, on_watchdog, (double)usec / 2e6, (double)usec / 2e6);
        ev_timer_start(loop, &watchdog);
        ev_unref(loop); /* the watchdog alone does not keep the loop running */
    }
}

void daemon_notify(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sd_notify(0, msg);
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
};
#undef RO

int daemon_restart_only(const struct cfg *a, const struct cfg *b, struct strbuf *out)
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

int daemon_reload_load(const struct cfg *running, struct cfg *nc, char *err, size_t errlen)
{
    if (cfg_reload(running->path, running->is_master, nc, err, errlen) != 0) {
        if (running->user[0] && strstr(err, "Permission denied")) {
            size_t n = strlen(err);
            snprintf(err + n, errlen - n, " (braid runs as user %s since its start: let it read "
                     "the file, e.g. `chgrp %s %s; chmod 640 %s`)", running->user,
                     running->group[0] ? running->group : running->user, running->path,
                     running->path);
        }
        return -1;
    }
    /* the key file is not read again: the running key, unless the file named changed */
    if (nc->private_key_file[0] && strcmp(nc->private_key_file, running->private_key_file) == 0) {
        memcpy(nc->private_key, running->private_key, sizeof nc->private_key);
        nc->has_private_key = running->has_private_key;
    }
    return 0;
}

int daemon_check_user(const struct cfg *cfg, const char *prog)
{
    if (!cfg->user[0]) return 0;
    uid_t uid;
    gid_t gid;
    char err[256];
    if (privdrop_lookup(cfg->user, cfg->group, &uid, &gid, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s:%d: %s\n", prog, cfg->path, cfg->user_line, err);
        return 2;
    }
    return 0;
}

int daemon_drop_privileges(const struct cfg *cfg, const char *prog)
{
    if (!cfg->user[0]) return 0;
    uid_t uid;
    gid_t gid;
    char err[256];
    if (privdrop_lookup(cfg->user, cfg->group, &uid, &gid, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s:%d: %s\n", prog, cfg->path, cfg->user_line, err);
        return 1;
    }
    /* What is still needed after the setup: the slave reopens its links' sockets (an interface
     * comes back, a NAT mapping died): SO_BINDTODEVICE needs CAP_NET_RAW, socket buffers over
     * net.core.[rw]mem_max CAP_NET_ADMIN. The master's socket stays open: nothing, unless hook
     * commands after the start (link_command, down_command) need CAP_NET_ADMIN for routes. */
    bool hooks = cfg->link_command[0] || cfg->down_command[0];
    int caps[2], n = 0;
    if (!cfg->is_master || hooks) caps[n++] = CAP_NET_ADMIN;
    if (!cfg->is_master) caps[n++] = CAP_NET_RAW;
    if (privdrop_apply(uid, gid, caps, n, hooks, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s:%d: user: %s\n", prog, cfg->path, cfg->user_line, err);
        return 1;
    }
    char kept[128];
    privdrop_describe(kept, sizeof kept);
    LOGI("running as user %s (uid %u, gid %u) with capabilities: %s%s", cfg->user,
         (unsigned)uid, (unsigned)gid, kept, hooks ? " (passed on to hook commands)" : "");
    return 0;
}

void daemon_keep_restart_only(struct cfg *cur, const struct cfg *old)
{
    for (size_t i = 0; i < ARRAY_LEN(restart_only); i++)
        memcpy((char *)cur + restart_only[i].off, (const char *)old + restart_only[i].off,
               restart_only[i].len);
    cur->has_psk = old->has_psk;
}

void daemon_metrics_head(const struct cfg *cfg, const struct tundev *tun, struct strbuf *out)
{
    const struct tundev_stats *ts = tundev_stats(tun);
    sb_printf(out,
              "# HELP braid_info braid's release, build and role\n# TYPE braid_info gauge\n"
              "braid_info{version=\"%s\",build=\"%s\",role=\"%s\",wire=\"%d\"} 1\n",
              BRAID_VERSION, tundev_kind, cfg->is_master ? "master" : "slave", WIRE_VERSION);
#define T(name, help, f)                                                                           \
    sb_printf(out, "# HELP braid_tunnel_" name "_total " help "\n# TYPE braid_tunnel_" name      \
                   "_total counter\nbraid_tunnel_" name "_total %llu\n",                         \
              (unsigned long long)ts->f);
    T("rx_packets", "packets from the host into the tunnel", rx_packets)
    T("rx_bytes", "bytes from the host into the tunnel", rx_bytes)
    T("tx_packets", "packets from the tunnel to the host", tx_packets)
    T("tx_bytes", "bytes from the tunnel to the host", tx_bytes)
    T("rx_rejected", "packets from the host refused (too large)", rx_rejected)
    T("tx_dropped", "packets to the host that could not be written", tx_dropped)
#undef T
}

#define HOOK_TIMEOUT_S 30.0

void daemon_hook_tunnel(const struct cfg *cfg, const struct tundev *tun, unsigned mtu, bool up)
{
    const char *cmd = up ? cfg->up_command : cfg->down_command;
    if (!cmd[0]) return;
    char ms[16];
    snprintf(ms, sizeof ms, "%u", mtu);
    struct hook_var v[] = {
        {"BRAID_ROLE", cfg->is_master ? "master" : "slave"},
        {"BRAID_EVENT", up ? "up" : "down"},
        {"BRAID_INTERFACE", tundev_ifname(tun)},
        {"BRAID_ADDRESS", cfg->tun_address},
        {"BRAID_ADDRESS6", cfg->tun_address6},
        {"BRAID_MTU", ms},
        {"BRAID_CONFIG", cfg->path},
    };
    const char *what = up ? "up_command" : "down_command";
    LOGI("%s: running it", what);
    hook_run(what, cmd, v, (int)ARRAY_LEN(v), HOOK_TIMEOUT_S);
}

void daemon_hook_link(struct ev_loop *loop, const struct cfg *cfg, const struct tundev *tun,
                      const char *site, const char *link, unsigned id, bool up, int links_up)
{
    if (!cfg->link_command[0]) return;
    char ids[8], ups[8];
    snprintf(ids, sizeof ids, "%u", id);
    snprintf(ups, sizeof ups, "%d", links_up);
    struct hook_var v[] = {
        {"BRAID_ROLE", cfg->is_master ? "master" : "slave"},
        {"BRAID_EVENT", up ? "link-up" : "link-down"},
        {"BRAID_INTERFACE", tundev_ifname(tun)},
        {"BRAID_ADDRESS", cfg->tun_address},
        {"BRAID_ADDRESS6", cfg->tun_address6},
        {"BRAID_SITE", site},
        {"BRAID_LINK", link},
        {"BRAID_LINK_ID", ids},
        {"BRAID_LINKS_UP", ups},
        {"BRAID_CONFIG", cfg->path},
    };
    hook_start(loop, "link_command", cfg->link_command, v, (int)ARRAY_LEN(v));
}

unsigned daemon_tunnel_mtu(const struct cfg *cfg, bool ipv6_outer)
{
    if (cfg->mtu) return cfg->mtu;
    unsigned outer = ipv6_outer ? 40 + 8 : 20 + 8;
    unsigned socks_hdr = ipv6_outer ? 22 : 10;
    return cfg->link_mtu - outer - WIRE_OVERHEAD - socks_hdr;
}

void daemon_tundev_json(const struct tundev *tun, struct strbuf *out)
{
    const struct tundev_stats *ts = tundev_stats(tun);
    char desc[160];
    tundev_describe(tun, desc, sizeof desc);
    sb_printf(out, "{\"describe\":");
    sb_json_str(out, desc);
    sb_printf(out,
              ",\"rx_packets\":%llu,\"rx_bytes\":%llu,\"tx_packets\":%llu,\"tx_bytes\":%llu,"
              "\"rx_rejected\":%llu,\"tx_dropped\":%llu}",
              (unsigned long long)ts->rx_packets, (unsigned long long)ts->rx_bytes,
              (unsigned long long)ts->tx_packets, (unsigned long long)ts->tx_bytes,
              (unsigned long long)ts->rx_rejected, (unsigned long long)ts->tx_dropped);
}

void daemon_tundev_text(const struct tundev *tun, struct strbuf *out)
{
    const struct tundev_stats *ts = tundev_stats(tun);
    char desc[160];
    tundev_describe(tun, desc, sizeof desc);
    sb_printf(out, "tunnel: %s rx=%llu tx=%llu rejected=%llu dropped=%llu\n", desc,
              (unsigned long long)ts->rx_packets, (unsigned long long)ts->tx_packets,
              (unsigned long long)ts->rx_rejected, (unsigned long long)ts->tx_dropped);
}

void daemon_status(const struct mux *mux, const struct tundev *tun, const char *cmd,
                   struct strbuf *out)
{
    if (strcmp(cmd, "json") == 0) {
        sb_printf(out, "{\"mux\":");
        mux_status_json(mux, out);
        sb_printf(out, ",\"tundev\":");
        daemon_tundev_json(tun, out);
        sb_printf(out, "}\n");
    } else if (strcmp(cmd, "status") == 0) {
        mux_status_text(mux, out);
        daemon_tundev_text(tun, out);
    } else {
        sb_printf(out, "error: unknown command \"%s\" (status, json)\n", cmd);
    }
}
