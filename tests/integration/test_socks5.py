# test_socks5.py: SOCKS5 links (notun build, loopback): through real Dante servers, through a
# scripted fake proxy with every way of failing, with names resolved by c-ares from a fake DNS.
import os
import shutil
import tempfile
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import braid  # noqa: E402
import dante  # noqa: E402
import frames  # noqa: E402
from fakedns import FakeDNS  # noqa: E402
from fakesocks import FakeSocks  # noqa: E402

DROP_COUNTERS = ("malformed", "no_session", "replay", "auth_fail", "wrong_link", "hello_bad")


# Phone-like links: each behind a link emulator (between Dante and the master for a SOCKS5
# link), at a rate that keeps the machine from saturating its CPU: with every process of the
# test competing for 2 cores, Dante's userspace relay stalls for tens of milliseconds, and a
# packet held that long arrives after braid gave its gap up (delivered, but out of order).
PHONE = {"up": "rate=30mbit,delay=5ms", "down": "rate=30mbit,delay=5ms"}


def socks_link(port, extra=""):
    return 'type = "socks5"; proxy = "127.0.0.1:%d"; %s' % (port, extra)


def run_transfer(b, count, **kw):
    """Frames both ways; a small window when the scripted proxy's Python relay is in the path
    (it is the slowest part and would drop under a large one)."""
    (ma, mp), (sa, sp) = b.tun_addrs()
    kw.setdefault("window", 64)
    kw.setdefault("size", "64-1400")
    kw.setdefault("timeout", 60)
    return frames.transfer((ma, mp), (sa, sp), count, **kw)


def assert_delivered(tc, res):
    """All frames, intact, no duplicates, at most 1 % out of order. For transfers through the
    scripted proxy's Python relay (it runs in a Python thread and can stall for tens of
    milliseconds: the GIL, the other fakes) and right after a link died or came back (traffic
    shifts between links faster than the delay estimates follow): a packet held longer than
    braid's reorder timeout is delivered late, out of order, by design (PROTOCOL.md section 7).
    Steady transfers through Dante allow no reordering at all."""
    for name, r in res.items():
        tc.assertEqual(r["received"], r["sent"], "%s: %s" % (name, frames.summary(r)))
        tc.assertEqual(r["duplicates"] + r["corrupted"], 0, "%s: %s" % (name, frames.summary(r)))
        tc.assertLessEqual(r["out_of_order"], r["sent"] // 100, "%s: %s"
                           % (name, frames.summary(r)))


def info(b, link_id):
    return b.links("slave")[link_id].get("transport_info", {})


