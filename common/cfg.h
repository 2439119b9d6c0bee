/* cfg.h: loading and checking braid-master / braid-slave configuration files (libconfig).
 * Errors name the file, line and setting, and say what is expected. */
#ifndef BRAID_CFG_H
#define BRAID_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "prefix.h"

#define CFG_MAX_LINKS 32
#define CFG_NAME_LEN 32
#define CFG_HOST_LEN 256
#define CFG_MAX_SITES 16384 /* the master's receiver indices are 16-bit: up to three a site
                            * (current, previous, pending) */
#define CFG_MAX_ALLOWED 32  /* allowed_ips per site */

enum cfg_link_type { CFG_LINK_UDP = 0, CFG_LINK_SOCKS5 = 1, CFG_LINK_SOCKS5_TCP = 2 };

struct cfg_link {
    char name[CFG_NAME_LEN];       /* "name": 1-31 of [A-Za-z0-9._-], default "link<id>" */
    uint8_t id;                    /* "id": default = position in the list */
    enum cfg_link_type type;       /* "type": "udp" (default), "socks5" or "socks5-tcp" */
    bool has_bind;
    struct addr bind;              /* "bind": source address (port optional, 0 = any) */
    char interface[CFG_NAME_LEN];  /* "interface": SO_BINDTODEVICE, "" = none (<= 15 chars) */
    /* socks5 */
    char proxy_host[CFG_HOST_LEN]; /* "proxy": host:port, host a name or literal */
    unsigned proxy_port;
    char username[256], password[256]; /* "username"/"password": RFC 1929, "" = no auth */
    /* "master": this link's own master address (a master with several addresses, or a relay
     * in between); default: the top-level "master" */
    bool has_master;
    char master_host[CFG_HOST_LEN];
    unsigned master_port;
    unsigned proxy_timeout_ms;     /* "proxy_timeout_ms": connect + negotiation, default 5000 */
    bool backup;                   /* "mode": "normal" (default) or "backup": data only while
                                    * no normal link can carry it */
    int line;                      /* line of the link's group in the file */
};

/* "tcp_lane" (the values of lane.h's enum lane_mode) */
enum { CFG_LANE_OFF = 0, CFG_LANE_AUTO = 1, CFG_LANE_ON = 2 };

/* A site the master serves (one braid-slave). */
struct cfg_site {
    char name[CFG_NAME_LEN];       /* "name": default "site<index>" */
    uint8_t public_key[32];        /* "public_key": the slave's */
    uint8_t psk[32];               /* "psk": zero when none */
    bool has_psk;
    struct prefix allowed[CFG_MAX_ALLOWED]; /* "allowed_ips": the inner addresses the site may
                                             * use; the master routes them to it */
    int nallowed;                  /* 0: everything (only when the master has one site) */
    /* the site's own settings, over the "mux" group's (its links are its own) */
    char scheduler[16];            /* "scheduler": "" = the mux group's */
    bool has_reorder_max_ms;
    unsigned reorder_max_ms;       /* "reorder_max_ms" (when has_reorder_max_ms) */
    int line;
};

