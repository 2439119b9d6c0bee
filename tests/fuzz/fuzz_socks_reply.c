/* fuzz_socks_reply.c: libFuzzer target for the SOCKS5 reply parsers (links/socks5_proto.c):
 * method selection, RFC 1929 status and the UDP ASSOCIATE reply, whole and fed in pieces. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../links/socks5_proto.h"

/* What the link does: feed a growing prefix until the parser answers; the answer must not
 * depend on how the bytes arrived, and a success never claims bytes it was not given. */
static int incremental(const uint8_t *d, size_t n, size_t step, struct socks5_reply *r)
{
    char err[200];
    for (size_t have = step < n ? step : n;; have = have + step < n ? have + step : n) {
        int rc = socks5_parse_reply(d, have, SOCKS5_CMD_UDP_ASSOCIATE, r, err, sizeof err);
        if (rc != SOCKS5_NEED_MORE || have == n) return rc;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[200];
    uint8_t m;
    int rc = socks5_parse_method(data, size, size & 1, &m, err, sizeof err);
    if (rc > (int)size || (rc > 0 && rc != 2)) abort();
    rc = socks5_parse_auth_reply(data, size, err, sizeof err);
    if (rc > (int)size || (rc > 0 && rc != 2)) abort();

    struct socks5_reply whole, piece;
    int a = socks5_parse_reply(data, size, SOCKS5_CMD_UDP_ASSOCIATE, &whole, err, sizeof err);
    if (a > (int)size || (a > 0 && a > SOCKS5_REPLY_MAX)) abort();
    if (a > 0) {
        if (whole.rep != 0) abort();
        if (whole.atyp == SOCKS5_ATYP_DOMAIN && strlen(whole.domain) == 0) abort();
        if (whole.port == 0) abort();
    }
    size_t step = size ? (size_t)data[0] % 7 + 1 : 1;
    int b = incremental(data, size, step, &piece);
    /* parsing stops at the first answer, so a piecewise success is the same message */
    if (a > 0 && b != a) abort();
    if (a > 0 && (piece.port != whole.port || piece.atyp != whole.atyp)) abort();
    return 0;
}
