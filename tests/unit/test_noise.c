/* test_noise.c: unit tests of the Noise IKpsk2 handshake (mux/noise.c): the Cacophony test
 * vector for Noise_IKpsk2_25519_ChaChaPoly_SHA256 byte for byte, then hostile and out-of-order
 * messages (tampering, wrong keys, wrong PSK or prologue, low-order points, short buffers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "../../mux/noise.h"

/* Cacophony's vectors/cacophony.txt (public domain, Unlicense), the entry with protocol_name
 * "Noise_IKpsk2_25519_ChaChaPoly_SHA256": keys, prologue, PSK, then six messages: the two
 * handshake messages and four transport messages (initiator, responder, initiator, responder). */
static const char *V_PROLOGUE = "4a6f686e2047616c74";
static const char *V_PSK = "54686973206973206d7920417573747269616e20706572737065637469766521";
static const char *V_INIT_STATIC = "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1";
static const char *V_INIT_EPH = "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a";
static const char *V_INIT_REMOTE = "31e0303fd6418d2f8c0e78b91f22e8caed0fbe48656dcf4767e4834f701b8f62";
static const char *V_RESP_STATIC = "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893";
static const char *V_RESP_EPH = "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b";
static const char *V_HASH = "8310f86394dc0dabb40beb8210031556db4403ab1202db7034c526232147a700";
static const struct {
    const char *payload, *ciphertext;
} V_MSG[6] = {
    {"4c756477696720766f6e204d69736573",
     "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c79442ec9b09893d0f510791784c10cbc"
     "959f25b1766e0def6e301d14fbca1c7790ac829b8b3674f5f649a5f0e98479662cbfbf2b2c47cd4b09fcd266cd29"
     "d7cb675f1808849707847840f6d178ec4d3733aa"},
    {"4d757272617920526f746862617264",
     "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f1448088439a1b3cebf680b2c74217fcb5eba4"
     "ff58a9468cd90c4aca6194f57479b379a7"},
    {"462e20412e20486179656b", "a8fde7a0accec190cd306c5950d4fd8e04a205ec288aa747d8b347"},
    {"4361726c204d656e676572", "59caddd9984a3bbe24c4fb31a2bd455b7eba3fa0980674b1a3a5f9"},
    {"4a65616e2d426170746973746520536179",
     "3b9bfebd210c22ba0cff9de79b4007d7a552fffbf92616881faa8a883e25b80258"},
    {"457567656e2042f6686d20766f6e2042617765726b",
     "f37512df1043d564d7c46ac85c53d3b6a9a05724bc297e7142808f217561651217fe85b782"},
};

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    assert_int_equal(sodium_hex2bin(out, cap, hex, strlen(hex), NULL, &n, NULL), 0);
    return n;
}

static void keypair_of(const char *priv_hex, struct noise_keypair *kp)
{
    assert_int_equal(unhex(priv_hex, kp->priv, sizeof kp->priv), 32);
    assert_int_equal(noise_pubkey(kp->priv, kp->pub), 0);
}

/* transport message: ChaChaPoly with the counter nonce, empty AD (Noise section 5.1) */
static size_t transport(const uint8_t key[32], uint64_t n, const uint8_t *pt, size_t len,
                        uint8_t *out)
{
    uint8_t nb[12] = {0};
    for (int i = 0; i < 8; i++) nb[4 + i] = (uint8_t)(n >> (8 * i));
    unsigned long long clen = 0;
    crypto_aead_chacha20poly1305_ietf_encrypt(out, &clen, pt, len, NULL, 0, NULL, nb, key);
    return (size_t)clen;
}

struct pair {
    struct noise_keypair is, rs, ie, re;
    uint8_t psk[32], prologue[16];
    size_t prologue_len;
    struct noise_hs i, r;
};

