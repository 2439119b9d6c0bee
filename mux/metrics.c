/* metrics.c: the multiplexers' state in the Prometheus text exposition format: per link
 * (state, RTT, loss, rates, bytes and packets), per multiplexer (session, links up, reorder
 * buffer, the counters of mux_counters). Families are written whole, across all the muxes. */
#include "mux_int.h"

#include "../common/util.h"

/* A sample's labels: site (the master's) and, for links, link and id. */
static void labels(struct strbuf *sb, const char *site, const struct mux_link *ml)
{
    const char *sep = "";
    sb_printf(sb, "{");
    if (site) {
        sb_printf(sb, "site=");
        sb_json_str(sb, site); /* (names are [A-Za-z0-9._-]: nothing to escape) */
        sep = ",";
    }
    if (ml) {
        sb_printf(sb, "%slink=", sep);
        sb_json_str(sb, link_name(ml));
        sb_printf(sb, ",id=\"%u\"", ml->id);
    }
    sb_printf(sb, "}");
}

#define LINK_GAUGES(X)                                                                             \
    X(braid_link_up, "1 when both ends hear each other on the link", ml->up ? 1.0 : 0.0)         \
    X(braid_link_admin_down, "1 when the admin took the link down", ml->admin_down ? 1.0 : 0.0)  \
    X(braid_link_backup, "1 for a backup link", ml->backup ? 1.0 : 0.0)                          \
    X(braid_link_rtt_seconds, "smoothed round-trip time", ml->have_rtt ? ml->srtt / 1e6 : 0.0)  \
    X(braid_link_min_rtt_seconds, "minimum round-trip time lately",                             \
      ml->have_rtt ? ml->min_rtt / 1e6 : 0.0)                                                     \
    X(braid_link_loss_ratio, "recent fraction of datagrams lost", ml->loss)                      \
    X(braid_link_delivery_rate_bytes, "bytes per second the peer receives on the link",         \
      ml->delivered_Bps)                                                                          \
    X(braid_link_tx_rate_bytes, "bytes per second sent on the link over the last second",       \
      ml->tx_Bps)                                                                                 \
    X(braid_link_rx_rate_bytes, "bytes per second received on the link over the last second",   \
      ml->rx_Bps)

#define LINK_COUNTERS(X)                                                                           \
    X(braid_link_tx_packets_total, "datagrams sent", ml->tl ? ml->tl->c.tx_packets : 0)          \
    X(braid_link_tx_bytes_total, "bytes sent", ml->tl ? ml->tl->c.tx_bytes : 0)                  \
    X(braid_link_rx_packets_total, "authenticated datagrams received", ml->rx_packets)           \
    X(braid_link_rx_bytes_total, "bytes received", ml->rx_bytes)                                 \
    X(braid_link_tx_data_total, "tunnel packets sent", ml->tx_data)                              \
    X(braid_link_rx_data_total, "tunnel packets received", ml->rx_data)                          \
    X(braid_link_ups_total, "times the link came up", ml->ups)                                   \
    X(braid_link_downs_total, "times the link went down", ml->downs)

#define MUX_COUNTERS(X)                                                                            \
    X(malformed) X(no_session) X(replay) X(auth_fail) X(sessions) X(rekeys) X(tx_data)          \
    X(tx_data_bytes) X(tx_no_link) X(tx_too_big) X(rx_data) X(rx_late_delivered) X(tx_queue_drop) \
    X(tx_relocated) X(tx_dup) X(rx_gaps_passed) X(rx_gaps_timeout)

void mux_metrics(const struct mux *const *mux, const char *const *site, int n,
                 struct strbuf *sb)
{
#define EACH_LINK(stmt)                                                                            \
    for (int k = 0; k < n; k++)                                                                    \
        for (int i = 0; i < mux[k]->nlinks; i++) {                                                 \
            const struct mux_link *ml = &mux[k]->links[mux[k]->order[i]];                          \
            if (ml->retired) continue;                                                             \
            stmt;                                                                                  \
        }
#define G(name, help, val)                                                                         \
    sb_printf(sb, "# HELP " #name " " help "\n# TYPE " #name " gauge\n");                         \
    EACH_LINK(sb_printf(sb, #name); labels(sb, site ? site[k] : NULL, ml);                        \
              sb_printf(sb, " %.6g\n", (double)(val)))
    LINK_GAUGES(G)
#undef G
#define C(name, help, val)                                                                         \
    sb_printf(sb, "# HELP " #name " " help "\n# TYPE " #name " counter\n");                       \
    EACH_LINK(sb_printf(sb, #name); labels(sb, site ? site[k] : NULL, ml);                        \
              sb_printf(sb, " %llu\n", (unsigned long long)(val)))
    LINK_COUNTERS(C)
#undef C
#undef EACH_LINK
#define EACH_MUX(stmt)                                                                             \
    for (int k = 0; k < n; k++) {                                                                  \
        const struct mux *m = mux[k];                                                              \
        stmt;                                                                                      \
    }
    sb_printf(sb, "# HELP braid_session_up 1 while a session with the peer is established\n"
                  "# TYPE braid_session_up gauge\n");
    EACH_MUX(sb_printf(sb, "braid_session_up"); labels(sb, site ? site[k] : NULL, NULL);
             sb_printf(sb, " %d\n", m->cur.valid ? 1 : 0))
    sb_printf(sb, "# HELP braid_links_up links up now\n# TYPE braid_links_up gauge\n");
    EACH_MUX(sb_printf(sb, "braid_links_up"); labels(sb, site ? site[k] : NULL, NULL);
             sb_printf(sb, " %d\n", mux_links_up(m)))
    sb_printf(sb, "# HELP braid_reorder_timeout_seconds how long the receiver holds a gap now\n"
                  "# TYPE braid_reorder_timeout_seconds gauge\n");
    EACH_MUX(sb_printf(sb, "braid_reorder_timeout_seconds"); labels(sb, site ? site[k] : NULL, NULL);
             sb_printf(sb, " %.6g\n", m->ro_timeout_us / 1e6))
#define M(f)                                                                                       \
    sb_printf(sb, "# HELP braid_mux_" #f "_total the multiplexer's " #f " counter (braid status "  \
                  "json: counters." #f ")\n# TYPE braid_mux_" #f "_total counter\n");             \
    EACH_MUX(sb_printf(sb, "braid_mux_" #f "_total"); labels(sb, site ? site[k] : NULL, NULL);    \
             sb_printf(sb, " %llu\n", (unsigned long long)m->c.f))
    MUX_COUNTERS(M)
#undef M
#undef EACH_MUX
}
