/* socks5_proto.h: the SOCKS5 message codec (RFC 1928 method negotiation, UDP ASSOCIATE, §7 UDP
 * header; RFC 1929 username/password). Pure functions on byte buffers, bounds-checked. */
#ifndef BRAID_SOCKS5_PROTO_H
#define BRAID_SOCKS5_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../common/addr.h"

#define SOCKS5_VERSION 5
#define SOCKS5_METHOD_NONE 0x00
#define SOCKS5_METHOD_USERPASS 0x02
#define SOCKS5_METHOD_REFUSED 0xff
#define SOCKS5_CMD_CONNECT 1
#define SOCKS5_CMD_UDP_ASSOCIATE 3
#define SOCKS5_ATYP_IPV4 1
#define SOCKS5_ATYP_DOMAIN 3
#define SOCKS5_ATYP_IPV6 4

/* The longest reply (ATYP domain with 255 bytes) and the longest UDP header. */
#define SOCKS5_REPLY_MAX (4 + 1 + 255 + 2)
#define SOCKS5_UDP_HDR_MAX (4 + 1 + 255 + 2)
/* The UDP header braid sends: to an IPv4 or IPv6 master address. */
#define SOCKS5_UDP_HDR_V4 10
#define SOCKS5_UDP_HDR_V6 22

/* Parsers return: > 0 bytes consumed (a whole message), 0 need more bytes, -1 error (message in
 * err: what the proxy did wrong, suitable for a log line after "proxy X: "). */
#define SOCKS5_NEED_MORE 0
#define SOCKS5_ERROR (-1)

/* Method negotiation request: offers "no authentication", and "username/password" too when
 * with_auth (the proxy picks). Returns its length (3 or 4 bytes). */
size_t socks5_build_greeting(uint8_t out[4], bool with_auth);
/* The method selection reply (2 bytes). *method gets the method the proxy chose; it must be one
 * that was offered. */
int socks5_parse_method(const uint8_t *buf, size_t len, bool with_auth, uint8_t *method,
                        char *err, size_t errlen);

/* RFC 1929 request. user and pass are 1 to 255 bytes. Returns its length, or 0 if it does not
 * fit in cap or a field is empty or too long. */
size_t socks5_build_auth(uint8_t *out, size_t cap, const char *user, const char *pass);
/* The RFC 1929 reply (2 bytes; status 0 = success). */
int socks5_parse_auth_reply(const uint8_t *buf, size_t len, char *err, size_t errlen);

/* A request (cmd) for address dst (IPv4 or IPv6). Returns its length (10 or 22), or 0 if cap is
 * too small or the family is not IP. */
size_t socks5_build_request(uint8_t *out, size_t cap, uint8_t cmd, const struct sockaddr *dst);

struct socks5_reply {
    uint8_t rep;            /* 0 = succeeded */
    uint8_t atyp;           /* of BND.ADDR */
    struct addr addr;       /* BND.ADDR and BND.PORT for ATYP IPv4/IPv6 */
    char domain[256];       /* BND.ADDR for ATYP domain (NUL-terminated) */
    unsigned port;          /* BND.PORT */
};
/* The reply to a request of command cmd. A reply with REP != 0 is an error as soon as its second
 * byte is in (r->rep tells which; the message names it and the command). A domain BND.ADDR
 * must be a host name. */
int socks5_parse_reply(const uint8_t *buf, size_t len, uint8_t cmd, struct socks5_reply *r,
                       char *err, size_t errlen);
/* "command not supported" and the like for a REP value. */
const char *socks5_rep_str(uint8_t rep);
/* "no authentication" and the like for a method value. */
const char *socks5_method_str(uint8_t method);

/* §7 UDP request header for a datagram to (or from) dst: RSV=0, FRAG=0, ATYP, DST.ADDR,
 * DST.PORT. Returns 10 (IPv4) or 22 (IPv6), 0 for another family. */
size_t socks5_udp_header(uint8_t out[SOCKS5_UDP_HDR_V6], const struct sockaddr *dst);

enum socks5_udp_result {
    SOCKS5_UDP_OK = 0,
    SOCKS5_UDP_SHORT,  /* shorter than its header */
    SOCKS5_UDP_RSV,    /* reserved bytes not zero */
    SOCKS5_UDP_FRAG,   /* FRAG != 0: a fragment (braid never fragments, so never reassembles) */
    SOCKS5_UDP_ATYP,   /* unknown address type, empty domain or one that is not a host name */
};
struct socks5_udp_src {
    uint8_t atyp;
    struct addr addr; /* ATYP IPv4/IPv6 */
    char domain[256]; /* ATYP domain */
    unsigned port;
};
/* Parse the header of a datagram from the relay. On SOCKS5_UDP_OK, *hdrlen is the header's
 * length (the payload follows it, possibly empty) and src holds the datagram's original source. */
enum socks5_udp_result socks5_udp_parse(const uint8_t *buf, size_t len, struct socks5_udp_src *src,
                                        size_t *hdrlen);
const char *socks5_udp_result_str(enum socks5_udp_result r);

#endif
