/* cfg.c: the configuration loader: parses braid-master / braid-slave files with libconfig, checks
 * every setting (name, role, type, range) and fills struct cfg with the defaults applied. */
#include "cfg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <libconfig.h>
#include <sodium.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg_syntax.h"
#include "keys.h"
#include "log.h"
#include "util.h"

/* Which program uses a setting. */
enum role { R_BOTH, R_MASTER, R_SLAVE };
/* Where a setting lives. */
enum scope { SC_TOP, SC_TUNNEL, SC_MUX, SC_LINK, SC_SITE, SC_COUNT };

struct known {
    const char *name;
    enum role role;
    const char *why_not; /* for one-role settings: why the other program has no use for it */
};

static const struct known known_top[] = {
    {"key", R_BOTH, NULL}, /* (refused with the way to move to key pairs) */
    {"private_key", R_BOTH, NULL},
    {"private_key_file", R_BOTH, NULL},
    {"master_public_key", R_SLAVE, "braid-master knows its sites' public keys in \"sites\""},
    {"psk", R_SLAVE, "braid-master has a psk per site, in \"sites\""},
    {"sites", R_MASTER, "braid-slave talks to one master, given by \"master\" and "
                        "\"master_public_key\""},
    {"listen", R_MASTER, "braid-slave connects to the address in \"master\" instead"},
    {"master", R_SLAVE, "braid-master listens on the address in \"listen\" instead"},
    {"links", R_SLAVE, "braid-master learns the links from the slave's datagrams"},
    {"tunnel", R_BOTH, NULL},
    {"mux", R_BOTH, NULL},
    {"control_socket", R_BOTH, NULL},
    {"log_level", R_BOTH, NULL},
    {"log_target", R_BOTH, NULL},
    {"socket_buffer", R_BOTH, NULL},
    {"dns_servers", R_SLAVE, "braid-master resolves no names"},
    {"metrics_listen", R_BOTH, NULL},
    {"user", R_BOTH, NULL},
    {"group", R_BOTH, NULL},
    {"up_command", R_BOTH, NULL},
    {"down_command", R_BOTH, NULL},
    {"link_command", R_BOTH, NULL},
    {"tcp_lane", R_BOTH, NULL},
    {"tcp_lane_connections", R_BOTH, NULL},
    {"tcp_lane_congestion", R_BOTH, NULL},
    {"tcp_lane_fast_open", R_SLAVE, "the slave answers the site's new TCP connections"},
    {"tcp_links", R_MASTER, "a slave's link takes TCP with type = \"socks5-tcp\""},
    {NULL, R_BOTH, NULL},
};
static const struct known known_tunnel[] = {
    {"name", R_BOTH, NULL}, {"address", R_BOTH, NULL},  {"address6", R_BOTH, NULL},
    {"mtu", R_BOTH, NULL},  {"link_mtu", R_BOTH, NULL}, {"notun_listen", R_BOTH, NULL},
    {NULL, R_BOTH, NULL},
};
static const struct known known_mux[] = {
    {"beat_interval_ms", R_BOTH, NULL},
    {"dead_timeout_ms", R_BOTH, NULL},
    {"reorder_max_ms", R_BOTH, NULL},
    {"reorder_slots", R_BOTH, NULL},
    {"scheduler", R_BOTH, NULL},
    {"rehandshake_ms", R_SLAVE, "braid-master answers handshakes and never starts one"},
    {"rekey_after_s", R_BOTH, NULL},
    {NULL, R_BOTH, NULL},
};
static const struct known known_link[] = {
    {"name", R_BOTH, NULL},     {"id", R_BOTH, NULL},        {"type", R_BOTH, NULL},
    {"bind", R_BOTH, NULL},     {"interface", R_BOTH, NULL}, {"proxy", R_BOTH, NULL},
    {"username", R_BOTH, NULL}, {"password", R_BOTH, NULL},  {"master", R_BOTH, NULL},
    {"proxy_timeout_ms", R_BOTH, NULL}, {"mode", R_BOTH, NULL}, {NULL, R_BOTH, NULL},
};
static const struct known known_site[] = {
    {"name", R_BOTH, NULL},          {"public_key", R_BOTH, NULL},
    {"psk", R_BOTH, NULL},           {"allowed_ips", R_BOTH, NULL},
    {"scheduler", R_BOTH, NULL},     {"reorder_max_ms", R_BOTH, NULL},
    {NULL, R_BOTH, NULL},
};
static const struct known *const scope_known[SC_COUNT] = {known_top, known_tunnel, known_mux,
                                                          known_link, known_site};
static const char *const scope_where[SC_COUNT] = {
    "at the top level of the file",
    "in the \"tunnel\" group",
    "in the \"mux\" group",
    "in a link group inside \"links\"",
    "in a site group inside \"sites\"",
};

#define CFG_MAX_FILE (1024 * 1024) /* a config is a few hundred bytes; refuse anything huge */
#define INT_SETTING_MAX CFG_INT_SETTING_MAX

/* Per-link bookkeeping for checks that need more than one link. */
struct link_aux {
    const config_setting_t *group, *id_s, *name_s, *bind_s;
};

struct ld {
    const char *file;
    bool master;
    struct cfg *c;
    char *err;
    size_t errlen;
    /* settings seen, for required settings and cross-checks */
    const config_setting_t *key_s, *listen_s, *master_s, *links_s;
    const config_setting_t *priv_s, *privfile_s, *mpub_s, *sites_s;
    const config_setting_t *beat_s, *dead_s, *rehs_s, *mtu_s, *addr6_s;
    struct link_aux aux[CFG_MAX_LINKS];
};

/* ---- messages ---- */

static int vfail(struct ld *l, int line, const char *path, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (line > 0 && path)
        snprintf(l->err, l->errlen, "%s:%d: %s: %s", l->file, line, path, msg);
    else if (line > 0)
        snprintf(l->err, l->errlen, "%s:%d: %s", l->file, line, msg);
    else if (path)
        snprintf(l->err, l->errlen, "%s: %s: %s", l->file, path, msg);
    else
        snprintf(l->err, l->errlen, "%s: %s", l->file, msg);
    return -1;
}

__attribute__((format(printf, 4, 5))) static int fail_line(struct ld *l, int line, const char *path,
                                                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(l, line, path, fmt, ap);
    va_end(ap);
    return -1;
}

static const struct cfg_names *scheduler_names;

void cfg_set_scheduler_names(const struct cfg_names *names)
{
    scheduler_names = names;
}

/* Error about setting s (its line), named path ("mux.dead_timeout_ms", "links[1].proxy"). */
__attribute__((format(printf, 4, 5))) static int fail(struct ld *l, const config_setting_t *s,
                                                      const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(l, s ? (int)config_setting_source_line(s) : 0, path, fmt, ap);
    va_end(ap);
    return -1;
}

/* Messages quote what the file says; keep control characters out of the terminal. */
static void sanitize(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = '?';
}

static const char *type_desc(const config_setting_t *s)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return "an integer";
    case CONFIG_TYPE_FLOAT:
        return "a decimal number";
    case CONFIG_TYPE_STRING:
        return "a string";
    case CONFIG_TYPE_BOOL:
        return "true/false";
    case CONFIG_TYPE_GROUP:
        return "a group { }";
    case CONFIG_TYPE_ARRAY:
        return "an array [ ]";
    case CONFIG_TYPE_LIST:
        return "a list ( )";
    default:
        return "a value of unknown type";
    }
}

/* ---- setting names: unknown settings, suggestions, role ---- */

/* Optimal string alignment distance (edits and adjacent swaps), or 99 for long strings. */
static int edit_distance(const char *a, const char *b)
{
    enum { MAXN = 40 };
    size_t la = strlen(a), lb = strlen(b);
    if (la > MAXN || lb > MAXN) return 99;
    int d[MAXN + 1][MAXN + 1];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int cost = a[i - 1] != b[j - 1];
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v) v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[la][lb];
}

static bool role_ok(const struct ld *l, enum role r)
{
    return r == R_BOTH || (r == R_MASTER) == l->master;
}

