/* socks5_proto.c: SOCKS5 message building and parsing (RFC 1928, RFC 1929) for the socks5 link
 * and probe-socks. Every parser checks lengths before it reads; nothing here does I/O. */
#include "socks5_proto.h"

#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../common/util.h"

static int err_out(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int err_out(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return SOCKS5_ERROR;
}

size_t socks5_build_greeting(uint8_t out[4], bool with_auth)
{
    out[0] = SOCKS5_VERSION;
    out[1] = with_auth ? 2 : 1;
    out[2] = SOCKS5_METHOD_NONE;
    if (!with_auth) return 3;
    out[3] = SOCKS5_METHOD_USERPASS;
    return 4;
}

const char *socks5_method_str(uint8_t m)
{
    switch (m) {
    case 0x00: return "no authentication";
    case 0x01: return "GSSAPI";
    case 0x02: return "username/password";
    case 0xff: return "no acceptable methods";
    default: return "an unknown method";
    }
}

int socks5_parse_method(const uint8_t *buf, size_t len, bool with_auth, uint8_t *method,
                        char *err, size_t errlen)
{
    if (len < 2) return SOCKS5_NEED_MORE;
    if (buf[0] != SOCKS5_VERSION)
        return err_out(err, errlen,
                       "answered with version byte 0x%02x, expected 0x05: not a SOCKS5 proxy "
                       "(a SOCKS4 or HTTP proxy?)",
                       buf[0]);
    *method = buf[1];
    if (buf[1] == SOCKS5_METHOD_REFUSED)
        return err_out(err, errlen, "accepts none of the offered methods (%s): %s",
                       with_auth ? "no authentication, username/password" : "no authentication",
                       with_auth ? "it may need another kind of login"
                                 : "it needs a login; set username and password for the link");
    if (buf[1] == SOCKS5_METHOD_NONE) return 2;
    if (buf[1] == SOCKS5_METHOD_USERPASS && with_auth) return 2;
    return err_out(err, errlen, "chose method 0x%02x (%s), which braid did not offer", buf[1],
                   socks5_method_str(buf[1]));
}

size_t socks5_build_auth(uint8_t *out, size_t cap, const char *user, const char *pass)
{
    size_t ul = strlen(user), pl = strlen(pass);
    if (ul == 0 || ul > 255 || pl == 0 || pl > 255 || cap < 3 + ul + pl) return 0;
    out[0] = 1; /* RFC 1929 sub-negotiation version */
    out[1] = (uint8_t)ul;
    memcpy(out + 2, user, ul);
    out[2 + ul] = (uint8_t)pl;
    memcpy(out + 3 + ul, pass, pl);
    return 3 + ul + pl;
}

int socks5_parse_auth_reply(const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    if (len < 2) return SOCKS5_NEED_MORE;
    /* RFC 1929 says version 1; some proxies answer with 5. Both are taken. */
    if (buf[0] != 1 && buf[0] != SOCKS5_VERSION)
        return err_out(err, errlen,
                       "answered the login with version byte 0x%02x, expected 0x01 (RFC 1929)",
                       buf[0]);
    if (buf[1] != 0)
        return err_out(err, errlen,
                       "rejected the username/password (status %u); check the link's username "
                       "and password",
                       buf[1]);
    return 2;
}

size_t socks5_build_request(uint8_t *out, size_t cap, uint8_t cmd, const struct sockaddr *dst)
{
    size_t alen;
    if (dst->sa_family == AF_INET) alen = 4;
    else if (dst->sa_family == AF_INET6) alen = 16;
    else return 0;
    if (cap < 6 + alen) return 0;
    out[0] = SOCKS5_VERSION;
    out[1] = cmd;
    out[2] = 0;
    if (alen == 4) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)dst;
        out[3] = SOCKS5_ATYP_IPV4;
        memcpy(out + 4, &s4->sin_addr, 4);
        memcpy(out + 8, &s4->sin_port, 2);
    } else {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)dst;
        out[3] = SOCKS5_ATYP_IPV6;
        memcpy(out + 4, &s6->sin6_addr, 16);
        memcpy(out + 20, &s6->sin6_port, 2);
    }
    return 6 + alen;
}

const char *socks5_rep_str(uint8_t rep)
{
    switch (rep) {
    case 0: return "succeeded";
    case 1: return "general SOCKS server failure";
    case 2: return "connection not allowed by ruleset";
    case 3: return "network unreachable";
    case 4: return "host unreachable";
    case 5: return "connection refused";
    case 6: return "TTL expired";
    case 7: return "command not supported";
    case 8: return "address type not supported";
    default: return "unassigned reply code";
    }
}

static bool hostname_ok(const uint8_t *p, size_t n)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || c == '_';
        if (!ok) return false;
    }
    return true;
}

/* Address fields shared by the reply and the UDP header: ATYP at p[0], then the address and a
 * port. Returns the bytes they take (ATYP included), 0 if more are needed, -1 if ATYP is unknown
 * or the domain empty, -2 if the domain is not a host name (binary bytes, NUL, spaces). */
