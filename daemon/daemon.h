/* daemon.h: the program layer shared by braid-master and braid-slave, above the mux, links and
 * tundev layers: command line and sub-commands (args.c), the settings built from the config
 * and reloads (setup.c), the service side: signals, systemd, hooks, the unprivileged user
 * (service.c), and status and metrics answers (report.c). */
#ifndef BRAID_DAEMON_H
#define BRAID_DAEMON_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/cfg.h"
#include "../common/strbuf.h"

struct lane_slave;

enum daemon_cmd { CMD_RUN, CMD_CHECK, CMD_GENKEY, CMD_PUBKEY, CMD_GENPSK, CMD_STATUS, CMD_JSON,
                  CMD_RELOAD, CMD_LINK, CMD_EXTRA };

struct daemon_args {
    enum daemon_cmd cmd;
    const char *config;
    bool verbose;
    bool watch; /* status --watch: again every second */
    const char *extra;     /* CMD_EXTRA: the sub-command name (e.g. "probe-socks") */
    const char *extra_arg; /* its argument; CMD_LINK: the link's name */
    const char *extra_arg2; /* CMD_LINK: "up" or "down" */
};

/* Parse argv. usage_extra: more usage lines, the first without the program name (printed
 * before it). extra_cmd names one program-specific sub-command taking one argument, or NULL.
 * Returns -1 to continue, or an exit status (after printing usage or an error). */
int daemon_parse_args(int argc, char **argv, const char *prog, const char *usage_extra,
                      const char *extra_cmd, struct daemon_args *a);

/* Runs genkey / status / json; loads the config for the others. Returns -1 to continue with
 * cfg filled in, or an exit status. */
int daemon_prepare(const struct daemon_args *a, const char *prog, bool is_master, struct cfg *cfg);

/* Stop the loop on SIGINT/SIGTERM; call reload(ctx) on SIGHUP; ignore SIGPIPE; feed systemd's
 * watchdog when the unit has one. */
void daemon_signals(struct ev_loop *loop, void (*reload)(void *ctx), void *ctx);
/* A reload's first half: the config file read again into a new cfg (the key file is not read
 * again: the running key is kept), its warning logged, the settings that cannot change while
 * running and differ named in the log and in notes. NULL after logging and answering in out
 * why not (the running config stays). */
struct cfg *daemon_reload_begin(const struct cfg *running, struct strbuf *out,
                                struct strbuf *notes);
/* A reload refused after begin (why: FILE:LINE: what): logged, answered, nc freed. */
void daemon_reload_refuse(struct cfg *nc, const char *why, struct strbuf *out);
/* The second half: nc becomes the running config, but for the settings that need a restart
 * (their running values stay); the log level applies at once (unless -v); nc is freed. */
void daemon_reload_commit(struct cfg *running, struct cfg *nc, bool verbose);
/* The "user" and "group" exist (-t and the start). 0, or 2 after printing FILE:LINE: why. */
int daemon_check_user(const struct cfg *cfg, const char *prog);
/* After the setup (TUN device, sockets, up_command): run on as "user" with only the
 * capabilities still needed (logged). 0 (also without "user"), or 1 after printing why not. */
int daemon_drop_privileges(const struct cfg *cfg, const char *prog);
/* Those settings of cur back to what runs (old's): the settings that need a restart. */
void daemon_keep_restart_only(struct cfg *cur, const struct cfg *old);
/* Tell systemd (when it started us: Type=notify) a state, e.g. "READY=1\nSTATUS=..."; a no-op
 * otherwise. */
void daemon_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct mux;
struct mux_config;
struct tundev;
/* The multiplexer's settings from the config: the "mux" group, the tunnel MTU, and the keys:
 * this end's identity and, on the slave, the master's public key and PSK (the master's sites
 * have theirs in cfg->sites). Returns 0, or 1 after printing why not. */
int daemon_mux_config(const struct cfg *cfg, unsigned mtu, struct mux_config *mc,
                      const char *prog);
/* The TCP lane's congestion control (tcp_lane_congestion) for every link connection: 0, or 1
 * after printing that this kernel does not have it. */
int daemon_lane_congestion(const struct cfg *cfg, const char *prog);
/* The control socket's answer for cmd ("status": a table, "json": one JSON object). */
void daemon_status(const struct mux *mux, const struct tundev *tun,
                   const struct lane_slave *lane, const char *cmd, struct strbuf *out);
/* The tunnel device's part of it: a JSON object, a line of text. */
void daemon_tundev_json(const struct tundev *tun, struct strbuf *out);
void daemon_tundev_text(const struct tundev *tun, struct strbuf *out);

/* What -t and the start check beyond the config's own rules: the notun build's frame
 * address, the "user". 0, or 2 after printing FILE: why. */
int daemon_check(const struct cfg *cfg, const char *prog);
/* The tunnel device from the config's "tunnel" group (NULL after printing why not). */
struct tundev *daemon_open_tundev(struct ev_loop *loop, const struct cfg *cfg, unsigned mtu,
                                  void (*rx)(void *ctx, const uint8_t *pkt, size_t len), void *ctx,
                                  const char *prog);

/* The admin's hook commands, with braid's facts in their environment (BRAID_ROLE, BRAID_EVENT,
 * BRAID_INTERFACE, BRAID_ADDRESS, BRAID_ADDRESS6, BRAID_MTU; for links BRAID_SITE (master),
 * BRAID_LINK, BRAID_LINK_ID, BRAID_LINKS_UP). The tunnel's: up_command once the device is up
 * (waited for, at most 30 s), down_command before it goes away. */
void daemon_hook_tunnel(const struct cfg *cfg, const struct tundev *tun, unsigned mtu, bool up);
/* link_command for a link's new state (not waited for). site: NULL on the slave. */
void daemon_hook_link(struct ev_loop *loop, const struct cfg *cfg, const struct tundev *tun,
                      const char *site, const char *link, unsigned id, bool up, int links_up);

/* The start of the Prometheus metrics: braid_info and the tunnel device's counters. */
void daemon_metrics_head(const struct cfg *cfg, const struct tundev *tun, struct strbuf *out);

/* Tunnel MTU for the config: the configured one, or link_mtu minus the outer IP/UDP headers,
 * braid's overhead and the SOCKS5 UDP header (10 bytes for an IPv4 master, 22 for IPv6). Both
 * ends leave room for the SOCKS5 header whatever their links are, so that they agree on the MTU
 * and the master's packets fit through a phone's relay: 1428 over IPv4, 1396 over IPv6. */
unsigned daemon_tunnel_mtu(const struct cfg *cfg, bool ipv6_outer);

#endif
