/* report.c: what the daemons answer about themselves: the status (text, JSON) and the start of
 * the Prometheus metrics (braid_info, the tunnel device's counters). */
#include "daemon.h"

#include <stdio.h>
#include <string.h>

#include "../lane/lane.h"
#include "../mux/mux.h"
#include "../mux/wire.h"
#include "../tundev/tundev.h"

void daemon_metrics_head(const struct cfg *cfg, const struct tundev *tun, struct strbuf *out)
{
    const struct tundev_stats *ts = tundev_stats(tun);
    sb_printf(out,
              "# HELP braid_info braid's release, build and role\n# TYPE braid_info gauge\n"
              "braid_info{version=\"%s\",build=\"%s\",role=\"%s\",wire=\"%d\"} 1\n",
              BRAID_VERSION, tundev_kind, cfg->is_master ? "master" : "slave", WIRE_VERSION);
#define T(name, help, f)                                                                           \
    sb_printf(out, "# HELP braid_tunnel_" name "_total " help "\n# TYPE braid_tunnel_" name      \
                   "_total counter\nbraid_tunnel_" name "_total %llu\n",                         \
              (unsigned long long)ts->f);
    T("rx_packets", "packets from the host into the tunnel", rx_packets)
    T("rx_bytes", "bytes from the host into the tunnel", rx_bytes)
    T("tx_packets", "packets from the tunnel to the host", tx_packets)
    T("tx_bytes", "bytes from the tunnel to the host", tx_bytes)
    T("rx_rejected", "packets from the host refused (too large)", rx_rejected)
    T("tx_dropped", "packets to the host that could not be written", tx_dropped)
#undef T
}

void daemon_tundev_json(const struct tundev *tun, struct strbuf *out)
{
    const struct tundev_stats *ts = tundev_stats(tun);
    char desc[160];
    tundev_describe(tun, desc, sizeof desc);
    sb_printf(out, "{\"describe\":");
    sb_json_str(out, desc);
    sb_printf(out,
              ",\"rx_packets\":%llu,\"rx_bytes\":%llu,\"tx_packets\":%llu,\"tx_bytes\":%llu,"
              "\"rx_rejected\":%llu,\"tx_dropped\":%llu}",
              (unsigned long long)ts->rx_packets, (unsigned long long)ts->rx_bytes,
              (unsigned long long)ts->tx_packets, (unsigned long long)ts->tx_bytes,
              (unsigned long long)ts->rx_rejected, (unsigned long long)ts->tx_dropped);
}

void daemon_tundev_text(const struct tundev *tun, struct strbuf *out)
{
    const struct tundev_stats *ts = tundev_stats(tun);
    char desc[160];
    tundev_describe(tun, desc, sizeof desc);
    sb_printf(out, "tunnel: %s rx=%llu tx=%llu rejected=%llu dropped=%llu\n", desc,
              (unsigned long long)ts->rx_packets, (unsigned long long)ts->tx_packets,
              (unsigned long long)ts->rx_rejected, (unsigned long long)ts->tx_dropped);
}

void daemon_status(const struct mux *mux, const struct tundev *tun, const struct lane_slave *lane,
                   const char *cmd, struct strbuf *out)
{
    if (strcmp(cmd, "json") == 0) {
        sb_printf(out, "{\"mux\":");
        mux_status_json(mux, out);
        sb_printf(out, ",\"tundev\":");
        daemon_tundev_json(tun, out);
        if (lane) {
            sb_printf(out, ",\"lane\":");
            lane_slave_status_json(lane, out);
        }
        sb_printf(out, "}\n");
    } else if (strcmp(cmd, "status") == 0) {
        mux_status_text(mux, out);
        daemon_tundev_text(tun, out);
    } else {
        sb_printf(out, "error: unknown command \"%s\" (status, json)\n", cmd);
    }
}
