/* wire.c: braid datagram codec (DATA/CTRL seal and open with ChaCha20-Poly1305) and CTRL
 * message TLV encoding/decoding, per docs/PROTOCOL.md sections 3 and 4. No state, no I/O. */
#include "wire.h"

#include <sodium.h>
#include <string.h>

#include "../common/util.h"

_Static_assert(WIRE_OVERHEAD == 34, "PROTOCOL.md section 3: 34 bytes of overhead");
_Static_assert(WIRE_TAG_LEN == crypto_aead_chacha20poly1305_ietf_ABYTES, "tag length");
_Static_assert(WIRE_KEY_LEN == crypto_aead_chacha20poly1305_ietf_KEYBYTES, "key length");
_Static_assert(crypto_aead_chacha20poly1305_ietf_NPUBBYTES == 12, "nonce length");

#define WIRE_MIN_DATA (WIRE_OVERHEAD + 1)
#define WIRE_MIN_CTRL WIRE_OVERHEAD
#define CTRL_TLV_HDR 2

const char *wire_strerror(int err)
{
    switch (err) {
    case WIRE_OK:
        return "ok";
    case WIRE_ERR_SHORT:
        return "datagram too short";
    case WIRE_ERR_LONG:
        return "datagram too long";
    case WIRE_ERR_VERSION:
        return "unsupported protocol version";
    case WIRE_ERR_RESERVED:
        return "reserved bits or bytes set";
    case WIRE_ERR_AUTH:
        return "authentication failed (wrong key or tampered datagram)";
    case WIRE_ERR_SPACE:
        return "output buffer too small";
    case WIRE_ERR_EMPTY:
        return "DATA datagram without payload";
    case WIRE_ERR_TYPE:
        return "unexpected datagram type";
    case WIRE_ERR_INVAL:
        return "invalid header field (counter out of range)";
    default:
        return "unknown error";
    }
}

int wire_peek(const uint8_t *dg, size_t len, struct wire_hdr *h)
{
    if (len > WIRE_MAX_DGRAM) return WIRE_ERR_LONG;
    if (len < 1) return WIRE_ERR_SHORT;
    uint8_t b0 = dg[0];
    if ((b0 >> 6) != WIRE_VERSION) return WIRE_ERR_VERSION;
    if (b0 & WIRE_F_RESERVED) return WIRE_ERR_RESERVED;
    uint8_t type = (b0 >> 4) & 3u;
    memset(h, 0, sizeof *h);
    switch (type) {
    case WIRE_DATA:
        if (len < WIRE_MIN_DATA) return WIRE_ERR_SHORT;
        break;
    case WIRE_CTRL:
        if (len < WIRE_MIN_CTRL) return WIRE_ERR_SHORT;
        if (b0 & WIRE_F_UNORDERED) return WIRE_ERR_RESERVED;
        break;
    case WIRE_HANDSHAKE: /* the rest is mux/hsmsg.c's to check */
        if (len < 2) return WIRE_ERR_SHORT;
        h->type = type;
        h->link_id = dg[1];
        return WIRE_OK;
    default:
        return WIRE_ERR_RESERVED;
    }
    h->type = type;
    h->echo_valid = (b0 & WIRE_F_ECHO) != 0;
    h->unordered = (b0 & WIRE_F_UNORDERED) != 0;
    h->link_id = dg[1];
    h->counter = get_be48(dg + 2);
    h->index = get_be16(dg + 8);
    h->gseq = 0;
    h->ts = 0;
    h->echo = 0;
    return WIRE_OK;
}

/* Nonce: 0 0 0 <link id> <counter as 64-bit big-endian>; the counter's top two bytes are 0. */
static void make_nonce(uint8_t nonce[12], uint8_t link_id, const uint8_t counter48[6])
{
    memset(nonce, 0, 12);
    nonce[3] = link_id;
    memcpy(nonce + 6, counter48, 6);
}

