/* status.c: the TCP lane's counters as JSON for the daemons' status (per peer: streams and
 * their bytes, each link connection's bytes and the kernel's view of it; the slave's terminator). */
#include "lane.h"

#include <inttypes.h>

#include "../common/strbuf.h"

void lane_peer_status_json(const struct lane_peer *p, struct strbuf *sb)
{
    int n = 0;
    const struct lane_peer_stats *st = lane_peer_stats(p, &n);
    sb_printf(sb,
              "{\"streams\":%d,\"streams_opened\":%" PRIu64 ",\"streams_closed\":%" PRIu64
              ",\"refused_limit\":%" PRIu64 ",\"tx_data_bytes\":%" PRIu64
              ",\"rx_data_bytes\":%" PRIu64 ",\"rx_dup_bytes\":%" PRIu64
              ",\"resent_bytes\":%" PRIu64 ",\"acks_sent\":%" PRIu64 ",\"rst_sent\":%" PRIu64
              ",\"rst_received\":%" PRIu64 ",\"rx_unknown\":%" PRIu64
              ",\"link_losses\":%" PRIu64 ",\"stalls\":%" PRIu64
              ",\"reinjected_bytes\":%" PRIu64 ",\"links\":[",
              n, st->streams_opened, st->streams_closed, st->refused_limit, st->tx_data_bytes,
              st->rx_data_bytes, st->rx_dup_bytes, st->resent_bytes, st->acks_sent, st->rst_sent,
              st->rst_received, st->rx_unknown, st->link_losses, st->stalls,
              st->reinjected_bytes);
    const char *sep = "";
    for (int id = 0; id < LANE_MAX_LINKS; id++) {
        const struct lane_link_stats *l = lane_peer_link_stats(p, (uint8_t)id);
        if (!l) continue;
        sb_printf(sb,
                  "%s{\"id\":%d,\"tx_bytes\":%" PRIu64 ",\"rx_bytes\":%" PRIu64
                  ",\"tx_frames\":%" PRIu64 ",\"rx_frames\":%" PRIu64 ",\"rtt_ms\":%" PRIu64
                  ",\"cwnd\":%" PRIu64 ",\"rate_kbit\":%" PRIu64 "}",
                  sep, id, l->tx_bytes, l->rx_bytes, l->tx_frames, l->rx_frames, l->rtt_ms,
                  l->cwnd, l->rate_kbit);
        sep = ",";
    }
    sb_printf(sb, "]}");
}

void lane_slave_status_json(const struct lane_slave *ls, struct strbuf *sb)
{
    const struct lane_stack_counters *c = lane_slave_stack_counters(ls);
    sb_printf(sb,
              "{\"terminator\":{\"in_packets\":%" PRIu64 ",\"in_dropped\":%" PRIu64
              ",\"out_packets\":%" PRIu64 ",\"out_dropped\":%" PRIu64 ",\"accepted\":%" PRIu64
              ",\"refused\":%" PRIu64 ",\"closed\":%" PRIu64 "},\"peer\":",
              c->in_packets, c->in_dropped, c->out_packets, c->out_dropped, c->accepted,
              c->refused, c->closed);
    lane_peer_status_json(lane_slave_peer_const(ls), sb);
    sb_printf(sb, "}");
}
