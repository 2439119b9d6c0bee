/* prefix.c: IP prefix parsing and printing, a binary-trie longest-prefix-match table, and the
 * addresses of a tunnel packet. */
#include "prefix.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int prefix_parse(const char *s, struct prefix *p, char *why, size_t whylen)
{
    memset(p, 0, sizeof *p);
    char ip[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(s, '/');
    size_t iplen = slash ? (size_t)(slash - s) : strlen(s);
    if (iplen == 0 || iplen >= sizeof ip) {
        snprintf(why, whylen, "\"%s\" is not an IP prefix; expected e.g. \"10.1.0.0/24\" or "
                              "\"fd00:1::/64\"", s);
        return -1;
    }
    memcpy(ip, s, iplen);
    ip[iplen] = 0;
    unsigned max;
    if (inet_pton(AF_INET, ip, p->addr) == 1) {
        p->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, ip, p->addr) == 1) {
        p->family = AF_INET6;
        max = 128;
    } else {
        snprintf(why, whylen, "\"%s\" is not an IP address (in \"%s\"); expected e.g. "
                              "\"10.1.0.0/24\" or \"fd00:1::/64\"", ip, s);
        return -1;
    }
    p->len = max;
    if (slash) {
        const char *d = slash + 1;
        unsigned v = 0;
        size_t n = 0;
        for (; d[n] >= '0' && d[n] <= '9' && n < 4; n++) v = v * 10 + (unsigned)(d[n] - '0');
        if (n == 0 || d[n] != 0 || v > max) {
            snprintf(why, whylen, "\"%s\": the prefix length must be a number from 0 to %u", s,
                     max);
            return -1;
        }
        p->len = v;
    }
    for (unsigned b = p->len; b < max; b++) {
        if (p->addr[b / 8] & (0x80u >> (b % 8))) {
            struct prefix net = *p;
            for (unsigned c = p->len; c < max; c++) net.addr[c / 8] &= (uint8_t)~(0x80u >> (c % 8));
            char ns[PREFIX_STRLEN];
            snprintf(why, whylen, "\"%s\" has address bits set after /%u; did you mean \"%s\"?",
                     s, p->len, prefix_str(&net, ns, sizeof ns));
            return -1;
        }
    }
    return 0;
}

const char *ip_str(int family, const uint8_t *addr, char *buf, size_t len)
{
    if (!inet_ntop(family, addr, buf, (socklen_t)len)) snprintf(buf, len, "?");
    return buf;
}

const char *prefix_str(const struct prefix *p, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    snprintf(buf, len, "%s/%u", ip_str(p->family, p->addr, ip, sizeof ip), p->len);
    return buf;
}

/* ---------------------------------------------------------------- table: a binary trie */

struct pnode {
    uint32_t child[2]; /* node numbers; 0 = none (node 0 and 1 are the roots) */
    uint32_t value;
    bool has_value;
};

struct ptable {
    struct pnode *n;
    uint32_t count, cap;
};

struct ptable *ptable_new(void)
{
    struct ptable *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->cap = 8;
    t->n = calloc(t->cap, sizeof *t->n);
    if (!t->n) {
        free(t);
        return NULL;
    }
    t->count = 2; /* roots: 0 for IPv4, 1 for IPv6 */
    return t;
}

void ptable_free(struct ptable *t)
{
    if (!t) return;
    free(t->n);
    free(t);
}

static int bit(const uint8_t *a, unsigned i)
{
    return (a[i / 8] >> (7 - i % 8)) & 1;
}

int ptable_insert(struct ptable *t, const struct prefix *p, uint32_t value, uint32_t *old)
{
    uint32_t at = p->family == AF_INET ? 0 : 1;
    for (unsigned i = 0; i < p->len; i++) {
        int b = bit(p->addr, i);
        if (!t->n[at].child[b]) {
            if (t->count == t->cap) {
                if (t->cap > UINT32_MAX / 4) return -1;
                struct pnode *nn = realloc(t->n, (size_t)t->cap * 2 * sizeof *nn);
                if (!nn) return -1;
                memset(nn + t->cap, 0, (size_t)t->cap * sizeof *nn);
                t->n = nn;
                t->cap *= 2;
            }
            t->n[at].child[b] = t->count++;
        }
        at = t->n[at].child[b];
    }
    if (t->n[at].has_value) {
        if (old) *old = t->n[at].value;
        return 1;
    }
    t->n[at].has_value = true;
    t->n[at].value = value;
    return 0;
}

int ptable_lookup(const struct ptable *t, int family, const uint8_t *addr, uint32_t *value)
{
    if (family != AF_INET && family != AF_INET6) return -1;
    unsigned max = family == AF_INET ? 32 : 128;
    uint32_t at = family == AF_INET ? 0 : 1;
    bool found = false;
    for (unsigned i = 0;; i++) {
        if (t->n[at].has_value) {
            *value = t->n[at].value;
            found = true;
        }
        if (i == max) break;
        uint32_t next = t->n[at].child[bit(addr, i)];
        if (!next) break;
        at = next;
    }
    return found ? 0 : -1;
}

size_t ptable_bytes(const struct ptable *t)
{
    return sizeof *t + (size_t)t->cap * sizeof *t->n;
}

int ip_pkt_addrs(const uint8_t *pkt, size_t len, const uint8_t **src, const uint8_t **dst)
{
    if (len >= 20 && pkt[0] >> 4 == 4 && (pkt[0] & 0x0f) >= 5) {
        *src = pkt + 12;
        *dst = pkt + 16;
        return AF_INET;
    }
    if (len >= 40 && pkt[0] >> 4 == 6) {
        *src = pkt + 8;
        *dst = pkt + 24;
        return AF_INET6;
    }
    return 0;
}