int wire_seal(uint8_t *out, size_t outcap, const struct wire_hdr *h, const uint8_t *payload,
              size_t payload_len, const uint8_t key[WIRE_KEY_LEN])
{
    if (h->type != WIRE_DATA && h->type != WIRE_CTRL) return WIRE_ERR_TYPE;
    if (h->counter > WIRE_COUNTER_MAX) return WIRE_ERR_INVAL;
    if (h->type == WIRE_DATA && payload_len == 0) return WIRE_ERR_EMPTY;
    if (h->type != WIRE_DATA && h->unordered) return WIRE_ERR_INVAL;
    if (payload_len > WIRE_MAX_DGRAM - WIRE_OVERHEAD) return WIRE_ERR_LONG;
    size_t total = payload_len + WIRE_OVERHEAD;
    if (outcap < total) return WIRE_ERR_SPACE;

    uint8_t *inner = out + WIRE_HDR_LEN;
    uint8_t *body = inner + WIRE_INNER_LEN;
    /* Move the payload first: it may overlap any part of out. */
    if (payload_len > 0 && payload != body) memmove(body, payload, payload_len);

    out[0] = (uint8_t)((WIRE_VERSION << 6) | (h->type << 4) | (h->echo_valid ? WIRE_F_ECHO : 0) |
                       (h->unordered ? WIRE_F_UNORDERED : 0));
    out[1] = h->link_id;
    put_be48(out + 2, h->counter);
    put_be16(out + 8, h->index);
    put_be32(inner, h->gseq);
    put_be16(inner + 4, h->ts);
    put_be16(inner + 6, h->echo);

    uint8_t nonce[12];
    make_nonce(nonce, h->link_id, out + 2);
    crypto_aead_chacha20poly1305_ietf_encrypt_detached(inner, body + payload_len, NULL, inner,
                                                       WIRE_INNER_LEN + payload_len, out,
                                                       WIRE_HDR_LEN, NULL, nonce, key);
    return (int)total;
}

int wire_open(uint8_t *dg, size_t len, const uint8_t key[WIRE_KEY_LEN], struct wire_hdr *h,
              uint8_t **payload, size_t *payload_len)
{
    struct wire_hdr tmp;
    int rc = wire_peek(dg, len, &tmp);
    if (rc != WIRE_OK) return rc;
    if (tmp.type != WIRE_DATA && tmp.type != WIRE_CTRL) return WIRE_ERR_TYPE;

    uint8_t nonce[12];
    make_nonce(nonce, dg[1], dg + 2);
    uint8_t *inner = dg + WIRE_HDR_LEN;
    size_t clen = len - WIRE_HDR_LEN - WIRE_TAG_LEN;
    if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(
            inner, NULL, inner, clen, dg + len - WIRE_TAG_LEN, dg, WIRE_HDR_LEN, nonce, key) != 0)
        return WIRE_ERR_AUTH;

    tmp.gseq = get_be32(inner);
    tmp.ts = get_be16(inner + 4);
    tmp.echo = get_be16(inner + 6);
    *h = tmp;
    *payload = inner + WIRE_INNER_LEN;
    *payload_len = clen - WIRE_INNER_LEN;
    return WIRE_OK;
}

/* ---- CTRL messages ---- */

static uint8_t *ctrl_reserve(uint8_t *buf, size_t cap, size_t *pos, uint8_t kind, uint8_t vlen)
{
    if (*pos > cap || cap - *pos < (size_t)CTRL_TLV_HDR + vlen) return NULL;
    uint8_t *p = buf + *pos;
    p[0] = kind;
    p[1] = vlen;
    *pos += CTRL_TLV_HDR + vlen;
    return p + CTRL_TLV_HDR;
}

int ctrl_put_beat(uint8_t *buf, size_t cap, size_t *pos, const struct ctrl_beat *b)
{
    uint8_t *v = ctrl_reserve(buf, cap, pos, CTRL_BEAT, CTRL_BEAT_LEN);
    if (!v) return WIRE_ERR_SPACE;
    v[0] = b->flags;
    v[1] = 0;
    put_be16(v + 2, b->interval_ms);
    put_be32(v + 4, b->report_us);
    put_be64(v + 8, b->rx_packets);
    put_be64(v + 16, b->rx_bytes);
    put_be64(v + 24, b->rx_highest);
    return 0;
}

int ctrl_put_link_down(uint8_t *buf, size_t cap, size_t *pos, const struct ctrl_link_down *d)
{
    uint8_t *v = ctrl_reserve(buf, cap, pos, CTRL_LINK_DOWN, CTRL_LINK_DOWN_LEN);
    if (!v) return WIRE_ERR_SPACE;
    v[0] = d->link_id;
    v[1] = d->reason;
    return 0;
}

int ctrl_put_report(uint8_t *buf, size_t cap, size_t *pos, const struct ctrl_report *r)
{
    uint8_t *v = ctrl_reserve(buf, cap, pos, CTRL_REPORT, CTRL_REPORT_LEN);
    if (!v) return WIRE_ERR_SPACE;
    v[0] = r->link_id;
    v[1] = r->flags;
    put_be16(v + 2, r->tx_wait_100us);
    put_be32(v + 4, r->report_us);
    put_be64(v + 8, r->rx_highest & WIRE_COUNTER_MAX);
    put_be32(v + 16, r->rx_packets);
    put_be32(v + 20, r->rx_bytes);
    put_be32(v + 24, r->ack_delay_us);
    put_be32(v + 28, (uint32_t)r->owd_min_rel_us);
    put_be32(v + 32, r->owd_queue_us);
    put_be32(v + 36, r->tx_data_end);
    return 0;
}

