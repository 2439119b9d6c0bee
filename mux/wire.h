/* wire.h: encoding and decoding of braid datagrams (DATA, CTRL) and control messages.
 * Implements docs/PROTOCOL.md sections 3, 4 and 6; no state, no I/O. */
#ifndef BRAID_WIRE_H
#define BRAID_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_VERSION 3 /* 3: receiver index, Noise IKpsk2 handshake (2: receive reports) */
enum wire_type { WIRE_DATA = 0, WIRE_CTRL = 1, WIRE_HANDSHAKE = 2 };

#define WIRE_HDR_LEN 10  /* clear header (AEAD additional data) */
#define WIRE_INNER_LEN 8 /* encrypted inner header: gseq, ts, echo */
#define WIRE_TAG_LEN 16
#define WIRE_OVERHEAD (WIRE_HDR_LEN + WIRE_INNER_LEN + WIRE_TAG_LEN) /* 34 */
#define WIRE_INDEX_MAX 0xffffu /* session indices are 16 bits on the wire (32-bit fields in the
                                * handshake, upper half zero) */
#define WIRE_MAX_DGRAM 65507 /* largest UDP payload over IPv4 */
#define WIRE_KEY_LEN 32
#define WIRE_COUNTER_MAX ((UINT64_C(1) << 48) - 1)

/* Byte 0 flag bits. */
#define WIRE_F_RESERVED 0x0a /* bits 3 and 1 */
#define WIRE_F_ECHO 0x04
#define WIRE_F_UNORDERED 0x01 /* DATA only: deliver at once, outside the gseq order (section 3) */

/* Decoded header of a DATA or CTRL datagram (clear part + inner part). */
struct wire_hdr {
    uint8_t type;     /* enum wire_type */
    bool echo_valid;  /* E bit */
    bool unordered;   /* U bit (DATA only) */
    uint8_t link_id;
    uint64_t counter; /* 48 bits */
    uint16_t index;   /* receiver index: the session at the receiver (section 5) */
    uint32_t gseq;
    uint16_t ts;   /* 250 us units */
    uint16_t echo; /* 250 us units */
};

enum wire_err {
    WIRE_OK = 0,
    WIRE_ERR_SHORT = -1,    /* shorter than the minimum for its type */
    WIRE_ERR_LONG = -2,     /* longer than WIRE_MAX_DGRAM */
    WIRE_ERR_VERSION = -3,  /* version != WIRE_VERSION (wire_version_of tells which) */
    WIRE_ERR_RESERVED = -4, /* reserved bits set */
    WIRE_ERR_AUTH = -5,     /* AEAD open failed */
    WIRE_ERR_SPACE = -6,    /* output buffer too small (encode) */
    WIRE_ERR_EMPTY = -7,    /* DATA without payload (wire_seal; on receive it is WIRE_ERR_SHORT) */
    WIRE_ERR_TYPE = -8,     /* not a DATA/CTRL datagram where one is required (or vice versa) */
    WIRE_ERR_INVAL = -9,    /* wire_seal: counter > WIRE_COUNTER_MAX (caller bug) */
};
const char *wire_strerror(int err);

/* Parse only the clear header (byte 0, link id, counter, receiver index) of a DATA or CTRL
 * datagram without authenticating; for a handshake message (type 2) only the type and link id
 * (mux/hsmsg.h checks the rest). Checks length minima (DATA 35, CTRL 34), maximum, version and
 * reserved bits. Returns WIRE_OK or error. Checks, in order: longer than WIRE_MAX_DGRAM (LONG),
 * empty (SHORT), version (VERSION), type 3 or reserved bits (RESERVED), type minimum (SHORT). A
 * 34-byte DATA (empty payload) is WIRE_ERR_SHORT: it is dropped as malformed before any
 * crypto. gseq/ts/echo are set to 0. */
int wire_peek(const uint8_t *dg, size_t len, struct wire_hdr *h);

/* Build a DATA or CTRL datagram into out: clear header from h (type, echo_valid, unordered,
 * link_id, counter, index), inner header (gseq, ts, echo), payload, tag. Returns the datagram length
 * (payload_len + WIRE_OVERHEAD) or WIRE_ERR_SPACE. payload may alias out + WIRE_HDR_LEN +
 * WIRE_INNER_LEN (in-place encryption, no copy); any other overlap with out also works (it is
 * moved with memmove) but costs a copy. Other errors (out is then untouched): WIRE_ERR_TYPE
 * (type not DATA/CTRL), WIRE_ERR_EMPTY (DATA with payload_len 0), WIRE_ERR_LONG (datagram
 * would exceed WIRE_MAX_DGRAM), WIRE_ERR_INVAL (counter > WIRE_COUNTER_MAX: the sender must
 * start a new session before its counters run out; it never wraps). */
int wire_seal(uint8_t *out, size_t outcap, const struct wire_hdr *h, const uint8_t *payload,
              size_t payload_len, const uint8_t key[WIRE_KEY_LEN]);

/* Authenticate and decrypt a DATA or CTRL datagram in place. On success fills all of h,
 * sets *payload and *payload_len to the plaintext inside dg and returns WIRE_OK. On failure
 * returns an error and dg's content is unspecified; nothing from it may be used.
 * Runs the wire_peek checks first (same errors), then WIRE_ERR_TYPE for a handshake message,
 * then WIRE_ERR_AUTH. A DATA payload is always >= 1 byte (shorter is rejected by the checks). */
