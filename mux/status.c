/* status.c: the multiplexer's status: counters, session and links up, and the status as JSON
 * (control socket, bench scripts) and as a human-readable table. */
#include "mux_int.h"

#include "../common/util.h"

const struct mux_counters *mux_counters(const struct mux *m)
{
    return &m->c;
}

bool mux_has_session(const struct mux *m)
{
    return m->cur.valid;
}

bool mux_session_keys(const struct mux *m, struct session_keys *out)
{
    if (!m->cur.valid) return false;
    *out = m->cur.keys;
    return true;
}

int mux_links_up(const struct mux *m)
{
    int n = 0;
    for (int i = 0; i < m->nlinks; i++) n += m->links[m->order[i]].up;
    return n;
}

#define COUNTERS(X)                                                                                \
    X(malformed) X(no_session) X(replay) X(auth_fail) X(wrong_link) X(hello_rx)                   \
    X(hello_ratelimited) X(hello_bad) X(hello_replay) X(cookie_rx) X(sessions) X(rekeys) X(rekey_asked) X(tx_data) X(tx_data_bytes) X(tx_no_link)       \
    X(tx_too_big) X(tx_ctrl) X(rx_data) X(rx_ctrl) X(rx_late_delivered) X(rx_too_big) \
    X(tx_queue_drop) X(tx_relocated) X(tx_dup) X(tx_unordered) X(rx_unordered)                  \
    X(rx_report_rejected) X(rx_report_stale) X(rx_gaps_passed) X(rx_gaps_timeout)

