# aggregate.py: the aggregation benchmark shared by s1-aggregate, s2-equal, s3-traces and
# s7-goodbad: one iperf3 TCP flow through braid over emulated links, upload and download, against
# the link sum (or the traces' capacity) and the best single link alone.
import os
import time

import benchlib as B


def best_link(links):
    """Index of the fastest link (ties: the lowest RTT)."""
    return max(range(len(links)), key=lambda i: (links[i].rate_bps or 0, -links[i].rtt_ms))


def best_traces(traces, duration):
    """{direction: index} of the trace with the most capacity over a flow's window: the flows
    start at trace time 0 (Testbed.restart_traces), so that is the best link alone for it."""
    win = duration + 0.5
    return {"up": max(range(len(traces)), key=lambda i: traces[i][0].mbit(0, win)),
            "down": max(range(len(traces)), key=lambda i: traces[i][1].mbit(0, win))}


class TraceCapacity:
    """Capacity of each link's trace over a flow's window (times from the emulators' starts)."""

    def __init__(self, tb, traces):
        self.tb = tb
        self.traces = traces  # [(Trace up, Trace down)]
        self.last = None

    def __call__(self, d, fl, poller, who, link_ids):
        starts = [self.tb.emu_start_time(i) for i in range(len(link_ids))]
        off = B.test_offset(fl, poller, who, link_ids)
        a = fl.t0 + off
        b = a + (fl.seconds or 0)
        per = []
        for i, (tu, td) in enumerate(self.traces):
            tr = tu if d == "up" else td
            per.append(tr.mbit(a - starts[i], b - starts[i]))
        self.last = (d, fl.t0, starts)
        return sum(per), per

    def per_link(self, d):
        _, t0, starts = self.last
        fns = []
        for i, (tu, td) in enumerate(self.traces):
            tr = tu if d == "up" else td
            fns.append(lambda x, y, tr=tr, s=starts[i]: tr.mbit(t0 + x - s, t0 + y - s))
        return fns


def measure(tb, args, out, links, link_ids, directions, tag, capacity_fn=None, plot=False,
            title=""):
    """Start emulators for `links` and braid with link_ids, run one flow per direction.
    Returns {direction: result dict}."""
    tb.start_emus(links)
    tb.start_braid(link_ids)
    res = {}
    for d in directions:
        time.sleep(0.5)
        tb.restart_traces()  # every flow meets the traces from their start (if any)
        poller = B.Poller(tb, 0.1)
        poller.start()
        fl = B.iperf(tb, args.duration, reverse=(d == "down"), tag="%s-%s" % (tag, d))
        time.sleep(0.2)
        poller.stop()
        rx_who = "master" if d == "up" else "slave"
        t_end = fl.t0 + (fl.seconds or args.duration)
        per_link = {i: poller.delta(rx_who, "rx_bytes", i, fl.t0, t_end) for i in link_ids}
        tot = sum(per_link.values()) or 1
        stall = B.longest_stall(fl.intervals)
        sent = (fl.raw or {}).get("end", {}).get("sum_sent", {})
        r = {
            "ok": fl.ok, "error": fl.error, "goodput_mbit": fl.goodput_bps / 1e6,
            "seconds": fl.seconds, "bytes": fl.bytes,
            "retransmits": sent.get("retransmits"),
            "wire_mbit": sum(per_link.values()) * 8 / max(fl.seconds, 1e-9) / 1e6,
            "shares": {i: per_link[i] / tot for i in link_ids},
            "longest_stall_s": stall[0], "cpu": fl.cpu,
            "mux_counters": poller.counter_deltas(),
            "lane_link_tx": {w: poller.lane_link_bytes(w) for w in ("slave", "master")},
        }
        if capacity_fn:
            r["capacity_mbit"], r["link_capacity_mbit"] = capacity_fn(d, fl, poller, rx_who,
                                                                      link_ids)
        poller.write_csv(os.path.join(out, "%s-%s-status.csv" % (tag, d)), fl.t0)
        if fl.raw:
            B.save_json(os.path.join(out, "%s-%s-iperf.json" % (tag, d)), fl.raw)
        if plot:
            prefix = os.path.join(out, "%s-%s" % (tag, d))
            cap_fns = None
            if capacity_fn and getattr(capacity_fn, "per_link", None):
                cap_fns = capacity_fn.per_link(d)
            B.write_plot_data(prefix, fl, poller, rx_who, link_ids,
                              (fl.seconds or args.duration) + 0.5, capacity=cap_fns)
            names = [links[i].label() for i in range(len(link_ids))]
            png = prefix + ".png"
            if B.plot(prefix, png, "%s, %s" % (title, "upload" if d == "up" else "download"),
                      names, capacity=bool(cap_fns)):
                r["plot"] = png
        if not fl.ok:
            tb.save_logs(os.path.join(out, "logs-%s-%s" % (tag, d)))
            print("  warning: %s %s: %s (logs in %s)" % (tag, d, fl.error or "no data",
                                                         os.path.join(out, "logs-%s-%s" % (tag, d))))
        if (B.variant_sched(tb.scheduler) == "lane" and len(link_ids) >= 2
                and not r["mux_counters"].get("master", {}).get("streams_opened")):
            print("  warning: %s %s: the TCP lane carried no connection (the packet path did)"
                  % (tag, d))
        res[d] = r
        B.log("%s %s: %.2f Mbit/s%s" % (tag, d, r["goodput_mbit"], lane_line(r, d)))
    tb.down()
    return res


