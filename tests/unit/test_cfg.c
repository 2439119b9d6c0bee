/* test_cfg.c: unit tests for the configuration loader (common/cfg.c): the example configs, the
 * defaults, every class of error with its exact file:line and setting name, and hostile input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "../../common/cfg.h"
#include "../../common/log.h"
#include "../../mux/sched.h"

/* base64 of the bytes 0, 1, ... 31 (this end's private key in the tests) */
#define KEY "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define KEYLINE "private_key = \"" KEY "\";\n"
/* base64 of the bytes 32, 33, ... 63: the other end's public key */
#define PEER "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
#define PEER_M "sites = ( { public_key = \"" PEER "\"; } );\n"
#define PEER_S "master_public_key = \"" PEER "\";\n"

static struct cfg C;
static char E[512];

/* The sites lists loads allocated (cfg_free is not called: tests look at C after memset); freed
 * at the end so that LeakSanitizer sees no leak. */
static struct cfg_site *held[4096];
static int nheld;
static int keep(int rc, const struct cfg *c)
{
    if (rc == 0 && c->sites) {
        assert_true(nheld < (int)(sizeof held / sizeof held[0]));
        held[nheld++] = c->sites;
    }
    return rc;
}
#define cfg_load(p, m, c, e, l) keep(cfg_load(p, m, c, e, l), c)
#define cfg_load_string(t, n, m, c, e, l) keep(cfg_load_string(t, n, m, c, e, l), c)

static int load_raw(const char *text, bool master)
{
    memset(E, 0, sizeof E);
    return cfg_load_string(text, "t.conf", master, &C, E, sizeof E);
}

/* The text with the other end's public key added on its first line, when it starts with
 * KEYLINE and does not give it (so line numbers stay): most tests are about other settings. */
static int load(const char *text, bool master)
{
    static char buf[1 << 17];
    const char *need = master ? "sites" : "master_public_key";
    size_t kl = strlen(KEYLINE);
    if (strncmp(text, KEYLINE, kl) != 0 || strstr(text, need) || strlen(text) + 200 > sizeof buf)
        return load_raw(text, master);
    snprintf(buf, sizeof buf, "%.*s %s%s", (int)(kl - 1), text, master ? PEER_M : PEER_S,
             text + kl);
    return load_raw(buf, master);
}

/* Master config; extra starts on line 3. */
static int load_m(const char *extra)
{
    static char buf[1 << 16];
    snprintf(buf, sizeof buf, KEYLINE "listen = \"127.0.0.1:7000\";\n%s\n", extra);
    return load(buf, true);
}

/* Slave config with one default link on line 3; extra starts on line 4. */
static int load_s(const char *extra)
{
    static char buf[1 << 16];
    snprintf(buf, sizeof buf, KEYLINE "master = \"127.0.0.1:7000\";\nlinks = ( { } );\n%s\n",
             extra);
    return load(buf, false);
}

/* Slave config whose links list (starting on line 3) is given. */
static int load_links(const char *links)
{
    static char buf[1 << 16];
    snprintf(buf, sizeof buf, KEYLINE "master = \"127.0.0.1:7000\";\nlinks = %s;\n", links);
    return load(buf, false);
}

/* rc is a failure and the message is exactly want. */
#define expect_msg(rc, want)                                                                       \
    do {                                                                                           \
        assert_int_equal((rc), -1);                                                                \
        assert_string_equal(E, (want));                                                            \
    } while (0)

/* rc is a failure, the message starts with prefix (file:line: setting:) and contains part. */
static void expect_fail(int rc, const char *prefix, const char *part)
{
    if (rc != -1) fail_msg("expected an error \"%s ... %s\", but the config loaded", prefix, part);
    if (strncmp(E, prefix, strlen(prefix)) != 0)
        fail_msg("message \"%s\" does not start with \"%s\"", E, prefix);
    if (part && !strstr(E, part)) fail_msg("message \"%s\" does not contain \"%s\"", E, part);
}

static void expect_ok(int rc)
{
    if (rc != 0) fail_msg("expected the config to load, got: %s", E);
}

static const char *ip_of(const struct addr *a, char *buf, size_t len)
{
    return addr_str((const struct sockaddr *)&a->ss, buf, len);
}

/* Line number of the first line of path containing needle (0 if none). */
static int line_of(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[512];
    int n = 0, found = 0;
    while (fgets(line, sizeof line, f)) {
        n++;
        if (strstr(line, needle)) {
            found = n;
            break;
        }
    }
    fclose(f);
    return found;
}

/* ---- the example configs ---- */

static void check_common_defaults(const struct cfg *c)
{
    assert_string_equal(c->tun_name, "braid0");
    assert_int_equal(c->mtu, 0);
    assert_int_equal(c->link_mtu, 1500);
    assert_int_equal(c->beat_interval_ms, 100);
    assert_int_equal(c->dead_timeout_ms, 300);
    assert_int_equal(c->reorder_max_ms, 500);
    assert_int_equal(c->reorder_slots, 4096);
    assert_int_equal(c->rehandshake_ms, 2000);
    assert_int_equal(c->rekey_after_s, 120);
    assert_string_equal(c->scheduler, "");
    assert_int_equal(c->log_level, LOG_INFO);
    assert_int_equal(c->socket_buffer, 4194304);
}

static void test_example_master(void **state)
{
    (void)state;
    char buf[ADDR_STRLEN];
    expect_ok(cfg_load("conf/master.conf", true, &C, E, sizeof E));
    assert_true(C.is_master);
    assert_string_equal(C.path, "conf/master.conf");
    assert_string_equal(ip_of(&C.listen, buf, sizeof buf), "127.0.0.1:7000");
    assert_true(C.has_notun_listen);
    assert_string_equal(ip_of(&C.notun_listen, buf, sizeof buf), "127.0.0.1:7100");
    assert_string_equal(C.tun_address, "198.18.0.1/30");
    assert_string_equal(C.tun_address6, "");
    assert_string_equal(C.control_socket, "/tmp/braid-master.sock");
    assert_int_equal(C.nlinks, 0);
    check_common_defaults(&C);
    static const uint8_t zero[32];
    assert_int_equal(C.nsites, 1);
    assert_string_equal(C.sites[0].name, "home");
    assert_memory_not_equal(C.sites[0].psk, zero, 32);
}

static void test_example_slave(void **state)
{
    (void)state;
    char buf[ADDR_STRLEN];
    expect_ok(cfg_load("conf/slave.conf", false, &C, E, sizeof E));
    assert_false(C.is_master);
    assert_string_equal(C.master_host, "127.0.0.1");
    assert_int_equal(C.master_port, 7000);
    assert_int_equal(C.nlinks, 2);
    assert_string_equal(C.links[0].name, "wan0");
    assert_string_equal(C.links[1].name, "wan1");
    for (int i = 0; i < 2; i++) {
        assert_int_equal(C.links[i].id, i);
        assert_int_equal(C.links[i].type, CFG_LINK_UDP);
        assert_true(C.links[i].has_bind);
        assert_string_equal(ip_of(&C.links[i].bind, buf, sizeof buf), "127.0.0.1:0");
        assert_string_equal(C.links[i].interface, "");
        assert_string_equal(C.links[i].username, "");
    }
    assert_int_equal(C.links[0].line, line_of("conf/slave.conf", "links = (") + 1);
    assert_true(C.has_notun_listen);
    assert_string_equal(ip_of(&C.notun_listen, buf, sizeof buf), "127.0.0.1:7200");
    assert_string_equal(C.tun_address, "198.18.0.2/30");
    assert_string_equal(C.control_socket, "/tmp/braid-slave.sock");
    check_common_defaults(&C);
}

static void test_examples_share_key(void **state)
{
    (void)state;
    struct cfg m;
    expect_ok(cfg_load("conf/master.conf", true, &m, E, sizeof E));
    expect_ok(cfg_load("conf/slave.conf", false, &C, E, sizeof E));
    assert_memory_equal(m.sites[0].psk, C.psk, 32);
}

static void test_examples_wrong_role(void **state)
{
    (void)state;
    char want[256];
    snprintf(want, sizeof want, "conf/master.conf:%d: sites: this setting is for braid-master",
             line_of("conf/master.conf", "sites = "));
    expect_fail(cfg_load("conf/master.conf", false, &C, E, sizeof E), want, "braid-slave's config");
    snprintf(want, sizeof want,
             "conf/slave.conf:%d: master_public_key: this setting is for braid-slave",
             line_of("conf/slave.conf", "master_public_key = "));
    expect_fail(cfg_load("conf/slave.conf", true, &C, E, sizeof E), want, "braid-master's config");
}

/* ---- defaults ---- */

static void test_defaults_master(void **state)
{
    (void)state;
    memset(&C, 0xAA, sizeof C);
    expect_ok(load_m(""));
    assert_true(C.is_master);
    assert_string_equal(C.path, "t.conf");
    for (int i = 0; i < 32; i++) {
        assert_int_equal(C.private_key[i], i);
        assert_int_equal(C.sites[0].public_key[i], 32 + i);
        assert_int_equal(C.sites[0].psk[i], 0); /* no psk: zero */
    }
    assert_int_equal(C.nsites, 1);
    assert_false(C.sites[0].has_psk);
    assert_string_equal(C.sites[0].name, "site0");
    assert_int_equal(C.sites[0].nallowed, 0);
    assert_false(C.has_notun_listen);
    assert_string_equal(C.tun_address, "");
    assert_string_equal(C.tun_address6, "");
    assert_string_equal(C.control_socket, "");
    assert_string_equal(C.master_host, "");
    assert_int_equal(C.nlinks, 0);
    check_common_defaults(&C);
}

