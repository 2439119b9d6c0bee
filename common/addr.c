/* addr.c: parse and print socket addresses: "1.2.3.4:5", "[::1]:5", and host:port splitting.
 * No DNS here; names are resolved elsewhere. */
#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int addr_split(const char *s, char *host, size_t hostlen, unsigned *port, char *err, size_t errlen)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (!s || !*s) {
        snprintf(err, errlen, "empty address; expected \"host:port\"");
        return -1;
    }
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close) {
            snprintf(err, errlen, "\"%s\": missing ']' after IPv6 address", s);
            return -1;
        }
        h = s + 1;
        hl = (size_t)(close - h);
        if (close[1] != ':') {
            snprintf(err, errlen, "\"%s\": missing \":port\" after ']'", s);
            return -1;
        }
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) {
            snprintf(err, errlen, "\"%s\": missing \":port\"", s);
            return -1;
        }
        if (memchr(s, ':', (size_t)(colon - s))) {
            snprintf(err, errlen, "\"%s\": IPv6 addresses need brackets, e.g. \"[::1]:7000\"", s);
            return -1;
        }
        hl = (size_t)(colon - s);
    }
    if (hl == 0) {
        snprintf(err, errlen, "\"%s\": empty host", s);
        return -1;
    }
    if (hl >= hostlen) {
        snprintf(err, errlen, "\"%s\": host name too long (at most %zu characters)", s,
                 hostlen - 1);
        return -1;
    }
    const char *ps = colon + 1;
    char *end;
    errno = 0;
    unsigned long p = strtoul(ps, &end, 10);
    if (*ps < '0' || *ps > '9' || *end || errno || p == 0 || p > 65535) {
        snprintf(err, errlen, "\"%s\": port must be a number from 1 to 65535", s);
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (unsigned)p;
    return 0;
}

int addr_parse_ip(const char *ip, unsigned port, struct addr *out)
{
    memset(out, 0, sizeof *out);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&out->ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&out->ss;
    if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        out->len = sizeof *a4;
        return 0;
    }
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        out->len = sizeof *a6;
        return 0;
    }
    return -1;
}

int addr_parse(const char *s, struct addr *out, char *err, size_t errlen)
{
    char host[256];
    unsigned port;
    if (addr_split(s, host, sizeof host, &port, err, errlen) < 0) return -1;
    if (addr_parse_ip(host, port, out) < 0) {
        snprintf(err, errlen, "\"%s\": \"%s\" is not an IPv4 or IPv6 address", s, host);
        return -1;
    }
    return 0;
}

const struct sockaddr *addr_ip_of(const struct sockaddr *sa, socklen_t *len)
{
    if (sa->sa_family != ADDR_FAMILY_STREAM) return sa;
    if (len) *len = sizeof(struct sockaddr_in6);
    return (const struct sockaddr *)&((const struct addr_stream *)sa)->peer;
}

const char *addr_str(const struct sockaddr *sa, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    if (sa->sa_family == ADDR_FAMILY_STREAM) {
        const struct sockaddr_in6 *a6 = &((const struct addr_stream *)sa)->peer;
        if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
            inet_ntop(AF_INET, &a6->sin6_addr.s6_addr[12], ip, sizeof ip);
            snprintf(buf, len, "TCP %s:%u", ip, ntohs(a6->sin6_port));
        } else {
            inet_ntop(AF_INET6, &a6->sin6_addr, ip, sizeof ip);
            snprintf(buf, len, "TCP [%s]:%u", ip, ntohs(a6->sin6_port));
        }
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a4->sin_addr, ip, sizeof ip);
        snprintf(buf, len, "%s:%u", ip, ntohs(a4->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a6->sin6_addr, ip, sizeof ip);
        snprintf(buf, len, "[%s]:%u", ip, ntohs(a6->sin6_port));
    } else {
        snprintf(buf, len, "(none)");
    }
    return buf;
}

bool addr_equal(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family) return false;
    if (a->sa_family == ADDR_FAMILY_STREAM)
        return ((const struct addr_stream *)a)->conn == ((const struct addr_stream *)b)->conn;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0 &&
               x->sin6_scope_id == y->sin6_scope_id;
    }
    return false;
}

bool addr_same_ip(const struct sockaddr *a, const struct sockaddr *b)
{
    a = addr_ip_of(a, NULL);
    b = addr_ip_of(b, NULL);
    if (a->sa_family != b->sa_family) return false;
    if (a->sa_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->sa_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
    return false;
}

unsigned addr_port(const struct sockaddr *sa)
{
    sa = addr_ip_of(sa, NULL);
    if (sa->sa_family == AF_INET) return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

bool addr_is_unspecified(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (sa->sa_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    return false;
}

void addr_set_port(struct addr *a, unsigned port)
{
    if (a->ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&a->ss)->sin_port = htons((uint16_t)port);
    else if (a->ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons((uint16_t)port);
}

void addr_unmap(struct addr *a)
{
    if (a->ss.ss_family != AF_INET6) return;
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&a->ss;
    if (!IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) return;
    struct sockaddr_in a4;
    memset(&a4, 0, sizeof a4);
    a4.sin_family = AF_INET;
    a4.sin_port = a6->sin6_port;
    memcpy(&a4.sin_addr, &a6->sin6_addr.s6_addr[12], 4);
    memset(a, 0, sizeof *a);
    memcpy(&a->ss, &a4, sizeof a4);
    a->len = sizeof a4;
}

const char *addr_ip_str(const struct sockaddr *sa, char *buf, size_t len)
{
    const void *src = sa->sa_family == AF_INET
                          ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                          : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    if ((sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
        !inet_ntop(sa->sa_family, src, buf, (socklen_t)len))
        snprintf(buf, len, "(none)");
    return buf;
}
