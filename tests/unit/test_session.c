/* test_session.c: unit tests of PSK handling and the handshake (mux/session.c): key derivation
 * checked by hand against PROTOCOL.md sections 2 and 5, HELLO layout, hostile handshakes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "../../mux/session.h"
#include "../../mux/wire.h"

static const uint8_t PSK[PSK_LEN] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                     12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                     23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static struct psk_keys keys(void)
{
    struct psk_keys k;
    psk_derive(PSK, &k);
    return k;
}

/* Build a handshake datagram by hand: clear bytes 0-7 as given, random nonce, body sealed with
 * XChaCha20-Poly1305 under K_hs with bytes 0-7 as additional data. */
static void hand_seal(const struct psk_keys *k, const uint8_t clear[8], const uint8_t body[80],
                      uint8_t out[HELLO_LEN])
{
    memcpy(out, clear, 8);
    randombytes_buf(out + 8, 24);
    unsigned long long clen = 0;
    assert_int_equal(crypto_aead_xchacha20poly1305_ietf_encrypt(out + 32, &clen, body, 80, out, 8,
                                                                NULL, out + 8, k->hs),
                     0);
    assert_int_equal(clen, 96);
}

static void hand_open(const struct psk_keys *k, const uint8_t dg[HELLO_LEN], uint8_t body[80])
{
    assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(body, NULL, NULL, dg + 32, 96, dg,
                                                                8, dg + 8, k->hs),
                     0);
}

static void test_init(void **state)
{
    (void)state;
    assert_int_equal(session_crypto_init(), 0);
    assert_int_equal(session_crypto_init(), 0); /* idempotent */
}

static void test_psk_generate(void **state)
{
    (void)state;
    char a[PSK_B64_MAXLEN], b[PSK_B64_MAXLEN];
    memset(a, 'x', sizeof(a));
    psk_generate(a, sizeof(a));
    psk_generate(b, sizeof(b));
    assert_int_equal(strlen(a), 44); /* 32 bytes, original base64 with padding */
    assert_int_equal(a[43], '=');
    assert_string_not_equal(a, b);
    uint8_t raw[PSK_LEN + 8];
    size_t rawlen = 0;
    assert_int_equal(sodium_base642bin(raw, sizeof(raw), a, strlen(a), NULL, &rawlen, NULL,
                                       sodium_base64_VARIANT_ORIGINAL),
                     0);
    assert_int_equal(rawlen, PSK_LEN);
    /* exact-size buffer is enough */
    char c[45];
    psk_generate(c, sizeof(c));
    assert_int_equal(strlen(c), 44);
}

static void test_psk_derive(void **state)
{
    (void)state;
    struct psk_keys k = keys();
    uint8_t hs[32], mix[32];
    assert_int_equal(crypto_kdf_derive_from_key(hs, 32, 1, "braid-v1", PSK), 0);
    assert_int_equal(crypto_kdf_derive_from_key(mix, 32, 2, "braid-v1", PSK), 0);
    assert_memory_equal(k.hs, hs, 32);
    assert_memory_equal(k.mix, mix, 32);
    assert_memory_not_equal(k.hs, k.mix, 32);
    /* another PSK, other keys */
    uint8_t psk2[PSK_LEN];
    memcpy(psk2, PSK, sizeof(psk2));
    psk2[0] ^= 1;
    struct psk_keys k2;
    psk_derive(psk2, &k2);
    assert_memory_not_equal(k.hs, k2.hs, 32);
    assert_memory_not_equal(k.mix, k2.mix, 32);
}