static void test_defaults_slave(void **state)
{
    (void)state;
    memset(&C, 0xAA, sizeof C);
    expect_ok(load_links("( { }, { } )"));
    assert_false(C.is_master);
    assert_int_equal(C.nlinks, 2);
    for (int i = 0; i < 2; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "link%d", i);
        assert_string_equal(C.links[i].name, nm);
        assert_int_equal(C.links[i].id, i);
        assert_int_equal(C.links[i].type, CFG_LINK_UDP);
        assert_false(C.links[i].has_bind);
        assert_string_equal(C.links[i].interface, "");
        assert_string_equal(C.links[i].proxy_host, "");
        assert_string_equal(C.links[i].password, "");
        assert_int_equal(C.links[i].line, 3);
    }
    /* default names follow the id */
    expect_ok(load_links("( { id = 7; } )"));
    assert_string_equal(C.links[0].name, "link7");
    check_common_defaults(&C);
}

/* ---- missing settings, syntax ---- */

static void test_missing_required(void **state)
{
    (void)state;
    expect_msg(load(KEYLINE, true),
               "t.conf: missing required setting \"listen\" (the UDP address to listen on, e.g. "
               "\"0.0.0.0:7000\")");
    expect_msg(load("listen = \"127.0.0.1:7000\";\n" PEER_M, true),
               "t.conf: missing required setting \"private_key_file\" (a file holding this end's "
               "private key: `braid-master genkey > FILE; chmod 600 FILE`)");
    expect_fail(load_raw(KEYLINE "listen = \"127.0.0.1:7000\";\n", true),
                "t.conf: missing required setting \"sites\"", "slave's public key");
    expect_fail(load_raw(KEYLINE "master = \"127.0.0.1:7000\";\nlinks = ( { } );\n", false),
                "t.conf: missing required setting \"master_public_key\"", "braid-master pubkey");
    expect_fail(load(KEYLINE "links = ( { } );\n", false),
                "t.conf: missing required setting \"master\"", "\"host:port\"");
    expect_fail(load(KEYLINE "master = \"127.0.0.1:7000\";\n", false),
                "t.conf: missing required setting \"links\"", "links = (");
    expect_fail(load("", true), "t.conf: missing required setting \"private_key_file\"", NULL);
    expect_fail(load("# only a comment\n", false),
                "t.conf: missing required setting \"private_key_file\"", NULL);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    expect_msg(load_m("tunnel = {\n  mtu = ;\n};"),
               "t.conf:4: tunnel.mtu: found ';' where a value belongs; expected a number, a "
               "\"string\", true/false, a group { }, a list ( ) or an array [ ]");
    expect_msg(load_m("\n\nlog_level = \"info;\n"),
               "t.conf:5: log_level: this string is never closed; expected a '\"' at its end");
    expect_fail(load_m("log_level = info;"),
                "t.conf:3: log_level: found \"info\" where a value belongs;", NULL);
    expect_msg(load_m("\nmux = { beat_interval_ms = 100;\n"),
               "t.conf:4: mux: the '{' here is never closed; expected '}'");
    expect_msg(load_m("control_socket \"/tmp/x\";"),
               "t.conf:3: control_socket: found a string after the name; expected '=' and a value");
    expect_fail(load_m("\"listen\" = 1;"),
                "t.conf:3: found a string where a setting belongs; expected name = value;", NULL);
    expect_fail(load_m("log_level = \"info\";;"), "t.conf:3: found ';' where a setting belongs",
                NULL);
    expect_fail(load_m("\x01"), "t.conf:3: found the byte 0x01 where a setting belongs", NULL);
    expect_fail(load_m("tunnel = { mtu = 1500 } }"), "t.conf:3: found '}' where a setting belongs",
                NULL);
    expect_msg(load_m("/* a comment\n\n"),
               "t.conf:3: this /* comment is never closed; expected */");
    expect_fail(load_links("( { } { } )"),
                "t.conf:3: links: found '{' in a list; expected ',' or ')'", NULL);
    expect_fail(load_links("( { },\n )"), "t.conf:4: links[1]: found ')' where a value belongs",
                NULL);
    expect_msg(load(KEYLINE "master = \"127.0.0.1:7000\";\nlinks = (\n { }\n", false),
               "t.conf:3: links: the '(' here is never closed; expected ')'");
    expect_fail(load_m("socket_buffer = [ { } ];"),
                "t.conf:3: socket_buffer: found '{' in an array [ ]; expected numbers", NULL);
    expect_fail(load_m("socket_buffer = [ 1 2 ];"),
                "t.conf:3: socket_buffer: found a number in an array; expected ',' or ']'", NULL);
    /* arrays hold one type (a libconfig rule) */
    expect_msg(load_m("socket_buffer = [ 1, \"x\" ];"),
               "t.conf:3: socket_buffer: the array mixes integers and strings; expected one type");
    expect_fail(load_m("socket_buffer = [ 1, 0x2, 3L ];"),
                "t.conf:3: socket_buffer: the array mixes integers and 64-bit integers", NULL);
    /* a comment on the last line, without a newline (libconfig 1.5 alone rejects this) */
    expect_ok(load(KEYLINE "listen = \"127.0.0.1:7000\"; # the end", true));
    expect_ok(load(KEYLINE "listen = \"127.0.0.1:7000\"; // the end", true));
    /* what libconfig accepts, so does braid: ':' for '=', ',' or nothing after a value,
     * comments of three kinds, strings split in parts */
    expect_ok(load(KEYLINE "listen : \"127.0.0.1:\" /* port: */ \"7000\"\n"
                           "log_level = \"debug\", // comment\n# comment\nsocket_buffer = 65536",
                   true));
    assert_int_equal(C.log_level, LOG_DEBUG);
    assert_int_equal(C.socket_buffer, 65536);
    assert_int_equal(C.log_target, LOG_TO_AUTO);
    expect_ok(load_m("log_target = \"syslog\";"));
    assert_int_equal(C.log_target, LOG_TO_SYSLOG);
    expect_fail(load_m("log_target = \"journal\";"),
                "t.conf:3: log_target: \"journal\" is not a log target; expected \"auto\"", NULL);
    expect_ok(load_m("user = \"braid\"; group = \"nogroup\";"));
    assert_string_equal(C.user, "braid");
    assert_string_equal(C.group, "nogroup");
    assert_int_equal(C.user_line, 3);
    expect_fail(load_m("user = \"br aid\";"), "t.conf:3: user: \"br aid\" is not a user name", NULL);
    expect_fail(load_m("group = \"\";"), "t.conf:3: group: 0 bytes long; expected a group name", NULL);
    expect_fail(load_m("user = \"../../etc\";"), "t.conf:3: user: \"../../etc\" is not a user name", NULL);
    expect_ok(load_m("up_command = \"ip route add 10.1.0.0/24 dev $BRAID_INTERFACE\";\n"
                     "link_command = \"logger $BRAID_LINK\";"));
    assert_string_equal(C.up_command, "ip route add 10.1.0.0/24 dev $BRAID_INTERFACE");
    assert_string_equal(C.link_command, "logger $BRAID_LINK");
    assert_string_equal(C.down_command, "");
    expect_ok(load_m("down_command = \"\";")); /* "": none */
    assert_string_equal(C.down_command, "");
    {
        static char big[1200 + 32];
        memcpy(big, "down_command = \"", 16);
        memset(big + 16, 'x', 1100);
        memcpy(big + 16 + 1100, "\";", 3);
        expect_fail(load_m(big), "t.conf:3: down_command: 1100 bytes long; expected a command of "
                                 "at most 1023 bytes", NULL);
    }
}

static void test_duplicate_setting(void **state)
{
    (void)state;
    expect_msg(load_m("listen = \"127.0.0.1:7001\";"),
               "t.conf:3: listen: set twice in the same group (first on line 2); expected it once");
    expect_msg(load_m("mux = {\n beat_interval_ms = 100;\n beat_interval_ms = 200;\n};"),
               "t.conf:5: mux.beat_interval_ms: set twice in the same group (first on line 4); "
               "expected it once");
    expect_fail(load_links("( { },\n { id = 1;\n id = 2; } )"),
                "t.conf:5: links[1].id: set twice in the same group (first on line 4)", NULL);
    /* the same name in different groups is fine */
    expect_ok(load_links("( { name = \"a\"; id = 1; }, { name = \"b\"; id = 2; } );\n"
                         "tunnel = { name = \"braid0\"; }"));
    assert_string_equal(C.links[1].name, "b");
}

/* ---- setting names ---- */

static void test_unknown_settings(void **state)
{
    (void)state;
    expect_msg(load_m("mux = {\n  beat_intervall_ms = 100;\n};"),
               "t.conf:4: mux.beat_intervall_ms: unknown setting; did you mean "
               "\"beat_interval_ms\"?");
    expect_msg(load(KEYLINE "lisen = \"127.0.0.1:7000\";\n", true),
               "t.conf:2: lisen: unknown setting; did you mean \"listen\"?");
    expect_msg(load_s("tunnel = { adress = \"198.18.0.2/30\"; };"),
               "t.conf:4: tunnel.adress: unknown setting; did you mean \"address\"?");
    expect_msg(load_links("( { nmae = \"x\"; } )"),
               "t.conf:3: links[0].nmae: unknown setting; did you mean \"name\"?");
    /* a master-only name is not suggested to the slave */
    expect_fail(load_s("listenn = 1;"), "t.conf:4: listenn: unknown setting; expected one of: ",
                "private_key, private_key_file, master_public_key, psk, master, links, tunnel, mux");
    /* the right name in the wrong place */
    expect_msg(load_m("beat_interval_ms = 100;"),
               "t.conf:3: beat_interval_ms: unknown setting here; \"beat_interval_ms\" belongs in "
               "the \"mux\" group");
    expect_fail(load_m("tunnel = { log_level = \"info\"; };"),
                "t.conf:3: tunnel.log_level: unknown setting here;", "at the top level");
    expect_fail(load_m("zzzzzzzz = 1;"),
                "t.conf:3: zzzzzzzz: unknown setting; expected one of:", "listen");
}