static void pair_init(struct pair *p)
{
    keypair_of(V_INIT_STATIC, &p->is);
    keypair_of(V_RESP_STATIC, &p->rs);
    keypair_of(V_INIT_EPH, &p->ie);
    keypair_of(V_RESP_EPH, &p->re);
    assert_int_equal(unhex(V_PSK, p->psk, sizeof p->psk), 32);
    p->prologue_len = unhex(V_PROLOGUE, p->prologue, sizeof p->prologue);
    noise_hs_init(&p->i, true, p->prologue, p->prologue_len, &p->is, p->rs.pub, p->psk);
    noise_hs_init(&p->r, false, p->prologue, p->prologue_len, &p->rs, NULL, p->psk);
}

static void test_cacophony_vector(void **state)
{
    (void)state;
    struct pair p;
    pair_init(&p);
    uint8_t want[256], pl[64], out[256], got[64];
    uint8_t remote[32];
    assert_int_equal(unhex(V_INIT_REMOTE, remote, sizeof remote), 32);
    assert_memory_equal(remote, p.rs.pub, 32);

    /* message 1: initiator -> responder */
    size_t plen = unhex(V_MSG[0].payload, pl, sizeof pl);
    size_t wlen = unhex(V_MSG[0].ciphertext, want, sizeof want);
    int n = noise_write_msg1(&p.i, &p.ie, pl, plen, out, sizeof out);
    assert_int_equal(n, (int)wlen);
    assert_memory_equal(out, want, wlen);
    assert_int_equal(noise_read_msg1(&p.r, out, (size_t)n, got, sizeof got), (int)plen);
    assert_memory_equal(got, pl, plen);
    assert_memory_equal(p.r.rs, p.is.pub, 32); /* the responder learnt who is calling */

    /* message 2: responder -> initiator */
    plen = unhex(V_MSG[1].payload, pl, sizeof pl);
    wlen = unhex(V_MSG[1].ciphertext, want, sizeof want);
    n = noise_write_msg2(&p.r, &p.re, pl, plen, out, sizeof out);
    assert_int_equal(n, (int)wlen);
    assert_memory_equal(out, want, wlen);
    assert_int_equal(noise_read_msg2(&p.i, out, (size_t)n, got, sizeof got), (int)plen);
    assert_memory_equal(got, pl, plen);

    uint8_t i1[32], i2[32], r1[32], r2[32], ih[32], rh[32], hash[32];
    assert_int_equal(noise_split(&p.i, i1, i2, ih), 0);
    assert_int_equal(noise_split(&p.r, r1, r2, rh), 0);
    assert_memory_equal(i1, r1, 32);
    assert_memory_equal(i2, r2, 32);
    assert_int_equal(unhex(V_HASH, hash, sizeof hash), 32);
    assert_memory_equal(ih, hash, 32);
    assert_memory_equal(rh, hash, 32);

    /* transport: messages 3 and 5 initiator -> responder (key i2r), 4 and 6 the other way */
    for (int k = 2; k < 6; k++) {
        plen = unhex(V_MSG[k].payload, pl, sizeof pl);
        wlen = unhex(V_MSG[k].ciphertext, want, sizeof want);
        size_t clen = transport(k % 2 == 0 ? i1 : i2, (uint64_t)(k / 2 - 1), pl, plen, out);
        assert_int_equal(clen, wlen);
        assert_memory_equal(out, want, wlen);
    }
    noise_hs_wipe(&p.i);
    noise_hs_wipe(&p.r);
}

