/* pktclass.c: classifies tunnel packets that may overtake queued ones (pings, pure TCP ACKs);
 * reads only the IP and TCP/ICMP headers, every field bounds-checked against the packet. */
#include "pktclass.h"

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

/* l4 points at the transport header, l4len bytes (header and payload) */
static bool tcp_pure_ack(const uint8_t *l4, size_t l4len)
{
    if (l4len < 20) return false;
    size_t doff = (size_t)(l4[12] >> 4) * 4;
    if (doff < 20 || doff != l4len) return false; /* options only, no payload */
    uint8_t flags = l4[13];
    return (flags & TCP_ACK) && !(flags & (TCP_FIN | TCP_SYN | TCP_RST));
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
        if (pkt[9] == 6) return tcp_pure_ack(l4, l4len);
        if (pkt[9] == 1) return echo(l4, l4len, 8, 0);
        return false;
    }
    if (version == 6) {
        if (len < 40) return false;
        size_t plen = (size_t)pkt[4] << 8 | pkt[5];
        if (plen > len - 40) return false;
        const uint8_t *l4 = pkt + 40;
        if (pkt[6] == 6) return tcp_pure_ack(l4, plen);
        if (pkt[6] == 58) return echo(l4, plen, 128, 129);
        return false;
    }
    return false;
}