void mux_status_json(const struct mux *m, struct strbuf *sb)
{
    uint64_t now = mono_us();
    const struct reorder_stats *rs = reorder_stats(m->ro);
    sb_printf(sb, "{\"role\":\"%s\",\"session\":%s,\"session_age_s\":%.3f,\"links_up\":%d,",
              m->cfg.is_master ? "master" : "slave", m->cur.valid ? "true" : "false",
              m->cur.valid ? (double)(now - m->session_at_us) / 1e6 : 0.0, mux_links_up(m));
    sb_printf(sb, "\"counters\":{");
    const char *sep = "";
#define X(f)                                                                                       \
    sb_printf(sb, "%s\"" #f "\":%llu", sep, (unsigned long long)m->c.f);                          \
    sep = ",";
    COUNTERS(X)
#undef X
    sb_printf(sb, "},\"reorder\":{\"timeout_ms\":%.1f,\"delivered\":%llu,\"direct\":%llu,"
                  "\"dup\":%llu,\"late\":%llu,\"skipped\":%llu,\"overflow\":%llu,\"held\":%llu},",
              m->ro_timeout_us / 1000.0, (unsigned long long)rs->delivered,
              (unsigned long long)rs->direct, (unsigned long long)rs->dup,
              (unsigned long long)rs->late, (unsigned long long)rs->skipped,
              (unsigned long long)rs->overflow, (unsigned long long)rs->held);
    sb_printf(sb, "\"links\":[");
    const char *lsep = "";
    for (int i = 0; i < m->nlinks; i++) {
        const struct mux_link *ml = &m->links[m->order[i]];
        if (ml->retired) continue;
        char desc[160] = "";
        if (ml->tl) ml->tl->ops->describe(ml->tl, desc, sizeof desc);
        sb_printf(sb, "%s{\"id\":%u,\"name\":", lsep, ml->id);
        lsep = ",";
        sb_json_str(sb, link_name(ml));
        sb_printf(sb, ",\"transport\":");
        sb_json_str(sb, desc);
        sb_printf(sb,
                  ",\"admin_down\":%s,\"backup\":%s,"
                  "\"transport_up\":%s,\"up\":%s,\"sendable\":%s,\"peer_hears\":%s,"
                  "\"since_s\":%.3f,"
                  "\"last_rx_ms\":%.1f,\"ups\":%llu,\"downs\":%llu,"
                  "\"rtt_ms\":%.3f,\"srtt_ms\":%.3f,\"rttvar_ms\":%.3f,\"min_rtt_ms\":%.3f,"
                  "\"delivered_Bps\":%.0f,\"loss\":%.4f,\"tx_Bps\":%.0f,\"rx_Bps\":%.0f",
                  ml->admin_down ? "true" : "false", ml->backup ? "true" : "false",
                  transport_up(ml) ? "true" : "false", ml->up ? "true" : "false",
                  ml->sendable ? "true" : "false", ml->peer_hears ? "true" : "false",
                  ml->state_since_us ? (double)(now - ml->state_since_us) / 1e6 : 0.0,
                  ml->heard ? (double)(now - ml->last_rx_us) / 1e3 : -1.0,
                  (unsigned long long)ml->ups, (unsigned long long)ml->downs,
                  ml->have_rtt ? ml->last_rtt / 1e3 : 0.0, ml->have_rtt ? ml->srtt / 1e3 : 0.0,
                  ml->have_rtt ? ml->rttvar / 1e3 : 0.0, ml->have_rtt ? ml->min_rtt / 1e3 : 0.0,
                  ml->delivered_Bps, ml->loss, ml->tx_Bps, ml->rx_Bps);
        struct sched_view vb = m->view[ml->pos];
        path_view(ml, now, &vb);
        const struct sched_view *v = &vb;
        sb_printf(sb, ",\"model_rate_Bps\":%.0f,\"inflight_bytes\":%llu,\"queued_bytes\":%llu,"
                      "\"owd_queue_ms\":%.1f,\"reports\":%llu,\"reports_rejected\":%llu",
                  v->have_rate ? v->rate_Bps : 0.0, (unsigned long long)v->inflight,
                  (unsigned long long)v->queued, v->queue_us / 1e3,
                  (unsigned long long)ml->pm.reports, (unsigned long long)ml->pm.rejected);
        if (m->sched->link_json) m->sched->link_json(m->sched_state, ml->pos, v, sb);
        sb_printf(sb,
                  ",\"tx_data\":%llu,\"tx_ctrl\":%llu,\"rx_data\":%llu,\"rx_late\":%llu,"
                  "\"rx_packets\":%llu,"
                  "\"rx_bytes\":%llu,\"tx_packets\":%llu,\"tx_bytes\":%llu,"
                  "\"tx_errors\":%llu,\"tx_dropped\":%llu",
                  (unsigned long long)ml->tx_data, (unsigned long long)ml->tx_ctrl,
                  (unsigned long long)ml->rx_data, (unsigned long long)ml->rx_late,
                  (unsigned long long)ml->rx_packets,
                  (unsigned long long)ml->rx_bytes,
                  (unsigned long long)(ml->tl ? ml->tl->c.tx_packets : 0),
                  (unsigned long long)(ml->tl ? ml->tl->c.tx_bytes : 0),
                  (unsigned long long)(ml->tl ? ml->tl->c.tx_errors : 0),
                  (unsigned long long)(ml->tl ? ml->tl->c.tx_dropped : 0));
        if (ml->tl) {
            sb_printf(sb, ",\"transport_rx_dropped\":%llu",
                      (unsigned long long)ml->tl->c.rx_dropped);
            if (ml->tl->ops->status_json) {
                sb_printf(sb, ",\"transport_info\":");
                ml->tl->ops->status_json(ml->tl, sb);
            }
        }
        sb_printf(sb, "}");
    }
    sb_printf(sb, "]}");
}

void mux_status_text(const struct mux *m, struct strbuf *sb)
{
    uint64_t now = mono_us();
    int nlive = 0;
    for (int i = 0; i < m->nlinks; i++) nlive += !m->links[m->order[i]].retired;
    sb_printf(sb, "%s: %s, %d of %d links up\n", m->cfg.is_master ? "braid-master" : "braid-slave",
              m->cur.valid ? "session established" : "no session", mux_links_up(m), nlive);
    sb_printf(sb, "%-4s %-12s %-5s %9s %9s %7s %10s %9s %9s %10s %10s  %s\n", "id", "name",
              "state", "srtt_ms", "min_ms", "loss", "rate_kbit", "tx_kbit/s", "rx_kbit/s",
              "tx_data", "rx_data", "transport");
    for (int i = 0; i < m->nlinks; i++) {
        const struct mux_link *ml = &m->links[m->order[i]];
        if (ml->retired) continue;
        char desc[160] = "";
        if (ml->tl) ml->tl->ops->describe(ml->tl, desc, sizeof desc);
        sb_printf(sb, "%-4u %-12s %-5s %9.2f %9.2f %6.2f%% %10.0f %9.0f %9.0f %10llu %10llu  %s\n",
                  ml->id,
                  link_name(ml),
                  ml->admin_down ? "off" : ml->up ? (ml->backup ? "up-bk" : "up") : "down",
                  ml->have_rtt ? ml->srtt / 1e3 : 0.0, ml->have_rtt ? ml->min_rtt / 1e3 : 0.0,
                  ml->loss * 100, ml->delivered_Bps * 8 / 1000, ml->tx_Bps * 8 / 1000,
                  ml->rx_Bps * 8 / 1000, (unsigned long long)ml->tx_data,
                  (unsigned long long)ml->rx_data, desc);
    }
    (void)now;
    sb_printf(sb, "counters:");
#define X(f) sb_printf(sb, " " #f "=%llu", (unsigned long long)m->c.f);
    COUNTERS(X)
#undef X
    sb_printf(sb, "\n");
}
