# test_frames_selftest.py: self-test of the frame tool (tests/lib/frames.py, tests/frames.py)
# against an in-process fake tunnel: proves it detects loss, reordering, duplicates and corruption.
import json
import os
import socket
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TESTS, "lib"))

import frames  # noqa: E402  (tests/lib/frames.py)

DIRS = ("a->b", "b->a")


def run(fake, count=2000, window=32, size="52-1500", timeout=30, **kw):
    res = frames.transfer(fake.a, fake.b, count, window, size, timeout, **kw)
    if fake.error:
        raise AssertionError(f"fake tunnel failed: {fake.error}")
    return res


class PacketFormat(unittest.TestCase):
    def test_header_valid_and_deterministic(self):
        f1 = frames.PacketFactory(1, (52, 1500), seed=7)
        f2 = frames.PacketFactory(1, (52, 1500), seed=7)
        f3 = frames.PacketFactory(1, (52, 1500), seed=8)
        sizes = set()
        for seq in range(300):
            p = f1.make(seq, now_ns=12345)
            self.assertEqual(p, f2.make(seq, now_ns=12345))
            self.assertTrue(52 <= len(p) <= 1500)
            sizes.add(len(p))
            self.assertEqual(p[0], 0x45)
            self.assertEqual(int.from_bytes(p[2:4], "big"), len(p))
            self.assertEqual(frames.ip_checksum(p[:20]), 0)
            self.assertEqual(p[12:14], bytes([198, 18]))
            self.assertEqual(p[16:18], bytes([198, 18]))
            self.assertEqual(p[9], 17)
            self.assertEqual(p[26:28], b"\0\0")  # UDP checksum 0
            self.assertEqual(frames.parse_packet(p), (frames.OK, 1, seq, 12345))
        self.assertGreater(len(sizes), 100)  # sizes do vary over the range
        self.assertNotEqual([len(f1.make(s)) for s in range(50)],
                            [len(f3.make(s)) for s in range(50)])
        fixed = frames.PacketFactory(2, "200")
        self.assertEqual({len(fixed.make(s)) for s in range(50)}, {200})

    def test_every_single_byte_flip_is_caught(self):
        p = frames.PacketFactory(1, (80, 80)).make(3, now_ns=99)
        for i in range(len(p)):
            for bit in (0x01, 0x80):
                bad = bytearray(p)
                bad[i] ^= bit
                verdict = frames.parse_packet(bytes(bad))[0]
                self.assertNotEqual(verdict, frames.OK, f"flip at byte {i} not detected")

    def test_truncated_and_foreign(self):
        p = frames.PacketFactory(1, (100, 100)).make(1)
        self.assertEqual(frames.parse_packet(p[:-1])[0], frames.CORRUPT)
        self.assertEqual(frames.parse_packet(p[:40])[0], frames.CORRUPT)
        self.assertEqual(frames.parse_packet(b"")[0], frames.FOREIGN)
        self.assertEqual(frames.parse_packet(b"\x60" + bytes(60))[0], frames.FOREIGN)  # IPv6

    def test_parse_size_and_addr(self):
        self.assertEqual(frames.parse_size("64-1400"), (64, 1400))
        self.assertEqual(frames.parse_size("1400"), (1400, 1400))
        for bad in ("10", "1400-64", "a-b", "64-70000", "1-2-3", ""):
            with self.assertRaises(ValueError):
                frames.parse_size(bad)
        self.assertEqual(frames.parse_addr("127.0.0.1:7101"), ("127.0.0.1", 7101))
        self.assertEqual(frames.parse_addr("[::1]:7101"), ("::1", 7101))
        for bad in ("127.0.0.1", "127.0.0.1:0", ":5", "x:y"):
            with self.assertRaises(ValueError):
                frames.parse_addr(bad)
        with self.assertRaises(ValueError):
            frames.PacketFactory(1, (64, 64), src="10.0.0.1")  # outside 198.18.0.0/15


