/* fuzz_hsmsg.c: libFuzzer target for wire version 3's handshake messages (mux/hsmsg.c), as the
 * responder (INIT) and the initiator (RESPONSE, COOKIE_REPLY) receive them.
 * Input: byte 0 selects the mode, the rest is the message.
 *   mode 0: raw datagram to the responder: header, MAC1, MAC2 against a fixed cookie, and the
 *           Noise message if MAC1 holds.
 *   mode 1: as 0, with header and MAC1 made valid first (so the Noise reader is reached).
 *   mode 2: raw datagram to an initiator that sent a fixed INIT: RESPONSE or COOKIE_REPLY.
 *   mode 3: as 2, with a RESPONSE header and MAC1 made valid first.
 * Seeds (tests/fuzz/seeds/fuzz_hsmsg/): a valid INIT, RESPONSE and COOKIE_REPLY, written by
 * this file built with -DFUZZ_WRITE_SEEDS into the directory given. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../mux/hsmsg.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_hsmsg: check failed: %s (line %d)\n", #cond, __LINE__);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static struct noise_keypair IS, RS, IE;
static struct hs_peer_keys IK, RK;
static uint8_t PSK[32], COOKIE[HS_COOKIE_LEN], TS[HS_TS_LEN];
static uint8_t SENT_INIT[HS_INIT_LEN];

static void key(struct noise_keypair *kp, uint8_t fill)
{
    memset(kp->priv, fill, sizeof kp->priv);
    if (noise_pubkey(kp->priv, kp->pub) != 0) abort();
}

static void initiator(struct noise_hs *i)
{
    noise_hs_init(i, true, (const uint8_t *)HS_PROLOGUE, strlen(HS_PROLOGUE), &IS, RS.pub, PSK);
    CHECK(hs_init_write(i, &IE, 0, 0x0304u, TS, 0, &RK, NULL, SENT_INIT) == 0);
}

static void setup(void)
{
    static int init;
    if (init) return;
    if (sodium_init() < 0) abort();
    key(&IS, 0x11);
    key(&RS, 0x22);
    key(&IE, 0x33);
    hs_peer_keys(IS.pub, &IK);
    hs_peer_keys(RS.pub, &RK);
    memset(PSK, 0x55, sizeof PSK);
    memset(COOKIE, 0x66, sizeof COOKIE);
    hs_tai64n(1764900000, 0, TS);
    struct noise_hs i;
    initiator(&i); /* SENT_INIT is the same every time (fixed e) */
    init = 1;
}

static void fix_mac1(uint8_t *msg, size_t len, uint8_t kind, const struct hs_peer_keys *k)
{
    msg[0] = HS_BYTE0;
    msg[2] = kind;
    msg[3] = 0;
    crypto_generichash(msg + len - 2 * HS_MAC_LEN, HS_MAC_LEN, msg, len - 2 * HS_MAC_LEN, k->mac1,
                       sizeof k->mac1);
}

static void responder(const uint8_t *msg, size_t len)
{
    uint8_t kind, link;
    if (hs_peek(msg, len, &kind, &link) != 0) return;
    CHECK(len == HS_INIT_LEN || len == HS_RESPONSE_LEN || len == HS_COOKIE_REPLY_LEN);
    (void)hs_mac2_ok(msg, len, COOKIE);
    if (kind != HS_KIND_INIT || !hs_mac1_ok(msg, len, &RK)) return;
    struct noise_hs r;
    uint8_t nopsk[32] = {0}, ts[HS_TS_LEN];
    noise_hs_init(&r, false, (const uint8_t *)HS_PROLOGUE, strlen(HS_PROLOGUE), &RS, NULL, nopsk);
    uint32_t sender;
    if (hs_init_read(&r, msg, len, &sender, ts, NULL) == 0) {
        CHECK(memcmp(r.rs, IS.pub, 32) == 0); /* only our initiator can make a valid one */
        memcpy(r.psk, PSK, 32);
        uint8_t resp[HS_RESPONSE_LEN];
        CHECK(hs_response_write(&r, NULL, link, 7, sender, 0, &IK, NULL, resp) == 0);
    }
    noise_hs_wipe(&r);
}

static void to_initiator(const uint8_t *msg, size_t len)
{
    uint8_t kind, link;
    if (hs_peek(msg, len, &kind, &link) != 0) return;
    (void)hs_receiver_index(msg, len);
    if (kind == HS_KIND_COOKIE) {
        uint8_t c[HS_COOKIE_LEN];
        (void)hs_cookie_reply_read(&RK, msg, len, hs_mac1_of(SENT_INIT, HS_INIT_LEN), c);
        return;
    }
    if (kind != HS_KIND_RESPONSE || !hs_mac1_ok(msg, len, &IK)) return;
    struct noise_hs i;
    initiator(&i);
    uint32_t sender;
    int rc = hs_response_read(&i, msg, len, &sender, NULL);
    uint8_t a[32], b[32];
    CHECK((noise_split(&i, a, b, NULL) == 0) == (rc == 0));
    noise_hs_wipe(&i);
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
    case 0: responder(buf, len); break;
    case 1:
        if (len != HS_INIT_LEN) return 0;
        fix_mac1(buf, len, HS_KIND_INIT, &RK);
        responder(buf, len);
        break;
    case 2: to_initiator(buf, len); break;
    default:
        if (len != HS_RESPONSE_LEN) return 0;
        fix_mac1(buf, len, HS_KIND_RESPONSE, &IK);
        to_initiator(buf, len);
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
    struct noise_hs r;
    uint8_t nopsk[32] = {0}, ts[HS_TS_LEN], resp[HS_RESPONSE_LEN], cr[HS_COOKIE_REPLY_LEN];
    noise_hs_init(&r, false, (const uint8_t *)HS_PROLOGUE, strlen(HS_PROLOGUE), &RS, NULL, nopsk);
    uint32_t sender;
    CHECK(hs_init_read(&r, SENT_INIT, sizeof SENT_INIT, &sender, ts, NULL) == 0);
    memcpy(r.psk, PSK, 32);
    CHECK(hs_response_write(&r, NULL, 0, 7, sender, 0, &IK, NULL, resp) == 0);
    hs_cookie_reply_write(&RK, 0, SENT_INIT, COOKIE, cr);
    put(argv[1], "init", 0, SENT_INIT, sizeof SENT_INIT);
    put(argv[1], "init-fixed", 1, SENT_INIT, sizeof SENT_INIT);
    put(argv[1], "response", 2, resp, sizeof resp);
    put(argv[1], "response-fixed", 3, resp, sizeof resp);
    put(argv[1], "cookie", 2, cr, sizeof cr);
    return 0;
}
#endif