/* Check that setting s may appear in scope sc; path is its full name for messages. */
static int check_name(struct ld *l, const config_setting_t *s, enum scope sc, const char *path)
{
    const char *name = config_setting_name(s);
    if (!name) return fail(l, s, path, "a setting without a name; expected name = value;");
    for (const struct known *k = scope_known[sc]; k->name; k++) {
        if (strcmp(k->name, name) != 0) continue;
        if (role_ok(l, k->role)) return 0;
        return fail(l, s, path, "this setting is for %s only (%s); remove it from %s's config",
                    k->role == R_MASTER ? "braid-master" : "braid-slave", k->why_not,
                    l->master ? "braid-master" : "braid-slave");
    }
    /* A close name in the same place? */
    const char *best = NULL;
    int best_d = 3;
    for (const struct known *k = scope_known[sc]; k->name; k++) {
        if (!role_ok(l, k->role)) continue;
        int dist = edit_distance(name, k->name);
        if (dist < best_d) best_d = dist, best = k->name;
    }
    if (best) return fail(l, s, path, "unknown setting; did you mean \"%s\"?", best);
    /* The right name in the wrong place? */
    for (int o = 0; o < SC_COUNT; o++) {
        if (o == (int)sc) continue;
        for (const struct known *k = scope_known[o]; k->name; k++)
            if (strcmp(k->name, name) == 0 && role_ok(l, k->role))
                return fail(l, s, path, "unknown setting here; \"%s\" belongs %s", name,
                            scope_where[o]);
    }
    char list[256] = "";
    size_t used = 0;
    for (const struct known *k = scope_known[sc]; k->name; k++) {
        if (!role_ok(l, k->role) || (sc == SC_TOP && strcmp(k->name, "key") == 0)) continue;
        int n = snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", k->name);
        if (n < 0 || (size_t)n >= sizeof list - used) break;
        used += (size_t)n;
    }
    return fail(l, s, path, "unknown setting; expected one of: %s", list);
}

/* ---- typed values ---- */

static int want_string(struct ld *l, const config_setting_t *s, const char *path,
                       const char *example, const char **out)
{
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return fail(l, s, path, "got %s; expected a string in quotes, e.g. \"%s\"", type_desc(s),
                    example);
    *out = config_setting_get_string(s);
    if (!*out) return fail(l, s, path, "cannot read the string; expected e.g. \"%s\"", example);
    return 0;
}

static int want_bool(struct ld *l, const config_setting_t *s, const char *path, bool *out)
{
    if (config_setting_type(s) != CONFIG_TYPE_BOOL)
        return fail(l, s, path, "got %s; expected true or false (without quotes)", type_desc(s));
    *out = config_setting_get_bool(s) != 0;
    return 0;
}

static int want_int(struct ld *l, const config_setting_t *s, const char *path, long long min,
                    long long max, const char *unit, long long *out)
{
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
        return fail(l, s, path,
                    "got %s; expected an integer (%s) from %lld to %lld, without quotes",
                    type_desc(s), unit, min, max);
    long long v = config_setting_get_int64(s);
    if (v < min || v > max)
        return fail(l, s, path, "%lld is out of range; expected %lld to %lld (%s)", v, min, max,
                    unit);
    *out = v;
    return 0;
}

static int want_group(struct ld *l, const config_setting_t *s, const char *path,
                      const char *example)
{
    if (config_setting_type(s) != CONFIG_TYPE_GROUP)
        return fail(l, s, path, "got %s; expected a group in braces, e.g. %s", type_desc(s),
                    example);
    return 0;
}

/* ---- value syntax ---- */

/* A DNS name: at most 253 characters; labels of 1 to 63 letters, digits and '-', not starting or
 * ending with '-'; a trailing '.' is allowed; the last label is not all digits (so "1.2.3" is
 * not taken for a name). */
static bool valid_hostname(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 253) return false;
    if (h[n - 1] == '.') n--;
    if (n == 0) return false;
    size_t label = 0;
    bool all_digits = true;
    for (size_t i = 0; i < n; i++) {
        char ch = h[i];
        if (ch == '.') {
            if (label == 0 || h[i - 1] == '-') return false;
            label = 0;
            all_digits = true;
            continue;
        }
        bool alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
        bool digit = ch >= '0' && ch <= '9';
        if (!alpha && !digit && ch != '-') return false;
        if (ch == '-' && label == 0) return false;
        if (!digit) all_digits = false;
        if (++label > 63) return false;
    }
    return label > 0 && h[n - 1] != '-' && !all_digits;
}

/* Linux interface name: 1 to 15 printable characters, no '/', ':' or blanks, not "." or "..". */
static bool valid_ifname(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 15 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= ' ' || ch >= 0x7f || ch == '/' || ch == ':') return false;
    }
    return true;
}

/* Link name: 1 to 31 letters, digits, '-', '_' or '.'. */
static bool valid_linkname(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= CFG_NAME_LEN) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return false;
    }
    return true;
}

/* Decimal port 0..65535 (at most 5 digits). */
static bool parse_port0(const char *p, unsigned *port)
{
    size_t n = strlen(p);
    if (n == 0 || n > 5) return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v > 65535) return false;
    *port = v;
    return true;
}

/* "ip", "ip:port" (IPv4), "v6", "[v6]" or "[v6]:port"; port 0 or none = any. */
static bool parse_bind(const char *v, struct addr *out)
{
    char ip[INET6_ADDRSTRLEN];
    const char *portstr = NULL;
    size_t iplen;
    int want_af = 0;
    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (!close) return false;
        iplen = (size_t)(close - v - 1);
        if (close[1] == ':')
            portstr = close + 2;
        else if (close[1])
            return false;
        v++;
        want_af = AF_INET6;
    } else {
        const char *colon = strchr(v, ':');
        if (colon && !strchr(colon + 1, ':')) {
            iplen = (size_t)(colon - v);
            portstr = colon + 1;
            want_af = AF_INET;
        } else {
            iplen = strlen(v);
        }
    }
    if (iplen == 0 || iplen >= sizeof ip) return false;
    memcpy(ip, v, iplen);
    ip[iplen] = '\0';
    unsigned port = 0;
    if (portstr && !parse_port0(portstr, &port)) return false;
    if (addr_parse_ip(ip, port, out) < 0) return false;
    if (want_af && out->ss.ss_family != want_af) return false;
    return true;
}

/* "a.b.c.d/len" (af AF_INET, len <= 32) or "x::y/len" (AF_INET6, len <= 128). */
static bool valid_cidr(const char *v, int af)
{
    const char *slash = strchr(v, '/');
    if (!slash) return false;
    char ip[INET6_ADDRSTRLEN];
    size_t n = (size_t)(slash - v);
    if (n == 0 || n >= sizeof ip) return false;
    memcpy(ip, v, n);
    ip[n] = '\0';
    unsigned char buf[16];
    if (inet_pton(af, ip, buf) != 1) return false;
    const char *p = slash + 1;
    size_t pl = strlen(p);
    if (pl == 0 || pl > 3 || (pl > 1 && p[0] == '0')) return false;
    unsigned len = 0;
    for (size_t i = 0; i < pl; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        len = len * 10 + (unsigned)(p[i] - '0');
    }
    return len <= (af == AF_INET ? 32u : 128u);
}

/* Family of a host that is an IP literal, or 0 for a name. */
static int literal_family(const char *host)
{
    struct addr a;
    return addr_parse_ip(host, 0, &a) == 0 ? a.ss.ss_family : 0;
}

/* "host:port" where host is an IP literal ("[v6]" in brackets) or a DNS name. */
static int want_hostport(struct ld *l, const config_setting_t *s, const char *path,
                         const char *example, char host[CFG_HOST_LEN], unsigned *port)
{
    const char *v;
    if (want_string(l, s, path, example, &v) < 0) return -1;
    char why[320];
    if (addr_split(v, host, CFG_HOST_LEN, port, why, sizeof why) < 0)
        return fail(l, s, path, "%s; expected \"host:port\", e.g. \"%s\"", why, example);
    int af = literal_family(host);
    if (v[0] == '[' && af != AF_INET6)
        return fail(l, s, path,
                    "\"%s\" in brackets is not an IPv6 address; expected \"[v6 address]:port\" "
                    "or \"host:port\", e.g. \"%s\"",
                    host, example);
    if (!af && !valid_hostname(host))
        return fail(l, s, path,
                    "\"%s\" is neither an IP address nor a valid host name (letters, digits, '-' "
                    "and '.', at most 253 characters); expected e.g. \"%s\"",
                    host, example);
    return 0;
}

