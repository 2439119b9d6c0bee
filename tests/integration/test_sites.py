#!/usr/bin/env python3
# test_sites.py: one master, several sites (notun build): every site's frames arrive complete and
# in order and at no other site; cryptokey routing drops a site's packets from foreign sources;
# an unknown key gets no answer while the other sites run.
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import braid  # noqa: E402
import frames  # noqa: E402


def complete(test, res, count):
    for name, r in res.items():
        test.assertEqual(r["received"], count, "%s: %s" % (name, frames.summary(r)))
        test.assertEqual(r["out_of_order"] + r["duplicates"] + r["corrupted"] + r["foreign"], 0,
                         "%s: %s" % (name, frames.summary(r)))
        test.assertFalse(r["error"], r["error"])


class SitesTest(unittest.TestCase):
    def test_three_sites_10000_frames_each_way(self):
        """Three slaves with their own keys on one master: 10,000 frames each way per site, all
        at once, complete, in order, and none at another site."""
        with braid.Sites(nsites=3, nlinks=2) as S:
            S.start()
            a, bs = S.tun_addrs()
            res = frames.transfer_many(a, bs, 10000, window=32, size="64-1400", timeout=90)
            complete(self, res, 10000)
            st = S.status("master")
            self.assertEqual(st["counters"]["tx_no_route"], 0, st["counters"])
            for i, site in enumerate(st["sites"]):
                self.assertEqual(site["name"], "site%d" % i)
                self.assertEqual(site["rx_foreign_src"], 0)
                m = site["mux"]
                self.assertEqual(m["counters"]["sessions"], 1)
                # each site's own links carried its own traffic: 10,000 frames each way
                self.assertGreaterEqual(sum(l["rx_data"] for l in m["links"]), 10000)
                self.assertGreaterEqual(sum(l["tx_data"] for l in m["links"]), 10000)
            for i in range(3):
                self.assertTrue(braid.mux_status(S.status(i))["session"])
            self.assertIn("3 sites", S.master.output())

    def test_foreign_source_dropped_and_counted(self):
        """A site's packets whose inner source is another site's address (or in no site's
        allowed_ips) are dropped and counted; its own pass."""
        with braid.Sites(nsites=2, nlinks=1) as S:
            S.start()
            a, bs = S.tun_addrs()
            # site 1 pretends to be site 0, then an address nobody has
            for fake in (S.site_ip(0), "198.18.9.9"):
                S.wait_no_frame_clients()  # (each tunnel end takes one frame client at a time)
                res = frames.transfer_many(a, [(bs[1][0], fake)], 200, window=200, size=200,
                                           timeout=5, loss_timeout=0.5, names=["liar"])
                self.assertIsNone(res["liar->a"]["error"])
                self.assertEqual(res["liar->a"]["received"], 0, frames.summary(res["liar->a"]))
            st = S.status("master")
            # every packet of site 1's that reached the master was dropped (some of the bursts
            # of 200 stay in the slave's send queue limit at the session's start)
            got = sum(l["rx_data"] for l in st["sites"][1]["mux"]["links"])
            self.assertGreaterEqual(got, 200)
            self.assertEqual(st["sites"][1]["rx_foreign_src"], got, st["sites"][1])
            self.assertEqual(st["sites"][0]["rx_foreign_src"], 0)
            # the master's answers to the liar's fake addresses went to site 0 / nowhere
            self.assertGreaterEqual(st["counters"]["tx_no_route"], 1, (st["counters"], st["tundev"]))
            self.assertIn("site site1: dropped a tunnel packet from %s: not in the site's "
                          "allowed_ips" % S.site_ip(0), S.master.output())
            # honest traffic from both sites still flows
            S.wait_no_frame_clients()
            res = frames.transfer_many(a, bs, 1000, window=32, size="64-1400", timeout=30)
            complete(self, res, 1000)

    def test_unknown_key_among_sites(self):
        """A slave whose key is no site's gets no answer; the real sites are undisturbed."""
        with braid.Sites(nsites=2, nlinks=1) as S:
            S.start_master()
            S.start_slave(0)
            S.start_slave(1, key=braid.genkey())  # not site1's key
            braid.wait_until(lambda: S.status("master")["counters"]["unknown_key"] >= 2, 5,
                             "the master to refuse the stranger")
            st = S.status("master")
            self.assertTrue(st["sites"][0]["mux"]["session"])
            self.assertFalse(st["sites"][1]["mux"]["session"])
            s1 = braid.mux_status(S.status(1))
            self.assertFalse(s1["session"])
            self.assertEqual(s1["counters"]["hello_bad"] + s1["counters"]["cookie_rx"], 0)
            a, bs = S.tun_addrs()
            res = frames.transfer_many(a, bs[:1], 1000, window=32, size="64-1400", timeout=30)
            complete(self, res, 1000)


if __name__ == "__main__":
    unittest.main(verbosity=2)
