/* addr.h: parsing and printing of socket addresses ("1.2.3.4:5", "[::1]:5", "host:port").
 * Pure functions; no DNS (names are resolved by links/resolve). */
#ifndef BRAID_ADDR_H
#define BRAID_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

struct addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

/* The source of a datagram that came over a TCP connection rather than as a UDP datagram (the
 * master's datagram connections, links/tcp_server.c): the connection's number, and its peer's
 * address for logs, limits per source and cookies. A family no UDP socket sends to. */
#define ADDR_FAMILY_STREAM AF_UNIX
struct addr_stream {
    sa_family_t family; /* ADDR_FAMILY_STREAM */
    uint32_t conn;
    struct sockaddr_in6 peer; /* IPv4 as ::ffff:a.b.c.d */
};
/* The IP address and port behind an address: a stream address's peer, else sa itself. */
const struct sockaddr *addr_ip_of(const struct sockaddr *sa, socklen_t *len);

/* Split "host:port" / "[v6]:port" into host and port. Returns 0, or -1 with a message in err
 * saying what is wrong (e.g. 'missing ":port"'). host must hold at least 256 bytes. */
int addr_split(const char *s, char *host, size_t hostlen, unsigned *port, char *err, size_t errlen);

/* Parse an IP literal with port ("127.0.0.1:7000", "[::1]:7000"). Returns 0, or -1 with err. */
int addr_parse(const char *s, struct addr *out, char *err, size_t errlen);

/* Parse an IP literal without port; port is set to the given value. Returns 0 or -1. */
int addr_parse_ip(const char *ip, unsigned port, struct addr *out);

/* The IP alone, "1.2.3.4" or "::1", into buf; returns buf. */
const char *addr_ip_str(const struct sockaddr *sa, char *buf, size_t len);
/* "1.2.3.4:5" or "[::1]:5" (a stream address: "TCP 1.2.3.4:5") into buf; returns buf. */
const char *addr_str(const struct sockaddr *sa, char *buf, size_t len);
#define ADDR_STRLEN 64

bool addr_equal(const struct sockaddr *a, const struct sockaddr *b);
/* The same IP address (ports and scope ignored). */
bool addr_same_ip(const struct sockaddr *a, const struct sockaddr *b);
unsigned addr_port(const struct sockaddr *sa);
/* True for 0.0.0.0 and :: */
bool addr_is_unspecified(const struct sockaddr *sa);
/* Set the port of an IPv4 or IPv6 address. */
void addr_set_port(struct addr *a, unsigned port);
/* Turn an IPv4-mapped IPv6 address (::ffff:a.b.c.d) into the IPv4 address; others unchanged. */
void addr_unmap(struct addr *a);

#endif
