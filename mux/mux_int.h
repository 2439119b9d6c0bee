/* mux_int.h: the multiplexer's shared state (struct mux, its links and sessions) and the
 * functions its files share (mux.c, send.c, report.c, txqueue.c, txpath.c, view.c, linkstat.c,
 * handshake.c, rxorder.c, status.c). */
#ifndef BRAID_MUX_INT_H
#define BRAID_MUX_INT_H

#include "mux.h"

#include "../common/log.h"
#include "pathmodel.h"
#include "reorder.h"
#include "replay.h"
#include "sched.h"
#include "wire.h"

#define REORDER_FLOOR_US 10000u /* the reorder timeout's floor: scheduling noise */

/* A tunnel packet waiting in a link's send queue (txqueue.c), its gseq already given. */
struct txq_pkt {
    struct txq_pkt *next;
    uint32_t gseq;
    uint32_t len;
    uint64_t enq_us; /* when it was given to a link (kept when it moves to another) */
    uint8_t data[];
};

struct mux_link {
    bool used;
    bool owned;          /* master: made by new_link, destroyed by the mux */
    uint8_t id;
    int pos;             /* index in m->order / m->view */
    struct link *tl;     /* transport (NULL once a retired link's is released) */
    struct link *old_tl; /* slave: a replaced transport whose late datagrams still count */
    bool retired;        /* slave: taken out by a reload: sends nothing, hidden from status */
    bool admin_down;     /* slave: taken down by the admin (`link NAME down`) until `up` */
    /* the link's bytes sent and received per second over the last second (status, metrics) */
    uint64_t meter_at_us, meter_tx, meter_rx;
    double tx_Bps, rx_Bps;
    bool backup;         /* slave: carries data only while no other link can */
    char peer_name[CTRL_LINK_NAME_MAX + 1]; /* master: the slave's name for it (LINK_NAME) */
    uint64_t name_sent_us; /* slave: when its LINK_NAME went out last (0: not this session) */
    /* state */
    bool up;             /* both ends hear each other on it */
    bool sendable;       /* may carry data: up, or the peer's reports say it hears it; the
                          * scheduler's view is usable then */
    bool heard;          /* an authenticated datagram arrived this session */
    bool peer_hears;     /* the peer's latest BEAT says it hears us */
    bool peer_down;      /* the peer sent LINK_DOWN for this link */
    uint64_t last_rx_us;
    uint64_t silent_since_us; /* start of the current silence (for the stale downcall) */
    uint64_t next_stale_us;   /* when to call the transport's stale op next (0: not yet due) */
    uint64_t stale_gap_us;    /* doubles after each call while the silence lasts */
    uint64_t state_since_us;
    uint64_t ups, downs;
    /* tx */
    uint64_t tx_counter;
    uint64_t last_beat_us;
    uint64_t tx_data, tx_ctrl;
    /* rx */
    struct replay replay;
    uint64_t rx_packets, rx_bytes, rx_highest;
    uint64_t rx_data;
    uint64_t rx_late;    /* DATA that arrived after its gap was given up */
    uint16_t peer_ts;
    uint64_t peer_ts_rx_us;
    bool have_peer_ts;
    uint32_t passed;     /* every DATA gseq below this that was sent on this link has arrived or is lost */
    bool have_passed;
    /* The peer's packets came from a new address (NAT rebinding, a changed transport): what was
     * in flight on the old path may arrive after the new path's first packets, so until
     * hold_until gaps are given up past the link only up to hold_passed, its progress then. */
    struct sockaddr_storage from;
    socklen_t fromlen;
    uint64_t hold_until;
    uint32_t hold_passed;
    bool hold_have;
    /* RTT (us) */
    bool have_rtt;
    double srtt, rttvar, last_rtt, min_rtt;
    uint64_t min_rtt_at;
    /* Relative one-way delay (us): receive time minus the peer's ts, against a per-session
     * reference. The peer's clock offset is the same on every link, so differences between
     * links are their one-way delay differences, queueing in this direction included. */
    bool have_owd;
    double owd, owd_var, owd_min;
    uint64_t owd_min_at;
    double owd_peak;       /* recent highest sample, fading toward owd (delay spikes) */
    uint64_t owd_peak_at;
    double owd_last;       /* latest sample */
    /* feedback from the peer's BEATs */
    bool have_fb;
    struct ctrl_beat fb;
    double delivered_Bps, loss;
    /* the send direction's path model (from the peer's REPORTs) and send queue */
    struct pathmodel pm;
    struct txq_pkt *txq_head, *txq_tail;
    uint64_t txq_bytes;       /* with WIRE_OVERHEAD per packet */
    uint32_t tx_data_end;     /* 1 + gseq of the last DATA given to this link */
    uint32_t mark_cap;        /* packets were moved off the link: its gseq mark stays at most the
                               * lowest of them... */
    uint64_t mark_cap_until;  /* ...until then (0: none moved) */
    /* receive reports this end sends about the link */
    uint64_t rx_highest_at_us;
    uint64_t rep_rx_packets;  /* rx_packets when last reported */
    double peer_wait_us;      /* the peer's send-queue wait for the link (recent peak) */
    uint64_t peer_wait_at;
    uint32_t rep_tx_data_end;
    double rep_wait_us;       /* the send-queue wait this end last reported for the link */
};