static void test_wrong_role(void **state)
{
    (void)state;
    expect_msg(load_s("listen = \"0.0.0.0:7000\";"),
               "t.conf:4: listen: this setting is for braid-master only (braid-slave connects to "
               "the address in \"master\" instead); remove it from braid-slave's config");
    expect_fail(load_m("master = \"127.0.0.1:7000\";"),
                "t.conf:3: master: this setting is for braid-slave only", "braid-master's config");
    expect_fail(load_m("links = ( { } );"), "t.conf:3: links: this setting is for braid-slave only",
                "learns the links");
    expect_fail(load_m("mux = {\n rehandshake_ms = 2000;\n};"),
                "t.conf:4: mux.rehandshake_ms: this setting is for braid-slave only", NULL);
}

static void test_wrong_types(void **state)
{
    (void)state;
    expect_msg(load(KEYLINE "listen = 7000;\n", true),
               "t.conf:2: listen: got an integer; expected a string in quotes, e.g. "
               "\"0.0.0.0:7000\"");
    expect_msg(load_m("mux = { beat_interval_ms = \"100\"; };"),
               "t.conf:3: mux.beat_interval_ms: got a string; expected an integer (milliseconds) "
               "from 10 to 10000, without quotes");
    expect_fail(load_m("socket_buffer = 1.5e6;"),
                "t.conf:3: socket_buffer: got a decimal number; expected an integer", NULL);
    expect_fail(load_m("log_level = true;"),
                "t.conf:3: log_level: got true/false; expected a string", NULL);
    expect_fail(load_m("tunnel = \"braid0\";"), "t.conf:3: tunnel: got a string; expected a group",
                NULL);
    expect_fail(load_m("mux = ( );"), "t.conf:3: mux: got a list ( ); expected a group", NULL);
    expect_fail(load(KEYLINE "master = \"127.0.0.1:7000\";\nlinks = { };\n", false),
                "t.conf:3: links: got a group { }; expected a list of link groups", NULL);
    expect_fail(load_links("[ 1, 2 ]"), "t.conf:3: links: got an array [ ]; expected a list", NULL);
    expect_fail(load_links("( { }, \"wan1\" )"),
                "t.conf:3: links[1]: got a string; expected a group", NULL);
    expect_fail(load_links("( { id = \"1\"; } )"), "t.conf:3: links[0].id: got a string;",
                "0 to 255");
    expect_fail(load(KEYLINE "master = [ \"127.0.0.1:7000\" ];\nlinks = ( { } );\n", false),
                "t.conf:2: master: got an array [ ]; expected a string in quotes", NULL);
    /* int64 values are integers too */
    expect_ok(load_m("socket_buffer = 65536L;"));
    assert_int_equal(C.socket_buffer, 65536);
    expect_ok(load_m("socket_buffer = 0x10000;"));
    assert_int_equal(C.socket_buffer, 65536);
}

/* ---- ranges ---- */

struct range_case {
    bool master;
    const char *fmt; /* one %lld */
    const char *prefix;
    long long min, max;
    size_t off; /* offset of the unsigned/int field in struct cfg */
};

static unsigned field(size_t off)
{
    unsigned v;
    memcpy(&v, (const char *)&C + off, sizeof v);
    return v;
}