class DanteTest(unittest.TestCase):
    def setUp(self):
        self.servers = []
        if not dante.danted_path():
            print("SKIP Dante tests: danted not installed (apt-get install dante-server)")
            self.skipTest("danted not installed")

    def tearDown(self):
        for d in self.servers:
            d.stop()

    def dante(self, b, name, **kw):
        d = dante.Dante(name, b.tmp, **kw).start()
        self.servers.append(d)
        return d

    def assertComplete(self, res):
        for name, r in res.items():
            self.assertTrue(r["ok"], "%s: %s" % (name, frames.summary(r)))

    def test_probe_socks_connect(self):
        """probe-socks against Dante: UDP ASSOCIATE works either way; CONNECT (the TCP lane's
        link connections) is reported as working where Dante allows it, and as refused where
        its rules do not."""
        tmp = tempfile.mkdtemp(prefix="braid-probe-")
        self.addCleanup(shutil.rmtree, tmp, True)
        exe = os.path.join(braid.build_dir(), "braid-slave")
        for allow in (True, False):
            d = dante.Dante("probe-%s" % allow, tmp, connect=allow).start()
            self.servers.append(d)
            r = subprocess.run([exe, "probe-socks", "127.0.0.1:%d" % d.port],
                               capture_output=True, text=True, timeout=40)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("probe ok", r.stdout)
            if allow:
                self.assertIn("CONNECT: ok", r.stdout)
            else:
                self.assertIn("CONNECT: failed: ", r.stdout)

    def test_two_phones_and_a_direct_link_10000_frames(self):
        """Two SOCKS5 links through two Dante servers and one direct link: all three carry
        traffic both ways (at least 2% of the frames each: the earliest-arrival scheduler puts a
        packet on the link where it arrives first, so the shares follow the relays' delays, not
        an even split); 10,000 frames each way arrive complete, in order, no duplicates."""
        with braid.Braid(nlinks=3, emu=[PHONE, PHONE, PHONE]) as b:
            d1 = self.dante(b, "phone1")
            d2 = self.dante(b, "phone2")
            b.link_extra = {0: socks_link(d1.port), 1: socks_link(d2.port)}
            b.start()
            for i in (0, 1):
                t = b.links("slave")[i]
                self.assertTrue(t["transport"].startswith("socks5 via 127.0.0.1:%d relay"
                                                          % (d1.port if i == 0 else d2.port)),
                                t["transport"])
            res = run_transfer(b, 10000, window=16)  # well below the links: no queues build
            self.assertComplete(res)
            for who in ("master", "slave"):
                links = b.mux(who)["links"]
                total = sum(l["tx_data"] for l in links)
                for l in links:
                    self.assertGreater(l["tx_data"], 0.02 * total,
                                       "%s link %s carried too little: %r" % (who, l["name"], l))
                c = b.mux(who)["counters"]
                for k in DROP_COUNTERS:
                    self.assertEqual(c[k], 0, "%s counted %s: %r" % (who, k, c))
            for i in (0, 1):
                ti = info(b, i)
                self.assertEqual(ti["state"], "up")
                self.assertEqual(ti["established"], 1, ti)
                for k in ("drop_wrong_source", "drop_bad_header", "drop_frag", "drop_not_master"):
                    self.assertEqual(ti[k], 0, ti)
            # the master sees each phone link from its Dante's relay socket, not from the slave
            mlinks = b.links("master")
            self.assertNotEqual(mlinks[0]["transport"], mlinks[1]["transport"])

    def test_connect_only_proxy_carries_a_socks5_tcp_link(self):
        """A phone whose proxy only does CONNECT (this Dante refuses UDP ASSOCIATE): a link of
        type "socks5-tcp" carries braid's datagrams over one TCP connection through it to the
        master, beside a UDP link. Both links carry traffic both ways and 5000 frames each way
        arrive complete; the master knows the link as a TCP connection. Then the UDP
        link's path goes black: delivery goes on over the TCP link alone. Then Dante is killed:
        the TCP link goes down, and comes back on a new connection when Dante is back."""
        with braid.Braid(nlinks=2, emu=[None, PHONE]) as b:
            d = self.dante(b, "connect-only", connect=True, udp=False)
            b.link_extra = {0: 'type = "socks5-tcp"; proxy = "127.0.0.1:%d";' % d.port}
            b.start()
            t = b.links("slave")[0]
            self.assertTrue(t["transport"].startswith("socks5-tcp via 127.0.0.1:%d to 127.0.0.1:"
                                                      % d.port), t["transport"])
            self.assertEqual(info(b, 0)["kind"], "socks5-tcp")
            self.assertTrue(b.links("master")[0]["transport"].startswith("peer TCP 127.0.0.1:"),
                            b.links("master")[0]["transport"])
            res = run_transfer(b, 5000, window=16)
            self.assertComplete(res)
            for who in ("master", "slave"):
                # (the TCP link has no emulator: it is the faster one and carries most)
                links = b.mux(who)["links"]
                total = sum(l["tx_data"] for l in links)
                self.assertGreater(links[0]["tx_data"], 0.5 * total, "%s: %r" % (who, links))
                self.assertGreater(links[1]["tx_data"], 0, "%s: %r" % (who, links))
                c = b.mux(who)["counters"]
                for k in DROP_COUNTERS:
                    self.assertEqual(c[k], 0, "%s counted %s: %r" % (who, k, c))
            tcp = b.status("master")["tcp"]
            self.assertEqual(tcp["dgram_open"], 1, tcp)
            self.assertGreater(tcp["dgram_rx"], 2000, tcp)
            self.assertGreater(tcp["dgram_tx"], 2000, tcp)
            # the UDP link's path goes black: the TCP link alone
            b.emu_by_link[1].cmd("blackhole both")
            b.wait_link_state("slave", 1, False, timeout=5)
            b.wait_link_state("master", 1, False, timeout=5)
            before = b.links("slave")[0]["tx_data"]
            res = run_transfer(b, 2000)
            assert_delivered(self, res)
            self.assertGreaterEqual(b.links("slave")[0]["tx_data"] - before, 2000)
            b.emu_by_link[1].cmd("clear both")
            b.wait_link_state("slave", 1, True, timeout=10)
            # the proxy dies: the TCP link goes down; back on a new connection with the proxy
            d.kill()
            b.wait_link_state("slave", 0, False, timeout=5)
            d.start()
            b.wait_link_state("slave", 0, True, timeout=10)
            b.wait_link_state("master", 0, True, timeout=5)
            self.assertGreaterEqual(info(b, 0)["established"], 2, info(b, 0))
            res = run_transfer(b, 2000)
            assert_delivered(self, res)
            self.assertIn("datagram connection from TCP 127.0.0.1:", b.master.output())

    def test_dante_killed_and_restarted(self):
        """A Dante killed mid-run: its link is down within 1 s, delivery continues over the
        others; while it is away braid retries every 2 s at most; Dante restarted on the same
        port: the link is back within a few seconds."""
        with braid.Braid(nlinks=2, emu=[PHONE, PHONE]) as b:
            d1 = self.dante(b, "phone1")
            b.link_extra = {0: socks_link(d1.port)}
            b.start()
            fired = {}

            def progress(direction, received):
                if direction == "a->b" and received >= 3000 and not fired:
                    fired["t"] = time.monotonic()
                    d1.kill()

            res = run_transfer(b, 10000, window=128, loss_timeout=0.5, on_progress=progress)
            self.assertIn("t", fired)
            # only what was in flight through the dead proxy may be lost; packets in flight on the
            # surviving link when the traffic shifts to it may come after their gap was given up
            self.assertEqual(frames.failover_problems(res, 10000, max_lost=300, max_reordered=100),
                             [])
            down_by = fired["t"] + 1.0
            b.wait_link_state("slave", 0, False, timeout=max(0.05, down_by - time.monotonic()))
            self.assertIn("closed the control connection", b.slave.output())
            # while it stays away, braid keeps trying every 1.5-2.5 s (not every 30 s: a phone's
            # proxy app that restarts must cost seconds), one connection attempt at a time
            braid.wait_until(lambda: info(b, 0).get("failures", 0) >= 5, 15,
                             "five failed attempts to reach the dead proxy")
            ti = info(b, 0)
            self.assertLessEqual(ti["retry_in_s"], 2.5, ti)
            t_restart = time.monotonic()
            d1.start()
            b.wait_link_state("slave", 0, True, timeout=10)
            b.wait_link_state("master", 0, True, timeout=5)
            back = time.monotonic() - t_restart
            print("link back %.2f s after Dante restarted" % back)
            ti = info(b, 0)
            self.assertGreaterEqual(ti["established"], 2, ti)
            res = run_transfer(b, 2000)
            assert_delivered(self, res)
            self.assertGreater(b.links("slave")[0]["tx_data"], 0)

    def test_username_password_against_dante(self):
        """RFC 1929 login against Dante (socksmethod username): the right password works, a
        wrong one is reported as such and retried."""
        if os.geteuid() != 0:
            why = ("username/password against Dante needs root: Dante checks logins against "
                   "system users, so the test creates a throwaway one")
            print("SKIP " + why)
            self.skipTest(why)
        user = "braidt%d" % (os.getpid() % 100000)
        password = "pw-%d-x" % os.getpid()
        subprocess.run(["useradd", "-M", "-N", "-s", "/usr/sbin/nologin", user], check=True)
        try:
            subprocess.run(["chpasswd"], input="%s:%s\n" % (user, password), text=True,
                           check=True)
            with braid.Braid(nlinks=3, emu=[PHONE, PHONE, PHONE]) as b:
                d = self.dante(b, "authphone", auth=True)
                b.link_extra = {
                    0: socks_link(d.port, 'username = "%s"; password = "%s";' % (user, password)),
                    1: socks_link(d.port, 'username = "%s"; password = "wrong";' % user),
                }
                b.start(wait=False)
                b.wait_links_up(2)
                self.assertTrue(b.links("slave")[0]["up"])
                braid.wait_until(lambda: info(b, 1).get("attempts", 0) >= 2, 10,
                                 "the link with the wrong password retried")
                self.assertFalse(b.links("slave")[1]["up"])
                self.assertIn("rejected the username/password", info(b, 1)["last_error"])
                res = run_transfer(b, 2000, window=16)
                self.assertComplete(res)
                self.assertGreater(b.links("slave")[0]["tx_data"], 0)
        finally:
            subprocess.run(["userdel", user], check=False)