struct mux_session {
    bool valid;
    struct session_keys keys;
    struct hs_server_result res; /* master: what made it (to answer INIT retransmissions) */
    uint64_t created_us;         /* refused rekey_after x 1.5 later (section 5) */
};

struct mux {
    struct ev_loop *loop;
    struct mux_config cfg;
    struct mux_callbacks cb;
    /* current session; the one before it (after a rekey: datagrams in flight under its keys
     * still open); master: the one a RESPONSE offered, until its first datagram */
    struct mux_session cur, prev, pending;
    uint64_t session_at_us;
    /* slave handshake */
    struct hs_client hs;
    bool hs_active;
    bool hs_rekey;            /* the handshake asks to carry the current session on */
    uint64_t rekey_asked_us;  /* master: when it last asked the slave for new keys */
    uint64_t hs_started_us, hs_last_tx_us;
    uint64_t hs_since_us; /* the slave's first unanswered INIT of this attempt */
    /* master: the site's handshake rate limit and replay protection */
    uint64_t hello_window_us;
    unsigned hello_count;
    bool have_last_ts;
    uint8_t last_ts[HS_TS_LEN]; /* the newest INIT timestamp accepted from the site */
    uint64_t last_any_rx_us;
    bool have_owd_ref;
    uint16_t owd_ref; /* reference for the links' relative one-way delays (ts units) */
    /* links */
    struct mux_link links[MUX_MAX_LINKS];
    uint8_t order[MUX_MAX_LINKS];
    int nlinks;
    int nbackup; /* links in backup mode */
    /* scheduling: the policy, its private state, and the neutral view of each link (by pos) */
    const struct sched_ops *sched;
    void *sched_state;
    struct sched_view view[MUX_MAX_LINKS];
    uint32_t tx_gseq;
    /* send queues (txqueue.c) and receive reports (report.c) */
    struct txq_pkt *txq_free;
    unsigned txq_count;       /* packets in the send queues */
    ev_timer pace_timer;
    uint64_t pace_due;
    ev_timer report_timer;
    uint64_t last_report_us;
    /* receive order */
    struct reorder *ro;
    uint64_t ro_timeout_us;
    ev_timer ro_timer;
    ev_idle ro_idle;          /* gives gaps up once the input pending now has been read */
    uint64_t ro_idle_since;
    ev_timer tick;
    bool started;
    struct mux_counters c;
    struct log_limit lim_late, lim_noanswer;
    struct log_limit lim_malformed, lim_auth, lim_replay, lim_nosession, lim_nolink, lim_big,
        lim_hello;
    uint8_t txbuf[WIRE_MAX_DGRAM + 64];
};

static inline const char *role(const struct mux *m)
{
    return m->cfg.is_master ? "slave" : "master";
}

/* The link's name for logs and status: the slave's own, on the master once it has told it. */
static inline const char *link_name(const struct mux_link *ml)
{
    return ml->peer_name[0] ? ml->peer_name : ml->tl ? ml->tl->name : "?";
}

static inline bool transport_up(const struct mux_link *ml)
{
    return ml->tl && ml->tl->up && !ml->retired && !ml->admin_down;
}

/* view.c */
/* The link's view for the scheduler, up to date (path model, queue, RTT); all links. */
void fill_view(struct mux *m, struct mux_link *ml, uint64_t now);
void fill_views(struct mux *m, uint64_t now);
/* The path-model part of a link's view (rate, delays, in flight, queued) into v. */
void path_view(const struct mux_link *ml, uint64_t now, struct sched_view *v);
/* The link may have run out of things to send: tell its path model (pm_app_limited). */
void note_app_limited(struct mux *m, struct mux_link *ml, uint64_t now);