static void test_ranges(void **state)
{
    (void)state;
    static const struct range_case cases[] = {
        {true, "mux = { beat_interval_ms = %lld; dead_timeout_ms = 20000; };",
         "t.conf:3: mux.beat_interval_ms: ", 10, 10000, offsetof(struct cfg, beat_interval_ms)},
        {true, "mux = { beat_interval_ms = 10; dead_timeout_ms = %lld; };",
         "t.conf:3: mux.dead_timeout_ms: ", 20, 60000, offsetof(struct cfg, dead_timeout_ms)},
        {false, "mux = { beat_interval_ms = 10; dead_timeout_ms = 20;\n rehandshake_ms = %lld; };",
         "t.conf:5: mux.rehandshake_ms: ", 20, 60000, offsetof(struct cfg, rehandshake_ms)},
        {true, "mux = { reorder_max_ms = %lld; };", "t.conf:3: mux.reorder_max_ms: ", 0, 2000,
         offsetof(struct cfg, reorder_max_ms)},
        {true, "mux = { reorder_slots = %lld; };", "t.conf:3: mux.reorder_slots: ", 64, 65536,
         offsetof(struct cfg, reorder_slots)},
        {true, "mux = { rekey_after_s = %lld; };", "t.conf:3: mux.rekey_after_s: ", 5, 3600,
         offsetof(struct cfg, rekey_after_s)},
        {false, "mux = { rekey_after_s = %lld; };", "t.conf:4: mux.rekey_after_s: ", 5, 3600,
         offsetof(struct cfg, rekey_after_s)},
        {true, "tunnel = { link_mtu = %lld; };", "t.conf:3: tunnel.link_mtu: ", 576, 9000,
         offsetof(struct cfg, link_mtu)},
        {true, "tunnel = { mtu = %lld; };", "t.conf:3: tunnel.mtu: ", 576, 9000,
         offsetof(struct cfg, mtu)},
        {true, "socket_buffer = %lld;", "t.conf:3: socket_buffer: ", 65536, 268435456,
         offsetof(struct cfg, socket_buffer)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct range_case *rc = &cases[i];
        char snippet[256], range[64];
        snprintf(range, sizeof range, "expected %lld to %lld", rc->min, rc->max);
        long long vals[4] = {rc->min - 1, rc->min, rc->max, rc->max + 1};
        for (int j = 0; j < 4; j++) {
            snprintf(snippet, sizeof snippet, rc->fmt, vals[j]);
            int r = rc->master ? load_m(snippet) : load_s(snippet);
            if (j == 1 || j == 2) {
                expect_ok(r);
                assert_int_equal(field(rc->off), vals[j]);
            } else if (rc->off == offsetof(struct cfg, mtu) && j == 0) {
                expect_fail(r, rc->prefix, "575 is out of range; expected 0 (automatic");
            } else if (rc->off == offsetof(struct cfg, mtu)) {
                expect_fail(r, rc->prefix, "9001 is out of range; expected 0 to 9000");
            } else {
                expect_fail(r, rc->prefix, range);
            }
        }
    }
    /* link ids */
    expect_fail(load_links("( { id = -1; } )"), "t.conf:3: links[0].id: -1 is out of range;",
                "expected 0 to 255");
    expect_ok(load_links("( { id = 0; }, { id = 255; } )"));
    assert_int_equal(C.links[1].id, 255);
    expect_fail(load_links("( { id = 256; } )"), "t.conf:3: links[0].id: 256 is out of range;",
                NULL);
    /* mtu 0 is automatic; powers of two */
    expect_ok(load_m("tunnel = { mtu = 0; };"));
    assert_int_equal(C.mtu, 0);
    expect_fail(load_m("tunnel = { mtu = 1; };"), "t.conf:3: tunnel.mtu: 1 is out of range", NULL);
    expect_fail(load_m("mux = { reorder_slots = 1000; };"),
                "t.conf:3: mux.reorder_slots: 1000 is not a power of two", NULL);
    expect_ok(load_m("mux = { reorder_slots = 1024; };"));
    assert_int_equal(C.reorder_slots, 1024);
}

static void test_cross_checks(void **state)
{
    (void)state;
    /* beat raised, dead left at its default of 300: blame the beat */
    expect_msg(load_m("mux = {\n beat_interval_ms = 200;\n};"),
               "t.conf:4: mux.beat_interval_ms: 200 needs mux.dead_timeout_ms of at least 400, but "
               "dead_timeout_ms is 300 (the default); expected mux.dead_timeout_ms set too");
    expect_msg(load_m("mux = {\n beat_interval_ms = 100;\n dead_timeout_ms = 199;\n};"),
               "t.conf:5: mux.dead_timeout_ms: 199 is less than twice mux.beat_interval_ms (100); "
               "expected at least 200 (milliseconds)");
    expect_ok(load_m("mux = { beat_interval_ms = 100; dead_timeout_ms = 200; };"));
    /* slave: rehandshake must not be shorter than the dead timeout */
    expect_fail(load_s("mux = {\n dead_timeout_ms = 1000;\n rehandshake_ms = 999;\n};"),
                "t.conf:6: mux.rehandshake_ms: 999 is less than mux.dead_timeout_ms (1000)",
                "at least 1000");
    expect_fail(load_s("mux = {\n dead_timeout_ms = 3000;\n};"),
                "t.conf:5: mux.dead_timeout_ms: 3000 is more than mux.rehandshake_ms (2000, the "
                "default)",
                NULL);
    expect_ok(load_m("mux = { dead_timeout_ms = 3000; };")); /* the master has no rehandshake */
    /* IPv6 needs an MTU of 1280 */
    expect_fail(load_m("tunnel = {\n address6 = \"fd00::1/64\";\n mtu = 1279;\n};"),
                "t.conf:5: tunnel.mtu: 1279 is below 1280", NULL);
    expect_ok(load_m("tunnel = { address6 = \"fd00::1/64\"; mtu = 1280; };"));
    expect_ok(load_m("tunnel = { mtu = 1279; };"));
}

static bool scheduler_known(const char *name)
{
    return sched_find(name) != NULL;
}
static const struct cfg_names scheduler_names = {scheduler_known, sched_names};

static void test_scheduler(void **state)
{
    (void)state;
    expect_ok(load_m("mux = { scheduler = \"weighted\"; };"));
    assert_string_equal(C.scheduler, "weighted");
    expect_ok(load_s("mux = { scheduler = \"weighted\"; };"));
    assert_string_equal(C.scheduler, "weighted");
    expect_msg(load_s("mux = {\n scheduler = \"foo\";\n};"),
               "t.conf:5: mux.scheduler: \"foo\" is not a scheduler; expected one of: "
               "earliest, earliest-inorder, weighted");
    expect_msg(load_m("mux = { scheduler = \"\"; };"),
               "t.conf:3: mux.scheduler: \"\" is not a scheduler; expected one of: "
               "earliest, earliest-inorder, weighted");
    expect_msg(load_m("mux = { scheduler = \"weighted-but-much-too-long-for-any-name\"; };"),
               "t.conf:3: mux.scheduler: \"weighted-but-much-too-long-for-a\" is not a "
               "scheduler; expected one of: earliest, earliest-inorder, weighted");
    expect_fail(load_m("mux = { scheduler = 1; };"), "t.conf:3: mux.scheduler: got an integer",
                NULL);
    /* a program that gives no list: any name is taken here (mux_new checks it), "" is not */
    cfg_set_scheduler_names(NULL);
    expect_ok(load_m("mux = { scheduler = \"foo\"; };"));
    assert_string_equal(C.scheduler, "foo");
    expect_msg(load_m("mux = { scheduler = \"\"; };"),
               "t.conf:3: mux.scheduler: \"\" is not a scheduler");
    cfg_set_scheduler_names(&scheduler_names);
}

/* ---- the key ---- */

static void test_bad_keys(void **state)
{
    (void)state;
    /* the old shared key: refused, with the way to key pairs */
    expect_fail(load_raw("key = \"" KEY "\";\n", true),
                "t.conf:1: key: braid no longer uses one shared key", "\"sites\" entry");
    expect_fail(load_raw("key = \"" KEY "\";\n", false),
                "t.conf:1: key: braid no longer uses one shared key", "master_public_key");
    /* 16 bytes */
    expect_msg(load_raw("private_key = \"AAECAwQFBgcICQoLDA0ODw==\";\n", true),
               "t.conf:1: private_key: 16 bytes, expected 32 (44 characters of base64): a private "
               "key from `braid-master genkey`");
    /* 33 bytes */
    expect_fail(load_raw("private_key = \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g\";\n", false),
                "t.conf:1: private_key: 33 bytes, expected 32", "braid-slave genkey");
    expect_fail(load_raw("private_key = \"\";\n", true), "t.conf:1: private_key: 0 bytes", NULL);
    expect_fail(load_raw("private_key = \"not base64 at all!\";\n", true),
                "t.conf:1: private_key: not valid base64", "44 characters");
    /* padding missing, URL-safe alphabet: not the original variant (spaces around are fine) */
    expect_fail(load_raw("private_key = \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\";\n", true),
                "t.conf:1: private_key: not valid base64", NULL);
    expect_fail(load_raw("private_key = \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd-_8=\";\n", true),
                "t.conf:1: private_key: not valid base64", NULL);
    expect_ok(load("private_key = \" " KEY " \"; listen = \"127.0.0.1:1\";\n" PEER_M, true));
    expect_fail(load_raw("private_key = 12345;\n", true),
                "t.conf:1: private_key: got an integer; expected a private key", NULL);
    /* the message never echoes the key */
    expect_fail(load_raw("private_key = \"c2VjcmV0c2VjcmV0\";\n", true), "t.conf:1: private_key:",
                "12 bytes");
    assert_null(strstr(E, "c2VjcmV0c2VjcmV0"));
    /* the other keys */
    expect_fail(load_raw(KEYLINE "master_public_key = \"AAAA\";\n", false),
                "t.conf:2: master_public_key: 3 bytes", "braid-master pubkey");
    expect_fail(load_raw(KEYLINE "psk = \"AAAA\";\n", false), "t.conf:2: psk: 3 bytes",
                "genpsk");
    expect_fail(load_raw(KEYLINE "listen = \"127.0.0.1:1\";\nsites = ( { public_key = \"x\"; } );\n",
                         true),
                "t.conf:3: sites[0].public_key: not valid base64", "braid-slave pubkey");
    expect_fail(load_raw(KEYLINE "listen = \"127.0.0.1:1\";\nsites = ( { name = \"a\"; } );\n",
                         true),
                "t.conf:3: sites[0]: missing \"public_key\"", NULL);
    expect_fail(load_raw(KEYLINE "listen = \"127.0.0.1:1\";\nsites = ( { public_key = \"" PEER
                         "\"; psk = 1; } );\n",
                         true),
                "t.conf:3: sites[0].psk: got an integer", NULL);
    expect_fail(load_raw(KEYLINE "listen = \"127.0.0.1:1\";\nsites = ( { public_key = \"" PEER
                         "\"; pubkey = 1; } );\n",
                         true),
                "t.conf:3: sites[0].pubkey: unknown setting", NULL);
    expect_fail(load_raw(KEYLINE "listen = \"127.0.0.1:1\";\nsites = ( { public_key = \"" PEER
                         "\"; allowed_ips = [\"10.1.0.0/24\"]; },\n{ public_key = \"" PEER
                         "\"; allowed_ips = [\"10.2.0.0/24\"]; } );\n",
                         true),
                "t.conf:4: sites[1]: the public_key is already sites[0]'s", NULL);
    expect_fail(load_raw(KEYLINE "listen = \"127.0.0.1:1\";\nsites = ( );\n", true),
                "t.conf:3: sites: the list is empty", NULL);
    expect_fail(load_raw(KEYLINE "listen = \"127.0.0.1:1\";\nsites = { };\n", true),
                "t.conf:3: sites: got a group", NULL);
    /* both forms of the private key at once */
    expect_fail(load("private_key = \"" KEY "\";\nprivate_key_file = \"k\";\n"
                     "listen = \"127.0.0.1:1\";\n" PEER_M,
                     true),
                "t.conf:2: private_key_file: private_key is set too", NULL);
    /* a site's values arrive */
    expect_ok(load_raw(KEYLINE "listen = \"127.0.0.1:1\";\nsites = ( { name = \"home\"; "
                               "public_key = \"" PEER "\"; psk = \"" KEY "\"; } );\n",
                       true));
    assert_string_equal(C.sites[0].name, "home");
    assert_true(C.sites[0].has_psk);
    assert_true(C.has_private_key);
    for (int i = 0; i < 32; i++) {
        assert_int_equal(C.sites[0].public_key[i], 32 + i);
        assert_int_equal(C.sites[0].psk[i], i);
        assert_int_equal(C.private_key[i], i);
    }
}

/* base64 of the bytes 64..95 and 96..127: two more sites' public keys */
#define PEER2 "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8="
#define PEER3 "YGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn8="
#define SITES_HEAD KEYLINE "listen = \"127.0.0.1:1\";\nsites = (\n"

/* Many sites: names, keys, allowed_ips, and what makes them ambiguous. */
static void test_sites(void **state)
{
    (void)state;
    expect_ok(load_raw(SITES_HEAD
                       "{ name = \"a\"; public_key = \"" PEER "\"; allowed_ips = [\"10.1.0.0/24\", "
                       "\"fd00:1::/64\"]; },\n"
                       "{ name = \"b\"; public_key = \"" PEER2 "\"; psk = \"" KEY "\"; "
                       "allowed_ips = [\"10.2.0.0/16\", \"10.2.3.4\"]; },\n"
                       "{ name = \"c\"; public_key = \"" PEER3 "\"; allowed_ips = (\"0.0.0.0/0\"); }\n"
                       ");\n",
                       true));
    assert_int_equal(C.nsites, 3);
    assert_string_equal(C.sites[1].name, "b");
    assert_true(C.sites[1].has_psk);
    assert_false(C.sites[0].has_psk);
    assert_int_equal(C.sites[1].public_key[0], 64);
    assert_int_equal(C.sites[0].nallowed, 2);
    assert_int_equal(C.sites[0].allowed[1].family, AF_INET6);
    assert_int_equal(C.sites[0].allowed[1].len, 64);
    assert_int_equal(C.sites[1].allowed[1].len, 32); /* a bare address */
    assert_int_equal(C.sites[2].allowed[0].len, 0);
    assert_int_equal(C.sites[2].line, 6);
    assert_string_equal(C.sites[0].scheduler, "");
    assert_false(C.sites[0].has_reorder_max_ms);
    /* a site's own settings over the mux group's */
    expect_ok(load_raw(SITES_HEAD "{ public_key = \"" PEER "\"; allowed_ips = [\"10.1.0.0/24\"]; "
                       "scheduler = \"weighted\"; reorder_max_ms = 1500; },\n"
                       "{ public_key = \"" PEER2 "\"; allowed_ips = [\"10.2.0.0/24\"]; "
                       "reorder_max_ms = 0; } );\n", true));
    assert_string_equal(C.sites[0].scheduler, "weighted");
    assert_int_equal(C.sites[0].reorder_max_ms, 1500);
    assert_string_equal(C.sites[1].scheduler, "");
    assert_true(C.sites[1].has_reorder_max_ms);
    assert_int_equal(C.sites[1].reorder_max_ms, 0);
    expect_fail(load_raw(SITES_HEAD "{ public_key = \"" PEER "\"; scheduler = \"fastest\"; } );\n",
                         true),
                "t.conf:4: sites[0].scheduler: \"fastest\" is not a scheduler; expected one of: ",
                NULL);
    expect_fail(load_raw(SITES_HEAD "{ public_key = \"" PEER "\"; reorder_max_ms = 2001; } );\n",
                         true),
                "t.conf:4: sites[0].reorder_max_ms: 2001 is out of range; expected 0 to 2000", NULL);
    /* with two sites, each says which addresses are its own */
    expect_fail(load_raw(SITES_HEAD "{ public_key = \"" PEER "\"; allowed_ips = [\"10.1.0.0/24\"]; },\n"
                         "{ public_key = \"" PEER2 "\"; } );\n", true),
                "t.conf:5: sites[1]: missing \"allowed_ips\"", "where to send a packet");
    /* one prefix, one site; a longer one inside another site's is fine */
    expect_fail(load_raw(SITES_HEAD "{ name = \"a\"; public_key = \"" PEER "\"; allowed_ips = "
                         "[\"10.1.0.0/24\"]; },\n{ public_key = \"" PEER2 "\"; allowed_ips = "
                         "[\"10.9.0.0/16\", \"10.1.0.0/24\"]; } );\n", true),
                "t.conf:5: sites[1]: allowed_ips: 10.1.0.0/24 is already sites[0]'s (\"a\")",
                NULL);
    expect_ok(load_raw(SITES_HEAD "{ public_key = \"" PEER "\"; allowed_ips = [\"10.0.0.0/8\"]; },\n"
                       "{ public_key = \"" PEER2 "\"; allowed_ips = [\"10.1.0.0/16\"]; } );\n",
                       true));
    expect_fail(load_raw(SITES_HEAD "{ name = \"x\"; public_key = \"" PEER "\"; allowed_ips = "
                         "[\"10.1.0.0/24\"]; },\n{ name = \"x\"; public_key = \"" PEER2 "\"; "
                         "allowed_ips = [\"10.2.0.0/24\"]; } );\n", true),
                "t.conf:5: sites[1]: the name \"x\" is already used by sites[0] (line 4)", NULL);
    /* bad prefixes, with the setting's path */
    static const struct {
        const char *list, *want;
    } bad[] = {
        {"[\"10.1.0.5/24\"]", "sites[0].allowed_ips[0]: \"10.1.0.5/24\" has address bits set "
                              "after /24; did you mean \"10.1.0.0/24\"?"},
        {"[\"10.1.0.0/33\"]", "sites[0].allowed_ips[0]: \"10.1.0.0/33\": the prefix length must "
                              "be a number from 0 to 32"},
        {"[\"fd00::/129\"]", "from 0 to 128"},
        {"[\"10.1.0.0/\"]", "the prefix length must be"},
        {"[\"10.1.0.0/-1\"]", "the prefix length must be"},
        {"[\"10.1.0.0/2 4\"]", "the prefix length must be"},
        {"[\"10.1.0.0/024\"]", NULL}, /* leading zero: accepted as 24 */
        {"[\"10.1.0.0/00000024\"]", "the prefix length must be"},
        {"[\"10.1.0/24\"]", "\"10.1.0\" is not an IP address"},
        {"[\"/24\"]", "is not an IP prefix"},
        {"[\"\"]", "is not an IP prefix"},
        {"[\"10.1.0.0/24\", \"10.1.0.0/24\"]", "allowed_ips[1]: \"10.1.0.0/24\" is already in "
                                               "the list"},
        {"[ ]", "sites[0].allowed_ips: the list is empty"},
        {"[ 1 ]", "sites[0].allowed_ips[0]: got an integer"},
        {"\"10.1.0.0/24\"", "sites[0].allowed_ips: got a string; expected a list"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, SITES_HEAD "{ public_key = \"" PEER "\"; allowed_ips = %s; } );\n",
                 bad[i].list);
        if (!bad[i].want) {
            expect_ok(load_raw(text, true));
            assert_int_equal(C.sites[0].allowed[0].len, 24);
            continue;
        }
        expect_fail(load_raw(text, true), "t.conf:4: ", bad[i].want);
    }
    /* too many prefixes */
    char text[4096];
    int n = snprintf(text, sizeof text, SITES_HEAD "{ public_key = \"" PEER "\"; allowed_ips = [");
    for (int i = 0; i <= CFG_MAX_ALLOWED; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, "%s\"10.%d.0.0/16\"", i ? "," : "", i);
    snprintf(text + n, sizeof text - (size_t)n, "]; } );\n");
    expect_fail(load_raw(text, true), "t.conf:4: sites[0].allowed_ips: 33 prefixes", NULL);
}

/* private_key_file: read by cfg_load, relative to the config's folder, refused when group or
 * others may read it, with the config's file and line. */
static void test_private_key_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/braid-test-cfgkey-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char conf[128], key[128];
    snprintf(conf, sizeof conf, "%s/m.conf", dir);
    snprintf(key, sizeof key, "%s/m.key", dir);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f, "listen = \"127.0.0.1:7000\";\nprivate_key_file = \"m.key\";\n" PEER_M);
    fclose(f);
    f = fopen(key, "w");
    assert_non_null(f);
    fprintf(f, "%s\n", KEY);
    fclose(f);
    assert_int_equal(chmod(key, 0600), 0);
    expect_ok(cfg_load(conf, true, &C, E, sizeof E));
    assert_true(C.has_private_key);
    for (int i = 0; i < 32; i++) assert_int_equal(C.private_key[i], i);
    assert_string_equal(C.warning, ""); /* a 0644 config without a secret in it is fine */
    assert_int_equal(chmod(key, 0644), 0);
    char want[512];
    snprintf(want, sizeof want, "%s:2: private_key_file: %s: group or others", conf, key);
    expect_fail(cfg_load(conf, true, &C, E, sizeof E), want, "chmod 600");
    assert_false(C.has_private_key);
    unlink(key);
    snprintf(want, sizeof want, "%s:2: private_key_file: %s: cannot open", conf, key);
    expect_fail(cfg_load(conf, true, &C, E, sizeof E), want, NULL);
    /* cfg_load_string reads no file */
    expect_ok(load_raw("listen = \"127.0.0.1:7000\";\nprivate_key_file = \"/nonexistent\";\n" PEER_M,
                       true));
    assert_false(C.has_private_key);
    /* a key or psk in the config itself: a warning (not an error) while others may read it */
    f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f, "listen = \"127.0.0.1:7000\";\n" KEYLINE PEER_M);
    fclose(f);
    assert_int_equal(chmod(conf, 0640), 0);
    expect_ok(cfg_load(conf, true, &C, E, sizeof E));
    assert_non_null(strstr(C.warning, "group or others may read it (mode 640)"));
    assert_non_null(strstr(C.warning, "chmod 600"));
    assert_int_equal(chmod(conf, 0600), 0);
    expect_ok(cfg_load(conf, true, &C, E, sizeof E));
    assert_string_equal(C.warning, "");
    unlink(conf);
    rmdir(dir);
}