struct cfg {
    char path[512];
    bool is_master;
    char warning[640];                   /* cfg_load: a problem worth a log line, not an error */
    /* identities (PROTOCOL.md section 2) */
    uint8_t private_key[32];             /* "private_key", or the file "private_key_file" */
    bool has_private_key;                /* (cfg_load_string does not read key files) */
    char private_key_file[512];          /* "private_key_file", relative to the config's folder */
    int private_key_file_line;
    uint8_t peer_key[32];                /* slave: "master_public_key" */
    uint8_t psk[32];                     /* slave: "psk"; zero: none */
    bool has_psk;
    /* master */
    struct addr listen;                  /* "listen" */
    struct cfg_site *sites;              /* "sites" (allocated: cfg_free) */
    int nsites;
    /* slave */
    char master_host[CFG_HOST_LEN];      /* "master": host:port */
    unsigned master_port;
    struct cfg_link links[CFG_MAX_LINKS];
    int nlinks;
    /* "tunnel" group */
    char tun_name[16];                   /* "name", default "braid0" */
    char tun_address[64];                /* "address", "" = none */
    char tun_address6[64];               /* "address6", "" = none */
    unsigned mtu;                        /* "mtu", 0 = automatic, else 576..9000 */
    unsigned link_mtu;                   /* "link_mtu", default 1500, 576..9000 */
    bool has_notun_listen;
    struct addr notun_listen;            /* "notun_listen" */
    /* "mux" group */
    unsigned beat_interval_ms;           /* default 100 */
    unsigned dead_timeout_ms;            /* default 300 */
    unsigned reorder_max_ms;             /* default 500 */
    unsigned reorder_slots;              /* default 4096 */
    unsigned rehandshake_ms;             /* default 2000 (slave) */
    unsigned rekey_after_s;              /* default 120: new keys this often, refused 1.5 x */
    char scheduler[16];                  /* "scheduler": a policy name, "" = the default */
    /* misc */
    char control_socket[108];            /* "control_socket", "" = none */
    int log_level;                       /* "log_level", default info */
    int log_target;                      /* "log_target": enum log_target, default auto */
    int tcp_lane;                        /* "tcp_lane": CFG_LANE_*, default off */
    int tcp_lane_connections;            /* "tcp_lane_connections": default 1024 */
    char tcp_lane_congestion[16];        /* "tcp_lane_congestion": default "cubic" */
    bool tcp_lane_fast_open;             /* "tcp_lane_fast_open" (slave): default true */
    bool tcp_links, tcp_links_set;       /* "tcp_links" (master): datagram connections over
                                          * TCP accepted, default true; set in the file */
    int socket_buffer;                   /* "socket_buffer" bytes, default 4 MiB */
    char dns_servers[256];               /* "dns_servers" (slave): c-ares CSV, "" = system's */
    char user[64];                       /* "user": run as this user after the setup */
    char group[64];                      /* "group": and this group ("" = the user's) */
    int user_line;
    bool has_metrics_listen;
    struct addr metrics_listen;          /* "metrics_listen": HTTP /metrics (Prometheus) */
    /* hook commands (/bin/sh -c), "" = none */
    char up_command[1024];               /* "up_command": the tunnel device is up */
    char down_command[1024];             /* "down_command": before the device goes away */
    char link_command[1024];             /* "link_command": a link went up or down */
};

/* Load and validate path. Returns 0 with *out filled in (defaults applied), or -1 with *out
 * zeroed and a message in err of the form "FILE:LINE: SETTING: what is wrong; what is expected"
 * (SETTING is a path such as "mux.dead_timeout_ms" or "links[1].proxy"). Files over 1 MiB and
 * @include are refused. The settings, their ranges and defaults: conf/master.conf, slave.conf. */
/* The names mux.scheduler accepts. The config loader knows nothing of the multiplexer: the
 * program gives it the check before loading (daemon/args.c does). Without one, any name of
 * up to 15 characters is taken (and mux_new refuses an unknown one). */
struct cfg_names {
    bool (*valid)(const char *name);
    const char *(*list)(void); /* "a, b, c", for the error message */
};
void cfg_set_scheduler_names(const struct cfg_names *names);

/* Both return 0 with *out filled in (free it with cfg_free), or -1 with nothing to free. */
int cfg_load(const char *path, bool is_master, struct cfg *out, char *err, size_t errlen);
/* The same for a reload: private_key_file is not read (the key needs a restart to change, and
 * the daemon may no longer be allowed to read it); has_private_key stays false. */
int cfg_reload(const char *path, bool is_master, struct cfg *out, char *err, size_t errlen);
/* The same from a string (tests, fuzzing); name is used in messages. */
int cfg_load_string(const char *text, const char *name, bool is_master, struct cfg *out, char *err,
                    size_t errlen);
/* Free what cfg_load allocated and wipe the keys; the struct may be loaded again. */
void cfg_free(struct cfg *c);

#endif
