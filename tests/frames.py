# frames.py: command line for the frame tool (tests/lib/frames.py): pushes numbered packets both
# ways through two notun tunnel ends and reports loss, order, corruption, stalls and latency.
"""Usage:
  python3 tests/frames.py --a 127.0.0.1:7101 --b 127.0.0.1:7102 --count 10000 --window 64 \\
      --size 64-1400 --timeout 60 [--json]
  python3 tests/frames.py --loopback [--loopback-drop N ...]   (self-test, no braid needed)

Exit status: 0 when both directions received every frame, in order, once and intact;
1 when they did not; 2 on bad arguments or when a tunnel end cannot be reached."""
import argparse
import importlib.util
import json
import os
import sys


def _load_lib():
    # load tests/lib/frames.py by path: this script has the same module name
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib", "frames.py")
    spec = importlib.util.spec_from_file_location("braid_frames", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


frames = _load_lib()


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Send numbered frames both ways through two notun tunnel ends and check "
        "what arrives.")
    ap.add_argument("--a", help="tunnel end a, host:port of its notun_listen")
    ap.add_argument("--b", help="tunnel end b, host:port of its notun_listen")
    ap.add_argument("--count", type=int, default=10000, help="frames per direction")
    ap.add_argument("--window", type=int, default=64, help="frames in flight per direction")
    ap.add_argument("--size", default="64-1400",
                    help="IP packet size in bytes, N or LO-HI (52..65535; default 64-1400)")
    ap.add_argument("--timeout", type=float, default=60.0, help="overall limit in seconds")
    ap.add_argument("--loss-timeout", type=float, default=2.0,
                    help="seconds after which a frame not received is declared lost")
    ap.add_argument("--seed", type=int, default=1, help="seed for sizes and padding")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--loopback", action="store_true",
                    help="self-test: run against an in-process fake tunnel instead of braid")
    for fault in ("drop", "corrupt", "dup", "reorder"):
        ap.add_argument(f"--loopback-{fault}", type=int, default=0, metavar="N",
                        help=f"with --loopback: {fault} every Nth frame of each direction")
    args = ap.parse_args(argv)

    try:
        size = frames.parse_size(args.size)
    except ValueError as e:
        ap.error(str(e))
    if args.count < 0 or args.window < 1 or args.timeout <= 0 or args.loss_timeout <= 0:
        ap.error("--count must be >= 0, --window >= 1, --timeout and --loss-timeout > 0")
    if not args.loopback and (not args.a or not args.b):
        ap.error("give both tunnel ends with --a HOST:PORT --b HOST:PORT (or use --loopback)")

    fake = None
    try:
        if args.loopback:
            fake = frames.FakeTunnel(drop=args.loopback_drop, corrupt=args.loopback_corrupt,
                                     dup=args.loopback_dup, reorder=args.loopback_reorder)
            fake.__enter__()
            a, b = fake.a, fake.b
        else:
            a, b = args.a, args.b
        try:
            res = frames.transfer(a, b, args.count, args.window, size, args.timeout,
                                  loss_timeout=args.loss_timeout, seed=args.seed)
        except (frames.FrameError, ValueError) as e:
            print(f"frames: {e}", file=sys.stderr)
            return 2
    finally:
        if fake:
            fake.stop()

    ok = all(r["ok"] for r in res.values())
    if args.json:
        out = dict(res)
        if fake:
            out["fake"] = {"a->b": dict(fake.stats[0]), "b->a": dict(fake.stats[1])}
        out["ok"] = ok
        print(json.dumps(out, indent=2, sort_keys=True))
    else:
        for r in res.values():
            print(frames.summary(r))
        if fake:
            for i, name in enumerate(("a->b", "b->a")):
                print(f"fake tunnel {name}: " +
                      ", ".join(f"{k} {v}" for k, v in sorted(fake.stats[i].items())))
        print("frames: PASS" if ok else "frames: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
