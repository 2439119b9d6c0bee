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
              ",\"reinjected_bytes\":%" PRIu64 ",\"early_sent\":%" PRIu64
              ",\"early_refused\":%" PRIu64 ",\"early_kept\":%" PRIu64
              ",\"prio_records\":%" PRIu64 ",\"stalls_again\":%" PRIu64
              ",\"probes\":%" PRIu64 ",\"links\":[",
              n, st->streams_opened, st->streams_closed, st->refused_limit, st->tx_data_bytes,
              st->rx_data_bytes, st->rx_dup_bytes, st->resent_bytes, st->acks_sent, st->rst_sent,
              st->rst_received, st->rx_unknown, st->link_losses, st->stalls,
              st->reinjected_bytes, st->early_sent, st->early_refused, st->early_kept,
              st->prio_records, st->stalls_again, st->probes);
    const char *sep = "";
    for (int id = 0; id < LANE_MAX_LINKS; id++) {
        const struct lane_link_stats *l = lane_peer_link_stats(p, (uint8_t)id);
        if (!l) continue;
        sb_printf(sb,
                  "%s{\"id\":%d,\"tx_bytes\":%" PRIu64 ",\"rx_bytes\":%" PRIu64
                  ",\"tx_frames\":%" PRIu64 ",\"rx_frames\":%" PRIu64
                  ",\"copied_bytes\":%" PRIu64 ",\"rtt_ms\":%" PRIu64
                  ",\"cwnd\":%" PRIu64 ",\"rate_kbit\":%" PRIu64
                  ",\"suspended\":%s,\"backoff\":%s}",
                  sep, id, l->tx_bytes, l->rx_bytes, l->tx_frames, l->rx_frames, l->copied_bytes,
                  l->rtt_ms, l->cwnd, l->rate_kbit, l->suspended ? "true" : "false",
                  l->backoff ? "true" : "false");
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

/* A sample's labels: site (the master's) and link id. */
static void mlabels(struct strbuf *sb, const char *site, int id)
{
    sb_printf(sb, "{");
    if (site) {
        sb_printf(sb, "site=");
        sb_json_str(sb, site);
    }
    if (id >= 0) sb_printf(sb, "%sid=\"%d\"", site ? "," : "", id);
    sb_printf(sb, "}");
}

#define PEER_COUNTERS(X)                                                                           \
    X(streams_opened, "terminated TCP connections opened")                                       \
    X(streams_closed, "terminated TCP connections ended")                                        \
    X(refused_limit, "connections refused at tcp_lane_connections")                              \
    X(tx_data_bytes, "stream bytes sent (first copies)")                                         \
    X(rx_data_bytes, "stream bytes delivered to the endpoints")                                  \
    X(rx_dup_bytes, "stream bytes that arrived twice")                                           \
    X(resent_bytes, "stream bytes sent again for a link connection that closed or went down")    \
    X(reinjected_bytes, "stream bytes sent again (copies of late or lost records)")                \
    X(stalls, "times a stream's receiver stopped reporting progress")                           \
    X(early_kept, "connections whose bytes came before their OPEN (kept for it)")                \
    X(rst_sent, "resets sent")                                                                   \
    X(rst_received, "resets received")                                                           \
    X(link_losses, "link connections that closed")

#define LINK_COUNTERS(X)                                                                           \
    X(tx_bytes, "bytes written to the link connection")                                          \
    X(rx_bytes, "bytes read from the link connection")                                           \
    X(copied_bytes, "stream bytes it carried again (records late or lost on another link)")

void lane_metrics(const struct lane_peer *const *p, const char *const *site, int n,
                  struct strbuf *sb)
{
    sb_printf(sb, "# HELP braid_lane_streams terminated TCP connections now\n"
                  "# TYPE braid_lane_streams gauge\n");
    for (int k = 0; k < n; k++) {
        int ns = 0;
        lane_peer_stats(p[k], &ns);
        sb_printf(sb, "braid_lane_streams");
        mlabels(sb, site ? site[k] : NULL, -1);
        sb_printf(sb, " %d\n", ns);
    }
#define X(f, help)                                                                                 \
    sb_printf(sb, "# HELP braid_lane_" #f "_total " help "\n# TYPE braid_lane_" #f "_total counter\n"); \
    for (int k = 0; k < n; k++) {                                                                  \
        sb_printf(sb, "braid_lane_" #f "_total");                                                  \
        mlabels(sb, site ? site[k] : NULL, -1);                                                    \
        sb_printf(sb, " %" PRIu64 "\n", lane_peer_stats(p[k], NULL)->f);                           \
    }
    PEER_COUNTERS(X)
#undef X
#define X(f, help)                                                                                 \
    sb_printf(sb, "# HELP braid_lane_link_" #f "_total " help "\n"                                \
                  "# TYPE braid_lane_link_" #f "_total counter\n");                               \
    for (int k = 0; k < n; k++)                                                                    \
        for (int id = 0; id < LANE_MAX_LINKS; id++) {                                              \
            const struct lane_link_stats *l = lane_peer_link_stats(p[k], (uint8_t)id);             \
            if (!l) continue;                                                                      \
            sb_printf(sb, "braid_lane_link_" #f "_total");                                         \
            mlabels(sb, site ? site[k] : NULL, id);                                                \
            sb_printf(sb, " %" PRIu64 "\n", l->f);                                                 \
        }
    LINK_COUNTERS(X)
#undef X
    sb_printf(sb, "# HELP braid_lane_link_rtt_seconds the link connection's smoothed RTT (TCP_INFO)\n"
                  "# TYPE braid_lane_link_rtt_seconds gauge\n");
    for (int k = 0; k < n; k++)
        for (int id = 0; id < LANE_MAX_LINKS; id++) {
            const struct lane_link_stats *l = lane_peer_link_stats(p[k], (uint8_t)id);
            if (!l) continue;
            sb_printf(sb, "braid_lane_link_rtt_seconds");
            mlabels(sb, site ? site[k] : NULL, id);
            sb_printf(sb, " %.6f\n", (double)l->rtt_ms / 1000.0);
        }
}