static int want_ipport(struct ld *l, const config_setting_t *s, const char *path,
                       const char *example, struct addr *out)
{
    const char *v;
    if (want_string(l, s, path, example, &v) < 0) return -1;
    char why[320];
    if (addr_parse(v, out, why, sizeof why) < 0)
        return fail(l, s, path, "%s; expected \"ip:port\" with an IP address, e.g. \"%s\"", why,
                    example);
    return 0;
}

/* ---- keys ---- */

/* A 32-byte key in base64 (a private key, a public key or a PSK) into out. */
static int want_key(struct ld *l, const config_setting_t *s, const char *path, const char *what,
                    uint8_t out[32])
{
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return fail(l, s, path, "got %s; expected %s: 44 characters of base64 in quotes", type_desc(s),
                    what);
    const char *v = config_setting_get_string(s);
    char why[128];
    if (!v || key_from_b64(v, out, why, sizeof why) != 0)
        return fail(l, s, path, "%s: %s", v ? why : "cannot read the string", what);
    return 0;
}

static int do_old_key(struct ld *l, const config_setting_t *s)
{
    return fail(l, s, "key",
                "braid no longer uses one shared key: each end has its own key pair. Set "
                "private_key_file (a file from `braid-%s genkey`), and %s; the old key may stay "
                "as the optional psk (README: \"Moving from a shared key\")",
                l->master ? "master" : "slave",
                l->master ? "a \"sites\" entry with the slave's public_key"
                          : "master_public_key (`braid-master pubkey` on the master)");
}

/* A scheduler policy name into out (16 bytes). */
static int want_scheduler(struct ld *l, const config_setting_t *s, const char *path, char out[16])
{
    const char *v;
    if (want_string(l, s, path, "weighted", &v) < 0) return -1;
    bool known = scheduler_names ? scheduler_names->valid(v) : v[0] != 0;
    if (!known || strlen(v) >= 16)
        return fail(l, s, path, "\"%.32s\" is not a scheduler%s%s", v,
                    scheduler_names ? "; expected one of: " : "",
                    scheduler_names ? scheduler_names->list() : "");
    snprintf(out, 16, "%s", v);
    return 0;
}

/* reorder_max_ms (the mux group's or a site's). */
static int want_reorder_max(struct ld *l, const config_setting_t *s, const char *path,
                            unsigned *out)
{
    long long iv;
    if (want_int(l, s, path, 0, 2000, "milliseconds", &iv) < 0) return -1;
    *out = (unsigned)iv;
    return 0;
}

static int do_allowed(struct ld *l, const config_setting_t *s, const char *path,
                      struct cfg_site *site)
{
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST)
        return fail(l, s, path,
                    "got %s; expected a list of prefixes in brackets, e.g. [ \"10.1.0.0/24\", "
                    "\"fd00:1::/64\" ]",
                    type_desc(s));
    int n = config_setting_length(s);
    if (n == 0)
        return fail(l, s, path, "the list is empty; expected the site's prefixes, e.g. [ "
                                "\"10.1.0.0/24\" ]");
    if (n > CFG_MAX_ALLOWED)
        return fail(l, s, path, "%d prefixes; expected at most %d (summarise them)", n,
                    CFG_MAX_ALLOWED);
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        char ep[128];
        snprintf(ep, sizeof ep, "%s[%d]", path, i);
        const char *v;
        if (want_string(l, e, ep, "10.1.0.0/24", &v) < 0) return -1;
        char why[300];
        if (prefix_parse(v, &site->allowed[i], why, sizeof why) != 0)
            return fail(l, e, ep, "%s", why);
        for (int j = 0; j < i; j++)
            if (memcmp(&site->allowed[j], &site->allowed[i], sizeof site->allowed[i]) == 0)
                return fail(l, e, ep, "\"%.60s\" is already in the list", v);
    }
    site->nallowed = n;
    return 0;
}

static int do_site(struct ld *l, const config_setting_t *g, int idx)
{
    char path[48];
    snprintf(path, sizeof path, "sites[%d]", idx);
    if (config_setting_type(g) != CONFIG_TYPE_GROUP)
        return fail(l, g, path,
                    "got %s; expected a group { name = \"home\"; public_key = \"...\"; }",
                    type_desc(g));
    struct cfg_site *site = &l->c->sites[idx];
    bool have_pub = false;
    site->line = config_setting_source_line(g);
    snprintf(site->name, sizeof site->name, "site%d", idx);
    int n = config_setting_length(g);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(s);
        char sp[96];
        snprintf(sp, sizeof sp, "%s.%.32s", path, name ? name : "?");
        if (check_name(l, s, SC_SITE, sp) < 0) return -1;
        if (strcmp(name, "name") == 0) {
            const char *v;
            if (want_string(l, s, sp, "home", &v) < 0) return -1;
            if (!valid_linkname(v))
                return fail(l, s, sp,
                            "\"%.40s\" is not a valid name; expected 1 to %d letters, digits, "
                            "'-', '_' or '.'",
                            v, CFG_NAME_LEN - 1);
            snprintf(site->name, sizeof site->name, "%s", v);
        } else if (strcmp(name, "public_key") == 0) {
            if (want_key(l, s, sp, "the site's public key, as `braid-slave pubkey` prints it",
                         site->public_key) < 0)
                return -1;
            have_pub = true;
        } else if (strcmp(name, "psk") == 0) {
            if (want_key(l, s, sp, "a pre-shared key from `braid-master genpsk`", site->psk) < 0)
                return -1;
            site->has_psk = true;
        } else if (strcmp(name, "allowed_ips") == 0) {
            if (do_allowed(l, s, sp, site) < 0) return -1;
        } else if (strcmp(name, "scheduler") == 0) {
            if (want_scheduler(l, s, sp, site->scheduler) < 0) return -1;
        } else if (strcmp(name, "reorder_max_ms") == 0) {
            if (want_reorder_max(l, s, sp, &site->reorder_max_ms) < 0) return -1;
            site->has_reorder_max_ms = true;
        }
    }
    if (!have_pub)
        return fail(l, g, path,
                    "missing \"public_key\" (the slave's public key: run `braid-slave pubkey < "
                    "FILE` on the slave's private key file)");
    return 0;
}

/* Sites apart: names, keys and prefixes each belong to one site; with more than one site,
 * every site says which addresses are its own. */
static int check_sites(struct ld *l, const config_setting_t *list)
{
    struct cfg *c = l->c;
    struct ptable *t = ptable_new();
    if (!t) return fail_line(l, 0, NULL, "out of memory");
    int rc = 0;
    for (int i = 0; i < c->nsites && rc == 0; i++) {
        const struct cfg_site *s = &c->sites[i];
        const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        char path[48];
        snprintf(path, sizeof path, "sites[%d]", i);
        for (int j = 0; j < i && rc == 0; j++) {
            if (strcmp(s->name, c->sites[j].name) == 0)
                rc = fail(l, g, path, "the name \"%s\" is already used by sites[%d] (line %d); "
                                      "expected a name of its own",
                          s->name, j, c->sites[j].line);
            else if (sodium_memcmp(s->public_key, c->sites[j].public_key, 32) == 0)
                rc = fail(l, g, path, "the public_key is already sites[%d]'s (\"%s\", line %d); "
                                      "each site has its own key pair",
                          j, c->sites[j].name, c->sites[j].line);
        }
        if (rc == 0 && c->nsites > 1 && s->nallowed == 0)
            rc = fail(l, g, path,
                      "missing \"allowed_ips\": with more than one site, each site lists the "
                      "addresses it uses (e.g. allowed_ips = [ \"10.1.0.0/24\" ];) so the "
                      "master knows where to send a packet");
        for (int k = 0; k < s->nallowed && rc == 0; k++) {
            uint32_t other;
            int r = ptable_insert(t, &s->allowed[k], (uint32_t)i, &other);
            char ps[PREFIX_STRLEN];
            if (r < 0) rc = fail_line(l, 0, NULL, "out of memory");
            else if (r == 1)
                rc = fail(l, g, path,
                          "allowed_ips: %s is already sites[%u]'s (\"%s\"); a prefix belongs "
                          "to one site (a longer one inside it may go to another)",
                          prefix_str(&s->allowed[k], ps, sizeof ps), other,
                          c->sites[other].name);
        }
    }
    ptable_free(t);
    return rc;
}

