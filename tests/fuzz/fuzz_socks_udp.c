/* fuzz_socks_udp.c: libFuzzer target for the RFC 1928 §7 UDP header parser
 * (links/socks5_proto.c), and the header builder's round trip through it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../links/socks5_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct socks5_udp_src src;
    size_t hl = 0;
    enum socks5_udp_result r = socks5_udp_parse(data, size, &src, &hl);
    if (r == SOCKS5_UDP_OK) {
        if (hl > size || hl < 7 || hl > SOCKS5_UDP_HDR_MAX) abort();
        if (data[0] || data[1] || data[2]) abort(); /* RSV and FRAG were zero */
        /* an IP source re-encodes to the same header bytes */
        if (src.atyp != SOCKS5_ATYP_DOMAIN) {
            uint8_t h[SOCKS5_UDP_HDR_V6];
            size_t n = socks5_udp_header(h, (const struct sockaddr *)&src.addr.ss);
            if (n != hl || memcmp(h, data, n) != 0) abort();
        } else if (strlen(src.domain) == 0) {
            abort();
        }
    } else if (r > SOCKS5_UDP_ATYP) {
        abort();
    }
    (void)socks5_udp_result_str(r);
    return 0;
}