/* Fresh keys both ways: both ends agree, and a second handshake gives other keys. */
static void test_roundtrip_fresh(void **state)
{
    (void)state;
    struct noise_keypair is, rs;
    noise_keypair_new(&is);
    noise_keypair_new(&rs);
    uint8_t psk[32] = {0}, k[2][4][32];
    for (int round = 0; round < 2; round++) {
        struct noise_hs i, r;
        noise_hs_init(&i, true, (const uint8_t *)"braid", 5, &is, rs.pub, psk);
        noise_hs_init(&r, false, (const uint8_t *)"braid", 5, &rs, NULL, psk);
        uint8_t m1[NOISE_MSG1_LEN(12)], m2[NOISE_MSG2_LEN(0)], pl[12];
        assert_int_equal(noise_write_msg1(&i, NULL, (const uint8_t *)"timestamp-12", 12, m1,
                                          sizeof m1),
                         (int)sizeof m1);
        assert_int_equal(noise_read_msg1(&r, m1, sizeof m1, pl, sizeof pl), 12);
        assert_memory_equal(pl, "timestamp-12", 12);
        assert_int_equal(noise_write_msg2(&r, NULL, NULL, 0, m2, sizeof m2), (int)sizeof m2);
        assert_int_equal(noise_read_msg2(&i, m2, sizeof m2, NULL, 0), 0);
        assert_int_equal(noise_split(&i, k[round][0], k[round][1], NULL), 0);
        assert_int_equal(noise_split(&r, k[round][2], k[round][3], NULL), 0);
        assert_memory_equal(k[round][0], k[round][2], 32);
        assert_memory_equal(k[round][1], k[round][3], 32);
        assert_memory_not_equal(k[round][0], k[round][1], 32);
    }
    assert_memory_not_equal(k[0][0], k[1][0], 32); /* fresh ephemerals: fresh keys */
}

/* Run message 1 from the vector's initiator into a responder set up by the caller. */
static int msg1_into(struct noise_hs *r, const uint8_t *m1, size_t len)
{
    uint8_t pl[64];
    return noise_read_msg1(r, m1, len, pl, sizeof pl);
}

static void test_hostile_msg1(void **state)
{
    (void)state;
    struct pair p;
    pair_init(&p);
    uint8_t m1[NOISE_MSG1_LEN(16)], pl[16] = "0123456789abcdef";
    int n = noise_write_msg1(&p.i, &p.ie, pl, sizeof pl, m1, sizeof m1);
    assert_int_equal(n, (int)sizeof m1);
    struct noise_hs r;

    /* every single flipped bit is refused (none passes as another valid message) */
    for (size_t b = 0; b < sizeof m1 * 8; b += 7) {
        uint8_t t[sizeof m1];
        memcpy(t, m1, sizeof t);
        t[b / 8] ^= (uint8_t)(1u << (b % 8));
        noise_hs_init(&r, false, p.prologue, p.prologue_len, &p.rs, NULL, p.psk);
        int rc = msg1_into(&r, t, sizeof t);
        /* (a flipped bit in e may land on a low-order point: refused as such) */
        assert_true(rc == NOISE_ERR_AUTH || rc == NOISE_ERR_DH);
    }
    /* too short for even an empty payload; payload too large for the buffer */
    for (size_t len = 0; len < NOISE_MSG1_LEN(0); len += 9) {
        noise_hs_init(&r, false, p.prologue, p.prologue_len, &p.rs, NULL, p.psk);
        assert_int_equal(msg1_into(&r, m1, len), NOISE_ERR_LEN);
    }
    noise_hs_init(&r, false, p.prologue, p.prologue_len, &p.rs, NULL, p.psk);
    assert_int_equal(noise_read_msg1(&r, m1, sizeof m1, pl, sizeof pl - 1), NOISE_ERR_LEN);
    /* wrong responder key, wrong PSK, wrong prologue */
    struct noise_keypair other;
    noise_keypair_new(&other);
    noise_hs_init(&r, false, p.prologue, p.prologue_len, &other, NULL, p.psk);
    assert_int_equal(msg1_into(&r, m1, sizeof m1), NOISE_ERR_AUTH);
    noise_hs_init(&r, false, (const uint8_t *)"x", 1, &p.rs, NULL, p.psk);
    assert_int_equal(msg1_into(&r, m1, sizeof m1), NOISE_ERR_AUTH);
    /* (the PSK enters at message 2: message 1 reads, message 2 then fails at the initiator) */
    uint8_t psk2[32];
    memcpy(psk2, p.psk, 32);
    psk2[0] ^= 1;
    noise_hs_init(&r, false, p.prologue, p.prologue_len, &p.rs, NULL, psk2);
    assert_int_equal(msg1_into(&r, m1, sizeof m1), (int)sizeof pl);
    uint8_t m2[NOISE_MSG2_LEN(0)];
    assert_int_equal(noise_write_msg2(&r, NULL, NULL, 0, m2, sizeof m2), (int)sizeof m2);
    assert_int_equal(noise_read_msg2(&p.i, m2, sizeof m2, NULL, 0), NOISE_ERR_AUTH);

    /* an all-zero (low-order) ephemeral key is refused before any decryption */
    uint8_t z[sizeof m1];
    memcpy(z, m1, sizeof z);
    memset(z, 0, 32);
    noise_hs_init(&r, false, p.prologue, p.prologue_len, &p.rs, NULL, p.psk);
    assert_int_equal(msg1_into(&r, z, sizeof z), NOISE_ERR_DH);
}

