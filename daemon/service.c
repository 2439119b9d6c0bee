/* service.c: the daemon as a service: signals (stop, reload), systemd's readiness and
 * watchdog, the hook commands with braid's facts, and the switch to an unprivileged user. */
#include "daemon.h"

#include <linux/capability.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "../common/hooks.h"
#include "../common/log.h"
#include "../common/privdrop.h"
#include "../common/util.h"
#include "../tundev/tundev.h"

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

int daemon_check_user(const struct cfg *cfg, const char *prog)
{
    if (!cfg->user[0] && cfg->group[0]) {
        fprintf(stderr, "%s: %s: group \"%s\" is set without user; expected both (the group "
                        "only applies to the user braid switches to), or neither\n",
                prog, cfg->path, cfg->group);
        return 2;
    }
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