/* The full handshake, with every field of both datagrams checked against section 5. */
static void test_handshake_layout_and_keys(void **state)
{
    (void)state;
    struct psk_keys k = keys();
    struct hs_client c;
    hs_client_start(&c);
    uint8_t pk_check[32];
    assert_int_equal(crypto_scalarmult_base(pk_check, c.sk), 0);
    assert_memory_equal(pk_check, c.pk, 32);

    /* HELLO */
    uint8_t hello[HELLO_LEN], hello2[HELLO_LEN];
    hs_client_hello(&c, &k, 7, hello);
    hs_client_hello(&c, &k, 7, hello2);
    const uint8_t hello_clear[8] = {0xa0, 7, 0, 0, 0, 0, 0, 0}; /* V=2, T=2 */
    assert_memory_equal(hello, hello_clear, 8);
    assert_memory_not_equal(hello + 8, hello2 + 8, 24); /* random nonce every time */
    uint8_t body[80], zero[80] = {0};
    hand_open(&k, hello, body);
    assert_memory_equal(body, c.pk, 32);
    assert_memory_equal(body + 32, zero, 48); /* features 0, padding 0 */

    uint8_t spk[32];
    assert_int_equal(hs_server_open_hello(&k, hello, sizeof(hello), spk), 0);
    assert_memory_equal(spk, c.pk, 32);

    /* HELLO_REPLY */
    struct hs_server_result res;
    assert_int_equal(hs_server_answer(&k, spk, 1, &res), 0);
    assert_memory_equal(res.spk, c.pk, 32);
    assert_int_equal(res.keys.phase, 1);
    uint8_t reply[HELLO_LEN];
    hs_server_reply(&k, &res, 9, reply);
    const uint8_t reply_clear[8] = {0xb0, 9, 0, 0, 0, 0, 0, 0}; /* V=2, T=3 */
    assert_memory_equal(reply, reply_clear, 8);
    hand_open(&k, reply, body);
    assert_memory_equal(body, res.mpk, 32);
    assert_memory_equal(body + 32, c.pk, 32);
    assert_int_equal(body[64], 1);
    assert_memory_equal(body + 65, zero, 15);

    struct session_keys sk;
    memset(&sk, 0, sizeof(sk));
    assert_int_equal(hs_client_reply(&c, &k, reply, sizeof(reply), &sk), 0);
    assert_int_equal(sk.phase, 1);

    /* Keys by hand: crypto_kx, then BLAKE2b-256 keyed with K_mix over label||kx||spk||mpk. */
    uint8_t kx_rx[32], kx_tx[32]; /* client view: rx = kx_m2s, tx = kx_s2m */
    assert_int_equal(crypto_kx_client_session_keys(kx_rx, kx_tx, c.pk, c.sk, res.mpk), 0);
    uint8_t msg[99], k_s2m[32], k_m2s[32];
    memcpy(msg, "s2m", 3);
    memcpy(msg + 3, kx_tx, 32);
    memcpy(msg + 35, c.pk, 32);
    memcpy(msg + 67, res.mpk, 32);
    assert_int_equal(crypto_generichash(k_s2m, 32, msg, sizeof(msg), k.mix, 32), 0);
    memcpy(msg, "m2s", 3);
    memcpy(msg + 3, kx_rx, 32);
    assert_int_equal(crypto_generichash(k_m2s, 32, msg, sizeof(msg), k.mix, 32), 0);

    assert_memory_equal(sk.tx, k_s2m, 32);
    assert_memory_equal(sk.rx, k_m2s, 32);
    assert_memory_equal(res.keys.rx, k_s2m, 32);
    assert_memory_equal(res.keys.tx, k_m2s, 32);
    assert_memory_equal(sk.tx, res.keys.rx, 32);
    assert_memory_equal(sk.rx, res.keys.tx, 32);
    assert_memory_not_equal(k_s2m, k_m2s, 32);
    /* K_mix matters: the plain kx keys are not the session keys */
    assert_memory_not_equal(sk.tx, kx_tx, 32);

    /* the keys carry traffic both ways */
    uint8_t dg[64], pkt[5] = {0x45, 1, 2, 3, 4};
    struct wire_hdr h = {.type = WIRE_DATA, .phase = sk.phase, .link_id = 9, .counter = 0};
    int n = wire_seal(dg, sizeof(dg), &h, pkt, sizeof(pkt), sk.tx);
    assert_int_equal(n, 37);
    uint8_t *pl;
    size_t pll;
    assert_int_equal(wire_open(dg, (size_t)n, res.keys.rx, &h, &pl, &pll), WIRE_OK);
    assert_memory_equal(pl, pkt, sizeof(pkt));
    n = wire_seal(dg, sizeof(dg), &h, pkt, sizeof(pkt), res.keys.tx);
    assert_int_equal(wire_open(dg, (size_t)n, sk.rx, &h, &pl, &pll), WIRE_OK);
    n = wire_seal(dg, sizeof(dg), &h, pkt, sizeof(pkt), sk.tx);
    assert_int_equal(wire_open(dg, (size_t)n, sk.rx, &h, &pl, &pll), WIRE_ERR_AUTH);

    hs_client_wipe(&c);
    assert_memory_equal(c.sk, zero, 32);
    assert_memory_equal(c.pk, zero, 32);
}