static int do_sites(struct ld *l, const config_setting_t *s)
{
    if (config_setting_type(s) != CONFIG_TYPE_LIST)
        return fail(l, s, "sites",
                    "got %s; expected a list of site groups in parentheses, e.g. sites = ( { "
                    "name = \"home\"; public_key = \"...\"; } );",
                    type_desc(s));
    int n = config_setting_length(s);
    if (n == 0) return fail(l, s, "sites", "the list is empty; expected at least one site group");
    if (n > CFG_MAX_SITES)
        return fail(l, s, "sites", "%d sites; one master serves at most %d", n, CFG_MAX_SITES);
    l->c->sites = calloc((size_t)n, sizeof *l->c->sites);
    if (!l->c->sites) return fail(l, s, "sites", "out of memory for %d sites", n);
    l->c->nsites = n;
    for (int i = 0; i < n; i++)
        if (do_site(l, config_setting_get_elem(s, (unsigned)i), i) < 0) return -1;
    return check_sites(l, s);
}

/* ---- groups ---- */

static int do_tunnel(struct ld *l, const config_setting_t *g)
{
    struct cfg *c = l->c;
    if (want_group(l, g, "tunnel",
                   "tunnel = { name = \"braid0\"; address = \"198.18.0.1/30\"; };") < 0)
        return -1;
    int n = config_setting_length(g);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(s);
        char path[96];
        snprintf(path, sizeof path, "tunnel.%.64s", name ? name : "?");
        if (check_name(l, s, SC_TUNNEL, path) < 0) return -1;
        const char *v;
        long long iv;
        if (strcmp(name, "name") == 0) {
            if (want_string(l, s, path, "braid0", &v) < 0) return -1;
            if (!valid_ifname(v))
                return fail(l, s, path,
                            "\"%.64s\" is not a valid interface name; expected 1 to 15 "
                            "characters without '/', ':' or spaces, e.g. \"braid0\"",
                            v);
            snprintf(c->tun_name, sizeof c->tun_name, "%s", v);
        } else if (strcmp(name, "address") == 0) {
            if (want_string(l, s, path, "198.18.0.1/30", &v) < 0) return -1;
            if (!valid_cidr(v, AF_INET))
                return fail(l, s, path,
                            "\"%.64s\" is not an IPv4 address with a prefix length; expected "
                            "\"a.b.c.d/len\" with len 0 to 32, e.g. \"198.18.0.1/30\"%s",
                            v, strchr(v, ':') ? " (IPv6 addresses go in \"address6\")" : "");
            snprintf(c->tun_address, sizeof c->tun_address, "%s", v);
        } else if (strcmp(name, "address6") == 0) {
            if (want_string(l, s, path, "fd00:b4a1::1/64", &v) < 0) return -1;
            if (!valid_cidr(v, AF_INET6))
                return fail(l, s, path,
                            "\"%.64s\" is not an IPv6 address with a prefix length; expected "
                            "\"x::y/len\" with len 0 to 128, e.g. \"fd00:b4a1::1/64\"%s",
                            v, strchr(v, ':') ? "" : " (IPv4 addresses go in \"address\")");
            snprintf(c->tun_address6, sizeof c->tun_address6, "%s", v);
            l->addr6_s = s;
        } else if (strcmp(name, "mtu") == 0) {
            if (want_int(l, s, path, 0, 9000, "bytes; 0 = automatic, else at least 576", &iv) < 0)
                return -1;
            if (iv != 0 && iv < 576)
                return fail(l, s, path,
                            "%lld is out of range; expected 0 (automatic: link_mtu minus braid's "
                            "overhead) or 576 to 9000 (bytes)",
                            iv);
            c->mtu = (unsigned)iv;
            l->mtu_s = s;
        } else if (strcmp(name, "link_mtu") == 0) {
            if (want_int(l, s, path, 576, 9000, "bytes", &iv) < 0) return -1;
            c->link_mtu = (unsigned)iv;
        } else if (strcmp(name, "notun_listen") == 0) {
            if (want_ipport(l, s, path, "127.0.0.1:7100", &c->notun_listen) < 0) return -1;
            c->has_notun_listen = true;
        }
    }
    return 0;
}

static int do_mux(struct ld *l, const config_setting_t *g)
{
    struct cfg *c = l->c;
    if (want_group(l, g, "mux", "mux = { beat_interval_ms = 100; };") < 0) return -1;
    int n = config_setting_length(g);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(s);
        char path[96];
        snprintf(path, sizeof path, "mux.%.64s", name ? name : "?");
        if (check_name(l, s, SC_MUX, path) < 0) return -1;
        long long iv;
        if (strcmp(name, "beat_interval_ms") == 0) {
            if (want_int(l, s, path, 10, 10000, "milliseconds", &iv) < 0) return -1;
            c->beat_interval_ms = (unsigned)iv;
            l->beat_s = s;
        } else if (strcmp(name, "dead_timeout_ms") == 0) {
            if (want_int(l, s, path, 20, 60000, "milliseconds", &iv) < 0) return -1;
            c->dead_timeout_ms = (unsigned)iv;
            l->dead_s = s;
        } else if (strcmp(name, "reorder_max_ms") == 0) {
            if (want_reorder_max(l, s, path, &c->reorder_max_ms) < 0) return -1;
        } else if (strcmp(name, "reorder_slots") == 0) {
            if (want_int(l, s, path, 64, 65536, "packets, a power of two", &iv) < 0) return -1;
            if (iv & (iv - 1))
                return fail(l, s, path,
                            "%lld is not a power of two; expected one of 64, 128, 256, ... 65536",
                            iv);
            c->reorder_slots = (unsigned)iv;
        } else if (strcmp(name, "rekey_after_s") == 0) {
            if (want_int(l, s, path, 5, 3600, "seconds", &iv) < 0) return -1;
            c->rekey_after_s = (unsigned)iv;
        } else if (strcmp(name, "rehandshake_ms") == 0) {
            if (want_int(l, s, path, 20, 60000, "milliseconds", &iv) < 0) return -1;
            c->rehandshake_ms = (unsigned)iv;
            l->rehs_s = s;
        } else if (strcmp(name, "scheduler") == 0) {
            if (want_scheduler(l, s, path, c->scheduler) < 0) return -1;
        }
    }
    return 0;
}

