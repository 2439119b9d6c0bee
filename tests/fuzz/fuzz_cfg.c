/* fuzz_cfg.c: libFuzzer target for the config loader: cfg_load_string on arbitrary text, as
 * braid-master and as braid-slave; it must return 0 or -1 with a message, never crash or leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The loader takes a C string; text after a NUL byte is not seen (cfg_load refuses files
     * with NUL bytes). @include is refused by the loader itself, so no file is ever opened. */
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    static struct cfg c;
    char err[512];
    for (int master = 0; master <= 1; master++) {
        err[0] = '\0';
        int rc = cfg_load_string(text, "fuzz.conf", master, &c, err, sizeof err);
        if (rc != 0 && rc != -1) abort();
        /* A failure always says what is wrong, starting with the file name. */
        if (rc == -1 && strncmp(err, "fuzz.conf", 9) != 0) abort();
        if (rc == 0) {
            /* What loaded is consistent with the rules. */
            if (c.is_master != (master == 1)) abort();
            if (c.dead_timeout_ms < 2 * c.beat_interval_ms) abort();
            if (!master && (c.nlinks < 1 || c.nlinks > CFG_MAX_LINKS)) abort();
            if (c.reorder_slots & (c.reorder_slots - 1)) abort();
            for (int i = 0; i < c.nlinks; i++)
                for (int j = 0; j < i; j++)
                    if (c.links[i].id == c.links[j].id ||
                        strcmp(c.links[i].name, c.links[j].name) == 0)
                        abort();
            if (master && (c.nsites < 1 || c.nsites > CFG_MAX_SITES || !c.sites)) abort();
            for (int i = 0; i < c.nsites; i++) {
                if (c.nsites > 1 && c.sites[i].nallowed < 1) abort();
                for (int j = 0; j < i; j++)
                    if (strcmp(c.sites[i].name, c.sites[j].name) == 0 ||
                        memcmp(c.sites[i].public_key, c.sites[j].public_key, 32) == 0)
                        abort();
            }
            cfg_free(&c);
        }
    }
    free(text);
    return 0;
}