static void test_fresh_sessions(void **state)
{
    (void)state;
    struct psk_keys k = keys();
    struct hs_client c1, c2;
    hs_client_start(&c1);
    hs_client_start(&c2);
    assert_memory_not_equal(c1.pk, c2.pk, 32);

    /* two answers to the same spk: fresh master keys, different sessions, both usable */
    struct hs_server_result r1, r2;
    assert_int_equal(hs_server_answer(&k, c1.pk, 0, &r1), 0);
    assert_int_equal(hs_server_answer(&k, c1.pk, 0, &r2), 0);
    assert_memory_not_equal(r1.mpk, r2.mpk, 32);
    assert_memory_not_equal(r1.keys.tx, r2.keys.tx, 32);
    assert_int_equal(r1.keys.phase, 0);

    uint8_t reply[HELLO_LEN], reply_again[HELLO_LEN];
    hs_server_reply(&k, &r1, 0, reply);
    hs_server_reply(&k, &r1, 200, reply_again); /* resent on another link */
    struct session_keys s1, s2;
    assert_int_equal(hs_client_reply(&c1, &k, reply, HELLO_LEN, &s1), 0);
    assert_int_equal(hs_client_reply(&c1, &k, reply_again, HELLO_LEN, &s2), 0);
    assert_memory_equal(s1.tx, s2.tx, 32);
    assert_memory_equal(s1.rx, s2.rx, 32);
    assert_int_equal(s1.phase, 0);

    /* a reply to c1's HELLO is stale for c2; c2's output untouched */
    struct session_keys s3;
    memset(&s3, 0x5a, sizeof(s3));
    assert_int_equal(hs_client_reply(&c2, &k, reply, HELLO_LEN, &s3), HS_ERR_STALE);
    for (size_t i = 0; i < sizeof(s3); i++)
        assert_int_equal(((uint8_t *)&s3)[i], 0x5a);

    /* answering with spk stored inside the result itself */
    assert_int_equal(hs_server_answer(&k, r2.spk, 1, &r2), 0);
    assert_memory_equal(r2.spk, c1.pk, 32);
}

