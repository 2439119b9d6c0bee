/* front.c: the master's handshake front door: MAC1, load and cookie replies, per-source-address
 * token buckets, and reading the INIT (two X25519, only past all of the above). */
#include "front.h"

#include <netinet/in.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../common/addr.h"
#include "../common/log.h"
#include "../common/util.h"

#define SRC_BUCKETS 4096 /* source addresses tracked at once (a colliding one takes the slot) */

struct bucket {
    bool used;
    uint8_t ip[16];
    uint64_t at_us;  /* when tokens was last brought up to date */
    double tokens;
};

struct front {
    const struct identity *self;
    uint64_t load_window_us;
    unsigned load_count;
    uint64_t under_load_until;
    uint8_t cookie_secret[32];
    uint64_t cookie_secret_at;
    bool have_cookie_secret;
    uint8_t bucket_key[16]; /* keys the slot hash: an attacker cannot aim at a site's slot */
    struct bucket buckets[SRC_BUCKETS];
    struct front_counters c;
    struct log_limit lim;
};

struct front *front_new(const struct identity *self)
{
    struct front *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->self = self;
    randombytes_buf(f->bucket_key, sizeof f->bucket_key);
    f->lim.interval_us = 5000000u;
    return f;
}

void front_free(struct front *f)
{
    if (!f) return;
    sodium_memzero(f, sizeof *f);
    free(f);
}

const struct front_counters *front_counters(const struct front *f)
{
    return &f->c;
}

static bool under_load(struct front *f, uint64_t now)
{
    window_roll(&f->load_window_us, &f->load_count, now);
    if (++f->load_count > FRONT_LOAD_PER_S) f->under_load_until = now + 1000000u;
    return now < f->under_load_until;
}

static const uint8_t *cookie_secret(struct front *f, uint64_t now)
{
    if (!f->have_cookie_secret || now - f->cookie_secret_at >= HS_COOKIE_SECRET_US) {
        randombytes_buf(f->cookie_secret, sizeof f->cookie_secret);
        f->cookie_secret_at = now;
        f->have_cookie_secret = true;
    }
    return f->cookie_secret;
}

/* The source's IP address (16 bytes: IPv4 as ::ffff:a.b.c.d), 0; -1 for another family. */
static int source_ip(const struct sockaddr *from, socklen_t fromlen, uint8_t ip[16])
{
    from = addr_ip_of(from, &fromlen); /* (a TCP connection: its peer) */
    if (from->sa_family == AF_INET && fromlen >= sizeof(struct sockaddr_in)) {
        memset(ip, 0, 10);
        ip[10] = ip[11] = 0xff;
        memcpy(ip + 12, &((const struct sockaddr_in *)from)->sin_addr, 4);
        return 0;
    }
    if (from->sa_family == AF_INET6 && fromlen >= sizeof(struct sockaddr_in6)) {
        memcpy(ip, &((const struct sockaddr_in6 *)from)->sin6_addr, 16);
        return 0;
    }
    return -1;
}

/* A token from the source address's bucket (FRONT_SRC_PER_S, burst FRONT_SRC_BURST). */
static bool source_allowed(struct front *f, const struct sockaddr *from, socklen_t fromlen,
                           uint64_t now)
{
    uint8_t ip[16];
    if (source_ip(from, fromlen, ip) != 0) return false;
    uint64_t h;
    crypto_shorthash((uint8_t *)&h, ip, sizeof ip, f->bucket_key);
    struct bucket *b = &f->buckets[h % SRC_BUCKETS];
    if (!b->used || memcmp(b->ip, ip, sizeof ip) != 0) {
        b->used = true;
        memcpy(b->ip, ip, sizeof ip);
        b->at_us = now;
        b->tokens = FRONT_SRC_BURST;
    }
    b->tokens += (double)(now - b->at_us) * FRONT_SRC_PER_S / 1e6;
    if (b->tokens > FRONT_SRC_BURST) b->tokens = FRONT_SRC_BURST;
    b->at_us = now;
    if (b->tokens < 1.0) return false;
    b->tokens -= 1.0;
    return true;
}

enum front_verdict front_init(struct front *f, const uint8_t *buf, size_t len,
                              const struct sockaddr *from, socklen_t fromlen, uint64_t now,
                              struct hs_server *s, uint8_t *reply, size_t *reply_len)
{
    f->c.hello_rx++;
    char as[ADDR_STRLEN];
    uint8_t kind, link_id;
    if (hs_peek(buf, len, &kind, &link_id) != 0 || kind != HS_KIND_INIT) {
        f->c.malformed++;
        return FRONT_DROP;
    }
    /* Nothing is answered to whoever does not know our public key (MAC1)... */
    if (!hs_mac1_ok(buf, len, &f->self->mine)) {
        f->c.mac1_bad++;
        log_limited(&f->lim, LOG_WARN,
                    "handshake from %s is not for this master's public key (check "
                    "master_public_key in the slave's config)",
                    addr_str(from, as, sizeof as));
        return FRONT_DROP;
    }
    /* ...under load, an X25519 is spent only on a source that proved its address... */
    if (under_load(f, now)) {
        uint8_t cookie[HS_COOKIE_LEN];
        hs_cookie(cookie_secret(f, now), from, fromlen, cookie);
        if (!hs_mac2_ok(buf, len, cookie)) {
            hs_cookie_reply_write(&f->self->mine, link_id, buf, cookie, reply);
            *reply_len = HS_COOKIE_REPLY_LEN;
            f->c.cookie_tx++;
            return FRONT_REPLY;
        }
    }
    /* ...and on no source more than its share. */
    if (!source_allowed(f, from, fromlen, now)) {
        f->c.src_ratelimited++;
        return FRONT_DROP;
    }
    if (hs_server_read(s, f->self, buf, len) != 0) {
        f->c.noise_bad++;
        log_limited(&f->lim, LOG_WARN,
                    "handshake from %s failed: its Noise message does not open (tampered, or "
                    "another braid version)",
                    addr_str(from, as, sizeof as));
        return FRONT_DROP;
    }
    return FRONT_READ;
}