static int do_link(struct ld *l, const config_setting_t *g, int idx)
{
    struct cfg_link *k = &l->c->links[idx];
    struct link_aux *a = &l->aux[idx];
    char lpath[32];
    snprintf(lpath, sizeof lpath, "links[%d]", idx);
    if (want_group(l, g, lpath, "{ name = \"wan0\"; bind = \"192.168.1.10\"; }") < 0) return -1;
    a->group = g;
    k->line = (int)config_setting_source_line(g);
    k->id = (uint8_t)idx;
    k->type = CFG_LINK_UDP;
    const config_setting_t *proxy_s = NULL, *user_s = NULL, *pass_s = NULL, *ptmo_s = NULL;
    k->proxy_timeout_ms = 5000;
    int n = config_setting_length(g);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(s);
        char path[112];
        snprintf(path, sizeof path, "%s.%.64s", lpath, name ? name : "?");
        if (check_name(l, s, SC_LINK, path) < 0) return -1;
        const char *v;
        long long iv;
        if (strcmp(name, "name") == 0) {
            if (want_string(l, s, path, "wan0", &v) < 0) return -1;
            if (!valid_linkname(v))
                return fail(l, s, path,
                            "\"%.64s\" is not a valid link name; expected 1 to 31 letters, digits, "
                            "'-', '_' or '.', e.g. \"wan0\"",
                            v);
            snprintf(k->name, sizeof k->name, "%s", v);
            a->name_s = s;
        } else if (strcmp(name, "id") == 0) {
            if (want_int(l, s, path, 0, 255, "the link id on the wire", &iv) < 0) return -1;
            k->id = (uint8_t)iv;
            a->id_s = s;
        } else if (strcmp(name, "type") == 0) {
            if (want_string(l, s, path, "udp", &v) < 0) return -1;
            if (strcmp(v, "udp") == 0)
                k->type = CFG_LINK_UDP;
            else if (strcmp(v, "socks5") == 0)
                k->type = CFG_LINK_SOCKS5;
            else if (strcmp(v, "socks5-tcp") == 0)
                k->type = CFG_LINK_SOCKS5_TCP;
            else
                return fail(l, s, path,
                            "\"%.32s\" is not a link type; expected \"udp\" (the default), "
                            "\"socks5\" (UDP through a SOCKS5 proxy) or \"socks5-tcp\" (over "
                            "TCP through a SOCKS5 proxy that only does CONNECT)",
                            v);
        } else if (strcmp(name, "bind") == 0) {
            if (want_string(l, s, path, "192.168.1.10", &v) < 0) return -1;
            if (!parse_bind(v, &k->bind))
                return fail(l, s, path,
                            "\"%.64s\" is not an IP address with an optional port; expected e.g. "
                            "\"192.168.1.10\", \"192.168.1.10:5000\" or \"[2001:db8::10]:5000\" "
                            "(no port or port 0 = any); to use a network interface, set "
                            "\"interface\"",
                            v);
            k->has_bind = true;
            a->bind_s = s;
        } else if (strcmp(name, "interface") == 0) {
            if (want_string(l, s, path, "usb0", &v) < 0) return -1;
            if (!valid_ifname(v))
                return fail(l, s, path,
                            "\"%.64s\" is not a valid interface name; expected 1 to 15 "
                            "characters without '/', ':' or spaces, e.g. \"usb0\"",
                            v);
            snprintf(k->interface, sizeof k->interface, "%s", v);
        } else if (strcmp(name, "mode") == 0) {
            if (want_string(l, s, path, "backup", &v) < 0) return -1;
            if (strcmp(v, "normal") != 0 && strcmp(v, "backup") != 0)
                return fail(l, s, path,
                            "\"%.32s\" is not a link mode; expected \"normal\" (carries data "
                            "with the others) or \"backup\" (only while no other link can)",
                            v);
            k->backup = strcmp(v, "backup") == 0;
        } else if (strcmp(name, "proxy_timeout_ms") == 0) {
            if (want_int(l, s, path, 100, 60000, "milliseconds", &iv) < 0) return -1;
            k->proxy_timeout_ms = (unsigned)iv;
            ptmo_s = s;
        } else if (strcmp(name, "proxy") == 0) {
            if (want_hostport(l, s, path, "192.168.43.1:1080", k->proxy_host, &k->proxy_port) < 0)
                return -1;
            proxy_s = s;
        } else if (strcmp(name, "master") == 0) {
            if (want_hostport(l, s, path, "203.0.113.5:7000", k->master_host, &k->master_port) < 0)
                return -1;
            k->has_master = true;
        } else if (strcmp(name, "username") == 0 || strcmp(name, "password") == 0) {
            bool user = name[0] == 'u';
            if (want_string(l, s, path, user ? "braid" : "secret", &v) < 0) return -1;
            size_t vl = strlen(v);
            if (vl == 0 || vl > 255)
                return fail(l, s, path,
                            "%zu bytes; expected 1 to 255 bytes (RFC 1929), or leave out both "
                            "username and password",
                            vl);
            memcpy(user ? k->username : k->password, v, vl + 1);
            if (user)
                user_s = s;
            else
                pass_s = s;
        }
    }
    if (!a->name_s) snprintf(k->name, sizeof k->name, "link%u", (unsigned)k->id);
    if (k->type != CFG_LINK_UDP && !proxy_s)
        return fail(l, g, lpath,
                    "type \"%s\" needs \"proxy\" (the SOCKS5 proxy's address, e.g. "
                    "\"192.168.43.1:1080\")",
                    k->type == CFG_LINK_SOCKS5 ? "socks5" : "socks5-tcp");
    if (k->type == CFG_LINK_UDP) {
        const config_setting_t *bad = proxy_s  ? proxy_s
                                      : user_s ? user_s
                                      : pass_s ? pass_s
                                               : ptmo_s;
        if (bad) {
            char path[64];
            snprintf(path, sizeof path, "%s.%s", lpath, config_setting_name(bad));
            return fail(l, bad, path,
                        "only used by links of type \"socks5\"; add type = \"socks5\"; or remove "
                        "\"%s\"",
                        config_setting_name(bad));
        }
    }
    if (!user_s != !pass_s) {
        char path[64];
        snprintf(path, sizeof path, "%s.%s", lpath, user_s ? "username" : "password");
        return fail(l, user_s ? user_s : pass_s, path,
                    "set without \"%s\"; expected both username and password (RFC 1929 "
                    "authentication) or neither",
                    user_s ? "password" : "username");
    }
    return 0;
}

static int do_links(struct ld *l, const config_setting_t *s)
{
    if (config_setting_type(s) != CONFIG_TYPE_LIST)
        return fail(l, s, "links",
                    "got %s; expected a list of link groups in parentheses, e.g. links = ( { "
                    "name = \"wan0\"; bind = \"192.168.1.10\"; } );",
                    type_desc(s));
    int n = config_setting_length(s);
    if (n == 0)
        return fail(l, s, "links", "the list is empty; expected 1 to %d link groups",
                    CFG_MAX_LINKS);
    if (n > CFG_MAX_LINKS) {
        char path[32];
        snprintf(path, sizeof path, "links[%d]", CFG_MAX_LINKS);
        return fail(l, config_setting_get_elem(s, CFG_MAX_LINKS), path,
                    "too many links (%d); expected at most %d", n, CFG_MAX_LINKS);
    }
    for (int i = 0; i < n; i++)
        if (do_link(l, config_setting_get_elem(s, (unsigned)i), i) < 0) return -1;
    l->c->nlinks = n;
    return 0;
}

/* ---- checks that span several settings ---- */

static int check_links(struct ld *l)
{
    struct cfg *c = l->c;
    for (int i = 0; i < c->nlinks; i++) {
        struct cfg_link *k = &c->links[i];
        struct link_aux *a = &l->aux[i];
        char path[32];
        for (int j = 0; j < i; j++) {
            if (c->links[j].id == k->id) {
                if (a->id_s) {
                    snprintf(path, sizeof path, "links[%d].id", i);
                    return fail(l, a->id_s, path,
                                "%u is already used by links[%d] (\"%s\"); expected a unique id "
                                "from 0 to 255",
                                (unsigned)k->id, j, c->links[j].name);
                }
                snprintf(path, sizeof path, "links[%d]", i);
                return fail(l, a->group, path,
                            "its default id %u (its position in the list) is already used by "
                            "links[%d] (\"%s\"); expected a unique \"id\" from 0 to 255",
                            (unsigned)k->id, j, c->links[j].name);
            }
            if (strcmp(c->links[j].name, k->name) == 0) {
                if (a->name_s) {
                    snprintf(path, sizeof path, "links[%d].name", i);
                    return fail(l, a->name_s, path,
                                "\"%s\" is already used by links[%d]; expected a unique name",
                                k->name, j);
                }
                snprintf(path, sizeof path, "links[%d]", i);
                return fail(l, a->group, path,
                            "its default name \"%s\" is already used by links[%d]; expected a "
                            "unique \"name\"",
                            k->name, j);
            }
            if (k->has_bind && c->links[j].has_bind && addr_port((struct sockaddr *)&k->bind.ss) &&
                addr_equal((struct sockaddr *)&k->bind.ss,
                           (struct sockaddr *)&c->links[j].bind.ss)) {
                snprintf(path, sizeof path, "links[%d].bind", i);
                return fail(l, a->bind_s, path,
                            "the same address and port as links[%d]; expected a different port, "
                            "or no port (any)",
                            j);
            }
        }
        /* The bind address must be of the family of what the link talks to. */
        if (k->has_bind) {
            bool socks = k->type == CFG_LINK_SOCKS5;
            const char *dest = socks ? k->proxy_host : k->has_master ? k->master_host
                                                                     : c->master_host;
            int daf = literal_family(dest);
            int baf = k->bind.ss.ss_family;
            if (daf && daf != baf) {
                char ip[ADDR_STRLEN];
                addr_str((struct sockaddr *)&k->bind.ss, ip, sizeof ip);
                snprintf(path, sizeof path, "links[%d].bind", i);
                return fail(l, a->bind_s, path,
                            "%s is an %s address but the %s (%s) is %s; expected an %s address "
                            "(or no bind)",
                            ip, baf == AF_INET ? "IPv4" : "IPv6", socks ? "proxy" : "master", dest,
                            daf == AF_INET ? "IPv4" : "IPv6", daf == AF_INET ? "IPv4" : "IPv6");
            }
        }
    }
    return 0;
}