class CheckerUnit(unittest.TestCase):
    def test_counts(self):
        f = frames.PacketFactory(frames.STREAM_AB, (60, 60))
        other = frames.PacketFactory(frames.STREAM_BA, (60, 60))
        c = frames.Checker("a->b", frames.STREAM_AB, 6)
        t = 1_000_000_000
        for i, seq in enumerate((0, 2, 1, 1, 3)):
            c.on_packet(f.make(seq, now_ns=t), now_ns=t + 1000 + i * 10_000_000)
        bad = bytearray(f.make(4))
        bad[-1] ^= 1
        c.on_packet(bytes(bad), now_ns=t + 200_000_000)
        c.on_packet(other.make(5), now_ns=t + 210_000_000)  # the wrong direction's stream
        c.on_packet(f.make(99), now_ns=t + 220_000_000)  # beyond count
        r = c.result()
        self.assertEqual(r["received"], 4)
        self.assertEqual(r["missing"], 2)
        self.assertEqual(r["duplicates"], 1)
        self.assertEqual(r["out_of_order"], 1)  # seq 1 after seq 2
        self.assertEqual(r["corrupted"], 1)
        self.assertEqual(r["foreign"], 2)
        self.assertAlmostEqual(r["max_stall_s"], 0.16, places=3)  # 40 ms -> 200 ms
        self.assertEqual(r["latency_ms"]["min"], 0.001)
        self.assertFalse(r["ok"])