static void test_zeroed_on_failure(void **state)
{
    (void)state;
    static const uint8_t zero[32];
    memset(&C, 0xAA, sizeof C);
    expect_fail(load_m("log_level = \"loud\";"), "t.conf:3: log_level: \"loud\" is not a log level",
                NULL);
    assert_memory_equal(C.private_key, zero, 32);
    assert_int_equal(C.socket_buffer, 0);
    assert_string_equal(C.path, "");
}

/* ---- links ---- */

static void test_link_duplicates(void **state)
{
    (void)state;
    expect_msg(load_links("(\n { name = \"a\"; id = 4; },\n { name = \"b\"; id = 4; }\n)"),
               "t.conf:5: links[1].id: 4 is already used by links[0] (\"a\"); expected a unique id "
               "from 0 to 255");
    /* the first link takes id 1 explicitly, the second defaults to 1 */
    expect_fail(load_links("(\n { id = 1; },\n { name = \"b\"; }\n)"),
                "t.conf:5: links[1]: its default id 1 (its position in the list) is already used "
                "by links[0]",
                NULL);
    expect_msg(load_links("(\n { name = \"wan\"; },\n { name = \"wan\"; }\n)"),
               "t.conf:5: links[1].name: \"wan\" is already used by links[0]; expected a unique "
               "name");
    expect_fail(load_links("(\n { name = \"link1\"; id = 9; },\n { }\n)"),
                "t.conf:5: links[1]: its default name \"link1\" is already used by links[0]", NULL);
    /* same address and port */
    expect_fail(
        load_links("(\n { bind = \"127.0.0.1:5000\"; },\n { bind = \"127.0.0.1:5000\"; }\n)"),
        "t.conf:5: links[1].bind: the same address and port as links[0]", NULL);
    expect_ok(load_links("( { bind = \"127.0.0.1:5000\"; }, { bind = \"127.0.0.1:5001\"; } )"));
}

