/* lane.h: the TCP lane (issue 11, in progress): TCP connections terminated at both ends, their
 * bytes carried as records over per-link TCP connections. This is its interface so far: the
 * record codec (record.c) and the per-stream reassembly of records that arrive over several
 * links in any order (reasm.c). docs/PROTOCOL.md section 10 specifies the records. */
#ifndef BRAID_LANE_H
#define BRAID_LANE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;

/* ---- records (PROTOCOL section 10) ---- */
enum lane_rec_type {
    LANE_OPEN = 1,   /* slave -> master: open a connection to an address */
    LANE_OPENED = 2, /* master -> slave: the outcome */
    LANE_DATA = 3,   /* a stream's bytes at an offset */
    LANE_FIN = 4,    /* the stream ends at an offset (half-close) */
    LANE_RST = 5,    /* the connection is reset */
    LANE_ACK = 6,    /* the receiver has every byte below an offset */
};
#define LANE_REC_HDR 3          /* type (1) and body length (2) */
#define LANE_DATA_MAX 16384     /* bytes of data in one DATA record */
#define LANE_OPEN_OK 0          /* LANE_OPENED status: connected; else a lane_open_error */
enum lane_open_error {
    LANE_OPEN_REFUSED = 1,     /* the destination refused (RST to the client) */
    LANE_OPEN_UNREACHABLE = 2, /* no route, host unreachable (ICMP to the client) */
    LANE_OPEN_TIMEOUT = 3,     /* no answer in time */
    LANE_OPEN_LIMIT = 4,       /* the master's limit of terminated connections */
};
#define LANE_OPEN_ERROR_MAX LANE_OPEN_LIMIT
enum lane_rst_reason {
    LANE_RST_PEER = 0,     /* the endpoint reset it */
    LANE_RST_PROTOCOL = 1, /* the lane broke a rule for it (window, FIN) */
    LANE_RST_SHUTDOWN = 2, /* the end is going away */
};
#define LANE_RST_REASON_MAX LANE_RST_SHUTDOWN

struct lane_rec {
    uint8_t type;     /* enum lane_rec_type */
    uint32_t conn;    /* connection id (the slave chooses it; 0 is not used) */
    /* OPEN */
    uint8_t family;   /* 4 or 6 */
    uint8_t addr[16]; /* IPv4 in the first 4 bytes */
    uint16_t port;
    /* OPENED: status; RST: reason */
    uint8_t status;
    /* DATA, FIN, ACK */
    uint64_t offset;
    const uint8_t *data; /* DATA: points into the decoded buffer */
    size_t len;
};

/* Append one record to buf[*pos..cap). 0, or -1 when it does not fit or is invalid (a DATA of
 * 0 or more than LANE_DATA_MAX bytes, an offset + length beyond 2^64 - 1, conn 0, an OPEN of
 * another family than 4 or 6 or port 0, an OPENED status or RST reason out of range). */
int lane_rec_put(uint8_t *buf, size_t cap, size_t *pos, const struct lane_rec *r);
/* Decode the records of a payload into out[0..max). Returns how many, or -1 when the payload
 * is malformed (a record runs past the end, a known type with a body it does not allow, more
 * than max records); unknown types are skipped. DATA's data points into p. */
int lane_rec_decode(const uint8_t *p, size_t len, struct lane_rec *out, int max);

/* ---- reassembly of one stream direction ---- */
/* Bytes that arrive at offsets (DATA may come over several links, twice, overlapping, out of
 * order) are delivered once, in order. At most cap bytes past the delivered point are held;
 * the sender must not send beyond the receive window it was told (cap). */
