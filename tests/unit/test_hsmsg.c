/* test_hsmsg.c: unit tests of wire version 3's handshake messages (mux/hsmsg.c): a full INIT /
 * RESPONSE exchange, MAC1 and MAC2, the cookie path, TAI64N order, hostile headers and bits. */
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

#include "../../mux/hsmsg.h"

struct ends {
    struct noise_keypair is, rs;
    struct hs_peer_keys ik, rk; /* keys of the initiator's and of the responder's public key */
    uint8_t psk[32];
    struct noise_hs i, r;
    uint8_t ts[HS_TS_LEN];
};

static void ends_init(struct ends *e)
{
    noise_keypair_new(&e->is);
    noise_keypair_new(&e->rs);
    hs_peer_keys(e->is.pub, &e->ik);
    hs_peer_keys(e->rs.pub, &e->rk);
    randombytes_buf(e->psk, sizeof e->psk);
    noise_hs_init(&e->i, true, (const uint8_t *)HS_PROLOGUE, strlen(HS_PROLOGUE), &e->is,
                  e->rs.pub, e->psk);
    uint8_t nopsk[32] = {0};
    noise_hs_init(&e->r, false, (const uint8_t *)HS_PROLOGUE, strlen(HS_PROLOGUE), &e->rs, NULL,
                  nopsk);
    hs_tai64n(1764900000, 123456789, e->ts);
}