static void test_link_socks5(void **state)
{
    (void)state;
    expect_msg(load_links("(\n { type = \"socks5\"; }\n)"),
               "t.conf:4: links[0]: type \"socks5\" needs \"proxy\" (the SOCKS5 proxy's address, "
               "e.g. \"192.168.43.1:1080\")");
    expect_msg(load_links("(\n {\n  proxy = \"192.168.43.1:1080\";\n }\n)"),
               "t.conf:5: links[0].proxy: only used by links of type \"socks5\"; add type = "
               "\"socks5\"; or remove \"proxy\"");
    expect_fail(load_links("(\n { username = \"u\"; password = \"p\"; }\n)"),
                "t.conf:4: links[0].username: only used by links of type \"socks5\"", NULL);
    expect_msg(load_links("(\n { type = \"socks5\"; proxy = \"192.168.43.1:1080\";\n"
                          "   username = \"u\"; }\n)"),
               "t.conf:5: links[0].username: set without \"password\"; expected both username and "
               "password (RFC 1929 authentication) or neither");
    expect_fail(
        load_links("( { type = \"socks5\"; proxy = \"phone.lan:1080\"; password = \"p\"; } )"),
        "t.conf:3: links[0].password: set without \"username\"", NULL);
    expect_fail(load_links("( { type = \"socks5\"; proxy = \"192.168.43.1\"; } )"),
                "t.conf:3: links[0].proxy: \"192.168.43.1\": missing \":port\"", "host:port");
    expect_fail(load_links("( { type = \"socks4\"; } )"),
                "t.conf:3: links[0].type: \"socks4\" is not a link type", NULL);
    /* socks5-tcp: a proxy needed, like socks5; tcp_links on the master: a boolean, default on */
    expect_ok(load_links("( { type = \"socks5-tcp\"; proxy = \"192.168.43.1:1080\"; } )"));
    assert_int_equal(C.links[0].type, CFG_LINK_SOCKS5_TCP);
    assert_int_equal(C.links[0].proxy_port, 1080);
    expect_fail(load_links("( { type = \"socks5-tcp\"; } )"),
                "t.conf:3: links[0]: type \"socks5-tcp\" needs \"proxy\"", NULL);
    expect_ok(load_m(""));
    assert_true(C.tcp_links);
    assert_false(C.tcp_links_set);
    expect_ok(load_m("tcp_links = false;"));
    assert_false(C.tcp_links);
    assert_true(C.tcp_links_set);
    expect_fail(load_m("tcp_links = \"no\";"),
                "t.conf:3: tcp_links: got a string; expected true or false", NULL);
    expect_fail(load_s("tcp_links = true;"), "t.conf:4: tcp_links:", "socks5-tcp");
    /* tcp_lane_fast_open: the slave's, a boolean, default on */
    expect_ok(load_s(""));
    assert_true(C.tcp_lane_fast_open);
    expect_ok(load_s("tcp_lane_fast_open = false;"));
    assert_false(C.tcp_lane_fast_open);
    expect_fail(load_s("tcp_lane_fast_open = 1;"), "t.conf:4: tcp_lane_fast_open:",
                "expected true or false");
    expect_fail(load_m("tcp_lane_fast_open = true;"), "t.conf:3: tcp_lane_fast_open:",
                "braid-slave only");

    char u255[256], u256[257], text[1024];
    memset(u255, 'u', 255);
    u255[255] = '\0';
    memset(u256, 'u', 256);
    u256[256] = '\0';
    snprintf(text, sizeof text,
             "( { type = \"socks5\"; proxy = \"[2001:db8::1]:1080\"; bind = \"[::1]:0\";"
             " interface = \"wlan0\"; username = \"%s\"; password = \"pw\"; } )",
             u255);
    expect_ok(load_links(text));
    assert_int_equal(C.links[0].type, CFG_LINK_SOCKS5);
    assert_string_equal(C.links[0].proxy_host, "2001:db8::1");
    assert_int_equal(C.links[0].proxy_port, 1080);
    assert_string_equal(C.links[0].username, u255);
    assert_string_equal(C.links[0].password, "pw");
    assert_string_equal(C.links[0].interface, "wlan0");
    snprintf(text, sizeof text,
             "( { type = \"socks5\"; proxy = \"192.168.43.1:1080\"; username = \"%s\"; "
             "password = \"pw\"; } )",
             u256);
    expect_fail(load_links(text), "t.conf:3: links[0].username: 256 bytes; expected 1 to 255",
                NULL);
    expect_fail(load_links("( { type = \"socks5\"; proxy = \"192.168.43.1:1080\"; username = \"\"; "
                           "password = \"pw\"; } )"),
                "t.conf:3: links[0].username: 0 bytes; expected 1 to 255", NULL);

    /* proxy_timeout_ms: default, range, socks5 only */
    expect_ok(load_links("( { type = \"socks5\"; proxy = \"phone.lan:1080\"; } )"));
    assert_int_equal(C.links[0].proxy_timeout_ms, 5000);
    assert_string_equal(C.links[0].proxy_host, "phone.lan");
    expect_ok(load_links("( { type = \"socks5\"; proxy = \"phone.lan:1080\"; "
                         "proxy_timeout_ms = 100; } )"));
    assert_int_equal(C.links[0].proxy_timeout_ms, 100);
    expect_msg(load_links("(\n { type = \"socks5\"; proxy = \"phone.lan:1080\";\n"
                          "   proxy_timeout_ms = 99; }\n)"),
               "t.conf:5: links[0].proxy_timeout_ms: 99 is out of range; expected 100 to 60000 "
               "(milliseconds)");
    expect_fail(load_links("( { proxy_timeout_ms = 1000; } )"),
                "t.conf:3: links[0].proxy_timeout_ms: only used by links of type \"socks5\"", NULL);
}

static void test_dns_servers(void **state)
{
    (void)state;
    expect_ok(load_s(""));
    assert_string_equal(C.dns_servers, "");
    expect_ok(load_s("dns_servers = \"192.168.1.1\";"));
    assert_string_equal(C.dns_servers, "192.168.1.1:53");
    expect_ok(load_s("dns_servers = \" 198.18.0.53:5353 , 2001:db8::53, [2001:db8::54]:5300\";"));
    assert_string_equal(C.dns_servers, "198.18.0.53:5353,[2001:db8::53]:53,[2001:db8::54]:5300");
    expect_msg(load_s("dns_servers = \"dns.google\";"),
               "t.conf:4: dns_servers: \"dns.google\" is not an IP address with an optional port; "
               "expected e.g. \"192.168.1.1, 198.18.0.53:5353\" (names cannot be used: they would "
               "need DNS themselves)");
    expect_fail(load_s("dns_servers = \"1.1.1.1,,8.8.8.8\";"),
                "t.conf:4: dns_servers: an empty address in the list", NULL);
    expect_fail(load_s("dns_servers = \"\";"), "t.conf:4: dns_servers: 0 bytes", NULL);
    expect_fail(load_s("dns_servers = \"1.1.1.1:0\";"), "t.conf:4: dns_servers: \"1.1.1.1:0\"",
                NULL);
    expect_fail(load_s("dns_servers = 53;"), "t.conf:4: dns_servers: got an integer", NULL);
    expect_fail(load_m("dns_servers = \"1.1.1.1\";"), "t.conf:3: dns_servers: ",
                "braid-master resolves no names");
    /* many addresses: refused once their normal forms do not fit, never truncated */
    char text[400] = "dns_servers = \"";
    for (int i = 0; i < 20; i++) strcat(text, "2001:db8::1,");
    strcat(text, "1.1.1.1\";");
    expect_fail(load_s(text), "t.conf:4: dns_servers: ", "too many addresses");
}

static void test_link_count_edges(void **state)
{
    (void)state;
    char text[2048];
    for (int n = 32; n <= 33; n++) {
        size_t used = (size_t)snprintf(text, sizeof text, "(");
        for (int i = 0; i < n; i++)
            used += (size_t)snprintf(text + used, sizeof text - used, "%s\n{ }", i ? "," : "");
        snprintf(text + used, sizeof text - used, " )");
        if (n == 32) {
            expect_ok(load_links(text));
            assert_int_equal(C.nlinks, 32);
            assert_string_equal(C.links[31].name, "link31");
        } else {
            /* the 33rd group is on line 3 + 33 */
            expect_msg(load_links(text),
                       "t.conf:36: links[32]: too many links (33); expected at most 32");
        }
    }
}

static void test_link_fields(void **state)
{
    (void)state;
    char buf[ADDR_STRLEN];
    expect_ok(load_links("( { bind = \"10.0.0.1\"; }, { bind = \"10.0.0.2:0\"; },"
                         " { bind = \"10.0.0.3:65535\"; }, { interface = \"eth0.100\"; },"
                         " { name = \"a-b_c.d\"; } )"));
    assert_string_equal(ip_of(&C.links[0].bind, buf, sizeof buf), "10.0.0.1:0");
    assert_string_equal(ip_of(&C.links[1].bind, buf, sizeof buf), "10.0.0.2:0");
    assert_string_equal(ip_of(&C.links[2].bind, buf, sizeof buf), "10.0.0.3:65535");
    assert_false(C.links[3].has_bind);
    assert_string_equal(C.links[3].interface, "eth0.100");
    assert_string_equal(C.links[4].name, "a-b_c.d");

    static const char *const bad_bind[] = {
        "10.0.0.1:65536", "eth0",       "[10.0.0.1]:5", "10.0.0.1:", "[::1",
        "[::1]x",         "10.0.0.256", "10.0.0.1:+5",  "",          "10.0.0.1:123456",
    };
    for (size_t i = 0; i < sizeof bad_bind / sizeof bad_bind[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "( { bind = \"%s\"; } )", bad_bind[i]);
        expect_fail(load_links(text),
                    "t.conf:3: links[0].bind: ", "is not an IP address with an optional port");
    }
    /* the family of bind must match the master's */
    expect_msg(load_links("( { bind = \"::1\"; } )"),
               "t.conf:3: links[0].bind: [::1]:0 is an IPv6 address but the master (127.0.0.1) is "
               "IPv4; expected an IPv4 address (or no bind)");
    expect_ok(
        load(KEYLINE "master = \"[::1]:7000\";\nlinks = ( { bind = \"[::1]:4000\"; } );\n", false));
    assert_string_equal(ip_of(&C.links[0].bind, buf, sizeof buf), "[::1]:4000");
    assert_string_equal(C.master_host, "::1");
    /* a master given by name: no family check */
    expect_ok(load(
        KEYLINE "master = \"braid.example.org:7000\";\nlinks = ( { bind = \"::1\"; } );\n", false));
    /* socks5: the family of bind must match the proxy's */
    expect_fail(
        load_links("( { type = \"socks5\"; proxy = \"[fd00::1]:1080\"; bind = \"10.0.0.1\"; } )"),
        "t.conf:3: links[0].bind: 10.0.0.1:0 is an IPv4 address but the proxy (fd00::1)", NULL);

    static const char *const bad_if[] = {"", "sixteen-chars-xx", "a/b", "a b", "a:b", ".", ".."};
    for (size_t i = 0; i < sizeof bad_if / sizeof bad_if[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "( { interface = \"%s\"; } )", bad_if[i]);
        expect_fail(load_links(text),
                    "t.conf:3: links[0].interface: ", "is not a valid interface name");
    }
    expect_ok(load_links("( { interface = \"fifteen-chars-x\"; } )"));

    static const char *const bad_name[] = {"", "wan 0", "wan/0",
                                           "x234567890123456789012345678901z"};
    for (size_t i = 0; i < sizeof bad_name / sizeof bad_name[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "( { name = \"%s\"; } )", bad_name[i]);
        expect_fail(load_links(text), "t.conf:3: links[0].name: ", "is not a valid link name");
    }
    expect_ok(load_links("( { name = \"x23456789012345678901234567890z\"; } )"));
    assert_int_equal(strlen(C.links[0].name), 31);
}

