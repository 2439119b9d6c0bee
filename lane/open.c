/* open.c: the first messages of a lane link connection (PROTOCOL section 10) after the master's
 * greeting and challenge (links/greeting.c): the slave's HELLO proving the session's keys, the
 * master's WELCOME. */
#include "lane.h"

#include <string.h>

#include "../common/util.h"

static const char HELLO[] = "braid lane hello";
static const char WELCOME[] = "braid lane welcome";
#define HELLO_PLAIN (sizeof HELLO - 1 + 1) /* the text and the link id */
#define WELCOME_PLAIN (sizeof WELCOME - 1)

int lane_hello_put(uint8_t *out, size_t cap, uint32_t index, uint8_t link_id,
                   struct lane_dir *tx)
{
    if (cap < LANE_HELLO_HDR) return -1;
    put_be32(out, index);
    out[4] = link_id;
    uint8_t plain[HELLO_PLAIN];
    memcpy(plain, HELLO, sizeof HELLO - 1);
    plain[sizeof HELLO - 1] = link_id;
    int n = lane_seal(tx, plain, sizeof plain, out + LANE_HELLO_HDR, cap - LANE_HELLO_HDR);
    return n < 0 ? -1 : LANE_HELLO_HDR + n;
}

int lane_hello_parse(const uint8_t *p, size_t len, uint32_t *index, uint8_t *link_id,
                     size_t *frame_len)
{
    if (len < LANE_HELLO_HDR + LANE_FRAME_HDR) return 1;
    size_t blen = get_be16(p + LANE_HELLO_HDR);
    if (blen != HELLO_PLAIN + LANE_TAG_LEN) return -1; /* a HELLO has one size */
    *index = get_be32(p);
    *link_id = p[4];
    *frame_len = blen;
    return 0;
}

int lane_hello_check(uint8_t *body, size_t blen, uint8_t link_id, struct lane_dir *rx)
{
    if (blen != HELLO_PLAIN + LANE_TAG_LEN || rx->counter != 0) return -1;
    int n = lane_open(rx, body, blen);
    if (n != (int)HELLO_PLAIN || memcmp(body, HELLO, sizeof HELLO - 1) != 0 ||
        body[sizeof HELLO - 1] != link_id)
        return -1;
    return 0;
}

int lane_welcome_put(uint8_t *out, size_t cap, struct lane_dir *tx)
{
    if (tx->counter != 0) return -1;
    return lane_seal(tx, (const uint8_t *)WELCOME, WELCOME_PLAIN, out, cap);
}

int lane_welcome_check(uint8_t *body, size_t blen, struct lane_dir *rx)
{
    if (rx->counter != 0) return -1;
    int n = lane_open(rx, body, blen);
    return n == (int)WELCOME_PLAIN && memcmp(body, WELCOME, WELCOME_PLAIN) == 0 ? 0 : -1;
}