static struct sockaddr_in addr4(const char *ip, uint16_t port)
{
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static void test_exchange(void **state)
{
    (void)state;
    struct ends e;
    ends_init(&e);
    uint8_t init[HS_INIT_LEN], resp[HS_RESPONSE_LEN];
    assert_int_equal(hs_init_write(&e.i, NULL, 7, 0x3344u, e.ts, 0, &e.rk, NULL, init), 0);
    uint8_t kind = 0, link = 0;
    assert_int_equal(hs_peek(init, sizeof init, &kind, &link), 0);
    assert_int_equal(kind, HS_KIND_INIT);
    assert_int_equal(link, 7);
    assert_true(hs_mac1_ok(init, sizeof init, &e.rk));
    assert_false(hs_mac1_ok(init, sizeof init, &e.ik)); /* keyed by the responder's key only */
    uint8_t any_cookie[HS_COOKIE_LEN] = {0};
    assert_false(hs_mac2_ok(init, sizeof init, any_cookie));

    uint32_t sender = 0;
    uint8_t ts[HS_TS_LEN];
    assert_int_equal(hs_init_read(&e.r, init, sizeof init, &sender, ts, NULL), 0);
    assert_int_equal(sender, 0x3344u);
    assert_memory_equal(ts, e.ts, HS_TS_LEN);
    assert_memory_equal(e.r.rs, e.is.pub, 32); /* the responder knows who calls */
    memcpy(e.r.psk, e.psk, 32);                /* ...and sets that initiator's PSK */

    assert_int_equal(hs_response_write(&e.r, NULL, 7, 0xc0d0u, sender, 0, &e.ik, NULL, resp), 0);
    assert_int_equal(hs_peek(resp, sizeof resp, &kind, &link), 0);
    assert_int_equal(kind, HS_KIND_RESPONSE);
    assert_true(hs_mac1_ok(resp, sizeof resp, &e.ik));
    assert_int_equal(hs_receiver_index(resp, sizeof resp), 0x3344u);
    uint32_t rsender = 0;
    assert_int_equal(hs_response_read(&e.i, resp, sizeof resp, &rsender, NULL), 0);
    assert_int_equal(rsender, 0xc0d0u);
    uint8_t a1[32], a2[32], b1[32], b2[32];
    assert_int_equal(noise_split(&e.i, a1, a2, NULL), 0);
    assert_int_equal(noise_split(&e.r, b1, b2, NULL), 0);
    assert_memory_equal(a1, b1, 32);
    assert_memory_equal(a2, b2, 32);
    /* no amplification: every answer is smaller than the INIT */
    assert_true(HS_RESPONSE_LEN < HS_INIT_LEN && HS_COOKIE_REPLY_LEN < HS_INIT_LEN);
}

static void test_wrong_psk_fails_at_response(void **state)
{
    (void)state;
    struct ends e;
    ends_init(&e);
    uint8_t init[HS_INIT_LEN], resp[HS_RESPONSE_LEN], ts[HS_TS_LEN];
    uint32_t sender;
    assert_int_equal(hs_init_write(&e.i, NULL, 0, 1, e.ts, 0, &e.rk, NULL, init), 0);
    assert_int_equal(hs_init_read(&e.r, init, sizeof init, &sender, ts, NULL), 0);
    /* (e.r.psk left at zero: not the initiator's) */
    assert_int_equal(hs_response_write(&e.r, NULL, 0, 2, sender, 0, &e.ik, NULL, resp), 0);
    uint32_t rs;
    assert_int_equal(hs_response_read(&e.i, resp, sizeof resp, &rs, NULL), HS_ERR_NOISE);
}

static void test_init_to_wrong_responder(void **state)
{
    (void)state;
    struct ends e;
    ends_init(&e);
    uint8_t init[HS_INIT_LEN], ts[HS_TS_LEN];
    uint32_t sender;
    assert_int_equal(hs_init_write(&e.i, NULL, 0, 1, e.ts, 0, &e.rk, NULL, init), 0);
    struct noise_keypair other;
    noise_keypair_new(&other);
    struct hs_peer_keys ok;
    hs_peer_keys(other.pub, &ok);
    assert_false(hs_mac1_ok(init, sizeof init, &ok));
    struct noise_hs r;
    uint8_t nopsk[32] = {0};
    noise_hs_init(&r, false, (const uint8_t *)HS_PROLOGUE, strlen(HS_PROLOGUE), &other, NULL,
                  nopsk);
    assert_int_equal(hs_init_read(&r, init, sizeof init, &sender, ts, NULL), HS_ERR_NOISE);
}

static void test_bit_flips_break_mac1(void **state)
{
    (void)state;
    struct ends e;
    ends_init(&e);
    uint8_t init[HS_INIT_LEN];
    assert_int_equal(hs_init_write(&e.i, NULL, 3, 9, e.ts, 0, &e.rk, NULL, init), 0);
    /* every bit before MAC2 is covered by MAC1 (MAC2 is not: it is zero without a cookie) */
    for (size_t b = 0; b < (HS_INIT_LEN - HS_MAC_LEN) * 8; b++) {
        uint8_t t[HS_INIT_LEN];
        memcpy(t, init, sizeof t);
        t[b / 8] ^= (uint8_t)(1u << (b % 8));
        uint8_t kind, link;
        assert_false(hs_peek(t, sizeof t, &kind, &link) == 0 && hs_mac1_ok(t, sizeof t, &e.rk));
    }
}

/* Indices are 16 bits: a message with a wider one is refused (datagrams could not carry it). */
static void test_wide_index_refused(void **state)
{
    (void)state;
    struct ends e;
    ends_init(&e);
    uint8_t init[HS_INIT_LEN], resp[HS_RESPONSE_LEN], ts[HS_TS_LEN];
    uint32_t sender;
    assert_int_equal(hs_init_write(&e.i, NULL, 0, 0x10000u, e.ts, 0, &e.rk, NULL, init), 0);
    assert_int_equal(hs_init_read(&e.r, init, sizeof init, &sender, ts, NULL), HS_ERR_FORMAT);
    ends_init(&e);
    assert_int_equal(hs_init_write(&e.i, NULL, 0, 0xffffu, e.ts, 0, &e.rk, NULL, init), 0);
    assert_int_equal(hs_init_read(&e.r, init, sizeof init, &sender, ts, NULL), 0);
    memcpy(e.r.psk, e.psk, 32);
    assert_int_equal(hs_response_write(&e.r, NULL, 0, 0x12345u, sender, 0, &e.ik, NULL, resp), 0);
    assert_int_equal(hs_response_read(&e.i, resp, sizeof resp, &sender, NULL), HS_ERR_FORMAT);
}

static void test_peek_hostile(void **state)
{
    (void)state;
    uint8_t buf[200] = {0};
    uint8_t kind, link;
    buf[0] = HS_BYTE0;
    buf[2] = HS_KIND_INIT;
    for (size_t len = 0; len < sizeof buf; len++) {
        int rc = hs_peek(buf, len, &kind, &link);
        assert_int_equal(rc, len == HS_INIT_LEN ? 0 : HS_ERR_FORMAT);
    }
    static const uint8_t kinds[] = {0, 4, 5, 255};
    for (size_t k = 0; k < sizeof kinds; k++) {
        buf[2] = kinds[k];
        for (size_t len = 0; len < sizeof buf; len++)
            assert_int_equal(hs_peek(buf, len, &kind, &link), HS_ERR_FORMAT);
    }
    buf[2] = HS_KIND_RESPONSE;
    assert_int_equal(hs_peek(buf, HS_RESPONSE_LEN, &kind, &link), 0);
    buf[3] = 1;
    assert_int_equal(hs_peek(buf, HS_RESPONSE_LEN, &kind, &link), HS_ERR_FORMAT);
    buf[3] = 0;
    for (int b0 = 0; b0 < 256; b0++) {
        buf[0] = (uint8_t)b0;
        assert_int_equal(hs_peek(buf, HS_RESPONSE_LEN, &kind, &link) == 0, b0 == HS_BYTE0);
    }
    /* the readers check their own kind and length */
    struct ends e;
    ends_init(&e);
    uint32_t s;
    uint8_t ts[HS_TS_LEN], c[HS_COOKIE_LEN], mac1[HS_MAC_LEN] = {0};
    buf[0] = HS_BYTE0;
    assert_int_equal(hs_init_read(&e.r, buf, HS_RESPONSE_LEN, &s, ts, NULL), HS_ERR_FORMAT);
    assert_int_equal(hs_response_read(&e.i, buf, HS_INIT_LEN, &s, NULL), HS_ERR_FORMAT);
    assert_int_equal(hs_cookie_reply_read(&e.rk, buf, HS_RESPONSE_LEN, mac1, c), HS_ERR_FORMAT);
    assert_int_equal(hs_receiver_index(buf, 10), 0);
}

static void test_cookie_path(void **state)
{
    (void)state;
    struct ends e;
    ends_init(&e);
    uint8_t secret[32], init[HS_INIT_LEN], reply[HS_COOKIE_REPLY_LEN];
    randombytes_buf(secret, sizeof secret);
    assert_int_equal(hs_init_write(&e.i, NULL, 1, 0xbeefu, e.ts, 0, &e.rk, NULL, init), 0);
    struct sockaddr_in from = addr4("198.18.0.2", 40000);
    uint8_t cookie[HS_COOKIE_LEN];
    hs_cookie(secret, (struct sockaddr *)&from, sizeof from, cookie);
    hs_cookie_reply_write(&e.rk, 1, init, cookie, reply);
    uint8_t kind, link;
    assert_int_equal(hs_peek(reply, sizeof reply, &kind, &link), 0);
    assert_int_equal(kind, HS_KIND_COOKIE);
    assert_int_equal(hs_receiver_index(reply, sizeof reply), 0xbeefu);

    /* the initiator opens it with the MAC1 it sent, and no other */
    uint8_t got[HS_COOKIE_LEN], mac1[HS_MAC_LEN];
    memcpy(mac1, hs_mac1_of(init, sizeof init), HS_MAC_LEN);
    assert_int_equal(hs_cookie_reply_read(&e.rk, reply, sizeof reply, mac1, got), 0);
    assert_memory_equal(got, cookie, HS_COOKIE_LEN);
    uint8_t other_mac1[HS_MAC_LEN];
    memcpy(other_mac1, mac1, HS_MAC_LEN);
    other_mac1[0] ^= 1;
    assert_int_equal(hs_cookie_reply_read(&e.rk, reply, sizeof reply, other_mac1, got),
                     HS_ERR_COOKIE);
    assert_int_equal(hs_cookie_reply_read(&e.ik, reply, sizeof reply, mac1, got), HS_ERR_COOKIE);
    for (size_t b = 8 * 8; b < sizeof reply * 8; b += 3) {
        uint8_t t[sizeof reply];
        memcpy(t, reply, sizeof t);
        t[b / 8] ^= (uint8_t)(1u << (b % 8));
        assert_int_equal(hs_cookie_reply_read(&e.rk, t, sizeof t, mac1, got), HS_ERR_COOKIE);
    }

    /* the next INIT carries MAC2: valid for this source only */
    struct noise_hs i2;
    noise_hs_init(&i2, true, (const uint8_t *)HS_PROLOGUE, strlen(HS_PROLOGUE), &e.is, e.rs.pub,
                  e.psk);
    uint8_t init2[HS_INIT_LEN];
    assert_int_equal(hs_init_write(&i2, NULL, 1, 0xbeefu, e.ts, 0, &e.rk, got, init2), 0);
    assert_true(hs_mac1_ok(init2, sizeof init2, &e.rk));
    uint8_t c2[HS_COOKIE_LEN];
    hs_cookie(secret, (struct sockaddr *)&from, sizeof from, c2);
    assert_true(hs_mac2_ok(init2, sizeof init2, c2));
    struct sockaddr_in other_port = addr4("198.18.0.2", 40001), other_ip = addr4("198.18.0.3", 40000);
    hs_cookie(secret, (struct sockaddr *)&other_port, sizeof other_port, c2);
    assert_false(hs_mac2_ok(init2, sizeof init2, c2));
    hs_cookie(secret, (struct sockaddr *)&other_ip, sizeof other_ip, c2);
    assert_false(hs_mac2_ok(init2, sizeof init2, c2));
    uint8_t secret2[32];
    randombytes_buf(secret2, sizeof secret2); /* the secret changed: the cookie is stale */
    hs_cookie(secret2, (struct sockaddr *)&from, sizeof from, c2);
    assert_false(hs_mac2_ok(init2, sizeof init2, c2));
    /* an IPv6 source gets a cookie of its own too */
    struct sockaddr_in6 a6 = {0};
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(40000);
    inet_pton(AF_INET6, "2001:db8::2", &a6.sin6_addr);
    hs_cookie(secret, (struct sockaddr *)&a6, sizeof a6, c2);
    assert_memory_not_equal(c2, cookie, HS_COOKIE_LEN);
}

static void test_tai64n(void **state)
{
    (void)state;
    uint8_t a[HS_TS_LEN], b[HS_TS_LEN];
    hs_tai64n(0, 0, a);
    static const uint8_t epoch[HS_TS_LEN] = {0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(a, epoch, HS_TS_LEN);
    hs_tai64n(1764900000, 999999999, a);
    hs_tai64n(1764900001, 0, b);
    assert_true(memcmp(a, b, HS_TS_LEN) < 0); /* later second: greater */
    hs_tai64n(1764900000, 100000000, a);
    hs_tai64n(1764900000, 200000000, b);
    assert_true(memcmp(a, b, HS_TS_LEN) < 0); /* 100 ms later: greater */
    hs_tai64n(1764900000, 0x1000000, a);
    hs_tai64n(1764900000, 0x1ffffff, b);
    assert_memory_equal(a, b, HS_TS_LEN); /* within 16.8 ms: the same label */
}

/* The flags in the Noise payloads: known ones arrive; a message with any other bit set does not
 * open (a newer peer's request this version cannot honour is not half taken). */
static void test_payload_flags(void **state)
{
    (void)state;
    for (int bad = 0; bad < 2; bad++) {
        struct ends e;
        ends_init(&e);
        uint8_t init[HS_INIT_LEN], resp[HS_RESPONSE_LEN], ts[HS_TS_LEN], flags = 0xee;
        uint32_t sender = 0;
        uint8_t want = bad ? (uint8_t)(HS_INIT_F_REKEY | 0x80) : HS_INIT_F_REKEY;
        assert_int_equal(hs_init_write(&e.i, NULL, 0, 1, e.ts, want, &e.rk, NULL, init), 0);
        int rc = hs_init_read(&e.r, init, sizeof init, &sender, ts, &flags);
        if (bad) {
            assert_int_equal(rc, HS_ERR_NOISE);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(flags, HS_INIT_F_REKEY);
        memcpy(e.r.psk, e.psk, 32);
        /* a RESPONSE with an unknown bit does not open; the initiator's state is the caller's
         * to keep (session.c restores it), so each try starts from a copy */
        struct noise_hs saved = e.i;
        assert_int_equal(hs_response_write(&e.r, NULL, 0, 2, sender, 0x02, &e.ik, NULL, resp), 0);
        assert_int_equal(hs_response_read(&e.i, resp, sizeof resp, &sender, &flags),
                         HS_ERR_NOISE);
        e.i = saved;
        struct ends f;
        ends_init(&f);
        assert_int_equal(hs_init_write(&f.i, NULL, 0, 1, f.ts, 0, &f.rk, NULL, init), 0);
        assert_int_equal(hs_init_read(&f.r, init, sizeof init, &sender, ts, &flags), 0);
        assert_int_equal(flags, 0);
        memcpy(f.r.psk, f.psk, 32);
        assert_int_equal(hs_response_write(&f.r, NULL, 0, 2, sender, HS_RESP_F_CONTINUED, &f.ik,
                                           NULL, resp),
                         0);
        flags = 0;
        assert_int_equal(hs_response_read(&f.i, resp, sizeof resp, &sender, &flags), 0);
        assert_int_equal(flags, HS_RESP_F_CONTINUED);
    }
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exchange),
        cmocka_unit_test(test_payload_flags),
        cmocka_unit_test(test_wrong_psk_fails_at_response),
        cmocka_unit_test(test_init_to_wrong_responder),
        cmocka_unit_test(test_bit_flips_break_mac1),
        cmocka_unit_test(test_wide_index_refused),
        cmocka_unit_test(test_peek_hostile),
        cmocka_unit_test(test_cookie_path),
        cmocka_unit_test(test_tai64n),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
