/* fuzz_pktclass.c: libFuzzer target for the tunnel packet classifier (mux/pktclass.c).
 * Input: a tunnel packet; checks that trailing bytes after the packet change nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../mux/pktclass.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool safe = pkt_reorder_safe(data, size);
    if (safe && size < 28) abort(); /* the shortest: IPv4 + 8-byte ICMP echo */
    uint8_t *copy = malloc(size + 16);
    if (!copy) return 0;
    memcpy(copy, data, size);
    memset(copy + size, 0xa5, 16);
    /* an IPv4 packet is bounded by its total length; trailing bytes are not part of it */
    if (safe && pkt_reorder_safe(copy, size + 16) != safe) abort();
    free(copy);
    return 0;
}