/* txpath.c */
/* Seal and send one tunnel packet on a link (DATA, gseq given). Returns 0 or -1. */
int send_data(struct mux *m, struct mux_link *ml, uint32_t gseq, const uint8_t *pkt, size_t len,
              bool unordered, uint64_t now);
void send_ctrl(struct mux *m, struct mux_link *ml, const uint8_t *msgs, size_t len, uint64_t now);
void send_beat(struct mux *m, struct mux_link *ml, uint64_t now);
/* Tell the peer on every other usable link that link id is down. */
void announce_down(struct mux *m, uint8_t id, uint8_t reason, uint64_t now);
/* The gseq a CTRL (or an unordered DATA) on the link carries: every DATA below it given to the
 * link was sent before; after packets were moved off the link, at most the lowest of them until
 * `until` (the peer's reorder buffer then holds their gaps: they arrive on another link). */
uint32_t link_gseq_mark(const struct mux *m, const struct mux_link *ml, uint64_t now);

/* linkstat.c */
void rtt_sample(struct mux *m, struct mux_link *ml, double rtt, uint64_t now);
void owd_sample(struct mux *m, struct mux_link *ml, uint16_t peer_ts, uint64_t now);
void link_reset(struct mux *m, struct mux_link *ml);
void update_reorder_timeout(struct mux *m, uint64_t now);
/* The link delivers to this end: up, or heard within dead_timeout_ms (its other direction may
 * be dead: the link still carries the peer's data). */
bool rx_live(const struct mux *m, const struct mux_link *ml, uint64_t now);
/* Whether the link is up now (logged when it changes) and whether it may carry data; returns
 * true when it just stopped being able to (its send queue must move). */
bool update_state(struct mux *m, struct mux_link *ml, uint64_t now);
/* Backup links are usable by the scheduler only while no other link is sendable. */
void apply_backup(struct mux *m);
/* A BEAT from the peer for the link: with the previous one, a feedback sample for the scheduler. */
void beat_feedback(struct mux *m, struct mux_link *ml, const struct ctrl_beat *b, uint64_t now);


/* txqueue.c */
void txq_init(struct mux *m);
void txq_free_all(struct mux *m);
int txq_push(struct mux *m, struct mux_link *ml, uint32_t gseq, const uint8_t *pkt, size_t len,
             uint64_t enq_us);
/* A packet for the link: sent at once if nothing waits and the policy lets it, else queued
 * (and the queue drained). Returns -1 if the queues are full. */
int txq_offer(struct mux *m, struct mux_link *ml, uint32_t gseq, const uint8_t *pkt, size_t len,
              uint64_t now);
/* Send what the policy lets the link send now; arms the pacing timer for the rest. */
void txq_drain(struct mux *m, struct mux_link *ml, uint64_t now);
void txq_flush(struct mux *m, struct mux_link *ml);
void txq_relocate(struct mux *m, struct mux_link *ml, uint64_t now);

/* report.c */
void report_init(struct mux *m);
/* Data moved: send receive reports now if the last ones are SCHED_REPORT_US old, else soon. */
void report_maybe(struct mux *m, uint64_t now);
void send_reports(struct mux *m, uint64_t now);
/* A REPORT from the peer, in a CTRL datagram whose gseq mark was mark. */
void report_apply(struct mux *m, const struct ctrl_report *r, uint32_t mark, uint64_t now);

/* handshake.c */
void master_promote(struct mux *m);
/* Forget a session (its index back to the site table). */
void release_session(struct mux *m, struct mux_session *s);
void slave_start_handshake(struct mux *m, uint64_t now, bool rekey);
/* Sessions past their age: rekey (slave), ask for it (master), drop those past rejection. */
void session_timers(struct mux *m, uint64_t now);
void slave_send_hellos(struct mux *m, uint64_t now);
void slave_send_init(struct mux *m, struct mux_link *ml);
/* Slave: a RESPONSE or COOKIE_REPLY on the link. */
void handle_reply(struct mux *m, struct mux_link *ml, const uint8_t *buf, size_t len);

/* rxorder.c */
void deliver_in_order(void *ctx, const uint8_t *pkt, size_t len);
void rearm_reorder(struct mux *m);
void reorder_idle_cb(struct ev_loop *loop, ev_idle *w, int revents);
void release_passed(struct mux *m, uint64_t now);
void reorder_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
void note_passed(struct mux_link *ml, uint32_t upto);
/* A datagram came from `from`: when the link's packets came from elsewhere before, the link is
 * not FIFO for a reorder timeout (see hold_until). */
void note_path(struct mux *m, struct mux_link *ml, const struct sockaddr *from, socklen_t fromlen,
               uint64_t now);

#endif
