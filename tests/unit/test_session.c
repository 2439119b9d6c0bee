/* test_session.c: unit tests of the handshake's crypto steps on each end (mux/session.c): a
 * slave and a master making a session through INIT and RESPONSE, INITs per link, retransmission
 * detection, wrong keys and PSKs, forged and stale answers, the cookie path, key generation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <sodium.h>

#include "../../common/keys.h"
#include "../../mux/session.h"

struct both {
    struct identity slave, master;
    struct peer slave_sees_master, master_sees_slave;
    uint8_t psk[32];
};

static void both_init(struct both *b, bool with_psk)
{
    uint8_t k[32];
    randombytes_buf(k, sizeof k);
    assert_int_equal(identity_init(&b->slave, k), 0);
    randombytes_buf(k, sizeof k);
    assert_int_equal(identity_init(&b->master, k), 0);
    memset(b->psk, 0, sizeof b->psk);
    if (with_psk) randombytes_buf(b->psk, sizeof b->psk);
    peer_init(&b->slave_sees_master, b->master.key.pub, b->psk);
    peer_init(&b->master_sees_slave, b->slave.key.pub, b->psk);
}

/* The master's side of one INIT: read, answer, RESPONSE for the link. */
static void master_answers(struct both *b, const uint8_t *init, uint32_t index,
                           struct hs_server_result *res, uint8_t resp[HS_RESPONSE_LEN])
{
    uint8_t kind, link;
    assert_int_equal(hs_peek(init, HS_INIT_LEN, &kind, &link), 0);
    assert_true(hs_mac1_ok(init, HS_INIT_LEN, &b->master.mine));
    struct hs_server s;
    assert_int_equal(hs_server_read(&s, &b->master, init, HS_INIT_LEN), 0);
    assert_memory_equal(s.noise.rs, b->slave.key.pub, 32);
    assert_int_equal(hs_server_answer(&s, &b->master_sees_slave, index, false, res), 0);
    hs_server_response(res, &b->master_sees_slave, link, resp);
}

static void test_session_made(void **state)
{
    (void)state;
    for (int psk = 0; psk < 2; psk++) {
        struct both b;
        both_init(&b, psk);
        struct hs_client c = {0};
        assert_int_equal(hs_client_start(&c, &b.slave, &b.slave_sees_master, 1764900000, 0, false), 0);
        uint8_t init[HS_INIT_LEN], resp[HS_RESPONSE_LEN];
        hs_client_init_msg(&c, &b.slave_sees_master, 3, init);
        assert_int_equal(init[1], 3);
        struct hs_server_result res;
        master_answers(&b, init, 0x5eedu, &res, resp);
        assert_int_equal(resp[1], 3);
        struct session_keys k;
        assert_int_equal(hs_client_response(&c, &b.slave, resp, sizeof resp, &k), 0);
        /* what one sends the other receives; the indices cross */
        assert_memory_equal(k.tx, res.keys.rx, 32);
        assert_memory_equal(k.rx, res.keys.tx, 32);
        assert_memory_not_equal(k.tx, k.rx, 32);
        assert_int_equal(k.local_index, res.keys.remote_index);
        assert_int_equal(k.remote_index, 0x5eedu);
        assert_int_equal(res.keys.local_index, 0x5eedu);
        hs_client_wipe(&c);
    }
}