def lane_line(r, d):
    """The TCP lane's sender side of a run: stalls, bytes sent again, bytes per link (MB)."""
    who = "slave" if d == "up" else "master"
    c = r["mux_counters"].get(who, {})
    if "stalls" not in c:
        return ""
    tx = r["lane_link_tx"].get(who, {})
    return " (lane sender: %d stalls, %.1f MB sent again; link MB %s)" % (
        c["stalls"], c.get("reinjected_bytes", 0) / 1e6,
        "/".join("%.1f" % (tx[i] / 1e6) for i in sorted(tx)))


def repeats(tb, args, out, links, dirs, title, best, capacity_for=None, no_single=False,
            line=None):
    """Every repeat with each scheduler in turn (args.schedulers): the bonded links, then unless
    no_single the best single link alone through braid (best: {direction: link index}; one run
    per distinct index) with the same scheduler. capacity_for(link indices) -> a capacity_fn
    for measure() or None. line(rep) -> the text of the per-repeat line. Returns the repeats:
    {"repeat", "scheduler", "bond": {d: result}, "single": {d: result + "link"}}."""
    reps = []
    every = list(range(len(links)))
    for r, s in B.sched_runs(args):
        tb.scheduler = s
        ttl = title + (", scheduler %s" % s if s else "")
        rep = {"repeat": r + 1, "scheduler": s,
               "bond": measure(tb, args, out, links, every, dirs,
                               B.sched_tag("rep%d-bond" % (r + 1), s),
                               capacity_fn=capacity_for(every) if capacity_for else None,
                               plot=args.plot and r == 0, title=ttl)}
        if not no_single:
            single = {}
            for i in sorted(set(best[d] for d in dirs)):
                ds = [d for d in dirs if best[d] == i]
                res = measure(tb, args, out, [links[i]], [0], ds,
                              B.sched_tag("rep%d-single" % (r + 1), s),
                              capacity_fn=capacity_for([i]) if capacity_for else None)
                for d in ds:
                    res[d]["link"] = i
                single.update(res)
            rep["single"] = single
        reps.append(rep)
        print("  repeat %d%s: %s" % (r + 1, " " + s if s else "", line(rep) if line else "  ".join(
            "%s %.2f Mbit/s%s" % (d, rep["bond"][d]["goodput_mbit"],
                                  " (best link alone %.2f)" % rep["single"][d]["goodput_mbit"]
                                  if "single" in rep else "") for d in dirs)))
    return reps