# mode -> what the log line / last_error must say
HOSTILE = {
    "wrong_version": "version byte 0x04",
    "rep7": "refused UDP ASSOCIATE: command not supported (REP=7)",
    "auth_rejected": "rejected the username/password",
    "truncated": "closed the connection while associating (after a partial answer)",
    "long_domain": "gave its relay as a name that does not resolve",
    "binary_domain": "not a host name",
    "silent": "did not answer in 0.5 s",
    "close_after_assoc": "closed the control connection",
}


class FakeProxyTest(unittest.TestCase):
    def test_hostile_and_broken_proxies(self):
        """One link per broken proxy, plus a direct link: each broken link logs a clear reason,
        retries with growing delays, and never comes up; the daemon stays up and the direct
        link carries everything."""
        fakes = {m: FakeSocks(m) for m in HOSTILE}
        dns = FakeDNS({})
        try:
            modes = list(HOSTILE)
            extra = {}
            for i, m in enumerate(modes):
                auth = 'username = "u"; password = "p";' if m == "auth_rejected" else ""
                extra[i] = socks_link(fakes[m].port, auth + " proxy_timeout_ms = 500;")
            direct = len(modes)
            with braid.Braid(nlinks=direct + 1, link_extra=extra,
                             slave_extra='dns_servers = "%s";' % dns.server) as b:
                b.start(wait=False)
                b.wait_links_up(1)
                for i, m in enumerate(modes):
                    braid.wait_until(lambda: info(b, i).get("attempts", 0) >= 3, 15,
                                     "link for %s retried twice" % m)
                log = b.slave.output()
                for i, m in enumerate(modes):
                    ti = info(b, i)
                    self.assertIn(HOSTILE[m], ti["last_error"], "%s: %r" % (m, ti))
                    self.assertIn(HOSTILE[m], log, m)
                    if m != "close_after_assoc":
                        self.assertEqual(ti["established"], 0, "%s: %r" % (m, ti))
                        self.assertFalse(b.links("slave")[i]["up"], m)
                        # the same failure is logged once, not at every retry
                        self.assertEqual(log.count("link wan%d: down:" % i), 1, m)
                    # with backoff, a proxy is not hammered: attempts stay few
                    self.assertLessEqual(fakes[m].connections, ti["attempts"], m)
                self.assertTrue(b.slave.alive())
                res = run_transfer(b, 1000)
                for name, r in res.items():  # all over the direct link: strict
                    self.assertTrue(r["ok"], "%s: %s" % (name, frames.summary(r)))
                self.assertEqual(b.links("slave")[direct]["tx_data"],
                                 sum(l["tx_data"] for l in b.mux("slave")["links"]))
        finally:
            for f in fakes.values():
                f.stop()
            dns.stop()

    def test_split_replies_and_unspecified_relay_address(self):
        """Replies split into 1-byte TCP segments are reassembled; a relay address of 0.0.0.0
        means the proxy's own address; a login the proxy accepts works."""
        split = FakeSocks("split")
        unspec = FakeSocks("unspecified", user="braid", password="s3cret")
        try:
            extra = {0: socks_link(split.port),
                     1: socks_link(unspec.port, 'username = "braid"; password = "s3cret";')}
            with braid.Braid(nlinks=2, link_extra=extra) as b:
                b.start()
                self.assertIn("relay 127.0.0.1:", b.links("slave")[1]["transport"])
                res = run_transfer(b, 3000, window=16)
                assert_delivered(self, res)
                for i in (0, 1):
                    self.assertGreater(b.links("slave")[i]["tx_data"], 0)
                    self.assertEqual(info(b, i)["established"], 1)
                self.assertGreater(split.relayed_up, 0)
                self.assertGreater(unspec.relayed_down, 0)
        finally:
            split.stop()
            unspec.stop()

    def test_silent_relay_reassociates(self):
        """A relay that stops forwarding while its TCP connection stays open: the link goes
        down by missing beats, a new association is made, and the link returns when the relay
        forwards again."""
        phone = FakeSocks("ok")
        try:
            with braid.Braid(nlinks=2, link_extra={0: socks_link(phone.port)}) as b:
                b.start()
                phone.blackhole = True
                b.wait_link_state("slave", 0, False, timeout=2)
                braid.wait_until(lambda: info(b, 0)["attempts"] >= 2, 10, "a new association")
                self.assertIn("relay is silent", b.slave.output())
                phone.blackhole = False
                b.wait_link_state("slave", 0, True, timeout=15)
                b.wait_link_state("master", 0, True, timeout=5)
                self.assertGreaterEqual(phone.associations, 2)
        finally:
            phone.stop()

    def test_relay_fragments_and_foreign_sources_dropped(self):
        """A relay that also sends FRAG != 0 datagrams and datagrams from another address:
        those are dropped and counted, the real ones delivered, nothing else is disturbed."""
        frag = FakeSocks("frag")
        try:
            with braid.Braid(nlinks=2, link_extra={0: socks_link(frag.port)}) as b:
                b.start()
                res = run_transfer(b, 2000, window=16)
                assert_delivered(self, res)
                ti = info(b, 0)
                self.assertGreater(frag.hostile_sent, 0)
                self.assertGreater(ti["drop_frag"], 0, ti)
                self.assertGreater(ti["drop_wrong_source"], 0, ti)
                # every hostile copy was dropped (allow for those still in flight)
                braid.wait_until(lambda: info(b, 0)["drop_frag"] + info(b, 0)["drop_wrong_source"]
                                 >= frag.hostile_sent - 4, 3, "hostile datagrams counted")
                self.assertTrue(b.links("slave")[0]["up"])
                c = b.mux("slave")["counters"]
                self.assertEqual(c["replay"], 0, c)  # the copies never reached the mux
        finally:
            frag.stop()


