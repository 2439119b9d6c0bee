/* txpath.c: putting datagrams on a link: sealing DATA and CTRL, beats, LINK_DOWN
 * announcements. */
#include "mux_int.h"

#include <stdio.h>

#include "../common/util.h"

static void fill_echo(struct mux_link *ml, struct wire_hdr *h, uint64_t now)
{
    h->ts = wire_ts(now);
    h->echo_valid = false;
    h->echo = 0;
    if (ml->have_peer_ts && now - ml->peer_ts_rx_us < WIRE_ECHO_MAX_HOLD_US) {
        h->echo = (uint16_t)(ml->peer_ts + (now - ml->peer_ts_rx_us) / WIRE_TS_UNIT_US);
        h->echo_valid = true;
    }
}

/* Seal and send one DATA or CTRL datagram on a link. Returns link_send's result. */
static int send_dgram(struct mux *m, struct mux_link *ml, uint8_t type, uint32_t gseq,
                      const uint8_t *payload, size_t plen, bool unordered, uint64_t now)
{
    struct wire_hdr h = {0};
    h.type = type;
    h.unordered = unordered;
    h.index = m->cur.keys.remote_index;
    h.link_id = ml->id;
    h.counter = ml->tx_counter++;
    h.gseq = gseq;
    fill_echo(ml, &h, now);
    int n = wire_seal(m->txbuf, sizeof m->txbuf, &h, payload, plen, m->cur.keys.tx);
    if (n < 0) return -1;
    pm_sent(&ml->pm, h.counter, (size_t)n, now);
    return link_send(ml->tl, m->txbuf, (size_t)n);
}

uint32_t link_gseq_mark(const struct mux *m, const struct mux_link *ml, uint64_t now)
{
    uint32_t g = ml->txq_head ? ml->txq_head->gseq : m->tx_gseq;
    return now < ml->mark_cap_until && seq_lt(ml->mark_cap, g) ? ml->mark_cap : g;
}

void send_ctrl(struct mux *m, struct mux_link *ml, const uint8_t *msgs, size_t len, uint64_t now)
{
    if (!m->cur.valid || !transport_up(ml)) return;
    if (send_dgram(m, ml, WIRE_CTRL, link_gseq_mark(m, ml, now), msgs, len, false, now) == 0) {
        ml->tx_ctrl++;
        m->c.tx_ctrl++;
    }
    /* a link carrying only control messages is idle, not slow: its rate samples must not
     * lower its estimate */
    if (!ml->txq_head) note_app_limited(m, ml, now);
}

#define LINK_NAME_EVERY_US 10000000u

void send_beat(struct mux *m, struct mux_link *ml, uint64_t now)
{
    struct ctrl_beat b = {0};
    if (ml->heard && now - ml->last_rx_us <= (uint64_t)m->cfg.dead_timeout_ms * 1000u)
        b.flags |= CTRL_BEAT_F_HEARS;
    if (!m->cfg.is_master && ml->backup) b.flags |= CTRL_BEAT_F_BACKUP;
    b.interval_ms = (uint16_t)m->cfg.beat_interval_ms;
    b.report_us = (uint32_t)now;
    b.rx_packets = ml->rx_packets;
    b.rx_bytes = ml->rx_bytes;
    b.rx_highest = ml->rx_highest;
    uint8_t buf[64 + CTRL_LINK_NAME_MAX + 8];
    size_t pos = 0;
    /* the slave tells the master its name for the link (before the BEAT: known when the link
     * comes up there): at once in a session, then every 10 s (a lost one is told again) */
    if (!m->cfg.is_master && ml->tl &&
        (ml->name_sent_us == 0 || now - ml->name_sent_us >= LINK_NAME_EVERY_US)) {
        struct ctrl_link_name n = {.link_id = ml->id};
        snprintf(n.name, sizeof n.name, "%s", ml->tl->name);
        if (ctrl_put_link_name(buf, sizeof buf, &pos, &n) == 0) ml->name_sent_us = now;
    }
    ctrl_put_beat(buf, sizeof buf, &pos, &b);
    ml->last_beat_us = now;
    send_ctrl(m, ml, buf, pos, now);
}

void announce_down(struct mux *m, uint8_t id, uint8_t reason, uint64_t now)
{
    struct ctrl_link_down d = {.link_id = id, .reason = reason};
    uint8_t buf[16];
    size_t pos = 0;
    ctrl_put_link_down(buf, sizeof buf, &pos, &d);
    for (int i = 0; i < m->nlinks; i++) {
        struct mux_link *o = &m->links[m->order[i]];
        if (o->id != id && o->up) send_ctrl(m, o, buf, pos, now);
    }
}

int send_data(struct mux *m, struct mux_link *ml, uint32_t gseq, const uint8_t *pkt, size_t len,
              bool unordered, uint64_t now)
{
    if (send_dgram(m, ml, WIRE_DATA, gseq, pkt, len, unordered, now) != 0) return -1;
    ml->tx_data++;
    m->c.tx_data++;
    m->c.tx_data_bytes += len;
    return 0;
}