int wire_open(uint8_t *dg, size_t len, const uint8_t key[WIRE_KEY_LEN], struct wire_hdr *h,
              uint8_t **payload, size_t *payload_len);

/* Timestamps (section 6). */
static inline uint16_t wire_ts(uint64_t now_us)
{
    return (uint16_t)(now_us / 250u);
}
#define WIRE_TS_UNIT_US 250u
#define WIRE_ECHO_MAX_HOLD_US 4000000u
#define WIRE_RTT_MAX_US 8000000u

/* ---- CTRL messages (section 4) ---- */
enum ctrl_kind {
    CTRL_BEAT = 1,
    CTRL_LINK_DOWN = 2,
    CTRL_REPORT = 3,
    CTRL_REKEY = 4,
    CTRL_LINK_NAME = 5,
};
#define CTRL_LINK_NAME_MAX 31 /* bytes of a link's name: [A-Za-z0-9._-] */
#define CTRL_BEAT_LEN 32
#define CTRL_REPORT_LEN 40
#define CTRL_REPORT_F_OWD 0x01    /* owd_min_rel_us and owd_queue_us are valid */
#define CTRL_REPORT_F_TXEND 0x02  /* tx_data_end is valid */
#define CTRL_REPORT_F_RX 0x04     /* the receive fields are valid (something was received) */
#define CTRL_LINK_DOWN_LEN 2
#define CTRL_MAX_MSGS 16
#define CTRL_BEAT_F_HEARS 0x01
#define CTRL_BEAT_F_BACKUP 0x02 /* slave: a backup link (data only while no other link can) */
enum ctrl_down_reason { CTRL_DOWN_TRANSPORT = 1, CTRL_DOWN_SHUTDOWN = 2 };

struct ctrl_beat {
    uint8_t flags;
    uint16_t interval_ms;
    uint32_t report_us;
    uint64_t rx_packets;
    uint64_t rx_bytes;
    uint64_t rx_highest;
};

/* Receive report for one link (section 4, kind 3): what this end received on the link, and
 * where its own DATA on the link ends. Several may share one CTRL datagram on any link. */
struct ctrl_report {
    uint8_t link_id;
    uint8_t flags;          /* CTRL_REPORT_F_* */
    uint16_t tx_wait_100us; /* how long DATA given to the link now waits in this end's send
                             * queue, in 100 us units (65535: that or more) */
    uint32_t report_us;     /* sender's clock, us mod 2^32, when written */
    uint64_t rx_highest;    /* highest counter accepted on the link (48 bits) */
    uint32_t rx_packets;    /* datagrams accepted on the link, mod 2^32 */
    uint32_t rx_bytes;      /* their UDP payload bytes, mod 2^32 */
    uint32_t ack_delay_us;  /* time since rx_highest was accepted */
    int32_t owd_min_rel_us; /* minimum one-way delay on the link, relative to a per-session
                             * reference common to all links of this end */
    uint32_t owd_queue_us;  /* latest one-way delay above that minimum */
    uint32_t tx_data_end;   /* 1 + gseq of the last DATA this end assigned to the link */
};

struct ctrl_link_down {
    uint8_t link_id;
    uint8_t reason;
};

/* The slave's name for one of its links (section 4, kind 5), for the master's status. */
struct ctrl_link_name {
    uint8_t link_id;
    char name[CTRL_LINK_NAME_MAX + 1]; /* NUL-terminated */
};

struct ctrl_msg {
    uint8_t kind;
    union {
        struct ctrl_beat beat;
        struct ctrl_link_down down;
        struct ctrl_link_name name;
        struct ctrl_report report;
    } u;
};

/* Append one message to a CTRL payload being built in buf (used bytes *pos, capacity cap).
 * Returns 0, or WIRE_ERR_SPACE. */
int ctrl_put_beat(uint8_t *buf, size_t cap, size_t *pos, const struct ctrl_beat *b);
int ctrl_put_link_down(uint8_t *buf, size_t cap, size_t *pos, const struct ctrl_link_down *d);
int ctrl_put_report(uint8_t *buf, size_t cap, size_t *pos, const struct ctrl_report *r);
/* REKEY (no value): the master asks the slave for a handshake with new keys. */
int ctrl_put_rekey(uint8_t *buf, size_t cap, size_t *pos);
/* WIRE_ERR_SHORT for a name that is empty, too long or has other characters than
 * [A-Za-z0-9._-]. */
int ctrl_put_link_name(uint8_t *buf, size_t cap, size_t *pos, const struct ctrl_link_name *n);

/* The version field (bits 7-6 of byte 0) of a datagram of len bytes, or -1 if len is 0. */
int wire_version_of(const uint8_t *dg, size_t len);

/* Decode a CTRL payload into up to max messages (known kinds only; unknown kinds skipped;
 * a known kind with the wrong length is an error). Returns the number of messages decoded,
 * or WIRE_ERR_SHORT if a message runs past the end, a known kind has the wrong length or more
 * than CTRL_MAX_MSGS messages (known and unknown counted) are present: the whole payload is
 * then malformed and nothing from out may be used. Returns WIRE_ERR_SPACE if there are more
 * known messages than max (pass max = CTRL_MAX_MSGS to never see this). An empty payload
 * decodes to 0 messages. REPORT values are passed through as received (the receiver of a report
 * must treat every field as hostile); its rx_highest is masked to 48 bits. BEAT reserved bits/bytes are not checked (forward compatibility);
 * flags and reason values are passed through as received. */
int ctrl_decode(const uint8_t *p, size_t len, struct ctrl_msg *out, int max);

#endif