static int check_cross(struct ld *l)
{
    struct cfg *c = l->c;
    if (c->dead_timeout_ms < 2 * c->beat_interval_ms) {
        if (l->dead_s)
            return fail(l, l->dead_s, "mux.dead_timeout_ms",
                        "%u is less than twice mux.beat_interval_ms (%u); expected at least %u "
                        "(milliseconds)",
                        c->dead_timeout_ms, c->beat_interval_ms, 2 * c->beat_interval_ms);
        return fail(l, l->beat_s, "mux.beat_interval_ms",
                    "%u needs mux.dead_timeout_ms of at least %u, but dead_timeout_ms is %u (the "
                    "default); expected mux.dead_timeout_ms set too",
                    c->beat_interval_ms, 2 * c->beat_interval_ms, c->dead_timeout_ms);
    }
    if (!l->master && c->rehandshake_ms < c->dead_timeout_ms) {
        if (l->rehs_s)
            return fail(l, l->rehs_s, "mux.rehandshake_ms",
                        "%u is less than mux.dead_timeout_ms (%u); expected at least %u "
                        "(milliseconds)",
                        c->rehandshake_ms, c->dead_timeout_ms, c->dead_timeout_ms);
        return fail(l, l->dead_s, "mux.dead_timeout_ms",
                    "%u is more than mux.rehandshake_ms (%u, the default); expected "
                    "mux.rehandshake_ms set to at least %u too",
                    c->dead_timeout_ms, c->rehandshake_ms, c->dead_timeout_ms);
    }
    if (l->addr6_s && c->mtu && c->mtu < 1280)
        return fail(l, l->mtu_s, "tunnel.mtu",
                    "%u is below 1280, the IPv6 minimum, and tunnel.address6 is set; expected "
                    "1280 or more, 0 (automatic), or no address6",
                    c->mtu);
    if (!l->master) return check_links(l);
    return 0;
}

/* ---- top level ---- */

/* "198.18.0.53, [2001:db8::53]:5353": IP addresses with optional ports, comma-separated. */
static int do_dns_servers(struct ld *l, const config_setting_t *s, const char *path)
{
    static const char example[] = "192.168.1.1, 198.18.0.53:5353";
    const char *v;
    if (want_string(l, s, path, example, &v) < 0) return -1;
    size_t vl = strlen(v);
    if (vl == 0 || vl >= sizeof l->c->dns_servers)
        return fail(l, s, path, "%zu bytes; expected 1 to %zu bytes of addresses, e.g. \"%s\"",
                    vl, sizeof l->c->dns_servers - 1, example);
    char item[80], out[sizeof l->c->dns_servers];
    size_t ol = 0;
    const char *p = v;
    int count = 0;
    for (;;) {
        while (*p == ' ') p++;
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        while (n > 0 && p[n - 1] == ' ') n--;
        if (n == 0 || n >= sizeof item)
            return fail(l, s, path,
                        "%s address in the list; expected IP addresses with optional ports, "
                        "separated by commas, e.g. \"%s\"",
                        n ? "an overlong" : "an empty", example);
        memcpy(item, p, n);
        item[n] = '\0';
        struct addr a;
        char why[160];
        bool ok = addr_parse_ip(item, 53, &a) == 0;
        if (!ok && (item[0] == '[' || strchr(item, ':') == strrchr(item, ':')))
            ok = addr_parse(item, &a, why, sizeof why) == 0;
        if (!ok)
            return fail(l, s, path,
                        "\"%s\" is not an IP address with an optional port; expected e.g. "
                        "\"%s\" (names cannot be used: they would need DNS themselves)",
                        item, example);
        char norm[ADDR_STRLEN]; /* the form c-ares takes: "ip:port" or "[v6]:port" */
        addr_str((struct sockaddr *)&a.ss, norm, sizeof norm);
        if (ol + strlen(norm) + 2 > sizeof out)
            return fail(l, s, path, "too many addresses; expected at most a few");
        ol += (size_t)snprintf(out + ol, sizeof out - ol, "%s%s", count ? "," : "", norm);
        count++;
        if (!e) break;
        p = e + 1;
    }
    memcpy(l->c->dns_servers, out, ol + 1);
    return 0;
}

/* The top-level settings that are one string kept in a buffer of struct cfg: its size bounds
 * it, ok (optional) checks its characters, the message says what is expected. */
