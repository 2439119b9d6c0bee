/* fuzz_noise.c: libFuzzer target for the Noise IKpsk2 message readers (mux/noise.c).
 * Input: byte 0 selects the mode, the rest is the message.
 *   mode even: the data is message 1 for a responder with a fixed static key and PSK; if it
 *              is accepted, the responder answers and both ends' keys must come out right
 *              only for a message made by the fixed initiator.
 *   mode odd:  the data is message 2 for an initiator that sent a fixed message 1.
 * Seeds (tests/fuzz/seeds/fuzz_noise/): a valid message 1 and message 2 with the fixed keys,
 * written by this file built with -DFUZZ_WRITE_SEEDS into the directory given. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../mux/noise.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_noise: check failed: %s (line %d)\n", #cond, __LINE__);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static struct noise_keypair IS, RS, IE, RE;
static uint8_t PSK[32];
static const uint8_t PROLOGUE[] = "braid fuzz";

static void key(struct noise_keypair *kp, uint8_t fill)
{
    memset(kp->priv, fill, sizeof kp->priv);
    if (noise_pubkey(kp->priv, kp->pub) != 0) abort();
}

static void setup(void)
{
    static int init;
    if (init) return;
    if (sodium_init() < 0) abort();
    key(&IS, 0x11);
    key(&RS, 0x22);
    key(&IE, 0x33);
    key(&RE, 0x44);
    memset(PSK, 0x55, sizeof PSK);
    init = 1;
}

static void initiator(struct noise_hs *i, uint8_t *m1, size_t cap)
{
    noise_hs_init(i, true, PROLOGUE, sizeof PROLOGUE, &IS, RS.pub, PSK);
    CHECK(noise_write_msg1(i, &IE, (const uint8_t *)"12", 2, m1, cap) == (int)NOISE_MSG1_LEN(2));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size < 1) return 0;
    const uint8_t *msg = data + 1;
    size_t len = size - 1;
    uint8_t pl[256];
    if ((data[0] & 1) == 0) {
        struct noise_hs r;
        noise_hs_init(&r, false, PROLOGUE, sizeof PROLOGUE, &RS, NULL, PSK);
        int n = noise_read_msg1(&r, msg, len, pl, sizeof pl);
        CHECK(n < 0 || (size_t)n + NOISE_MSG1_LEN(0) == len);
        if (n >= 0) {
            /* only our fixed initiator can have made it (forging needs its static key) */
            CHECK(memcmp(r.rs, IS.pub, 32) == 0);
            uint8_t m2[NOISE_MSG2_LEN(0)], a[32], b[32];
            CHECK(noise_write_msg2(&r, &RE, NULL, 0, m2, sizeof m2) == (int)sizeof m2);
            CHECK(noise_split(&r, a, b, NULL) == 0);
        }
        noise_hs_wipe(&r);
    } else {
        struct noise_hs i;
        uint8_t m1[NOISE_MSG1_LEN(2)];
        initiator(&i, m1, sizeof m1);
        int n = noise_read_msg2(&i, msg, len, pl, sizeof pl);
        CHECK(n < 0 || (size_t)n + NOISE_MSG2_LEN(0) == len);
        uint8_t a[32], b[32];
        CHECK((noise_split(&i, a, b, NULL) == 0) == (n >= 0));
        noise_hs_wipe(&i);
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
    struct noise_hs i, r;
    uint8_t m1[NOISE_MSG1_LEN(2)], m2[NOISE_MSG2_LEN(3)], pl[8];
    initiator(&i, m1, sizeof m1);
    noise_hs_init(&r, false, PROLOGUE, sizeof PROLOGUE, &RS, NULL, PSK);
    CHECK(noise_read_msg1(&r, m1, sizeof m1, pl, sizeof pl) == 2);
    CHECK(noise_write_msg2(&r, &RE, (const uint8_t *)"ack", 3, m2, sizeof m2) == (int)sizeof m2);
    put(argv[1], "msg1", 0, m1, sizeof m1);
    put(argv[1], "msg2", 1, m2, sizeof m2);
    return 0;
}
#endif