static void test_client_reply_hostile(void **state)
{
    (void)state;
    struct psk_keys k = keys();
    struct hs_client c;
    hs_client_start(&c);
    struct hs_server_result res;
    assert_int_equal(hs_server_answer(&k, c.pk, 1, &res), 0);
    uint8_t reply[HELLO_LEN];
    hs_server_reply(&k, &res, 3, reply);
    struct session_keys sk;

    /* a HELLO instead of a HELLO_REPLY (even one carrying our own key) */
    uint8_t hello[HELLO_LEN];
    hs_client_hello(&c, &k, 3, hello);
    assert_int_equal(hs_client_reply(&c, &k, hello, HELLO_LEN, &sk), WIRE_ERR_TYPE);

    /* wrong lengths (exact-size heap copies) */
    for (size_t len = 0; len < HELLO_LEN; len++) {
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, reply, len);
        assert_int_equal(hs_client_reply(&c, &k, copy, len, &sk), WIRE_ERR_SHORT);
        free(copy);
    }
    uint8_t longer[HELLO_LEN + 1];
    memcpy(longer, reply, HELLO_LEN);
    longer[HELLO_LEN] = 0;
    assert_int_equal(hs_client_reply(&c, &k, longer, sizeof(longer), &sk), WIRE_ERR_LONG);

    /* wrong key */
    uint8_t psk2[PSK_LEN] = {0};
    struct psk_keys k2;
    psk_derive(psk2, &k2);
    assert_int_equal(hs_client_reply(&c, &k2, reply, HELLO_LEN, &sk), WIRE_ERR_AUTH);

    /* every single-bit flip */
    for (size_t bit = 0; bit < HELLO_LEN * 8; bit++) {
        uint8_t copy[HELLO_LEN];
        memcpy(copy, reply, HELLO_LEN);
        copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        int rc = hs_client_reply(&c, &k, copy, HELLO_LEN, &sk);
        assert_true(rc < 0);
        if (bit >= 64) assert_int_equal(rc, WIRE_ERR_AUTH);
    }

    /* authenticated but malformed bodies and headers, sealed by hand */
    const uint8_t clear[8] = {0xb0, 3, 0, 0, 0, 0, 0, 0};
    uint8_t body[80] = {0}, dg[HELLO_LEN];
    memcpy(body, res.mpk, 32);
    memcpy(body + 32, c.pk, 32);
    body[64] = 1;
    hand_seal(&k, clear, body, dg);
    assert_int_equal(hs_client_reply(&c, &k, dg, HELLO_LEN, &sk), 0); /* the control */
    assert_memory_equal(sk.tx, res.keys.rx, 32);

    for (unsigned phase = 2; phase < 256; phase += 51) {
        body[64] = (uint8_t)phase;
        hand_seal(&k, clear, body, dg);
        assert_int_equal(hs_client_reply(&c, &k, dg, HELLO_LEN, &sk), WIRE_ERR_RESERVED);
    }
    body[64] = 0;
    for (size_t i = 65; i < 80; i++) {
        body[i] = 0x10;
        hand_seal(&k, clear, body, dg);
        assert_int_equal(hs_client_reply(&c, &k, dg, HELLO_LEN, &sk), WIRE_ERR_RESERVED);
        body[i] = 0;
    }
    for (size_t i = 2; i < 8; i++) {
        uint8_t bad[8];
        memcpy(bad, clear, 8);
        bad[i] = 1;
        hand_seal(&k, bad, body, dg);
        assert_int_equal(hs_client_reply(&c, &k, dg, HELLO_LEN, &sk), WIRE_ERR_RESERVED);
    }
    /* P, E, reserved bits or another version in byte 0 */
    const uint8_t bad0[] = {0xb0 | WIRE_F_PHASE, 0xb0 | WIRE_F_ECHO, 0xb1, 0xb2, 0x70, 0x30};
    const int bad0_rc[] = {WIRE_ERR_RESERVED, WIRE_ERR_RESERVED, WIRE_ERR_RESERVED,
                           WIRE_ERR_RESERVED, WIRE_ERR_VERSION,  WIRE_ERR_VERSION};
    for (size_t i = 0; i < sizeof(bad0); i++) {
        uint8_t bad[8];
        memcpy(bad, clear, 8);
        bad[0] = bad0[i];
        hand_seal(&k, bad, body, dg);
        assert_int_equal(hs_client_reply(&c, &k, dg, HELLO_LEN, &sk), bad0_rc[i]);
    }

    /* echo of another spk */
    body[32] ^= 1;
    hand_seal(&k, clear, body, dg);
    assert_int_equal(hs_client_reply(&c, &k, dg, HELLO_LEN, &sk), HS_ERR_STALE);
    body[32] ^= 1;

    /* low-order master key */
    memset(body, 0, 32);
    hand_seal(&k, clear, body, dg);
    assert_int_equal(hs_client_reply(&c, &k, dg, HELLO_LEN, &sk), HS_ERR_CRYPTO);
}