static bool ok_username(const char *v)
{
    for (; *v; v++)
        if (!((*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') || (*v >= '0' && *v <= '9') ||
              *v == '_' || *v == '-' || *v == '.'))
            return false;
    return true;
}

#define STR(field) offsetof(struct cfg, field), sizeof(((struct cfg *)0)->field)
static const struct str_setting {
    const char *name;
    size_t off, size;
    const char *example;
    bool (*ok)(const char *v);
    const char *expected; /* "%zu" is the longest allowed */
    bool empty_ok;        /* "" means none */
} str_settings[] = {
    {"private_key_file", STR(private_key_file), "/etc/braid/private.key", NULL,
     "a path of 1 to %zu bytes", false},
    {"control_socket", STR(control_socket), "/run/braid.sock", NULL,
     "a path of 1 to %zu bytes (a Unix socket limit), e.g. \"/run/braid/slave.sock\"", false},
    {"user", STR(user), "braid", ok_username,
     "a user name: 1 to %zu letters, digits, '_', '-' or '.', e.g. \"braid\"", false},
    {"group", STR(group), "braid", ok_username,
     "a group name: 1 to %zu letters, digits, '_', '-' or '.', e.g. \"braid\"", false},
    {"up_command", STR(up_command), "ip route add 10.1.0.0/24 dev $BRAID_INTERFACE", NULL,
     "a command of at most %zu bytes (put a longer one in a script and give its path)", true},
    {"down_command", STR(down_command), "logger braid down", NULL,
     "a command of at most %zu bytes (put a longer one in a script and give its path)", true},
    {"link_command", STR(link_command), "logger braid $BRAID_LINK $BRAID_EVENT", NULL,
     "a command of at most %zu bytes (put a longer one in a script and give its path)", true},
};
#undef STR

/* 1 when name is one of str_settings (then 0 or -1 as the value is taken), else 0 with *done
 * false. */
static int do_str_setting(struct ld *l, const config_setting_t *s, const char *name,
                          const char *path, bool *done)
{
    *done = false;
    for (size_t i = 0; i < ARRAY_LEN(str_settings); i++) {
        const struct str_setting *t = &str_settings[i];
        if (strcmp(name, t->name) != 0) continue;
        *done = true;
        const char *v;
        if (want_string(l, s, path, t->example, &v) < 0) return -1;
        size_t vl = strlen(v);
        bool empty = vl == 0 && !t->empty_ok;
        if (empty || vl >= t->size || (t->ok && !t->ok(v))) {
            char want[160];
            snprintf(want, sizeof want, t->expected, t->size - 1);
            if (empty || vl >= t->size)
                return fail(l, s, path, "%zu bytes long; expected %s", vl, want);
            return fail(l, s, path, "\"%.40s\" is not %s", v, want);
        }
        memcpy((char *)l->c + t->off, v, vl + 1);
        return 0;
    }
    return 0;
}

static int do_root(struct ld *l, const config_setting_t *root)
{
    struct cfg *c = l->c;
    int n = config_setting_length(root);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
        const char *name = config_setting_name(s);
        char path[72];
        snprintf(path, sizeof path, "%.64s", name ? name : "?");
        if (check_name(l, s, SC_TOP, path) < 0) return -1;
        const char *v;
        long long iv;
        int rc = 0;
        bool done;
        if (strcmp(name, "key") == 0) {
            return do_old_key(l, s);
        } else if (strcmp(name, "private_key") == 0) {
            rc = want_key(l, s, path,
                          l->master ? "a private key from `braid-master genkey`"
                                    : "a private key from `braid-slave genkey`",
                          c->private_key);
            c->has_private_key = rc == 0;
            l->priv_s = s;
        } else if (strcmp(name, "private_key_file") == 0) {
            if (do_str_setting(l, s, name, path, &done) < 0) return -1;
            c->private_key_file_line = config_setting_source_line(s);
            l->privfile_s = s;
        } else if (strcmp(name, "master_public_key") == 0) {
            rc = want_key(l, s, path, "the master's public key, as `braid-master pubkey` prints it",
                          c->peer_key);
            l->mpub_s = s;
        } else if (strcmp(name, "psk") == 0) {
            rc = want_key(l, s, path, "a pre-shared key from `braid-master genpsk`", c->psk);
            c->has_psk = rc == 0;
        } else if (strcmp(name, "sites") == 0) {
            rc = do_sites(l, s);
            l->sites_s = s;
        } else if (strcmp(name, "listen") == 0) {
            rc = want_ipport(l, s, path, "0.0.0.0:7000", &c->listen);
            l->listen_s = s;
        } else if (strcmp(name, "master") == 0) {
            rc = want_hostport(l, s, path, "203.0.113.5:7000", c->master_host, &c->master_port);
            l->master_s = s;
        } else if (strcmp(name, "links") == 0) {
            rc = do_links(l, s);
            l->links_s = s;
        } else if (strcmp(name, "tunnel") == 0) {
            rc = do_tunnel(l, s);
        } else if (strcmp(name, "mux") == 0) {
            rc = do_mux(l, s);
        } else if (do_str_setting(l, s, name, path, &done) < 0) {
            return -1;
        } else if (done) {
            if (strcmp(name, "user") == 0) c->user_line = config_setting_source_line(s);
        } else if (strcmp(name, "metrics_listen") == 0) {
            if (want_ipport(l, s, path, "127.0.0.1:9477", &c->metrics_listen) < 0) return -1;
            if (addr_port((const struct sockaddr *)&c->metrics_listen.ss) == 0)
                return fail(l, s, path, "no port; expected \"ip:port\", e.g. \"127.0.0.1:9477\"");
            c->has_metrics_listen = true;
        } else if (strcmp(name, "log_level") == 0) {
            if (want_string(l, s, path, "info", &v) < 0) return -1;
            int lv = log_level_parse(v);
            if (lv < 0)
                return fail(l, s, path,
                            "\"%.32s\" is not a log level; expected \"error\", \"warn\", \"info\" "
                            "or \"debug\"",
                            v);
            c->log_level = lv;
        } else if (strcmp(name, "log_target") == 0) {
            if (want_string(l, s, path, "auto", &v) < 0) return -1;
            int lt = log_target_parse(v);
            if (lt < 0)
                return fail(l, s, path,
                            "\"%.32s\" is not a log target; expected \"auto\" (the journal under "
                            "systemd, else stderr), \"stderr\" or \"syslog\"",
                            v);
            c->log_target = lt;
        } else if (strcmp(name, "tcp_lane") == 0) {
            if (want_string(l, s, path, "auto", &v) < 0) return -1;
            if (strcmp(v, "off") == 0) c->tcp_lane = CFG_LANE_OFF;
            else if (strcmp(v, "auto") == 0) c->tcp_lane = CFG_LANE_AUTO;
            else if (strcmp(v, "on") == 0) c->tcp_lane = CFG_LANE_ON;
            else
                return fail(l, s, path,
                            "\"%.32s\" is not a TCP lane mode; expected \"off\", \"auto\" (TCP "
                            "connections are terminated and carried over the links' TCP "
                            "connections while two or more are up) or \"on\" (also with one)",
                            v);
        } else if (strcmp(name, "tcp_lane_congestion") == 0) {
            if (want_string(l, s, path, "bbr", &v) < 0) return -1;
            size_t vn = strlen(v);
            bool ok = vn > 0 && vn < sizeof c->tcp_lane_congestion;
            for (size_t k = 0; ok && k < vn; k++)
                ok = (v[k] >= 'a' && v[k] <= 'z') || (v[k] >= '0' && v[k] <= '9') || v[k] == '_';
            if (!ok)
                return fail(l, s, path,
                            "\"%.32s\" is not a TCP congestion control name; expected one of "
                            "/proc/sys/net/ipv4/tcp_available_congestion_control, e.g. \"bbr\" "
                            "or \"cubic\"",
                            v);
            memcpy(c->tcp_lane_congestion, v, vn + 1);
        } else if (strcmp(name, "tcp_lane_fast_open") == 0) {
            if (want_bool(l, s, path, &c->tcp_lane_fast_open) < 0) return -1;
        } else if (strcmp(name, "tcp_links") == 0) {
            if (want_bool(l, s, path, &c->tcp_links) < 0) return -1;
            c->tcp_links_set = true;
        } else if (strcmp(name, "tcp_lane_connections") == 0) {
            if (want_int(l, s, path, 1, 65534, "connections", &iv) < 0) return -1;
            c->tcp_lane_connections = (int)iv;
        } else if (strcmp(name, "socket_buffer") == 0) {
            if (want_int(l, s, path, 65536, INT_SETTING_MAX, "bytes", &iv) < 0) return -1;
            c->socket_buffer = (int)iv;
        } else if (strcmp(name, "dns_servers") == 0) {
            rc = do_dns_servers(l, s, path);
        }
        if (rc < 0) return -1;
    }
    if (l->priv_s && l->privfile_s)
        return fail(l, l->privfile_s, "private_key_file",
                    "private_key is set too; expected one of the two (private_key_file is the "
                    "safer: a file only its owner can read)");
    if (!l->priv_s && !l->privfile_s)
        return fail_line(l, 0, NULL,
                         "missing required setting \"private_key_file\" (a file holding this "
                         "end's private key: `braid-%s genkey > FILE; chmod 600 FILE`)",
                         l->master ? "master" : "slave");
    if (!l->master && !l->mpub_s)
        return fail_line(l, 0, NULL,
                         "missing required setting \"master_public_key\" (the master's public "
                         "key: `braid-master pubkey < FILE` on the master's private key file)");
    if (l->master && !l->sites_s)
        return fail_line(l, 0, NULL,
                         "missing required setting \"sites\" (the sites this master serves, e.g. "
                         "sites = ( { name = \"home\"; public_key = \"...\"; } ); with the "
                         "slave's public key)");
    if (l->master && !l->listen_s)
        return fail_line(l, 0, NULL,
                         "missing required setting \"listen\" (the UDP address to listen on, e.g. "
                         "\"0.0.0.0:7000\")");
    if (!l->master && !l->master_s)
        return fail_line(l, 0, NULL,
                         "missing required setting \"master\" (the master's address as "
                         "\"host:port\", e.g. \"203.0.113.5:7000\")");
    if (!l->master && !l->links_s)
        return fail_line(l, 0, NULL,
                         "missing required setting \"links\" (the list of links, e.g. links = ( "
                         "{ name = \"wan0\"; bind = \"192.168.1.10\"; } );)");
    return check_cross(l);
}

/* libconfig would open any file named by @include (even from cfg_load_string): refuse the
 * directive. This matches every line libconfig treats as one ("^[ \t]*@include"), and also such
 * lines inside strings or comments. */
