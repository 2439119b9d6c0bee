/* lane.h: the TCP lane (issue 11, in progress): TCP connections terminated at both ends, their
 * bytes carried as records over per-link TCP connections. This is its interface so far: the
 * record codec (record.c) and the per-stream reassembly of records that arrive over several
 * links in any order (reasm.c). docs/PROTOCOL.md section 10 specifies the records. */
#ifndef BRAID_LANE_H
#define BRAID_LANE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct ev_loop;

/* ---- records (PROTOCOL section 10) ---- */
enum lane_rec_type {
    LANE_OPEN = 1,   /* slave -> master: open a connection to an address */
    LANE_OPENED = 2, /* master -> slave: the outcome */
    LANE_DATA = 3,   /* a stream's bytes at an offset */
    LANE_FIN = 4,    /* the stream ends at an offset (half-close) */
    LANE_RST = 5,    /* the connection is reset */
    LANE_ACK = 6,    /* the receiver has every byte below an offset */
    LANE_RCVD = 7,   /* of a link connection: the frame bytes its receiver read (conn 0) */
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
    uint64_t received;   /* ACK: every byte below it is held (>= offset, which was delivered);
                          * RCVD: the frame bytes read from the connection it came on */
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
/* The ready bytes that lie in one piece of the ring (*p: the first): how many (0 if none);
 * consume takes n of the ready bytes (a peek's, or fewer). */
size_t lane_reasm_peek(const struct lane_reasm *r, const uint8_t **p);
void lane_reasm_consume(struct lane_reasm *r, size_t n);
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
/* 1. The master, at once, its greeting: "BRL" ‖ version 1 ‖ a random 16-byte challenge
 *    (links/greeting.c: link_tcp_greeting_parse).
 * 2. The slave: the master's receiver index of the session (4) ‖ the link id (1) ‖ a sealed
 *    frame (the slave's counter 0) holding "braid lane hello" ‖ the link id: it proves the
 *    session's keys on this connection (the challenge is in the frame's key).
 * 3. The master: a sealed frame (its counter 0) holding "braid lane welcome". Then records. */
#define LANE_HELLO_HDR 5
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

/* ---- one end of the lane for one session (peer.c) ---- */
#define LANE_WINDOW (4u << 20) /* bytes a sender may have unacknowledged per stream direction */
#define LANE_MAX_LINKS 256
struct lane_peer;
struct lane_stream;
struct lane_peer_cb {
    /* Master: the slave asks for a connection to addr:port (family 4 or 6): dial, then answer
     * with lane_stream_opened. */
    void (*open)(void *ctx, struct lane_stream *s, int family, const uint8_t addr[16],
                 uint16_t port);
    /* Slave: the master's answer to the stream's OPEN; with an error the stream is gone. */
    void (*opened)(void *ctx, void *owner, int status);
    /* The far end's bytes, in order: the endpoint returns how many it took (the rest comes
     * again after lane_stream_resume). */
    size_t (*deliver)(void *ctx, void *owner, const uint8_t *data, size_t len);
    /* The far end's FIN, after all its bytes. */
    void (*eof)(void *ctx, void *owner);
    /* Bytes written were acknowledged: room in the send buffer again. */
    void (*room)(void *ctx, void *owner);
    /* The stream was reset (by the far end or the lane): it is gone after this call. */
    void (*reset)(void *ctx, void *owner, int reason);
    /* Optional: a link connection closed (its socket too). */
    void (*link_gone)(void *ctx, uint8_t link_id);
    void *ctx;
};
struct lane_peer_stats {
    uint64_t streams_opened, streams_closed, refused_limit;
    uint64_t tx_data_bytes, rx_data_bytes, rx_dup_bytes, resent_bytes;
    uint64_t acks_sent, rst_sent, rst_received, rst_local, rx_unknown, link_losses;
    uint64_t stalls, reinjected_bytes; /* streams whose ACKs stopped; bytes sent again for them */
    uint64_t stalls_again; /* stalls at the same point as the stream's last one */
    uint64_t probes;       /* stalls where the far end had every record (its ACKs missing) */
    uint64_t early_sent;    /* slave: streams whose bytes went before the OPENED (fast open) */
    uint64_t early_refused; /* slave: of those, refused by the destination (client reset) */
    uint64_t prio_records;  /* records sent ahead of bulk bytes (interactive exchanges) */
    uint64_t early_kept;    /* master: streams whose bytes came before their OPEN */
};
struct lane_link_stats {
    uint64_t tx_bytes, rx_bytes, tx_frames, rx_frames;
    uint64_t copied_bytes; /* stream bytes it carried again (late or lost on another link) */
    uint64_t rtt_ms, cwnd, rate_kbit;
    bool suspended, backoff; /* the link is down in the multiplexer; its TCP in an RTO backoff */
};
struct lane_peer *lane_peer_new(struct ev_loop *loop, bool is_master, int max_streams,
                                const struct lane_peer_cb *cb);
/* Streams end without a word to their endpoints; link connections close. */
void lane_peer_free(struct lane_peer *p);
/* A link connection whose opening checked (open.c): the peer owns fd from now on (also on
 * error: -1). keys: the connection's, counters past the opening; rest: bytes read after it. */
/* Link id's connection goes through a proxy (the slave's SOCKS5 CONNECT): the kernel's view of
 * it (TCP_INFO, its queues) ends at the proxy, so its rate, RTT and what it holds come from the
 * far end's RCVD records instead. */
void lane_peer_link_proxied(struct lane_peer *p, uint8_t id);
int lane_peer_add_link(struct lane_peer *p, int fd, uint8_t id, const struct lane_keys *keys,
                       const uint8_t *rest, size_t nrest);
void lane_peer_drop_link(struct lane_peer *p, uint8_t id, const char *why);
/* The multiplexer has link id down (true) or up again: while down its connection carries no new
 * records (it is kept: a short outage does not cost a new connection), and the DATA it carried
 * goes again on the others for a stream whose receiver waits for it (the stall check). */
void lane_peer_suspend_link(struct lane_peer *p, uint8_t id, bool down);
int lane_peer_links(const struct lane_peer *p);
/* The TCP congestion control of every link connection from now on ("" or NULL: the system's);
 * 0, or -1 when this kernel does not have it. */
int lane_set_congestion(const char *name);
/* That congestion control on fd (0, or -1 with errno). The master sets it on its listener
 * while it still has its privileges: accepted connections inherit it. */
int lane_apply_congestion(int fd);
const struct lane_peer_stats *lane_peer_stats(const struct lane_peer *p, int *nstreams);
const struct lane_link_stats *lane_peer_link_stats(const struct lane_peer *p, uint8_t id);
/* Slave: a new stream to addr:port for owner (OPEN goes out); NULL at the limit. */
struct lane_stream *lane_stream_open(struct lane_peer *p, void *owner, int family,
                                     const uint8_t addr[16], uint16_t port);
/* Slave: the stream's bytes go from now on, before the master answers the OPEN (the client
 * was answered at once: fast open); a refused OPEN then ends it with opened(error). */
void lane_stream_early(struct lane_stream *s);
/* Master: the outcome of open(): LANE_OPEN_OK and the endpoint's owner, or an error (the
 * stream ends once the answer is out). */
void lane_stream_opened(struct lane_stream *s, void *owner, int status);
/* Bytes the send buffer takes now; in_window: what it holds is within the far end's window
 * (the slave gives its client room while it is). */
size_t lane_stream_room(const struct lane_stream *s);
bool lane_stream_in_window(const struct lane_stream *s);
/* Into the send buffer: how many it took (at most room). */
size_t lane_stream_write(struct lane_stream *s, const uint8_t *data, size_t len);
/* The endpoint's FIN, after what it wrote. */
void lane_stream_shutdown(struct lane_stream *s);
/* The endpoint takes bytes again (after a deliver that took fewer). */
void lane_stream_resume(struct lane_stream *s);
/* A RST to the far end; the stream is gone (no callback). */
void lane_stream_reset(struct lane_stream *s, int reason);
/* The endpoint is done with it (it shut down its side and heard eof, or gave up): the lane
 * ends it once the far end acknowledged everything. No more callbacks. */
void lane_stream_release(struct lane_stream *s);
uint32_t lane_stream_id(const struct lane_stream *s);
#ifdef BRAID_FUZZ
/* Fuzzing: the records of one opened frame, as if they came on a link connection. */
int lane_peer_fuzz_input(struct lane_peer *p, const uint8_t *plain, size_t len);
#endif

/* ---- which link carries the next record (pick.c, the policy) ---- */
struct lane_link_state {
    double rate_Bps;      /* the kernel's delivery rate (or congestion window per RTT) */
    double srtt_s;        /* smoothed RTT */
    size_t notsent;       /* bytes in the socket not yet sent */
    size_t pending;       /* bytes of frames not yet written to the socket */
    bool ready;           /* it takes a record now (nothing pending, little unsent) */
    bool late;            /* a record on it is overdue and its far end acknowledged nothing
                           * since: when it is not ready, nothing waits for it */
};
/* When a record of size bytes given to the link now would arrive (s from now). */
double lane_eta(const struct lane_link_state *l, size_t size);
/* The link (index into l[0..n)) for a record of size bytes with backlog bytes waiting behind
 * it, or -1: wait for *wait (-1 when n is 0). */
int lane_pick(const struct lane_link_state *l, int n, size_t size, uint64_t backlog, int *wait);

/* ---- the slave's opening of a link connection (connect.c) ---- */
struct lane_connect;
struct lane_connect_target {
    struct sockaddr_storage to, bind; /* the master; the source address (bindlen 0: none) */
    socklen_t tolen, bindlen;
    char ifname[16];                  /* "" for none */
    struct sockaddr_storage proxy;    /* proxylen > 0: through this SOCKS5 proxy (CONNECT) */
    socklen_t proxylen;
    char user[256], pass[256];        /* its login (RFC 1929), user "" for none */
};
/* The outcome: err NULL when the connection joined the peer, else why not. */
typedef void (*lane_connect_fn)(void *ctx, uint8_t link_id, const char *err);
/* Start opening link id's connection under the session (the master's receiver index and this
 * end's keys); NULL with err when it cannot even start (then done is not called). */
struct lane_connect *lane_connect_start(struct ev_loop *loop, struct lane_peer *peer, uint8_t id,
                                        const struct lane_connect_target *t, uint32_t index,
                                        const uint8_t tx[32], const uint8_t rx[32],
                                        lane_connect_fn done, void *ctx, char *err,
                                        size_t errlen);
void lane_connect_cancel(struct lane_connect *c);

/* ---- the slave's lane (slave.c): terminator, peer and link connections together ---- */
enum lane_mode { LANE_MODE_OFF = 0, LANE_MODE_AUTO = 1, LANE_MODE_ON = 2 };
struct lane_slave;
struct lane_slave_cb {
    /* An IP packet for the tunnel device. */
    void (*output)(void *ctx, const uint8_t *pkt, size_t len);
    /* The current session: the master's receiver index and this end's keys; false: none. */
    bool (*session)(void *ctx, uint32_t *index, uint8_t tx[32], uint8_t rx[32]);
    /* How link id's TCP connection reaches the master; false: not now. */
    bool (*target)(void *ctx, uint8_t id, struct lane_connect_target *t);
    void *ctx;
};
/* mode AUTO: new TCP connections use the lane while two or more link connections are up; ON:
 * while one is. At most max_conns terminated connections. fast_open: a connection to a
 * destination the master reached lately is answered at once (slave.c). NULL with err. */
struct lane_slave *lane_slave_new(struct ev_loop *loop, int mode, int max_conns, bool fast_open,
                                  const struct lane_slave_cb *cb, char *err, size_t errlen);
void lane_slave_free(struct lane_slave *ls);
/* A tunnel packet: true when the lane took it (the packet path must not carry it). */
bool lane_slave_input(struct lane_slave *ls, const uint8_t *pkt, size_t len);
/* The mux has link id up (or not): its link connection is opened (or closed). */
void lane_slave_link(struct lane_slave *ls, uint8_t id, bool up);
const struct lane_stack_counters *lane_slave_stack_counters(const struct lane_slave *ls);
const struct lane_peer *lane_slave_peer_const(const struct lane_slave *ls);

/* ---- status (status.c) ---- */
struct strbuf;
/* JSON objects: a peer's streams and link connections; the slave's lane (terminator and peer). */
void lane_peer_status_json(const struct lane_peer *p, struct strbuf *sb);
void lane_slave_status_json(const struct lane_slave *ls, struct strbuf *sb);
/* The n peers' metrics (Prometheus text format); site[k] labels p[k]'s samples (site NULL: no
 * label, the slave). */
void lane_metrics(const struct lane_peer *const *p, const char *const *site, int n,
                  struct strbuf *sb);

/* ---- the master's side of opening link connections (server.c) ---- */
struct lane_server;
struct lane_server_cb {
    /* The peer of the session whose master receiver index this is (made on demand) and this
     * end's session keys; NULL when there is no such session. */
    struct lane_peer *(*session)(void *ctx, uint32_t index, uint8_t tx[32], uint8_t rx[32]);
    void *ctx;
};
struct lane_server *lane_server_new(struct ev_loop *loop, const struct lane_server_cb *cb);
/* A connection the master's TCP listener greeted with challenge, and the first bytes it sent
 * (part of its HELLO); the server owns fd from now on. (A links/server.h tcp_stream_fn.) */
void lane_server_adopt(void *srv, int fd, const uint8_t challenge[LANE_CHALLENGE_LEN],
                       const uint8_t *first, size_t nfirst);
void lane_server_free(struct lane_server *srv);

/* ---- the master's endpoints: real connections to the destinations (relay.c) ---- */
struct lane_relay;
struct lane_relay *lane_relay_new(struct ev_loop *loop);
/* The peer callbacks that make this relay a peer's endpoints. */
void lane_relay_callbacks(struct lane_relay *r, struct lane_peer_cb *cb);
/* Its connections close (free it before the peer). */
void lane_relay_free(struct lane_relay *r);

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
    /* A client's SYN to dst:port (family 4: dst's first 4 bytes, or 6): the owner's context
     * for the connection, or NULL to leave it to the packet path. The SYN is held (not
     * answered) until the owner calls lane_conn_proceed. */
    void *(*accept)(void *ctx, struct lane_conn *c, int family, const uint8_t dst[16],
                    uint16_t port);
    /* The client's bytes (len 0, data NULL: its FIN). The owner takes them all and returns how
     * many of them the client may send again now (its window opens by that much); the rest
     * later, with lane_conn_recved. */
    size_t (*recv)(void *ctx, void *owner, const uint8_t *data, size_t len);
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
/* Whether a SYN opens a connection (true at the start); false: new connections are left to
 * the packet path, those terminated already stay. */
void lane_stack_set_accepting(struct lane_stack *s, bool on);
/* Bytes for the client: how many it took now (its send buffer's room; the rest later, after
 * sent()). */
size_t lane_conn_send(struct lane_conn *c, const uint8_t *data, size_t len);
/* The far end's answer to a held SYN: 0, the client's handshake goes on; 1 (refused): a RST
 * to the client; else (unreachable, no answer, a limit) an ICMP destination unreachable; then
 * the lane_conn is freed (no closed() for it). */
void lane_conn_proceed(struct lane_conn *c, int status);
/* The owner has room for len more of the client's bytes (see recv). */
void lane_conn_recved(struct lane_conn *c, size_t len);
/* The far end closed its side: a FIN to the client. */
void lane_conn_shutdown(struct lane_conn *c);
/* A reset to the client (before the handshake ended: as soon as it does; a held SYN: refused);
 * the lane_conn is the stack's from now on (no closed() for it). */
void lane_conn_reset(struct lane_conn *c);
const struct lane_stack_counters *lane_stack_counters(const struct lane_stack *s);

#endif
