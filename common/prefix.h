/* prefix.h: IP prefixes ("10.1.0.0/24", "fd00:1::/64"), a longest-prefix-match table from
 * prefixes to numbers, and the inner addresses of a tunnel packet: what cryptokey routing needs.
 * Pure data structures; no sockets. */
#ifndef BRAID_PREFIX_H
#define BRAID_PREFIX_H

#include <stddef.h>
#include <stdint.h>

struct prefix {
    int family;       /* AF_INET or AF_INET6 */
    unsigned len;     /* 0..32 or 0..128 */
    uint8_t addr[16]; /* network address (bits after len are zero); IPv4 in the first 4 bytes */
};
#define PREFIX_STRLEN 50

/* "10.1.0.0/24", "fd00::/64"; a bare address is a /32 or /128. Refused: a length out of range,
 * bits set after the length ("10.1.0.5/24": did you mean 10.1.0.0/24?), anything else. Returns 0,
 * or -1 with a message in why. */
int prefix_parse(const char *s, struct prefix *p, char *why, size_t whylen);
const char *prefix_str(const struct prefix *p, char *buf, size_t len);
/* An address of the family (4 or 16 bytes) as text. */
const char *ip_str(int family, const uint8_t *addr, char *buf, size_t len);

/* Longest-prefix-match table: each prefix maps to a value. */
struct ptable;
struct ptable *ptable_new(void);
void ptable_free(struct ptable *t);
/* Add p -> value. Returns 0, 1 if p is already in the table (its value is in *old, unchanged),
 * or -1 on allocation failure. */
int ptable_insert(struct ptable *t, const struct prefix *p, uint32_t value, uint32_t *old);
/* The value of the longest prefix containing addr (4 or 16 bytes by family). Returns 0, or -1
 * when no prefix contains it. At most 32 or 128 steps, whatever the table's size. */
int ptable_lookup(const struct ptable *t, int family, const uint8_t *addr, uint32_t *value);
/* Bytes the table holds (for the memory figures). */
size_t ptable_bytes(const struct ptable *t);

/* The source and destination addresses of an IPv4 or IPv6 packet. Returns the family, or 0 if
 * the packet is neither or too short for its header. */
int ip_pkt_addrs(const uint8_t *pkt, size_t len, const uint8_t **src, const uint8_t **dst);

#endif