int ctrl_put_rekey(uint8_t *buf, size_t cap, size_t *pos)
{
    return ctrl_reserve(buf, cap, pos, CTRL_REKEY, 0) ? 0 : WIRE_ERR_SPACE;
}

static bool link_name_ok(const uint8_t *p, size_t n)
{
    if (n == 0 || n > CTRL_LINK_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

int ctrl_put_link_name(uint8_t *buf, size_t cap, size_t *pos, const struct ctrl_link_name *n)
{
    size_t len = strnlen(n->name, sizeof n->name);
    if (!link_name_ok((const uint8_t *)n->name, len)) return WIRE_ERR_SHORT;
    uint8_t *v = ctrl_reserve(buf, cap, pos, CTRL_LINK_NAME, (uint8_t)(1 + len));
    if (!v) return WIRE_ERR_SPACE;
    v[0] = n->link_id;
    memcpy(v + 1, n->name, len);
    return 0;
}

int wire_version_of(const uint8_t *dg, size_t len)
{
    return len ? dg[0] >> 6 : -1;
}

int ctrl_decode(const uint8_t *p, size_t len, struct ctrl_msg *out, int max)
{
    size_t off = 0;
    int n = 0, seen = 0;
    while (off < len) {
        if (len - off < CTRL_TLV_HDR) return WIRE_ERR_SHORT;
        uint8_t kind = p[off];
        size_t vlen = p[off + 1];
        const uint8_t *v = p + off + CTRL_TLV_HDR;
        if (vlen > len - off - CTRL_TLV_HDR) return WIRE_ERR_SHORT;
        if (++seen > CTRL_MAX_MSGS) return WIRE_ERR_SHORT;
        off += CTRL_TLV_HDR + vlen;

        switch (kind) {
        case CTRL_BEAT:
            if (vlen != CTRL_BEAT_LEN) return WIRE_ERR_SHORT;
            if (n >= max) return WIRE_ERR_SPACE;
            out[n].kind = CTRL_BEAT;
            out[n].u.beat.flags = v[0];
            out[n].u.beat.interval_ms = get_be16(v + 2);
            out[n].u.beat.report_us = get_be32(v + 4);
            out[n].u.beat.rx_packets = get_be64(v + 8);
            out[n].u.beat.rx_bytes = get_be64(v + 16);
            out[n].u.beat.rx_highest = get_be64(v + 24);
            n++;
            break;
        case CTRL_LINK_DOWN:
            if (vlen != CTRL_LINK_DOWN_LEN) return WIRE_ERR_SHORT;
            if (n >= max) return WIRE_ERR_SPACE;
            out[n].kind = CTRL_LINK_DOWN;
            out[n].u.down.link_id = v[0];
            out[n].u.down.reason = v[1];
            n++;
            break;
        case CTRL_REPORT: {
            if (vlen != CTRL_REPORT_LEN) return WIRE_ERR_SHORT;
            if (n >= max) return WIRE_ERR_SPACE;
            struct ctrl_report *r = &out[n].u.report;
            out[n].kind = CTRL_REPORT;
            r->link_id = v[0];
            r->flags = v[1];
            r->tx_wait_100us = get_be16(v + 2);
            r->report_us = get_be32(v + 4);
            r->rx_highest = get_be64(v + 8) & WIRE_COUNTER_MAX;
            r->rx_packets = get_be32(v + 16);
            r->rx_bytes = get_be32(v + 20);
            r->ack_delay_us = get_be32(v + 24);
            r->owd_min_rel_us = (int32_t)get_be32(v + 28);
            r->owd_queue_us = get_be32(v + 32);
            r->tx_data_end = get_be32(v + 36);
            n++;
            break;
        }
        case CTRL_REKEY:
            if (vlen != 0) return WIRE_ERR_SHORT;
            if (n >= max) return WIRE_ERR_SPACE;
            out[n].kind = CTRL_REKEY;
            n++;
            break;
        case CTRL_LINK_NAME:
            if (vlen < 2 || !link_name_ok(v + 1, vlen - 1)) return WIRE_ERR_SHORT;
            if (n >= max) return WIRE_ERR_SPACE;
            out[n].kind = CTRL_LINK_NAME;
            out[n].u.name.link_id = v[0];
            memcpy(out[n].u.name.name, v + 1, vlen - 1);
            out[n].u.name.name[vlen - 1] = '\0';
            n++;
            break;
        default: /* unknown kind: skipped (forward compatibility) */
            break;
        }
    }
    return n;
}
