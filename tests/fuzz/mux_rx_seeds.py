#!/usr/bin/env python3
# mux_rx_seeds.py: writes the seed inputs of fuzz_mux_rx (record format in fuzz_mux_rx.c) into
# tests/fuzz/seeds/fuzz_mux_rx/: data on several links, beats, receive reports, sends.
import os
import struct

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "fuzz_mux_rx")
os.makedirs(out, exist_ok=True)


def rec(link, what, gseq, step, payload):
    return struct.pack(">BBIBB", link, what, gseq, step, len(payload)) + payload


def beat(flags, report_us, pk, by, hi):
    return bytes([1, 32, flags, 0]) + struct.pack(">HIQQQ", 100, report_us, pk, by, hi)


def report(link_id, flags, report_us, hi, pk, by, ack, owd, q, txend, wait=0):
    return bytes([3, 40, link_id, flags]) + struct.pack(">HIQIIIiII", wait, report_us, hi, pk, by,
                                                       ack, owd, q, txend)


ip = bytes([0x45, 0, 0, 40]) + bytes(36)
seeds = {
    "data_in_order": b"".join(rec(i % 3, 0, i, 1, ip) for i in range(12)),
    "data_gaps": b"".join(rec(i % 3, 0, g, 1, ip) for i, g in enumerate([0, 2, 1, 5, 3, 4, 9])),
    "beats_then_send": rec(0, 1, 0, 1, beat(1, 1000, 1, 60, 0)) + rec(1, 1, 0, 1, beat(1, 1000, 1, 60, 0))
    + rec(2, 1, 0, 1, beat(1, 1000, 1, 60, 0)) + b"".join(rec(0, 3, 0, 0, ip * 6) for _ in range(20)),
    "reports": rec(0, 1, 0, 1, beat(1, 1000, 1, 60, 0))
    + b"".join(rec(0, 3, 0, 0, ip * 6) for _ in range(8))
    + rec(0, 1, 0, 1, report(1, 7, 20000, 3, 4, 4000, 500, -300, 2000, 5, 10)
          + report(8, 7, 20000, 0, 1, 60, 100, 4000, 0, 0, 65535))
    + rec(0, 1, 0, 1, report(1, 7, 40000, 6, 7, 8000, 900, -300, 9000, 9, 50))
    + b"".join(rec(0, 3, 0, 0, ip * 6) for _ in range(8)),
    "unordered_and_down": rec(1, 2, 3, 1, ip) + rec(0, 1, 5, 1, bytes([2, 2, 8, 1])) + rec(2, 0, 4, 1, ip),
}
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