static void test_init_per_link(void **state)
{
    (void)state;
    struct both b;
    both_init(&b, true);
    struct hs_client c = {0};
    assert_int_equal(hs_client_start(&c, &b.slave, &b.slave_sees_master, 1764900000, 0, false), 0);
    uint8_t i0[HS_INIT_LEN], i1[HS_INIT_LEN];
    hs_client_init_msg(&c, &b.slave_sees_master, 0, i0);
    hs_client_init_msg(&c, &b.slave_sees_master, 1, i1);
    /* one Noise message on every link: only the link id and the MACs differ */
    assert_memory_equal(i0 + 2, i1 + 2, HS_INIT_LEN - 2 - 2 * HS_MAC_LEN);
    assert_memory_not_equal(hs_mac1_of(i0, HS_INIT_LEN), hs_mac1_of(i1, HS_INIT_LEN), HS_MAC_LEN);
    assert_true(hs_mac1_ok(i1, HS_INIT_LEN, &b.master.mine));
    /* the master sees the same ephemeral key in both: a retransmission, not a new session */
    struct hs_server s0, s1;
    assert_int_equal(hs_server_read(&s0, &b.master, i0, HS_INIT_LEN), 0);
    assert_int_equal(hs_server_read(&s1, &b.master, i1, HS_INIT_LEN), 0);
    assert_memory_equal(s0.e, s1.e, 32);
    assert_memory_equal(s0.ts, s1.ts, HS_TS_LEN);
    /* a new handshake has a new ephemeral key and a later timestamp */
    assert_int_equal(hs_client_start(&c, &b.slave, &b.slave_sees_master, 1764900001, 0, false), 0);
    hs_client_init_msg(&c, &b.slave_sees_master, 0, i1);
    assert_int_equal(hs_server_read(&s1, &b.master, i1, HS_INIT_LEN), 0);
    assert_memory_not_equal(s0.e, s1.e, 32);
    assert_true(memcmp(s1.ts, s0.ts, HS_TS_LEN) > 0);
}

static void test_wrong_keys(void **state)
{
    (void)state;
    struct both b;
    both_init(&b, true);
    /* the master configured with another PSK for the site: the slave refuses the answer */
    struct hs_client c = {0};
    assert_int_equal(hs_client_start(&c, &b.slave, &b.slave_sees_master, 1764900000, 0, false), 0);
    uint8_t init[HS_INIT_LEN], resp[HS_RESPONSE_LEN];
    hs_client_init_msg(&c, &b.slave_sees_master, 0, init);
    uint8_t other[32];
    randombytes_buf(other, sizeof other);
    peer_init(&b.master_sees_slave, b.slave.key.pub, other);
    struct hs_server_result res;
    master_answers(&b, init, 1, &res, resp);
    struct session_keys k;
    assert_int_equal(hs_client_response(&c, &b.slave, resp, sizeof resp, &k), HS_ERR_NOISE);

    /* a slave that has the wrong master key: MAC1 fails at the master, and the Noise message
     * does not open there either */
    struct both b2;
    both_init(&b2, false);
    struct hs_client c2 = {0};
    assert_int_equal(hs_client_start(&c2, &b2.slave, &b.slave_sees_master, 1764900000, 0, false), 0);
    hs_client_init_msg(&c2, &b.slave_sees_master, 0, init);
    assert_false(hs_mac1_ok(init, HS_INIT_LEN, &b2.master.mine));
    struct hs_server s;
    assert_int_equal(hs_server_read(&s, &b2.master, init, HS_INIT_LEN), HS_ERR_NOISE);
}

static void test_forged_and_stale_answers(void **state)
{
    (void)state;
    struct both b;
    both_init(&b, false);
    struct hs_client c = {0};
    assert_int_equal(hs_client_start(&c, &b.slave, &b.slave_sees_master, 1764900000, 0, false), 0);
    uint8_t init[HS_INIT_LEN], resp[HS_RESPONSE_LEN], t[HS_RESPONSE_LEN];
    hs_client_init_msg(&c, &b.slave_sees_master, 0, init);
    struct hs_server_result res;
    master_answers(&b, init, 42, &res, resp);
    struct session_keys k;
    /* tampered Noise part (MAC1 made right again by someone who knows our public key) */
    memcpy(t, resp, sizeof t);
    t[20] ^= 1;
    crypto_generichash(t + HS_RESPONSE_LEN - 32, 16, t, HS_RESPONSE_LEN - 32, b.slave.mine.mac1, 32);
    assert_int_equal(hs_client_response(&c, &b.slave, t, sizeof t, &k), HS_ERR_NOISE);
    /* bad MAC1 */
    memcpy(t, resp, sizeof t);
    t[HS_RESPONSE_LEN - 20] ^= 1;
    assert_int_equal(hs_client_response(&c, &b.slave, t, sizeof t, &k), HS_ERR_MAC1);
    /* an answer to another INIT (another index) */
    memcpy(t, resp, sizeof t);
    t[11] ^= 1;
    crypto_generichash(t + HS_RESPONSE_LEN - 32, 16, t, HS_RESPONSE_LEN - 32, b.slave.mine.mac1, 32);
    assert_int_equal(hs_client_response(&c, &b.slave, t, sizeof t, &k), HS_ERR_STALE);
    /* wrong size or kind */
    assert_int_equal(hs_client_response(&c, &b.slave, resp, sizeof resp - 1, &k), HS_ERR_FORMAT);
    assert_int_equal(hs_client_response(&c, &b.slave, init, sizeof init, &k), HS_ERR_FORMAT);
    /* none of that spoiled the handshake: the real answer still makes the session */
    assert_int_equal(hs_client_response(&c, &b.slave, resp, sizeof resp, &k), 0);
    assert_memory_equal(k.tx, res.keys.rx, 32);
}