static int parse_addr(const uint8_t *p, size_t len, uint8_t *atyp, struct addr *a, char *domain,
                      unsigned *port)
{
    if (len < 1) return 0;
    *atyp = p[0];
    memset(a, 0, sizeof *a);
    domain[0] = '\0';
    if (p[0] == SOCKS5_ATYP_IPV4) {
        if (len < 1 + 4 + 2) return 0;
        struct sockaddr_in *s4 = (struct sockaddr_in *)&a->ss;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, p + 1, 4);
        memcpy(&s4->sin_port, p + 5, 2);
        a->len = sizeof *s4;
        *port = get_be16(p + 5);
        return 7;
    }
    if (p[0] == SOCKS5_ATYP_IPV6) {
        if (len < 1 + 16 + 2) return 0;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->ss;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, p + 1, 16);
        memcpy(&s6->sin6_port, p + 17, 2);
        a->len = sizeof *s6;
        *port = get_be16(p + 17);
        return 19;
    }
    if (p[0] == SOCKS5_ATYP_DOMAIN) {
        if (len < 2) return 0;
        size_t n = p[1];
        if (n == 0) return -1;
        if (len < 2 + n + 2) return 0;
        if (!hostname_ok(p + 2, n)) return -2;
        memcpy(domain, p + 2, n);
        domain[n] = '\0';
        *port = get_be16(p + 2 + n);
        return (int)(2 + n + 2);
    }
    return -1;
}

int socks5_parse_reply(const uint8_t *buf, size_t len, uint8_t cmd, struct socks5_reply *r,
                       char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    if (len < 2) return SOCKS5_NEED_MORE;
    if (buf[0] != SOCKS5_VERSION)
        return err_out(err, errlen, "replied with version byte 0x%02x, expected 0x05", buf[0]);
    r->rep = buf[1];
    if (buf[1] != 0)
        return err_out(err, errlen, "refused %s: %s (REP=%u)%s",
                       cmd == SOCKS5_CMD_CONNECT ? "CONNECT" : "UDP ASSOCIATE",
                       socks5_rep_str(buf[1]), buf[1],
                       buf[1] == 7 && cmd != SOCKS5_CMD_CONNECT
                           ? "; if the proxy does TCP (CONNECT) only, make the link "
                             "type = \"socks5-tcp\""
                           : "");
    if (len < 4) return SOCKS5_NEED_MORE;
    /* buf[2] is RSV: RFC 1928 says 0; not checked, it carries nothing. */
    int n = parse_addr(buf + 3, len - 3, &r->atyp, &r->addr, r->domain, &r->port);
    if (n == 0) return SOCKS5_NEED_MORE;
    if (n == -2)
        return err_out(err, errlen,
                       "replied with a relay address that is not a host name (ATYP domain, %zu "
                       "bytes)",
                       (size_t)buf[4]);
    if (n < 0) {
        if (buf[3] == SOCKS5_ATYP_DOMAIN)
            return err_out(err, errlen, "replied with an empty domain name as relay address");
        return err_out(err, errlen, "replied with unknown address type %u (ATYP)", buf[3]);
    }
    if (r->port == 0)
        return err_out(err, errlen, "replied with relay port 0 (BND.PORT): nowhere to send to");
    return 3 + n;
}

size_t socks5_udp_header(uint8_t out[SOCKS5_UDP_HDR_V6], const struct sockaddr *dst)
{
    /* The same layout as a request after its first three bytes: RSV RSV FRAG = 0 0 0. */
    uint8_t tmp[SOCKS5_UDP_HDR_V6];
    size_t n = socks5_build_request(tmp, sizeof tmp, 0, dst);
    if (n == 0) return 0;
    memcpy(out, tmp, n);
    out[0] = out[1] = out[2] = 0;
    return n;
}

enum socks5_udp_result socks5_udp_parse(const uint8_t *buf, size_t len, struct socks5_udp_src *src,
                                        size_t *hdrlen)
{
    memset(src, 0, sizeof *src);
    if (len < 4) return SOCKS5_UDP_SHORT;
    if (buf[0] != 0 || buf[1] != 0) return SOCKS5_UDP_RSV;
    if (buf[2] != 0) return SOCKS5_UDP_FRAG;
    int n = parse_addr(buf + 3, len - 3, &src->atyp, &src->addr, src->domain, &src->port);
    if (n < 0) return SOCKS5_UDP_ATYP;
    if (n == 0) return SOCKS5_UDP_SHORT;
    *hdrlen = 3 + (size_t)n;
    return SOCKS5_UDP_OK;
}

const char *socks5_udp_result_str(enum socks5_udp_result r)
{
    switch (r) {
    case SOCKS5_UDP_OK: return "ok";
    case SOCKS5_UDP_SHORT: return "shorter than its SOCKS5 UDP header";
    case SOCKS5_UDP_RSV: return "reserved bytes of the SOCKS5 UDP header not zero";
    case SOCKS5_UDP_FRAG: return "a SOCKS5 fragment (FRAG != 0)";
    case SOCKS5_UDP_ATYP: return "bad address in the SOCKS5 UDP header";
    }
    return "?";
}