class MasterTcpTest(unittest.TestCase):
    def test_hostile_tcp_connections(self):
        """The master's TCP port (datagram connections of socks5-tcp links, and the TCP lane's)
        against hostile clients: every connection is greeted with "BRL" 1 and 16 random bytes
        (new ones each time); a connection that is not a datagram connection is closed (this
        master's TCP lane is off); a datagram connection's garbage frames are dropped as
        malformed datagrams without touching the site's link; a frame of length 0 closes it;
        one that says nothing is closed after 10 s. The site's tunnel works throughout."""
        import socket
        with braid.Braid(nlinks=1) as b:
            b.start()

            def conn():
                c = socket.create_connection(("127.0.0.1", b.master_port), timeout=5)
                g = b""
                while len(g) < 20:
                    chunk = c.recv(20 - len(g))
                    self.assertTrue(chunk, "closed before the greeting")
                    g += chunk
                self.assertEqual(g[:4], b"BRL\x01")
                return c, g[4:]

            def closed(c, timeout):
                c.settimeout(timeout)
                try:
                    return c.recv(100) == b""
                except ConnectionResetError:
                    return True

            c1, ch1 = conn()
            c2, ch2 = conn()
            self.assertNotEqual(ch1, ch2)
            c1.sendall(b"GET / HTTP/1.0\r\n\r\n")  # not braid: closed
            self.assertTrue(closed(c1, 5))
            c2.sendall(b"BRD\x01")
            junk = bytes(range(256)) * 4
            for n in (1, 3, 40, 200, 1024):  # frames of junk
                c2.sendall(bytes([n >> 8, n & 255]) + junk[:n])
            c2.sendall(b"\x00\x00")  # a frame of length 0: closed
            self.assertTrue(closed(c2, 5))
            c3, _ = conn()  # says nothing: closed after 10 s
            t0 = time.monotonic()
            self.assertTrue(closed(c3, 15))
            self.assertLess(time.monotonic() - t0, 14)
            for c in (c1, c2, c3):
                c.close()
            self.assertTrue(b.master.alive())
            res = run_transfer(b, 500)
            assert_delivered(self, res)
            out = b.master.output()
            self.assertIn("tcp_lane is \"off\"", out)
            self.assertIn("dropped a datagram from TCP 127.0.0.1:", out)


