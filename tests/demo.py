# demo.py: `make demo`: a master and a slave bonding three emulated links of different rates and
# delays on loopback (notun build, no root), then one link failing for a few seconds mid-run.
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import braid  # noqa: E402
import frames  # noqa: E402

LINKS = [  # name, rate (Mbit/s), one-way delay (ms)
    ("wan0", 8, 10),
    ("wan1", 4, 30),
    ("wan2", 2, 60),
]


def table(b, who):
    rows = []
    for l in b.mux(who)["links"]:
        rows.append("    %-5s %-4s srtt %6.1f ms  data packets sent %6d  received %6d" % (
            l["name"] if who == "slave" else LINKS[l["id"]][0], "up" if l["up"] else "DOWN",
            l["srtt_ms"], l["tx_data"], l["rx_data"]))
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", default="build/notun")
    ap.add_argument("--count", type=int, default=3000, help="frames each way in each phase")
    args = ap.parse_args()
    os.environ["BRAID_BUILD"] = args.build
    if not os.path.exists(braid.tool("braid-emu")):
        sys.exit("demo failed: %s is missing (make notun builds it)" % braid.tool("braid-emu"))

    emu = [{"up": "rate=%dmbit,delay=%dms" % (r, d), "down": "rate=%dmbit,delay=%dms" % (r, d)}
           for _, r, d in LINKS]
    total = sum(r for _, r, _ in LINKS)
    print("braid demo: master and slave on loopback, %d links through the link emulator:" %
          len(LINKS))
    for name, r, d in LINKS:
        print("    %-5s %2d Mbit/s each way, RTT %3d ms" % (name, r, 2 * d))
    b = braid.Braid(nlinks=len(LINKS), emu=emu, mux="")
    ok = True
    try:
        b.start()
        print("session established, all links up:")
        print(table(b, "slave"))
        n = args.count
        size = 1200

        print("\nphase 1: %d frames of %d bytes each way, all links healthy" % (n, size))
        t0 = time.monotonic()
        res = b_transfer(b, n, size)
        took = time.monotonic() - t0
        for r in res.values():
            print("    " + frames.summary(r))
        per_dir = n * size * 8 / took / 1e6
        print("    goodput %.1f Mbit/s each way, %.0f %% of the links' sum (%d Mbit/s)" %
              (per_dir, 100 * per_dir / total, total))
        print("  per link, as the slave sees them:")
        print(table(b, "slave"))
        delivered = sum(r["received"] for r in res.values())
        ok &= all(r["ok"] for r in res.values())

        print("\nphase 2: the same again; wan0 blackholed for 3 s after 1/4 of the frames")
        e0 = b.emu_by_link[0]
        marks = {}

        def progress(direction, received):
            if direction == "a->b" and received >= n // 4 and "fail" not in marks:
                marks["fail"] = time.monotonic()
                e0.cmd("blackhole both for 3000ms")

        res2 = b_transfer(b, n, size, progress, resend=5)
        for r in res2.values():
            print("    " + frames.summary(r))
        stall = max(r["max_stall_s"] for r in res2.values())
        resent = sum(r["resent"] for r in res2.values())
        print("    longest stall %.2f s; %d frames lost in flight on wan0 and sent again" %
              (stall, resent))
        b.wait_link_state("slave", 0, True, timeout=10)
        print("  after its 3 s outage wan0 is up again:")
        print(table(b, "slave"))
        delivered += sum(r["received"] for r in res2.values())
        ok &= all(r["received"] == n and r["duplicates"] == 0 and r["corrupted"] == 0
                  for r in res2.values())
        ok &= stall < 1.0
    except Exception as e:  # report and fail, after stopping everything
        print("demo failed: %s" % e)
        b.kill_all()
        sys.exit(1)
    b.stop()
    sent = 4 * args.count
    if ok:
        print("demo ok: delivered %d of %d packets over %d links" % (delivered, sent, len(LINKS)))
    else:
        print("demo failed: delivered %d of %d packets over %d links (see above)" %
              (delivered, sent, len(LINKS)))
        sys.exit(1)


def b_transfer(b, n, size, progress=None, resend=0):
    # a frame not back within 1 s is sent again: longer than braid may hold a packet while a
    # link dies (mux.reorder_max_ms, 500 ms, plus the slowest link's delay), so a duplicate
    # would be braid's doing, not this tool's impatience (with 0.5 s it was the tool's)
    (ma, mp), (sa, sp) = b.tun_addrs()
    return frames.transfer((ma, mp), (sa, sp), n, window=100, size=size, timeout=60,
                           on_progress=progress, loss_timeout=1.0, resend=resend)


if __name__ == "__main__":
    main()
