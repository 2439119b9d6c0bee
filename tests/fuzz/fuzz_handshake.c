/* fuzz_handshake.c: libFuzzer target for the handshake parsers: hs_server_open_hello and
 * hs_client_reply on raw datagrams and on authenticated datagrams with fuzzer-chosen bodies. */
/* Input: byte 0 selects the mode, the rest is the data. A fixed PSK and a fixed slave key pair
 * are used throughout.
 *   mode 0: the data is a datagram for hs_server_open_hello; if accepted, the master answers
 *           (hs_server_answer, hs_server_reply) and the reply must be accepted by a slave with
 *           that spk only if it is ours.
 *   mode 1: the data is a datagram for hs_client_reply.
 *   mode 2: the data is clear bytes 0-7 then the 80-byte body (zero-padded), sealed under K_hs
 *           so that the body checks are reached; fed to both parsers.
 *   mode 3: as mode 2, but body bytes 32-63 are set to our spk, so that a HELLO_REPLY reaches
 *           the key exchange with a fuzzer-chosen mpk and phase.
 * Seeds: build with -DFUZZ_WRITE_SEEDS (plain gcc, linked with libbraid.a and libsodium) to get
 * a program that writes tests/fuzz/seeds/fuzz_handshake/ files into the directory given. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../mux/session.h"
#include "../../mux/wire.h"

static const uint8_t FUZZ_PSK[PSK_LEN] = {
    0x62, 0x72, 0x61, 0x69, 0x64, 0x2d, 0x66, 0x75, 0x7a, 0x7a, 0x2d, 0x70, 0x73, 0x6b, 0x2d, 0x30,
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf};
static const uint8_t FUZZ_SEED[crypto_kx_SEEDBYTES] = {"braid fuzz slave key pair seed!"};

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_handshake: check failed: %s (line %d)\n", #cond, __LINE__);      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static struct psk_keys K;
static struct hs_client C;

static void setup(void)
{
    static int init;
    if (init) return;
    if (sodium_init() < 0) abort();
    psk_derive(FUZZ_PSK, &K);
    if (crypto_kx_seed_keypair(C.pk, C.sk, FUZZ_SEED) != 0) abort();
    init = 1;
}

static void server_side(const uint8_t *dg, size_t len)
{
    uint8_t spk[32];
    if (hs_server_open_hello(&K, dg, len, spk) != 0) return;
    struct hs_server_result res;
    if (hs_server_answer(&K, spk, (uint8_t)(len & 1u), &res) != 0) return;
    CHECK(memcmp(res.spk, spk, 32) == 0);
    uint8_t reply[HELLO_LEN];
    hs_server_reply(&K, &res, dg[1], reply);
    struct session_keys sk;
    int rc = hs_client_reply(&C, &K, reply, sizeof(reply), &sk);
    if (memcmp(spk, C.pk, 32) == 0) {
        CHECK(rc == 0);
        CHECK(memcmp(sk.tx, res.keys.rx, 32) == 0 && memcmp(sk.rx, res.keys.tx, 32) == 0);
        CHECK(sk.phase == res.keys.phase);
    } else {
        CHECK(rc == HS_ERR_STALE);
    }
}

static void client_side(const uint8_t *dg, size_t len)
{
    struct session_keys sk;
    int rc = hs_client_reply(&C, &K, dg, len, &sk);
    CHECK(rc <= 0);
    if (rc == 0) CHECK(sk.phase <= 1);
}

static void sealed(const uint8_t *data, size_t size, int force_echo)
{
    uint8_t clear[8] = {0}, body[80] = {0}, dg[HELLO_LEN];
    memcpy(clear, data, size < 8 ? size : 8);
    if (size > 8) memcpy(body, data + 8, size - 8 < 80 ? size - 8 : 80);
    if (force_echo) memcpy(body + 32, C.pk, 32);
    memcpy(dg, clear, 8);
    memset(dg + 8, 0x24, 24); /* fixed nonce: deterministic runs */
    crypto_aead_xchacha20poly1305_ietf_encrypt(dg + 32, NULL, body, sizeof(body), dg, 8, NULL,
                                               dg + 8, K.hs);
    server_side(dg, sizeof(dg));
    client_side(dg, sizeof(dg));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size < 1) return 0;
    switch (data[0] % 4) {
    case 0:
        server_side(data + 1, size - 1);
        break;
    case 1:
        client_side(data + 1, size - 1);
        break;
    case 2:
        sealed(data + 1, size - 1, 0);
        break;
    default:
        sealed(data + 1, size - 1, 1);
        break;
    }
    return 0;
}

#ifdef FUZZ_WRITE_SEEDS
static void write_seed(const char *dir, const char *name, uint8_t mode, const uint8_t *p,
                       size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fputc(mode, f) == EOF || fwrite(p, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 1;
    }
    setup();
    uint8_t dg[HELLO_LEN];
    hs_client_hello(&C, &K, 1, dg);
    write_seed(argv[1], "hello", 0, dg, sizeof(dg));

    struct hs_server_result res;
    if (hs_server_answer(&K, C.pk, 1, &res) != 0) return 1;
    hs_server_reply(&K, &res, 1, dg);
    write_seed(argv[1], "reply", 1, dg, sizeof(dg));

    uint8_t plain[88] = {0x60, 1};
    memcpy(plain + 8, C.pk, 32);
    write_seed(argv[1], "sealed_hello", 2, plain, sizeof(plain));
    plain[0] = 0x70;
    memcpy(plain + 8, res.mpk, 32);
    memset(plain + 40, 0, 32); /* overwritten with our spk in mode 3 */
    plain[72] = 1;
    write_seed(argv[1], "sealed_reply", 3, plain, sizeof(plain));
    return 0;
}
#endif