static int refuse_include(struct ld *l, const char *text)
{
    int line = 1;
    for (const char *p = text; *p;) {
        const char *q = p;
        while (*q == ' ' || *q == '\t')
            q++;
        if (strncmp(q, "@include", 8) == 0)
            return fail_line(l, line, NULL,
                             "@include is not supported; expected all settings in this one file");
        const char *nl = strchr(p, '\n');
        if (!nl) break;
        p = nl + 1;
        line++;
    }
    return 0;
}

static int check_syntax(struct ld *l, const char *text)
{
    return cfg_syntax_check(text, l->file, l->err, l->errlen);
}

static int parse_error(struct ld *l, const config_t *cf)
{
    const char *t = config_error_text(cf);
    int line = config_error_line(cf);
    if (!t) t = "cannot parse";
    const char *hint;
    if (strcmp(t, "duplicate setting name") == 0)
        hint = "a setting appears twice in the same group; expected it once";
    else if (strstr(t, "memory"))
        hint = "the file is nested too deeply or too large; expected a braid config";
    else
        hint = "check this line and the one before for a missing ';', '=', '\"', brace or "
               "parenthesis; expected name = value; with strings in double quotes";
    return fail_line(l, line, NULL, "%s; %s", t, hint);
}

static void defaults(struct cfg *c, bool is_master)
{
    c->is_master = is_master;
    snprintf(c->tun_name, sizeof c->tun_name, "braid0");
    c->mtu = 0;
    c->link_mtu = 1500;
    c->beat_interval_ms = 100;
    c->dead_timeout_ms = 300;
    c->reorder_max_ms = 500;
    c->reorder_slots = 4096;
    c->rehandshake_ms = 2000;
    c->rekey_after_s = 120;
    c->log_level = LOG_INFO;
    c->socket_buffer = 4194304;
    c->tcp_lane_connections = 1024;
    c->tcp_links = true;
    c->tcp_lane_fast_open = true;
    memcpy(c->tcp_lane_congestion, "cubic", 6); /* measured better than BBR on S3 (RESULTS) */
}

static int load_text(const char *text, const char *name, bool is_master, struct cfg *out, char *err,
                     size_t errlen)
{
    char scratch[8];
    if (!err || !errlen) err = scratch, errlen = sizeof scratch;
    /* libconfig 1.5 rejects a comment on a last line that has no newline: add one. */
    size_t tl = strlen(text);
    char *copy = NULL;
    if (tl == 0 || text[tl - 1] != '\n') {
        copy = malloc(tl + 2);
        if (!copy) {
            snprintf(err, errlen, "%s: out of memory", name);
            return -1;
        }
        memcpy(copy, text, tl);
        copy[tl] = '\n';
        copy[tl + 1] = '\0';
        text = copy;
    }
    struct ld *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "%s: out of memory", name);
        free(copy);
        return -1;
    }
    l->file = name;
    l->master = is_master;
    l->c = out;
    l->err = err;
    l->errlen = errlen;
    defaults(out, is_master);
    size_t nl = strlen(name);
    if (nl >= sizeof out->path) nl = sizeof out->path - 1;
    memcpy(out->path, name, nl);
    out->path[nl] = '\0';

    /* First our own checks, so that libconfig only ever parses text that is well-formed. */
    int rc = refuse_include(l, text);
    if (rc == 0) rc = check_syntax(l, text);
    if (rc == 0) {
        config_t cf;
        config_init(&cf);
        if (config_read_string(&cf, text) != CONFIG_TRUE)
            rc = parse_error(l, &cf);
        else
            rc = do_root(l, config_root_setting(&cf));
        config_destroy(&cf);
    }
    free(l);
    if (copy) {
        sodium_memzero(copy, tl + 2);
        free(copy);
    }
    if (rc < 0) {
        cfg_free(out);
        sanitize(err);
    }
    return rc;
}

void cfg_free(struct cfg *c)
{
    if (c->sites) {
        sodium_memzero(c->sites, (size_t)c->nsites * sizeof *c->sites);
        free(c->sites);
    }
    sodium_memzero(c, sizeof *c);
}

int cfg_load_string(const char *text, const char *name, bool is_master, struct cfg *out, char *err,
                    size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!name) name = "(string)";
    if (!text) text = "";
    return load_text(text, name, is_master, out, err, errlen);
}

/* Does the config text itself hold a secret (an inline private_key, a psk)? */
static bool holds_secret(const struct cfg *c)
{
    if (c->has_psk || (c->has_private_key && !c->private_key_file[0])) return true;
    for (int i = 0; i < c->nsites; i++)
        if (c->sites[i].has_psk) return true;
    return false;
}

/* private_key_file, relative to the config file's folder unless absolute. */
static int read_private_key(const char *cfgpath, struct cfg *c, char *err, size_t errlen)
{
    char full[1100];
    const char *f = c->private_key_file;
    const char *slash = strrchr(cfgpath, '/');
    if (f[0] != '/' && slash)
        snprintf(full, sizeof full, "%.*s/%s", (int)(slash - cfgpath), cfgpath, f);
    else
        snprintf(full, sizeof full, "%s", f);
    char why[1400];
    if (key_read_file(full, c->private_key, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s:%d: private_key_file: %s", cfgpath, c->private_key_file_line,
                 why);
        cfg_free(c);
        return -1;
    }
    c->has_private_key = true;
    return 0;
}

static int load_file(const char *path, bool is_master, bool read_key, struct cfg *out, char *err,
                     size_t errlen);

int cfg_load(const char *path, bool is_master, struct cfg *out, char *err, size_t errlen)
{
    return load_file(path, is_master, true, out, err, errlen);
}

int cfg_reload(const char *path, bool is_master, struct cfg *out, char *err, size_t errlen)
{
    return load_file(path, is_master, false, out, err, errlen);
}

/* May group members read a secret in the file? Not worth a warning when the group is the one
 * braid runs as ("user"/"group"): that is how it reads its config after dropping root. */
static bool group_is_braids(const struct cfg *c, gid_t gid)
{
    if (!c->user[0]) return false;
    if (c->group[0]) {
        const struct group *gr = getgrnam(c->group);
        return gr && gr->gr_gid == gid;
    }
    const struct passwd *pw = getpwnam(c->user);
    return pw && pw->pw_gid == gid;
}

static int load_file(const char *path, bool is_master, bool read_key, struct cfg *out, char *err,
                     size_t errlen)
{
    char scratch[8];
    if (!err || !errlen) err = scratch, errlen = sizeof scratch;
    memset(out, 0, sizeof *out);
    const char *example = is_master ? "conf/master.conf" : "conf/slave.conf";
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s; expected a readable config file (see %s)", path,
                 strerror(errno), example);
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file; expected a config file (see %s)", path,
                 example);
        close(fd);
        return -1;
    }
    if (st.st_size > CFG_MAX_FILE) {
        snprintf(err, errlen, "%s: %lld bytes is too large; expected a config file under %d bytes",
                 path, (long long)st.st_size, CFG_MAX_FILE);
        close(fd);
        return -1;
    }
    size_t cap = (size_t)st.st_size + 1;
    char *buf = malloc(cap);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        close(fd);
        return -1;
    }
    size_t len = 0;
    while (len < cap - 1) {
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return -1;
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    int rc;
    if (memchr(buf, '\0', len)) {
        snprintf(err, errlen, "%s: contains a NUL byte; expected a text file (see %s)", path,
                 example);
        rc = -1;
    } else {
        rc = load_text(buf, path, is_master, out, err, errlen);
    }
    sodium_memzero(buf, cap);
    free(buf);
    if (rc == 0 && holds_secret(out) &&
        ((st.st_mode & S_IRWXO) || ((st.st_mode & S_IRWXG) && !group_is_braids(out, st.st_gid))))
        snprintf(out->warning, sizeof out->warning,
                 "%s holds a key (private_key or psk) and group or others may read it (mode %03o); "
                 "run `chmod 600 %s`",
                 path, (unsigned)(st.st_mode & 0777), path);
    if (rc == 0 && read_key && out->private_key_file[0])
        rc = read_private_key(path, out, err, errlen);
    return rc;
}