static void test_server_hello_hostile(void **state)
{
    (void)state;
    struct psk_keys k = keys();
    struct hs_client c;
    hs_client_start(&c);
    uint8_t hello[HELLO_LEN], spk[32];
    hs_client_hello(&c, &k, 1, hello);

    /* a HELLO_REPLY is not a HELLO */
    struct hs_server_result res;
    assert_int_equal(hs_server_answer(&k, c.pk, 0, &res), 0);
    uint8_t reply[HELLO_LEN];
    hs_server_reply(&k, &res, 1, reply);
    assert_int_equal(hs_server_open_hello(&k, reply, HELLO_LEN, spk), WIRE_ERR_TYPE);

    /* a DATA datagram of HELLO size */
    uint8_t data[HELLO_LEN];
    memcpy(data, hello, HELLO_LEN);
    data[0] = 0x80;
    assert_int_equal(hs_server_open_hello(&k, data, HELLO_LEN, spk), WIRE_ERR_TYPE);

    for (size_t len = 0; len < HELLO_LEN; len++) {
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, hello, len);
        assert_int_equal(hs_server_open_hello(&k, copy, len, spk), WIRE_ERR_SHORT);
        free(copy);
    }
    uint8_t longer[HELLO_LEN + 5] = {0};
    memcpy(longer, hello, HELLO_LEN);
    assert_int_equal(hs_server_open_hello(&k, longer, sizeof(longer), spk), WIRE_ERR_LONG);

    struct psk_keys k2;
    uint8_t psk2[PSK_LEN];
    memcpy(psk2, PSK, PSK_LEN);
    psk2[31] ^= 0x80;
    psk_derive(psk2, &k2);
    assert_int_equal(hs_server_open_hello(&k2, hello, HELLO_LEN, spk), WIRE_ERR_AUTH);

    uint8_t spk_before[32];
    memset(spk, 0xa5, sizeof(spk));
    memcpy(spk_before, spk, 32);
    for (size_t bit = 0; bit < HELLO_LEN * 8; bit++) {
        uint8_t copy[HELLO_LEN];
        memcpy(copy, hello, HELLO_LEN);
        copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        int rc = hs_server_open_hello(&k, copy, HELLO_LEN, spk);
        assert_true(rc < 0);
        if (bit >= 64) assert_int_equal(rc, WIRE_ERR_AUTH);
    }
    assert_memory_equal(spk, spk_before, 32); /* untouched on failure */

    /* hand-sealed: features are ignored, padding and bytes 2-7 must be zero */
    const uint8_t clear[8] = {0xa0, 1, 0, 0, 0, 0, 0, 0};
    uint8_t body[80] = {0}, dg[HELLO_LEN];
    memcpy(body, c.pk, 32);
    body[32] = 0xff;
    body[35] = 0x01;
    hand_seal(&k, clear, body, dg);
    assert_int_equal(hs_server_open_hello(&k, dg, HELLO_LEN, spk), 0);
    assert_memory_equal(spk, c.pk, 32);
    for (size_t i = 36; i < 80; i++) {
        body[i] = 0x80;
        hand_seal(&k, clear, body, dg);
        assert_int_equal(hs_server_open_hello(&k, dg, HELLO_LEN, spk), WIRE_ERR_RESERVED);
        body[i] = 0;
    }
    for (size_t i = 2; i < 8; i++) {
        uint8_t bad[8];
        memcpy(bad, clear, 8);
        bad[i] = 0x20;
        hand_seal(&k, bad, body, dg);
        assert_int_equal(hs_server_open_hello(&k, dg, HELLO_LEN, spk), WIRE_ERR_RESERVED);
    }
}

static void test_server_answer_bad_keys(void **state)
{
    (void)state;
    struct psk_keys k = keys();
    struct hs_server_result res;
    memset(&res, 0x33, sizeof(res));
    uint8_t spk[32] = {0};
    assert_int_equal(hs_server_answer(&k, spk, 0, &res), HS_ERR_CRYPTO); /* all zero */
    spk[0] = 1;
    assert_int_equal(hs_server_answer(&k, spk, 0, &res), HS_ERR_CRYPTO); /* u = 1, order 4 */
    /* u = p - 1 = 2^255 - 20 (little-endian), a point of order 2 */
    memset(spk, 0xff, 32);
    spk[0] = 0xec;
    spk[31] = 0x7f;
    assert_int_equal(hs_server_answer(&k, spk, 0, &res), HS_ERR_CRYPTO);
    /* the result was not written */
    for (size_t i = 0; i < sizeof(res); i++)
        assert_int_equal(((uint8_t *)&res)[i], 0x33);

    struct hs_client c;
    hs_client_start(&c);
    assert_int_equal(hs_server_answer(&k, c.pk, 2, &res), WIRE_ERR_INVAL);
    assert_int_equal(hs_server_answer(&k, c.pk, 1, &res), 0);
}

int main(void)
{
    if (session_crypto_init() != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_psk_generate),
        cmocka_unit_test(test_psk_derive),
        cmocka_unit_test(test_handshake_layout_and_keys),
        cmocka_unit_test(test_fresh_sessions),
        cmocka_unit_test(test_client_reply_hostile),
        cmocka_unit_test(test_server_hello_hostile),
        cmocka_unit_test(test_server_answer_bad_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
