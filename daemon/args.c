/* args.c: the daemons' command line and the sub-commands that do not run the daemon (genkey,
 * pubkey, genpsk; status, json, reload and link through the control socket); loading the config
 * for the others. */
#include "daemon.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/control.h"
#include "../common/keys.h"
#include "../common/log.h"
#include "../mux/noise.h"
#include "../mux/sched.h"
#include "../mux/session.h"
#include "../mux/wire.h"
#include "../tundev/tundev.h"

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