class NameResolutionTest(unittest.TestCase):
    def test_names_resolved_by_c_ares(self):
        """Proxy and master given by name: a name from /etc/hosts (localhost) and names from a
        DNS server work; a name that does not resolve gives a clear error and is retried."""
        phone = FakeSocks("ok")
        phone2 = FakeSocks("ok")
        dns = FakeDNS({"master.braid.test": "127.0.0.1", "phone.braid.test": "127.0.0.1"})
        try:
            extra = {
                0: 'type = "socks5"; proxy = "phone.braid.test:%d";' % phone.port,
                1: 'type = "socks5"; proxy = "localhost:%d";' % phone2.port,
                2: 'type = "socks5"; proxy = "nosuch.braid.test:1080";',
            }
            with braid.Braid(nlinks=4, link_extra=extra, master_name="master.braid.test",
                             slave_extra='dns_servers = "%s";' % dns.server) as b:
                b.start(wait=False)
                b.wait_links_up(3)
                braid.wait_until(lambda: info(b, 2).get("attempts", 0) >= 2, 10,
                                 "the unresolvable proxy retried")
                ti = info(b, 2)
                self.assertIn("name does not resolve", ti["last_error"])
                self.assertIn("nosuch.braid.test", b.slave.output())
                self.assertFalse(b.links("slave")[2]["up"])
                names = {q[0] for q in dns.queries}
                self.assertIn("master.braid.test", names)
                self.assertIn("phone.braid.test", names)
                self.assertIn("nosuch.braid.test", names)
                self.assertNotIn("localhost", names)  # /etc/hosts answered it
                # a master given by name may be IPv6: the automatic MTU leaves room for that
                self.assertIn("MTU 1396", b.slave.output())
                res = run_transfer(b, 2000, size="64-1396", window=16)
                assert_delivered(self, res)
                for i in (0, 1, 3):
                    self.assertGreater(b.links("slave")[i]["tx_data"], 0, i)
        finally:
            phone.stop()
            phone2.stop()
            dns.stop()

    def test_probe_socks(self):
        """braid-slave probe-socks reports a working proxy with its relay's round trip, and
        names the reason for one that does not do UDP ASSOCIATE."""
        ok = FakeSocks("ok")
        rep7 = FakeSocks("rep7")
        try:
            exe = os.path.join(braid.build_dir(), "braid-slave")
            r = subprocess.run([exe, "probe-socks", "127.0.0.1:%d" % ok.port],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("5 of 5 datagrams came back through the relay", r.stdout)
            self.assertIn("probe ok", r.stdout)
            self.assertEqual(ok.relayed_up, 5)
            # this proxy does UDP ASSOCIATE only: the TCP lane cannot use it, and says why
            self.assertIn("CONNECT: failed: ", r.stdout)
            self.assertIn("command not supported", r.stdout.split("CONNECT: failed: ")[1])
            r = subprocess.run([exe, "probe-socks", "127.0.0.1:%d" % rep7.port],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn("command not supported (REP=7)", r.stdout)
            r = subprocess.run([exe, "probe-socks", "nocolon"], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(r.returncode, 2)
            self.assertIn("HOST:PORT", r.stderr)
        finally:
            ok.stop()
            rep7.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
