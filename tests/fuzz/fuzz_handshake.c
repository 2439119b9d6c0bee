/* fuzz_handshake.c: libFuzzer target for the handshake's session steps (mux/session.c) as the
 * master and the slave run them on received datagrams: the master's MAC1 check, reading an INIT
 * and answering it; the slave's reading of a RESPONSE or a COOKIE_REPLY.
 * Input: byte 0 selects the mode, the rest is the datagram. Fixed keys throughout.
 *   mode 0: to the master (as master/front.c and mux_accept_init do, without the limits).
 *   mode 1: to a slave that sent a fixed INIT.
 *   mode 2/3: as 0/1, with the header and MAC1 made valid first (so the Noise steps are
 *           reached with fuzzer-chosen contents).
 * Seeds: build with -DFUZZ_WRITE_SEEDS (plain gcc -D_GNU_SOURCE, with mux/session.c, hsmsg.c, noise.c,
 * common/keys.c and libsodium) for a program that writes tests/fuzz/seeds/fuzz_handshake/
 * files into the directory given. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../mux/session.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_handshake: check failed: %s (line %d)\n", #cond, __LINE__);      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static struct identity SLAVE, MASTER;
static struct peer SITE, TO_MASTER;

static void setup(void)
{
    static int init;
    if (init) return;
    if (sodium_init() < 0) abort();
    uint8_t k[32], psk[32];
    memset(k, 0x11, sizeof k);
    CHECK(identity_init(&SLAVE, k) == 0);
    memset(k, 0x22, sizeof k);
    CHECK(identity_init(&MASTER, k) == 0);
    memset(psk, 0x33, sizeof psk);
    peer_init(&SITE, SLAVE.key.pub, psk);
    peer_init(&TO_MASTER, MASTER.key.pub, psk);
    init = 1;
}

static void client(struct hs_client *c)
{
    memset(c, 0, sizeof *c);
    CHECK(hs_client_start(c, &SLAVE, &TO_MASTER, 1764900000, 0, false) == 0);
    c->index = 0x0304u; /* fixed, for seeds */
}

static void to_master(const uint8_t *dg, size_t len)
{
    uint8_t kind, link;
    if (hs_peek(dg, len, &kind, &link) != 0 || kind != HS_KIND_INIT) return;
    if (!hs_mac1_ok(dg, len, &MASTER.mine)) return;
    struct hs_server s;
    if (hs_server_read(&s, &MASTER, dg, len) != 0) return;
    /* only the fixed slave's key can be in a valid INIT */
    CHECK(memcmp(s.noise.rs, SLAVE.key.pub, 32) == 0);
    struct hs_server_result res;
    if (hs_server_answer(&s, &SITE, 7, false, &res) == 0) {
        uint8_t out[HS_RESPONSE_LEN];
        hs_server_response(&res, &SITE, link, out);
        CHECK(hs_mac1_ok(out, sizeof out, &SLAVE.mine));
    }
}

static void to_slave(const uint8_t *dg, size_t len)
{
    struct hs_client c;
    client(&c);
    uint8_t init[HS_INIT_LEN];
    hs_client_init_msg(&c, &TO_MASTER, 0, init);
    struct session_keys k;
    int rc = hs_client_response(&c, &SLAVE, dg, len, &k);
    CHECK(rc == 0 || rc == HS_ERR_FORMAT || rc == HS_ERR_MAC1 || rc == HS_ERR_STALE ||
          rc == HS_ERR_NOISE);
    if (rc == 0) CHECK(k.local_index == c.index);
    rc = hs_client_cookie(&c, &TO_MASTER, dg, len);
    CHECK(rc == 0 || rc == HS_ERR_FORMAT || rc == HS_ERR_STALE || rc == HS_ERR_COOKIE);
    hs_client_wipe(&c);
}

static void fix(uint8_t *dg, size_t len, uint8_t kind, const struct hs_peer_keys *to)
{
    dg[0] = HS_BYTE0;
    dg[2] = kind;
    dg[3] = 0;
    crypto_generichash(dg + len - 2 * HS_MAC_LEN, HS_MAC_LEN, dg, len - 2 * HS_MAC_LEN, to->mac1,
                       sizeof to->mac1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size < 1) return 0;
    uint8_t buf[512];
    size_t len = size - 1;
    if (len > sizeof buf) return 0;
    memcpy(buf, data + 1, len);
    switch (data[0] & 3) {
    case 0: to_master(buf, len); break;
    case 1: to_slave(buf, len); break;
    case 2:
        if (len != HS_INIT_LEN) return 0;
        fix(buf, len, HS_KIND_INIT, &MASTER.mine);
        to_master(buf, len);
        break;
    default:
        if (len != HS_RESPONSE_LEN) return 0;
        fix(buf, len, HS_KIND_RESPONSE, &SLAVE.mine);
        to_slave(buf, len);
        break;
    }
    return 0;
}

#ifdef FUZZ_WRITE_SEEDS
static void put(const char *dir, const char *name, uint8_t mode, const uint8_t *m, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fputc(mode, f);
    fwrite(m, 1, len, f);
    fclose(f);
}

int main(int argc, char **argv)
{
    if (argc != 2) return 2;
    setup();
    struct hs_client c;
    client(&c);
    uint8_t init[HS_INIT_LEN], resp[HS_RESPONSE_LEN], cr[HS_COOKIE_REPLY_LEN];
    hs_client_init_msg(&c, &TO_MASTER, 0, init);
    struct hs_server s;
    CHECK(hs_server_read(&s, &MASTER, init, sizeof init) == 0);
    struct hs_server_result res;
    CHECK(hs_server_answer(&s, &SITE, 7, false, &res) == 0);
    hs_server_response(&res, &SITE, 0, resp);
    uint8_t cookie[HS_COOKIE_LEN] = {1};
    hs_cookie_reply_write(&MASTER.mine, 0, init, cookie, cr);
    put(argv[1], "init", 0, init, sizeof init);
    put(argv[1], "init-fixed", 2, init, sizeof init);
    put(argv[1], "response", 1, resp, sizeof resp);
    put(argv[1], "response-fixed", 3, resp, sizeof resp);
    put(argv[1], "cookie", 1, cr, sizeof cr);
    return 0;
}
#endif
