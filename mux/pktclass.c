/* pktclass.c: classifies tunnel packets that may overtake queued ones (pings, pure TCP ACKs,
 * SYNs, DNS over UDP); reads only the IP and TCP/UDP/ICMP headers, every field bounds-checked
 * against the packet. */
#include "pktclass.h"

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

#define DNS_PORT 53

/* l4 points at the transport header, l4len bytes (header and payload). A segment without payload
 * that is a pure ACK (a window update too), or a SYN or SYN+ACK (the first of its direction:
 * nothing of its flow is queued before it); never FIN or RST, which end what precedes them. */
static bool tcp_safe(const uint8_t *l4, size_t l4len)
{
    if (l4len < 20) return false;
    size_t doff = (size_t)(l4[12] >> 4) * 4;
    if (doff < 20 || doff != l4len) return false; /* options only, no payload */
    uint8_t flags = l4[13];
    if (flags & (TCP_FIN | TCP_RST)) return false;
    return (flags & (TCP_ACK | TCP_SYN)) != 0;
}

/* A DNS message over UDP (to or from port 53): each query and answer stands alone. */
static bool udp_dns(const uint8_t *l4, size_t l4len)
{
    if (l4len < 8) return false;
    size_t ulen = (size_t)l4[4] << 8 | l4[5];
    if (ulen < 8 || ulen > l4len) return false;
    unsigned sport = (unsigned)l4[0] << 8 | l4[1], dport = (unsigned)l4[2] << 8 | l4[3];
    return sport == DNS_PORT || dport == DNS_PORT;
}

static bool echo(const uint8_t *l4, size_t l4len, uint8_t request, uint8_t reply)
{
    return l4len >= 8 && (l4[0] == request || l4[0] == reply) && l4[1] == 0;
}

bool pkt_reorder_safe(const uint8_t *pkt, size_t len)
{
    if (!pkt || len < 1) return false;
    unsigned version = pkt[0] >> 4;
    if (version == 4) {
        if (len < 20) return false;
        size_t ihl = (size_t)(pkt[0] & 0x0f) * 4;
        size_t total = (size_t)pkt[2] << 8 | pkt[3];
        if (ihl < 20 || total < ihl || total > len) return false;
        unsigned frag = (unsigned)(pkt[6] & 0x3f) << 8 | pkt[7]; /* MF and offset */
        if (frag) return false;
        const uint8_t *l4 = pkt + ihl;
        size_t l4len = total - ihl;
        if (pkt[9] == 6) return tcp_safe(l4, l4len);
        if (pkt[9] == 17) return udp_dns(l4, l4len);
        if (pkt[9] == 1) return echo(l4, l4len, 8, 0);
        return false;
    }
    if (version == 6) {
        if (len < 40) return false;
        size_t plen = (size_t)pkt[4] << 8 | pkt[5];
        if (plen > len - 40) return false;
        const uint8_t *l4 = pkt + 40;
        if (pkt[6] == 6) return tcp_safe(l4, plen);
        if (pkt[6] == 17) return udp_dns(l4, plen);
        if (pkt[6] == 58) return echo(l4, plen, 128, 129);
        return false;
    }
    return false;
}