struct lane_reasm {
    uint64_t next;   /* every byte below was delivered (read) */
    uint64_t fin;    /* the stream's length once FIN arrived, else UINT64_MAX */
    uint8_t *ring;   /* cap bytes; byte at offset o lives at ring[o % cap] */
    size_t cap;
    struct lane_range {
        uint64_t start, end; /* [start, end) held, sorted, disjoint, not touching */
    } *ranges;
    int nranges, maxranges;
    uint64_t dup_bytes; /* bytes that arrived again (counted, dropped) */
};
enum lane_reasm_result {
    LANE_REASM_OK = 0,      /* stored (some bytes may be new) */
    LANE_REASM_DUP = 1,     /* nothing new: every byte was held or delivered already */
    LANE_REASM_WINDOW = -1, /* beyond next + cap: the sender broke the window (refused) */
    LANE_REASM_BAD = -2,    /* past the FIN, a FIN that contradicts data, or out of memory */
};
int lane_reasm_init(struct lane_reasm *r, size_t cap);
void lane_reasm_free(struct lane_reasm *r);
/* DATA at offset. */
int lane_reasm_add(struct lane_reasm *r, uint64_t offset, const uint8_t *data, size_t len);
/* FIN at offset (the stream's length). */
int lane_reasm_fin(struct lane_reasm *r, uint64_t offset);
/* Bytes ready in order from next (0 if none). */
size_t lane_reasm_ready(const struct lane_reasm *r);
/* Copy up to max of them to out and consume them; returns how many. */
size_t lane_reasm_read(struct lane_reasm *r, uint8_t *out, size_t max);
/* Every byte up to the FIN was read. */
bool lane_reasm_done(const struct lane_reasm *r);

/* ---- sealing a link connection's frames (PROTOCOL section 10) ---- */
/* A link connection starts with the master's random challenge; both ends then derive the
 * connection's keys from the session's and the challenge, so that frames recorded on one
 * connection mean nothing on another. Each frame: length (2, big-endian) of what follows ‖
 * ChaCha20-Poly1305 (IETF) ciphertext ‖ 16-byte tag; nonce: 4 zero bytes ‖ the direction's
 * frame counter (8, little-endian) from 0; the length is the associated data. */
#define LANE_CHALLENGE_LEN 16
#define LANE_TAG_LEN 16
#define LANE_FRAME_HDR 2
#define LANE_FRAME_MAX 65535 /* ciphertext and tag after the length */
#define LANE_PLAIN_MAX (LANE_FRAME_MAX - LANE_TAG_LEN)
struct lane_dir {
    uint8_t key[32];
    uint64_t counter; /* frames sealed (or opened) in this direction */
};
struct lane_keys {
    struct lane_dir tx, rx;
};
/* The connection's keys from this end's session keys (tx: what it sends with) and the
 * challenge: BLAKE2b-256 keyed by the session key over "braid lane v1" ‖ challenge. */
void lane_keys_derive(const uint8_t session_tx[32], const uint8_t session_rx[32],
                      const uint8_t challenge[LANE_CHALLENGE_LEN], struct lane_keys *out);
/* Seal len bytes of plain into out (LANE_FRAME_HDR + len + LANE_TAG_LEN bytes). Returns the
 * frame's size, or -1 (more than LANE_PLAIN_MAX, no room, the counter used up). */
int lane_seal(struct lane_dir *d, const uint8_t *plain, size_t len, uint8_t *out, size_t cap);
/* Open one frame's body (what follows its length: ciphertext ‖ tag, blen bytes) in place.
 * Returns the plain length, or -1 when it does not authenticate (the connection must close:
 * a frame is never skipped, the counters would part). */
int lane_open(struct lane_dir *d, uint8_t *body, size_t blen);

/* ---- opening a link connection (open.c; PROTOCOL section 10) ---- */
/* 1. The master, at once: "BRL" ‖ version 1 ‖ a random 16-byte challenge.
 * 2. The slave: the master's receiver index of the session (4) ‖ the link id (1) ‖ a sealed
 *    frame (the slave's counter 0) holding "braid lane hello" ‖ the link id: it proves the
 *    session's keys on this connection (the challenge is in the frame's key).
 * 3. The master: a sealed frame (its counter 0) holding "braid lane welcome". Then records. */
#define LANE_CHALLENGE_MSG 20
#define LANE_HELLO_HDR 5
#define LANE_VERSION 1
/* 0 with the challenge, 1 when more bytes are needed, -1 when it is not braid's lane (or
 * another version). */
int lane_challenge_put(uint8_t out[LANE_CHALLENGE_MSG], const uint8_t challenge[16]);
int lane_challenge_parse(const uint8_t *p, size_t len, uint8_t challenge[16]);
/* The slave's HELLO into out (cap bytes): its size, or -1. tx: the connection's keys. */
int lane_hello_put(uint8_t *out, size_t cap, uint32_t index, uint8_t link_id,
                   struct lane_dir *tx);