static void test_hostile_msg2_and_order(void **state)
{
    (void)state;
    struct pair p;
    pair_init(&p);
    uint8_t m1[NOISE_MSG1_LEN(0)], m2[NOISE_MSG2_LEN(4)], pl[8];
    uint8_t k1[32], k2[32];
    /* out of order: nothing to split yet, no message 2 before message 1 */
    assert_int_equal(noise_split(&p.i, k1, k2, NULL), NOISE_ERR_STATE);
    assert_int_equal(noise_write_msg2(&p.r, NULL, NULL, 0, m2, sizeof m2), NOISE_ERR_STATE);
    assert_int_equal(noise_read_msg2(&p.i, m2, sizeof m2, pl, sizeof pl), NOISE_ERR_STATE);
    assert_int_equal(noise_write_msg1(&p.r, NULL, NULL, 0, m1, sizeof m1), NOISE_ERR_STATE);
    assert_int_equal(noise_write_msg1(&p.i, &p.ie, NULL, 0, m1, sizeof m1 - 1), NOISE_ERR_LEN);
    assert_int_equal(noise_write_msg1(&p.i, &p.ie, NULL, 0, m1, sizeof m1), (int)sizeof m1);
    assert_int_equal(noise_write_msg1(&p.i, &p.ie, NULL, 0, m1, sizeof m1), NOISE_ERR_STATE);
    assert_int_equal(noise_read_msg1(&p.r, m1, sizeof m1, NULL, 0), 0);
    assert_int_equal(noise_read_msg1(&p.r, m1, sizeof m1, NULL, 0), NOISE_ERR_STATE);
    assert_int_equal(noise_write_msg2(&p.r, &p.re, (const uint8_t *)"pong", 4, m2, sizeof m2),
                     (int)sizeof m2);
    /* tampered message 2 refused; the untouched one then still reads (state unchanged on
     * a length error only: a failed decryption spoils the state, so use a copy) */
    struct noise_hs saved = p.i;
    for (size_t b = 0; b < sizeof m2 * 8; b += 5) {
        uint8_t t[sizeof m2];
        memcpy(t, m2, sizeof t);
        t[b / 8] ^= (uint8_t)(1u << (b % 8));
        struct noise_hs i = saved;
        int rc = noise_read_msg2(&i, t, sizeof t, pl, sizeof pl);
        assert_true(rc == NOISE_ERR_AUTH || rc == NOISE_ERR_DH);
    }
    struct noise_hs i = saved;
    assert_int_equal(noise_read_msg2(&i, m2, NOISE_MSG2_LEN(0) - 1, pl, sizeof pl), NOISE_ERR_LEN);
    assert_int_equal(noise_read_msg2(&i, m2, sizeof m2, pl, 3), NOISE_ERR_LEN);
    assert_int_equal(noise_read_msg2(&i, m2, sizeof m2, pl, sizeof pl), 4);
    assert_memory_equal(pl, "pong", 4);
    assert_int_equal(noise_split(&i, k1, k2, NULL), 0);
    uint8_t r1[32], r2[32];
    assert_int_equal(noise_split(&p.r, r1, r2, NULL), 0);
    assert_memory_equal(k1, r1, 32);
    assert_memory_equal(k2, r2, 32);
}