static void test_cookie(void **state)
{
    (void)state;
    struct both b;
    both_init(&b, false);
    struct hs_client c = {0};
    assert_int_equal(hs_client_start(&c, &b.slave, &b.slave_sees_master, 1764900000, 0, false), 0);
    uint8_t init[HS_INIT_LEN], reply[HS_COOKIE_REPLY_LEN];
    hs_client_init_msg(&c, &b.slave_sees_master, 2, init);
    uint8_t secret[32], cookie[HS_COOKIE_LEN];
    randombytes_buf(secret, sizeof secret);
    struct sockaddr_in from = {0};
    from.sin_family = AF_INET;
    from.sin_port = htons(5000);
    inet_pton(AF_INET, "198.18.0.9", &from.sin_addr);
    hs_cookie(secret, (struct sockaddr *)&from, sizeof from, cookie);
    hs_cookie_reply_write(&b.master.mine, 2, init, cookie, reply);
    assert_false(hs_mac2_ok(init, HS_INIT_LEN, cookie));
    assert_int_equal(hs_client_cookie(&c, &b.slave_sees_master, reply, sizeof reply), 0);
    hs_client_init_msg(&c, &b.slave_sees_master, 2, init);
    assert_true(hs_mac2_ok(init, HS_INIT_LEN, cookie));
    /* a cookie reply to an INIT of an earlier handshake is stale */
    uint8_t old[HS_INIT_LEN];
    memcpy(old, init, sizeof old);
    assert_int_equal(hs_client_start(&c, &b.slave, &b.slave_sees_master, 1764900001, 0, false), 0);
    hs_cookie_reply_write(&b.master.mine, 2, old, cookie, reply);
    assert_int_equal(hs_client_cookie(&c, &b.slave_sees_master, reply, sizeof reply),
                     HS_ERR_STALE);
    /* the cookie is kept across handshakes */
    hs_client_init_msg(&c, &b.slave_sees_master, 2, init);
    assert_true(hs_mac2_ok(init, HS_INIT_LEN, cookie));
}

static void test_keygen(void **state)
{
    (void)state;
    char a[KEY_B64_LEN], b[KEY_B64_LEN], err[128];
    key_generate_b64(a);
    key_generate_b64(b);
    assert_int_equal(strlen(a), 44);
    assert_string_not_equal(a, b);
    uint8_t k[32];
    assert_int_equal(key_from_b64(a, k, err, sizeof err), 0);
    struct identity id;
    assert_int_equal(identity_init(&id, k), 0);
    uint8_t pub[32];
    assert_int_equal(noise_pubkey(k, pub), 0);
    assert_memory_equal(pub, id.key.pub, 32);
}

int main(void)
{
    if (session_crypto_init() != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_made),
        cmocka_unit_test(test_init_per_link),
        cmocka_unit_test(test_wrong_keys),
        cmocka_unit_test(test_forged_and_stale_answers),
        cmocka_unit_test(test_cookie),
        cmocka_unit_test(test_keygen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