/* The HELLO's clear part: 0 with index and link id and *frame_len (the sealed frame's body
 * length after its 2-byte length, which follows), 1 when more bytes are needed, -1 when bad. */
int lane_hello_parse(const uint8_t *p, size_t len, uint32_t *index, uint8_t *link_id,
                     size_t *frame_len);
/* The master checks the HELLO's sealed frame body (modified: opened in place) with the keys
 * of the session the index names: 0 when it proves them for that link id, else -1. */
int lane_hello_check(uint8_t *body, size_t blen, uint8_t link_id, struct lane_dir *rx);
/* The master's WELCOME (a sealed frame) into out: its size, or -1; and the slave's check of
 * its body (0 or -1). */
int lane_welcome_put(uint8_t *out, size_t cap, struct lane_dir *tx);
int lane_welcome_check(uint8_t *body, size_t blen, struct lane_dir *rx);

/* ---- the master's side of OPEN (dial.c): the real connection to the destination ---- */
struct lane_dial;
/* The outcome: status LANE_OPEN_OK with the connected socket fd (the callee owns it), or a
 * lane_open_error with fd -1. The lane_dial is gone after the call. */
typedef void (*lane_dial_fn)(void *ctx, int fd, int status);
/* Connect (non-blocking) to addr:port (family 4 or 6) within timeout_s. NULL when it cannot
 * even start (out of memory, no socket): then cb is not called. */
struct lane_dial *lane_dial_start(struct ev_loop *loop, int family, const uint8_t addr[16],
                                  uint16_t port, double timeout_s, lane_dial_fn cb, void *ctx);
/* Give up a dial in progress (cb is not called). */
void lane_dial_cancel(struct lane_dial *d);
/* The OPENED status for a connect() errno. */
int lane_dial_status_of(int err);

/* ---- the slave's TCP terminator (stack.c): lwIP inside the event loop ---- */
/* It takes the TCP connections (IPv4, and IPv6 without extension headers) clients open through
 * the tunnel device to any address
 * and gives their bytes to its owner, who carries them (the lane) and sends the answers. */
struct lane_stack;
struct lane_conn;
struct lane_stack_cb {
    /* An IP packet for the host (the tunnel device). */
    void (*output)(void *ctx, const uint8_t *pkt, size_t len);
    /* A client opened a connection to dst:port (family 4: dst's first 4 bytes, or 6): the owner's
     * context for it, or NULL to refuse it (a reset to the client). */
    void *(*accept)(void *ctx, struct lane_conn *c, int family, const uint8_t dst[16],
                    uint16_t port);
    /* The client's bytes (len 0, data NULL: its FIN). */
    void (*recv)(void *ctx, void *owner, const uint8_t *data, size_t len);
    /* Optional: len bytes sent earlier were acknowledged by the client (room again). */
    void (*sent)(void *ctx, void *owner, size_t len);
    /* The connection is gone (reset: by a RST or an error, else both sides closed); the
     * lane_conn is freed after this. */
    void (*closed)(void *ctx, void *owner, bool reset);
    void *ctx;
};
struct lane_stack_counters {
    uint64_t in_packets, in_dropped, out_packets, out_dropped, accepted, refused, closed;
    uint64_t out_other; /* lwIP's own packets that are no connection's (IPv6 MLD, RS, NS) */
};
/* One per process (lwIP's state is global). NULL with err. */
struct lane_stack *lane_stack_new(struct ev_loop *loop, const struct lane_stack_cb *cb, char *err,
                                  size_t errlen);
void lane_stack_free(struct lane_stack *s);
/* An IP packet from the tunnel device: true when the stack took it (a SYN, or a segment of a
 * connection it terminates); false: the packet path carries it. */
bool lane_stack_input(struct lane_stack *s, const uint8_t *pkt, size_t len);
/* Bytes for the client: how many it took now (its send buffer's room; the rest later, after
 * sent()). */
size_t lane_conn_send(struct lane_conn *c, const uint8_t *data, size_t len);
/* The far end closed its side: a FIN to the client. */
void lane_conn_shutdown(struct lane_conn *c);
/* A reset to the client; the lane_conn is freed (no closed() for it). */
void lane_conn_reset(struct lane_conn *c);
const struct lane_stack_counters *lane_stack_counters(const struct lane_stack *s);

#endif