class AgainstFakeTunnel(unittest.TestCase):
    def test_clean_run_passes(self):
        with frames.FakeTunnel() as fake:
            res = run(fake)
        for d in DIRS:
            r = res[d]
            self.assertTrue(r["ok"], frames.summary(r))
            self.assertEqual(r["received"], 2000)
            self.assertEqual(r["sent"], 2000)
            self.assertEqual(r["declared_lost"], 0)
            self.assertIsNotNone(r["latency_ms"]["p99"])
            self.assertLessEqual(r["latency_ms"]["min"], r["latency_ms"]["max"])
            self.assertFalse(r["timed_out"])
            self.assertIsNone(r["error"])

    def test_loss_detected(self):
        with frames.FakeTunnel(drop=50) as fake:
            res = run(fake, loss_timeout=0.3)
        for i, d in enumerate(DIRS):
            r = res[d]
            self.assertEqual(fake.stats[i]["dropped"], 40)
            self.assertEqual(r["missing"], 40)
            self.assertEqual(r["declared_lost"], 40)
            self.assertEqual(r["duplicates"], 0)
            self.assertEqual(r["out_of_order"], 0)
            self.assertFalse(r["ok"])
            self.assertFalse(r["timed_out"])

    def test_reordering_detected(self):
        with frames.FakeTunnel(reorder=25) as fake:
            res = run(fake)
        for i, d in enumerate(DIRS):
            r = res[d]
            self.assertGreater(fake.stats[i]["reordered"], 70)
            self.assertEqual(r["out_of_order"], fake.stats[i]["reordered"])
            self.assertEqual(r["missing"], 0)
            self.assertEqual(r["duplicates"], 0)
            self.assertFalse(r["ok"])

    def test_duplicates_detected(self):
        with frames.FakeTunnel(dup=40) as fake:
            res = run(fake)
        for i, d in enumerate(DIRS):
            r = res[d]
            self.assertEqual(fake.stats[i]["duplicated"], 50)
            self.assertEqual(r["duplicates"], 50)
            self.assertEqual(r["missing"], 0)
            self.assertEqual(r["out_of_order"], 0)
            self.assertFalse(r["ok"])

    def test_corruption_detected(self):
        with frames.FakeTunnel(corrupt=97) as fake:
            res = run(fake, loss_timeout=0.3)
        for i, d in enumerate(DIRS):
            r = res[d]
            self.assertEqual(fake.stats[i]["corrupted"], 20)
            self.assertEqual(r["corrupted"], 20)
            self.assertEqual(r["missing"], 20)
            self.assertFalse(r["ok"])

    def test_stall_measured(self):
        with frames.FakeTunnel(stall_at=500, stall_s=0.5, directions=(0,)) as fake:
            res = run(fake)
        self.assertGreaterEqual(res["a->b"]["max_stall_s"], 0.4)
        self.assertLess(res["b->a"]["max_stall_s"], 0.4)
        for d in DIRS:
            self.assertTrue(res[d]["ok"], frames.summary(res[d]))

    def test_progress_callback_can_change_the_run(self):
        seen = {d: [] for d in DIRS}
        with frames.FakeTunnel() as fake:

            def progress(d, received):
                seen[d].append(received)
                if d == "a->b" and received >= 1000:
                    fake.faults["drop"] = 10  # from now on, every 10th frame is lost

            res = run(fake, loss_timeout=0.3, on_progress=progress)
        for d in DIRS:
            self.assertEqual(seen[d], sorted(seen[d]))
            self.assertEqual(seen[d][-1], res[d]["received"])
            self.assertGreater(res[d]["missing"], 0)
        self.assertGreaterEqual(res["a->b"]["received"], 1000)

    def test_blackhole_finishes_by_loss_timeout(self):
        t0 = time.monotonic()
        with frames.FakeTunnel(drop=1) as fake:
            res = run(fake, count=100, window=20, loss_timeout=0.2, timeout=20)
        self.assertLess(time.monotonic() - t0, 5)
        for d in DIRS:
            self.assertEqual(res[d]["received"], 0)
            self.assertEqual(res[d]["declared_lost"], 100)
            self.assertFalse(res[d]["timed_out"])
            self.assertFalse(res[d]["ok"])

    def test_overall_timeout_bounds_the_run(self):
        t0 = time.monotonic()
        with frames.FakeTunnel(drop=1) as fake:
            res = run(fake, count=100, window=20, loss_timeout=60, timeout=1)
        self.assertLess(time.monotonic() - t0, 3)
        for d in DIRS:
            self.assertTrue(res[d]["timed_out"])
            self.assertFalse(res[d]["ok"])

    def test_refused_client_reported(self):
        with frames.FakeTunnel() as fake:
            host, port = frames.parse_addr(fake.a)
            first = socket.create_connection((host, port))
            try:
                # the fake, like notun, keeps the first client and closes the second
                res = run(fake, count=100, timeout=5)
            finally:
                first.close()
        for d in DIRS:
            self.assertFalse(res[d]["ok"])
            self.assertIn("closed the connection", res[d]["error"])

    def test_unreachable_end(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        t0 = time.monotonic()
        with self.assertRaises(frames.FrameError) as cm:
            frames.transfer(f"127.0.0.1:{port}", f"127.0.0.1:{port}", 10, 4, 100, 0.5)
        self.assertLess(time.monotonic() - t0, 3)
        self.assertIn("cannot connect to tunnel end a", str(cm.exception))


class CommandLine(unittest.TestCase):
    CLI = os.path.join(TESTS, "frames.py")

    def cli(self, *args):
        return subprocess.run([sys.executable, self.CLI, *args], capture_output=True, text=True,
                              timeout=60)

    def test_loopback_pass(self):
        p = self.cli("--loopback", "--count", "2000", "--size", "64-1400", "--json")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        out = json.loads(p.stdout)
        self.assertTrue(out["ok"])
        self.assertEqual(out["a->b"]["received"], 2000)
        self.assertEqual(out["b->a"]["received"], 2000)

    def test_loopback_faults_fail(self):
        p = self.cli("--loopback", "--count", "1000", "--loopback-reorder", "100")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        # frames 100, 200, ... 900 are swapped with their successor; 1000 has none
        self.assertIn("9 out of order", p.stdout)
        self.assertIn("frames: FAIL", p.stdout)
        p = self.cli("--loopback", "--count", "1000", "--loopback-drop", "100",
                     "--loss-timeout", "0.3")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("990/1000 received, 10 missing", p.stdout)

    def test_bad_arguments(self):
        p = self.cli("--loopback", "--size", "10")
        self.assertEqual(p.returncode, 2)
        self.assertIn("packet sizes must be 52..65535", p.stderr)
        p = self.cli("--count", "5")
        self.assertEqual(p.returncode, 2)
        self.assertIn("--a HOST:PORT --b HOST:PORT", p.stderr)


if __name__ == "__main__":
    unittest.main()