def summariser(dirs, nlinks, sum_mbit=None):
    """summarise(repeats) for benchlib.sched_report: the aggregate table's rows, the key=value
    pairs and the headline figures. Efficiency = goodput / sum_mbit, or without sum_mbit
    goodput / the repeat's trace capacity (S3, S7 --traces), which also adds capacity columns."""
    cap = sum_mbit is None

    def summarise(reps):
        rows, kv, figs = [], [], []
        for d in dirs:
            g = [rp["bond"][d]["goodput_mbit"] for rp in reps]
            if cap:
                cp = [rp["bond"][d]["capacity_mbit"] for rp in reps]
                eff = [rp["bond"][d]["goodput_mbit"] / rp["bond"][d]["capacity_mbit"]
                       if rp["bond"][d]["capacity_mbit"] else None for rp in reps]
                lcap = ["/".join("%.1f" % c for c in rp["bond"][d]["link_capacity_mbit"])
                        for rp in reps]
            else:
                eff = [x / sum_mbit for x in g]
            single = [rp["single"][d]["goodput_mbit"] for rp in reps if "single" in rp]
            gain = [rp["bond"][d]["goodput_mbit"] / rp["single"][d]["goodput_mbit"]
                    for rp in reps if "single" in rp and rp["single"][d]["goodput_mbit"] > 0]
            shares = ["/".join("%.0f" % (100 * rp["bond"][d]["shares"][i])
                               for i in range(nlinks)) for rp in reps]
            stall = [rp["bond"][d]["longest_stall_s"] for rp in reps]
            retr = [rp["bond"][d]["retransmits"] for rp in reps]
            okc = sum(1 for rp in reps if rp["bond"][d]["ok"])
            dname = {"up": "upload", "down": "download"}[d]
            rows.append([dname, B.mrange(g)] + ([B.mrange(cp)] if cap else []) +
                        [B.mrange(eff)] + ([lcap[len(lcap) // 2]] if cap else []) +
                        [B.mrange(single) if single else "-", B.mrange(gain) if gain else "-",
                         shares[len(shares) // 2], B.mrange(stall, 1), B.mrange(retr, 0),
                         "%d/%d" % (okc, len(reps))])
            kv += [("%s_goodput_mbit" % d, B.median(g)),
                   ("%s_goodput_range" % d, "%.2f-%.2f" % (min(g), max(g)))]
            if cap:
                kv.append(("%s_capacity_mbit" % d, B.median(cp)))
            kv.append(("%s_efficiency" % d, B.median(eff)))
            figs.append(("%s goodput Mbit/s" % dname, g, 2))
            if single:
                kv += [("best_single_%s_mbit" % d, B.median(single)),
                       ("%s_gain" % d, B.median(gain))]
                figs += [("%s best link alone Mbit/s" % dname, single, 2),
                         ("%s bonded / best link alone" % dname, gain, 2)]
            figs.append(("%s efficiency" % dname, eff, 2))
        return rows, kv, figs

    header = (["direction", "goodput Mbit/s"] + (["capacity Mbit/s"] if cap else []) +
              ["efficiency"] + (["link capacity"] if cap else []) +
              ["best link alone", "gain vs best", "link shares %", "longest stall s",
               "retransmits", "ok"])
    return summarise, header


def run(key, scenario, default_links, doc, default_duration=20):
    """Command line of s1-aggregate and s2-equal."""
    ap = B.common_args(doc, default_duration, 3, scenario)
    ap.add_argument("--links", default=default_links,
                    help="links as RATE/RTT,... (default %(default)s)")
    ap.add_argument("--directions", default="up,down",
                    help="up (slave -> master), down, or both: up,down (default %(default)s)")
    ap.add_argument("--no-single", action="store_true",
                    help="skip the best single link alone through braid")
    ap.add_argument("--connect-only", default="",
                    help="comma-separated link indices (from 0) that are links of type "
                         "socks5-tcp through a SOCKS5 proxy that only does CONNECT (Dante in "
                         "the slave's namespace, before the link's emulator); needs "
                         "--scheduler packet,lane (emulators per IP packet)")
    ap.add_argument("--label", default=key,
                    help="name at the start of the key=value line; another name than the "
                         "default also puts the results in OUT/<name in lower case>/ "
                         "(default %(default)s)")
    args = ap.parse_args()
    links = B.parse_links(args.links)
    for k in (int(x) for x in args.connect_only.split(",") if x):
        if not 0 <= k < len(links):
            ap.error("--connect-only: no link %d" % k)
        if not set(x.strip() for x in args.scheduler.split(",")) & set(B.LANE_VARIANTS):
            ap.error("--connect-only needs --scheduler packet and/or lane")
        links[k].connect_only = True
    dirs = [d for d in args.directions.split(",") if d]
    if not dirs or any(d not in ("up", "down") for d in dirs):
        ap.error("--directions: up, down or up,down")
    configs = 1 if args.no_single else 2
    est = args.repeat * configs * (len(dirs) * (args.duration + 3) + 5)
    out, bound = B.prepare(args, scenario if args.label == key else args.label.lower(), est)
    key = args.label

    def main():
        info = B.run_info()
        sum_mbit = sum(l.rate_bps for l in links) / 1e6
        best = best_link(links)
        title = "%s: %d links %s (sum %g Mbit/s)" % (
            key, len(links), " ".join(l.label() + (" (socks5-tcp via a CONNECT-only proxy)"
                                                   if l.connect_only else "") for l in links),
            sum_mbit)
        print("%s, TCP (%s)%s %g s, %d repeat(s)%s, bounded to %.0f s"
              % (title, args.cc, " x %d flows" % args.flows if args.flows > 1 else "",
                 args.duration, args.repeat, sched_note(args), bound))
        tb = B.Testbed(args.build, args.tools, out, cc=args.cc)
        reps = repeats(tb, args, out, links, dirs, title, {d: best for d in dirs},
                       no_single=args.no_single)
        print()
        summarise, header = summariser(dirs, len(links), sum_mbit)
        kv = B.sched_report(args.schedulers, reps, summarise,
                            "%s, TCP %g s, median [min-max] of %d repeat(s); link sum %g Mbit/s"
                            % (key, args.duration, args.repeat, sum_mbit), header,
                            ratio_of=["%s_goodput_mbit" % d for d in dirs])
        print("  links: %s; best single link: %s; efficiency = goodput / link sum; link shares:"
              " bytes each link delivered (a middle repeat)"
              % (", ".join("l%d %s" % (i, l.label()) for i, l in enumerate(links)),
                 links[best].label()))
        B.save_json(os.path.join(out, "results.json"), {"info": info, "args": vars(args),
                                                        "repeats": reps})
        print("  results: %s" % out)
        ok = all(rp["bond"][d]["ok"] for rp in reps for d in dirs)
        B.kv_line(key, [("sum_mbit", sum_mbit)] + kv + [("cc", args.cc), ("flows", args.flows),
                                                         ("repeats", args.repeat), ("ok", ok)])
        return 0 if ok else 1

    B.main_guard(main)


def sched_note(args):
    """', schedulers weighted,earliest (interleaved)' for the first line, '' without."""
    s = [x for x in args.schedulers if x]
    return ", schedulers %s (interleaved)" % ",".join(s) if s else ""