/* A responder answering the same message 1 twice makes two different sessions, and the
 * initiator completes only with the answer to its own state (replays are the caller's to refuse,
 * by the timestamp in the payload). */
static void test_replayed_msg1_gives_unusable_session(void **state)
{
    (void)state;
    struct pair p;
    pair_init(&p);
    uint8_t m1[NOISE_MSG1_LEN(0)], m2a[NOISE_MSG2_LEN(0)], m2b[NOISE_MSG2_LEN(0)];
    assert_int_equal(noise_write_msg1(&p.i, &p.ie, NULL, 0, m1, sizeof m1), (int)sizeof m1);
    struct noise_hs r2;
    noise_hs_init(&r2, false, p.prologue, p.prologue_len, &p.rs, NULL, p.psk);
    assert_int_equal(noise_read_msg1(&p.r, m1, sizeof m1, NULL, 0), 0);
    assert_int_equal(noise_read_msg1(&r2, m1, sizeof m1, NULL, 0), 0);
    assert_int_equal(noise_write_msg2(&p.r, NULL, NULL, 0, m2a, sizeof m2a), (int)sizeof m2a);
    assert_int_equal(noise_write_msg2(&r2, NULL, NULL, 0, m2b, sizeof m2b), (int)sizeof m2b);
    uint8_t a1[32], a2[32], b1[32], b2[32];
    assert_int_equal(noise_split(&p.r, a1, a2, NULL), 0);
    assert_int_equal(noise_split(&r2, b1, b2, NULL), 0);
    assert_memory_not_equal(a1, b1, 32); /* a replayer without the initiator's e learns nothing */
    assert_int_equal(noise_read_msg2(&p.i, m2a, sizeof m2a, NULL, 0), 0);
    uint8_t i1[32], i2[32];
    assert_int_equal(noise_split(&p.i, i1, i2, NULL), 0);
    assert_memory_equal(i1, a1, 32);
}

static void test_hkdf_rfc_shape(void **state)
{
    (void)state;
    /* HKDF(ck, ikm) with 2 and 3 outputs agree on the first two */
    uint8_t ck[32], a1[32], a2[32], b1[32], b2[32], b3[32];
    for (int i = 0; i < 32; i++) ck[i] = (uint8_t)i;
    noise_hkdf(ck, (const uint8_t *)"ikm", 3, a1, a2, NULL);
    noise_hkdf(ck, (const uint8_t *)"ikm", 3, b1, b2, b3);
    assert_memory_equal(a1, b1, 32);
    assert_memory_equal(a2, b2, 32);
    assert_memory_not_equal(b2, b3, 32);
    /* o1 = HMAC(HMAC(ck, ikm), 0x01) */
    uint8_t tk[32], o1[32];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, ck, 32);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)"ikm", 3);
    crypto_auth_hmacsha256_final(&st, tk);
    crypto_auth_hmacsha256_init(&st, tk, 32);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)"\x01", 1);
    crypto_auth_hmacsha256_final(&st, o1);
    assert_memory_equal(a1, o1, 32);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cacophony_vector),
        cmocka_unit_test(test_roundtrip_fresh),
        cmocka_unit_test(test_hostile_msg1),
        cmocka_unit_test(test_hostile_msg2_and_order),
        cmocka_unit_test(test_replayed_msg1_gives_unusable_session),
        cmocka_unit_test(test_hkdf_rfc_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