/* ---- master address ---- */

static void test_master_address(void **state)
{
    (void)state;
    static const struct {
        const char *v, *host;
        unsigned port;
    } good[] = {
        {"203.0.113.5:7000", "203.0.113.5", 7000},
        {"[2001:db8::5]:1", "2001:db8::5", 1},
        {"braid.example.org:65535", "braid.example.org", 65535},
        {"localhost:7", "localhost", 7},
        {"a-b.example.org.:9", "a-b.example.org.", 9},
        {"x1.2.3.4a:9", "x1.2.3.4a", 9},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, KEYLINE "master = \"%s\";\nlinks = ( { } );\n", good[i].v);
        expect_ok(load(text, false));
        assert_string_equal(C.master_host, good[i].host);
        assert_int_equal(C.master_port, good[i].port);
    }
    static const char *const bad[] = {
        "127.0.0.1",      "127.0.0.1:0", "127.0.0.1:65536", "::1:7000",   "[example.org]:7000",
        "bad_host:7000",  "-a.org:1",    "a..b:1",          "1.2.3:7000", "a-.org:1",
        "[1.2.3.4]:7000", ":7000",       "host:port",       "a b:1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, KEYLINE "master = \"%s\";\nlinks = ( { } );\n", bad[i]);
        expect_fail(load(text, false), "t.conf:2: master: ", "expected");
    }
    /* length limits of names: 253 characters with labels of at most 63 */
    char name[300], text[700];
    size_t n = 0;
    while (n < 253) {
        size_t label = 253 - n >= 62 ? 61 : 253 - n;
        memset(name + n, 'a', label);
        n += label;
        if (n < 253) name[n++] = '.';
    }
    name[253] = '\0';
    snprintf(text, sizeof text, KEYLINE "master = \"%s:7000\";\nlinks = ( { } );\n", name);
    expect_ok(load(text, false));
    assert_int_equal(strlen(C.master_host), 253);
    snprintf(text, sizeof text, KEYLINE "master = \"b%s:7000\";\nlinks = ( { } );\n", name);
    expect_fail(load(text, false), "t.conf:2: master: ", "nor a valid host name");
    memset(name, 'a', 64);
    name[64] = '\0';
    snprintf(text, sizeof text, KEYLINE "master = \"%s.org:7000\";\nlinks = ( { } );\n", name);
    expect_fail(load(text, false), "t.conf:2: master: ", "nor a valid host name");
    /* listen must be an IP literal */
    expect_fail(load(KEYLINE "listen = \"localhost:7000\";\n", true),
                "t.conf:2: listen: ", "is not an IPv4 or IPv6 address");
    expect_ok(load(KEYLINE "listen = \"[::]:7000\";\n", true));
}

/* ---- tunnel and misc ---- */

/* A link may name its own master address; its bind address must match that address's family. */
static void test_link_master(void **state)
{
    (void)state;
    expect_ok(load_links("( { master = \"127.0.0.2:7001\"; }, { } )"));
    assert_true(C.links[0].has_master);
    assert_string_equal(C.links[0].master_host, "127.0.0.2");
    assert_int_equal(C.links[0].master_port, 7001);
    assert_false(C.links[1].has_master);
    expect_ok(load_links("( { master = \"[::1]:7001\"; bind = \"::1\"; } )"));
    assert_true(C.links[0].has_master);
    expect_fail(load_links("( { master = \"[::1]:7001\"; bind = \"127.0.0.1\"; } )"),
                "t.conf:3: links[0].bind:", "IPv6");
    expect_fail(load_links("( { master = \"127.0.0.2\"; } )"), "t.conf:3: links[0].master:",
                ":port");
    expect_fail(load_links("( { master = 7000; } )"), "t.conf:3: links[0].master:", NULL);
}

static void test_tunnel(void **state)
{
    (void)state;
    expect_ok(load_m("tunnel = { name = \"fifteen-chars-x\"; address = \"0.0.0.0/0\";"
                     " address6 = \"fd00::1/128\"; link_mtu = 9000; };"));
    assert_string_equal(C.tun_name, "fifteen-chars-x");
    assert_string_equal(C.tun_address, "0.0.0.0/0");
    assert_string_equal(C.tun_address6, "fd00::1/128");
    assert_int_equal(C.link_mtu, 9000);
    expect_ok(load_m("tunnel = { address = \"198.18.0.1/32\"; address6 = \"::/0\"; };"));

    static const char *const bad4[] = {
        "198.18.0.1",      "198.18.0.1/33",  "198.18.0.256/30", "198.18.0.1/", "198.18.0.1/+3",
        "198.18.0.1/0030", "198.18.0.1/030", "198.18.0/24",     "/24",         "198.18.0.1/30/1"};
    for (size_t i = 0; i < sizeof bad4 / sizeof bad4[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "tunnel = { address = \"%s\"; };", bad4[i]);
        expect_fail(load_m(text),
                    "t.conf:3: tunnel.address: ", "expected \"a.b.c.d/len\" with len 0 to 32");
    }
    expect_fail(load_m("tunnel = { address = \"fd00::1/64\"; };"),
                "t.conf:3: tunnel.address: ", "(IPv6 addresses go in \"address6\")");
    static const char *const bad6[] = {"fd00::1", "fd00::1/129", "fd00:::1/64", "fd00::1/x",
                                       "1.2.3.4/24"};
    for (size_t i = 0; i < sizeof bad6 / sizeof bad6[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "tunnel = { address6 = \"%s\"; };", bad6[i]);
        expect_fail(load_m(text),
                    "t.conf:3: tunnel.address6: ", "expected \"x::y/len\" with len 0 to 128");
    }
    expect_fail(load_m("tunnel = { name = \"sixteen-chars-xx\"; };"),
                "t.conf:3: tunnel.name: ", "1 to 15 characters");
    expect_fail(load_m("tunnel = { name = \"\"; };"), "t.conf:3: tunnel.name: ", NULL);
    expect_fail(load_m("tunnel = { notun_listen = \"localhost:7100\"; };"),
                "t.conf:3: tunnel.notun_listen: ", "with an IP address");
    expect_fail(load_m("tunnel = { notun_listen = \"127.0.0.1\"; };"),
                "t.conf:3: tunnel.notun_listen: ", "missing \":port\"");
}

static void test_misc_settings(void **state)
{
    (void)state;
    char path[200], text[300];
    memset(path, 'p', sizeof path);
    path[0] = '/';
    path[107] = '\0';
    snprintf(text, sizeof text, "control_socket = \"%s\";", path);
    expect_ok(load_m(text));
    assert_int_equal(strlen(C.control_socket), 107);
    path[107] = 'p';
    path[108] = '\0';
    snprintf(text, sizeof text, "control_socket = \"%s\";", path);
    expect_fail(load_m(text),
                "t.conf:3: control_socket: 108 bytes long; expected a path of 1 to 107", NULL);
    expect_fail(load_m("control_socket = \"\";"), "t.conf:3: control_socket: 0 bytes long", NULL);

    static const char *const levels[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        snprintf(text, sizeof text, "log_level = \"%s\";", levels[i]);
        expect_ok(load_m(text));
        assert_int_equal(C.log_level, i);
    }
    expect_msg(load_m("log_level = \"verbose\";"),
               "t.conf:3: log_level: \"verbose\" is not a log level; expected \"error\", \"warn\", "
               "\"info\" or \"debug\"");
    expect_fail(load_m("log_level = \"INFO\";"), "t.conf:3: log_level: ", NULL);
    /* control characters from the file do not reach the terminal */
    expect_fail(load_m("log_level = \"\\x1b[31mred\";"), "t.conf:3: log_level: \"?[31mred\"", NULL);
}

/* ---- @include and libconfig quirks ---- */

static void test_include_refused(void **state)
{
    (void)state;
    /* a real, valid file: it must not be read */
    char path[] = "/tmp/braid-test-cfg-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char inc[] = "listen = \"127.0.0.1:7000\";\n";
    assert_int_equal(write(fd, inc, sizeof inc - 1), (ssize_t)(sizeof inc - 1));
    close(fd);
    char text[512];
    snprintf(text, sizeof text, KEYLINE "\n  @include \"%s\"\n", path);
    expect_msg(load(text, true),
               "t.conf:3: @include is not supported; expected all settings in this one file");
    snprintf(text, sizeof text, KEYLINE "\t@include \"%s\"\n", path);
    expect_fail(load(text, true), "t.conf:2: @include is not supported", NULL);
    unlink(path);
    expect_fail(load("@include \"/dev/zero\"\n", true), "t.conf:1: @include", NULL);
}

