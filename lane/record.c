/* record.c: the TCP lane's records (docs/PROTOCOL.md section 10): type, length, body; encoding
 * with the rules checked, decoding of hostile bytes. */
#include "lane.h"

#include <string.h>

#include "../common/util.h"

#define OPEN_LEN(fam) (4u + 1u + ((fam) == 4 ? 4u : 16u) + 2u)
#define OPENED_LEN 5u
#define DATA_HDR 12u /* conn, offset */
#define FIN_LEN 12u
#define RST_LEN 5u
#define ACK_LEN 20u
#define RCVD_LEN 8u

static bool valid(const struct lane_rec *r)
{
    if (r->type == LANE_RCVD) return r->conn == 0; /* (of the connection, not of a stream) */
    if (r->conn == 0) return false;
    switch (r->type) {
    case LANE_OPEN:
        return (r->family == 4 || r->family == 6) && r->port != 0;
    case LANE_OPENED:
        return r->status <= LANE_OPEN_ERROR_MAX;
    case LANE_DATA:
        return r->len >= 1 && r->len <= LANE_DATA_MAX && r->offset <= UINT64_MAX - r->len;
    case LANE_FIN:
        return true;
    case LANE_ACK:
        return r->received >= r->offset;
    case LANE_RST:
        return r->status <= LANE_RST_REASON_MAX;
    default:
        return false;
    }
}

static size_t body_len(const struct lane_rec *r)
{
    switch (r->type) {
    case LANE_OPEN: return OPEN_LEN(r->family);
    case LANE_OPENED: return OPENED_LEN;
    case LANE_DATA: return DATA_HDR + r->len;
    case LANE_FIN: return FIN_LEN;
    case LANE_RST: return RST_LEN;
    case LANE_RCVD: return RCVD_LEN;
    default: return ACK_LEN;
    }
}

int lane_rec_put(uint8_t *buf, size_t cap, size_t *pos, const struct lane_rec *r)
{
    if (!valid(r)) return -1;
    size_t bl = body_len(r);
    if (*pos > cap || cap - *pos < LANE_REC_HDR + bl) return -1;
    uint8_t *p = buf + *pos;
    p[0] = r->type;
    put_be16(p + 1, (uint16_t)bl);
    uint8_t *b = p + LANE_REC_HDR;
    if (r->type == LANE_RCVD) {
        put_be64(b, r->received);
        *pos += LANE_REC_HDR + bl;
        return 0;
    }
    put_be32(b, r->conn);
    switch (r->type) {
    case LANE_OPEN:
        b[4] = r->family;
        memcpy(b + 5, r->addr, r->family == 4 ? 4 : 16);
        put_be16(b + 5 + (r->family == 4 ? 4 : 16), r->port);
        break;
    case LANE_OPENED:
    case LANE_RST:
        b[4] = r->status;
        break;
    case LANE_DATA:
        put_be64(b + 4, r->offset);
        memcpy(b + DATA_HDR, r->data, r->len);
        break;
    case LANE_ACK:
        put_be64(b + 4, r->offset);
        put_be64(b + 12, r->received);
        break;
    default: /* FIN */
        put_be64(b + 4, r->offset);
        break;
    }
    *pos += LANE_REC_HDR + bl;
    return 0;
}

int lane_rec_decode(const uint8_t *p, size_t len, struct lane_rec *out, int max)
{
    size_t off = 0;
    int n = 0;
    while (off < len) {
        if (len - off < LANE_REC_HDR) return -1;
        uint8_t type = p[off];
        size_t bl = get_be16(p + off + 1);
        const uint8_t *b = p + off + LANE_REC_HDR;
        if (bl > len - off - LANE_REC_HDR) return -1;
        off += LANE_REC_HDR + bl;
        if (type < LANE_OPEN || type > LANE_RCVD) continue; /* unknown: skipped */
        if (n >= max || bl < 4) return -1;
        struct lane_rec *r = &out[n];
        memset(r, 0, sizeof *r);
        r->type = type;
        if (type == LANE_RCVD) {
            if (bl != RCVD_LEN) return -1;
            r->received = get_be64(b);
            n++;
            continue;
        }
        r->conn = get_be32(b);
        switch (type) {
        case LANE_OPEN:
            if (bl < 5) return -1;
            r->family = b[4];
            if ((r->family != 4 && r->family != 6) || bl != OPEN_LEN(r->family)) return -1;
            memcpy(r->addr, b + 5, r->family == 4 ? 4 : 16);
            r->port = get_be16(b + 5 + (r->family == 4 ? 4 : 16));
            break;
        case LANE_OPENED:
        case LANE_RST:
            if (bl != OPENED_LEN) return -1;
            r->status = b[4];
            break;
        case LANE_DATA:
            if (bl <= DATA_HDR) return -1;
            r->offset = get_be64(b + 4);
            r->data = b + DATA_HDR;
            r->len = bl - DATA_HDR;
            break;
        case LANE_ACK:
            if (bl != ACK_LEN) return -1;
            r->offset = get_be64(b + 4);
            r->received = get_be64(b + 12);
            break;
        default: /* FIN */
            if (bl != FIN_LEN) return -1;
            r->offset = get_be64(b + 4);
            break;
        }
        if (!valid(r)) return -1;
        n++;
    }
    return n;
}
