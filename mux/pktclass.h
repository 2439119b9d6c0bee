/* pktclass.h: which tunnel packets may be delivered out of order without harm to their flow. */
#ifndef BRAID_PKTCLASS_H
#define BRAID_PKTCLASS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True for a well-formed IPv4 or IPv6 packet that is an ICMP/ICMPv6 echo request or reply, a
 * TCP segment without payload and without FIN or RST (a pure ACK, a window update, a SYN or
 * SYN+ACK), or a UDP datagram to or from port 53 (DNS): overtaking the packets queued before it
 * costs its flow nothing. False for anything else, including fragments, IPv6 extension headers
 * and truncated or inconsistent headers. */
bool pkt_reorder_safe(const uint8_t *pkt, size_t len);

#endif