static void test_big_integers(void **state)
{
    (void)state;
    /* libconfig 1.5 would read these as 65536 and 100 */
    expect_fail(load_m("socket_buffer = 4295032832;"),
                "t.conf:3: socket_buffer: the number 4295032832 is out of range", NULL);
    expect_fail(load_m("mux = {\n beat_interval_ms = -4294967196;\n};"),
                "t.conf:4: mux.beat_interval_ms: the number -4294967196 is out of range", NULL);
    expect_fail(load_m("socket_buffer = 0x100010000;"),
                "t.conf:3: socket_buffer: the number 0x100010000 is out of range", NULL);
    expect_fail(load_m("socket_buffer = 0x80000000;"), "t.conf:3: socket_buffer: the number", NULL);
    expect_fail(load_m("socket_buffer = 4295032832L;"),
                "t.conf:3: socket_buffer: the number 4295032832L is out of range", NULL);
    expect_fail(load_m("socket_buffer = 99999999999999999999999999999999999999999999999999;"),
                "t.conf:3: socket_buffer: the number", "...");
    expect_fail(load_m("socket_buffer = 2147483648;"), "t.conf:3: socket_buffer: the number", NULL);
    /* int32 edge: range-checked normally */
    expect_fail(load_m("socket_buffer = 2147483647;"),
                "t.conf:3: socket_buffer: 2147483647 is out of range", NULL);
    expect_fail(load_m("socket_buffer = 1e300;"), "t.conf:3: socket_buffer: got a decimal number",
                NULL);
    /* big digit strings in comments, strings and names are not numbers */
    expect_ok(load_m(
        "# 99999999999\n/* 99999999999 */ // 99999999999\n"
        "control_socket = \"/tmp/99999999999\\\\\";\ntunnel = { name = \"b99999999999\"; };"));
    assert_string_equal(C.control_socket, "/tmp/99999999999\\");
    expect_ok(load_m("socket_buffer = 000000000000000065536;"));
    assert_int_equal(C.socket_buffer, 65536);
}

/* ---- hostile input ---- */

static void test_hostile(void **state)
{
    (void)state;
    size_t big = 200000;
    char *text = malloc(big + 100);
    assert_non_null(text);

    /* a very long key */
    memcpy(text, "private_key = \"", 15);
    memset(text + 15, 'A', big);
    strcpy(text + 15 + big, "\";\n");
    expect_fail(load(text, true), "t.conf:1: private_key: not valid base64", NULL);

    /* a very long setting name */
    memset(text, 'z', big);
    strcpy(text + big, " = 1;\n");
    expect_fail(load(text, true), "t.conf:1: ", "unknown setting");

    /* very long string values */
    strcpy(text, KEYLINE "master = \"");
    size_t n = strlen(text);
    memset(text + n, 'a', big);
    strcpy(text + n + big, ":1\";\nlinks = ( { } );\n");
    expect_fail(load(text, false), "t.conf:2: master: ", NULL);

    /* deep nesting: lists, groups */
    for (size_t i = 0; i < big; i++)
        text[i] = '(';
    text[big] = '\0';
    expect_fail(load(text, true), "t.conf:", NULL);
    strcpy(text, "a = ");
    n = strlen(text);
    for (int i = 0; i < 16; i++)
        n += (size_t)sprintf(text + n, "{ a = ");
    strcpy(text + n, "1;");
    n += 2;
    for (int i = 0; i < 16; i++)
        text[n++] = '}', text[n++] = ';';
    text[n] = '\0';
    expect_fail(load(text, true), "t.conf:1: a: unknown setting", NULL); /* 16 levels parse */
    strcpy(text, "a = ");
    n = strlen(text);
    for (int i = 0; i < 17; i++)
        n += (size_t)sprintf(text + n, "{ a = ");
    expect_fail(load(text, true),
                "t.conf:1: a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a: nested more than 16", NULL);
    strcpy(text, "a = ");
    n = strlen(text);
    for (int i = 0; i < 20000; i++)
        n += (size_t)sprintf(text + n, "{ a = ");
    expect_fail(load(text, true), "t.conf:1: a.a.a.a", "nested more than 16 levels deep");
    /* too many values */
    strcpy(text, "a = [ 1");
    n = strlen(text);
    for (int i = 0; i < 5000; i++)
        n += (size_t)sprintf(text + n, ", 1");
    strcpy(text + n, " ];");
    expect_fail(load(text, true), "t.conf:1: a: more than 4096 values", NULL);
    strcpy(text, KEYLINE "listen = \"127.0.0.1:7000\";\nmux = ");
    n = strlen(text);
    for (int i = 0; i < 3000; i++)
        n += (size_t)sprintf(text + n, "( ");
    for (int i = 0; i < 3000; i++)
        n += (size_t)sprintf(text + n, ") ");
    strcpy(text + n, ";");
    expect_fail(load(text, true), "t.conf:3: mux[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]: ",
                "nested more than 16 levels deep");
    expect_fail(load_m("mux = ( );"), "t.conf:3: mux: got a list ( ); expected a group", NULL);

    /* binary garbage */
    srand(12345);
    for (int round = 0; round < 2000; round++) {
        size_t len = (size_t)(rand() % 300);
        for (size_t i = 0; i < len; i++)
            text[i] = (char)(1 + rand() % 255);
        text[len] = '\0';
        assert_int_equal(load(text, round & 1), -1);
        assert_true(strncmp(E, "t.conf", 6) == 0);
    }
    /* garbage after a valid config */
    snprintf(text, big, KEYLINE "listen = \"127.0.0.1:7000\";\n\x01\x02\xff\xfe");
    expect_fail(load(text, true), "t.conf:3: found the byte 0x01 where a setting belongs", NULL);
    free(text);

    /* more lines than libconfig counts */
    text = malloc(70000);
    assert_non_null(text);
    memset(text, '\n', 69999);
    text[69999] = '\0';
    expect_msg(load(text, true), "t.conf: more than 65535 lines; expected a braid config");
    free(text);

    /* tiny or missing error buffers */
    char one[1] = {'x'};
    assert_int_equal(cfg_load_string("x", "t", true, &C, one, sizeof one), -1);
    assert_int_equal(one[0], '\0');
    assert_int_equal(cfg_load_string("x", "t", true, &C, NULL, 0), -1);
    assert_int_equal(cfg_load_string(NULL, NULL, true, &C, E, sizeof E), -1);
    expect_fail(-1, "(string): missing required setting \"private_key_file\"", NULL);
}

static void test_files(void **state)
{
    (void)state;
    expect_fail(cfg_load("/nonexistent/braid.conf", true, &C, E, sizeof E),
                "/nonexistent/braid.conf: cannot open: No such file or directory;",
                "conf/master.conf");
    expect_fail(cfg_load("/tmp", false, &C, E, sizeof E), "/tmp: not a regular file;",
                "conf/slave.conf");

    char path[] = "/tmp/braid-test-cfg-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    /* error line numbers are the file's */
    const char bad[] = KEYLINE "listen = \"127.0.0.1:7000\";\n\nmux = { reorder_slots = 3; };\n";
    assert_int_equal(write(fd, bad, sizeof bad - 1), (ssize_t)(sizeof bad - 1));
    char want[128];
    snprintf(want, sizeof want, "%s:4: mux.reorder_slots: 3 is out of range", path);
    expect_fail(cfg_load(path, true, &C, E, sizeof E), want, NULL);
    /* a NUL byte */
    assert_int_equal(ftruncate(fd, 0), 0);
    assert_int_equal(pwrite(fd, "key\0 = 1;\n", 10, 0), 10);
    expect_fail(cfg_load(path, true, &C, E, sizeof E), path, "contains a NUL byte");
    /* too large */
    assert_int_equal(ftruncate(fd, 2 * 1024 * 1024), 0);
    expect_fail(cfg_load(path, true, &C, E, sizeof E), path, "is too large");
    close(fd);
    unlink(path);
}

int main(void)
{
    cfg_set_scheduler_names(&scheduler_names);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_master),
        cmocka_unit_test(test_example_slave),
        cmocka_unit_test(test_examples_share_key),
        cmocka_unit_test(test_examples_wrong_role),
        cmocka_unit_test(test_defaults_master),
        cmocka_unit_test(test_defaults_slave),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_duplicate_setting),
        cmocka_unit_test(test_unknown_settings),
        cmocka_unit_test(test_wrong_role),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_cross_checks),
        cmocka_unit_test(test_scheduler),
        cmocka_unit_test(test_bad_keys),
        cmocka_unit_test(test_sites),
        cmocka_unit_test(test_private_key_file),
        cmocka_unit_test(test_zeroed_on_failure),
        cmocka_unit_test(test_link_duplicates),
        cmocka_unit_test(test_link_socks5),
        cmocka_unit_test(test_dns_servers),
        cmocka_unit_test(test_link_count_edges),
        cmocka_unit_test(test_link_fields),
        cmocka_unit_test(test_master_address),
        cmocka_unit_test(test_link_master),
        cmocka_unit_test(test_tunnel),
        cmocka_unit_test(test_misc_settings),
        cmocka_unit_test(test_include_refused),
        cmocka_unit_test(test_big_integers),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_files),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    for (int i = 0; i < nheld; i++) free(held[i]);
    return rc;
}
