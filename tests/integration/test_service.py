#!/usr/bin/env python3
"""test_service.py: braid as a service (notun build, loopback, no root): systemd's readiness,
watchdog and stopping notifications (a fake NOTIFY_SOCKET), log lines in the journal's format
when stderr is the journal's stream, and the configuration reloaded on SIGHUP."""
import os
import re
import signal
import socket
import subprocess
import sys
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import braid  # noqa: E402
import frames  # noqa: E402

SLOW = {"up": "rate=8mbit,delay=10ms", "down": "rate=8mbit,delay=10ms"}
# a link whose path is long: when it changes to a short one, its last packets on the old path
# arrive well after the first ones on the new path
LONG = {"up": "rate=8mbit,delay=60ms", "down": "rate=8mbit,delay=60ms"}


def run_transfer(b, count, **kw):
    (ma, mp), (sa, sp) = b.tun_addrs()
    kw.setdefault("window", 64)
    kw.setdefault("size", "64-1400")
    kw.setdefault("timeout", 60)
    return frames.transfer((ma, mp), (sa, sp), count, **kw)


def ctl(b, prog, cmd):
    """Run `prog cmd -c CONF` (e.g. reload) against the running daemon."""
    conf = os.path.join(b.tmp, prog.split("-")[1] + ".conf")
    return subprocess.run([os.path.join(b.build, prog), cmd, "-c", conf], capture_output=True,
                          text=True, timeout=10)


def set_links(path, links):
    """Replace the slave config's links list with these groups (settings text each)."""
    with open(path) as f:
        text = f.read()
    new, n = re.subn(r"^links = \(.*\);$", "links = ( %s );" % ", ".join(
        "{ %s }" % l for l in links), text, flags=re.M)
    assert n == 1, text
    with open(path, "w") as f:
        f.write(new)


def edit(path, old, new):
    with open(path) as f:
        text = f.read()
    assert old in text, (old, text)
    with open(path, "w") as f:
        f.write(text.replace(old, new))


class FakeSystemd:
    """The notification end of systemd: a datagram socket collecting sd_notify messages."""

    def __init__(self, tmp):
        self.path = os.path.join(tmp, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setblocking(False)
        self.messages = []

    def poll(self):
        try:
            while True:
                self.messages.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            pass
        return self.messages

    def has(self, text):
        return any(text in m for m in self.poll())

    def count(self, text):
        return sum(text in m for m in self.poll())

    def close(self):
        self.sock.close()


def start_under_fake_systemd(b, prog, conf, sd, watchdog_usec=None):
    """Start prog as systemd would: NOTIFY_SOCKET, stderr connected to 'the journal' (a file
    named by JOURNAL_STREAM)."""
    err_path = os.path.join(b.tmp, prog + ".journal")
    err = open(err_path, "wb")
    st = os.fstat(err.fileno())
    env = dict(os.environ, NOTIFY_SOCKET=sd.path, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
    if watchdog_usec:
        env["WATCHDOG_USEC"] = str(watchdog_usec)
    p = subprocess.Popen([os.path.join(b.build, prog), "-c", conf], stdout=err, stderr=err,
                         env=env, cwd=braid.ROOT)
    err.close()
    return p, err_path


class ServiceTest(unittest.TestCase):
    def test_notify_watchdog_and_journal_lines(self):
        """Under systemd (Type=notify): READY=1 with a status once listening, WATCHDOG=1 at half
        WatchdogSec, STOPPING=1 on SIGTERM; every log line carries a journal priority prefix
        instead of a time stamp."""
        with braid.Braid(nlinks=1) as b:
            sd = FakeSystemd(b.tmp)
            p = None
            try:
                p, err_path = start_under_fake_systemd(b, "braid-master", b.master_conf(), sd,
                                                       watchdog_usec=200000)
                braid.wait_until(lambda: sd.has("READY=1"), 10, "READY=1 from the master")
                ready = [m for m in sd.messages if "READY=1" in m][0]
                self.assertIn("STATUS=listening on 127.0.0.1:%d" % b.master_port, ready)
                braid.wait_until(lambda: sd.count("WATCHDOG=1") >= 3, 5, "three watchdog pings")
                p.send_signal(signal.SIGTERM)
                self.assertEqual(p.wait(10), 0)
                self.assertTrue(sd.has("STOPPING=1"))
                with open(err_path, encoding="utf-8", errors="replace") as f:
                    lines = f.read().splitlines()
                self.assertTrue(lines)
                for line in lines:
                    self.assertRegex(line, r"^<[3467]>", "not in the journal's format: %r" % line)
                self.assertTrue(any(l.startswith("<6>braid-master listening on") for l in lines))
            finally:
                if p and p.poll() is None:
                    p.kill()
                    p.wait()
                sd.close()

    def assertComplete(self, res):
        for name, r in res.items():
            self.assertTrue(r["ok"], "%s: %s" % (name, frames.summary(r)))

    def test_slave_reload_adds_removes_and_changes_links_without_loss(self):
        """SIGHUP during a transfer: a link removed and one added, then (reload command) a link
        changed: every frame arrives, in order, both ways; the session and the tunnel go on;
        the status shows the new links and the master learns the added one. The changed link's
        old path is 50 ms longer than its new one and carries data when it changes: what is still
        on the old path arrives after the new path's first packets, in order all the same."""
        with braid.Braid(nlinks=2, emu=[LONG, SLOW]) as b:
            b.start()
            conf = os.path.join(b.tmp, "slave.conf")
            fired = {}
            # wan2 has a path as slow as wan1's, so that wan0 carries data too
            e2 = braid.Emu("emu2", b.master_port, b.tmp, **SLOW)
            b.emus.append(e2)
            b.procs.append(e2.proc)

            wan0 = 'name = "wan0"; bind = "127.0.0.1"; master = "127.0.0.1:%d";' % b.emus[0].port
            wan2 = 'name = "wan2"; bind = "127.0.0.1"; master = "127.0.0.1:%d";' % e2.port

            def progress(direction, received):
                if direction == "a->b" and received >= 1500 and not fired:
                    fired["t"] = True
                    set_links(conf, [wan0, wan2])
                    b.slave.p.send_signal(signal.SIGHUP)

            res = run_transfer(b, 6000, on_progress=progress)
            self.assertIn("t", fired)
            self.assertComplete(res)
            braid.wait_until(lambda: "reload: done: 1 link added, 1 removed, 0 changed"
                             in b.slave.output(), 5, "the reload to be logged")
            names = [l["name"] for l in b.mux("slave")["links"]]
            self.assertEqual(names, ["wan0", "wan2"])
            b.wait_links_up(2)
            self.assertEqual(b.mux("slave")["counters"]["sessions"], 1)
            self.assertEqual(b.mux("master")["counters"]["sessions"], 1)
            self.assertEqual(len(b.links("master")), 3)  # it learned wan2's id; wan1's is down
            self.assertEqual(b.mux("slave")["links"][1]["id"], 2)  # not wan1's: never reused
            # the changed link: wan0 now straight to the master instead of through its emulator
            fired.clear()

            def progress2(direction, received):
                if direction == "b->a" and received >= 1500 and not fired:
                    set_links(conf, ['name = "wan0"; bind = "127.0.0.1";', wan2])
                    fired["r"] = ctl(b, "braid-slave", "reload")

            # enough in flight that wan0 carries data beside wan2 when it changes
            res = run_transfer(b, 6000, on_progress=progress2, window=128)
            self.assertComplete(res)
            r = fired["r"]
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("changed link wan0", r.stdout)
            self.assertIn("reloaded: 0 added, 0 removed, 1 changed, 1 unchanged", r.stdout)
            b.wait_links_up(2)
            self.assertIn("127.0.0.1:%d" % b.master_port, b.links("slave")[0]["transport"])
            self.assertEqual(len(b.mux("slave")["links"]), 2)
            self.assertComplete(run_transfer(b, 2000))
            self.assertEqual(b.mux("slave")["counters"]["sessions"], 1)
            self.assertTrue(b.slave.alive())

    def test_reload_with_an_error_changes_nothing(self):
        """A config with an error: `reload` fails with FILE:LINE, SIGHUP logs it; both daemons
        go on with what they run; a setting that needs a restart is named."""
        with braid.Braid(nlinks=2) as b:
            b.start()
            for prog in ("braid-slave", "braid-master"):
                conf = os.path.join(b.tmp, prog.split("-")[1] + ".conf")
                with open(conf) as f:
                    good = f.read()
                with open(conf, "w") as f:
                    f.write(good.replace('log_level = "debug";', 'log_level = "loud";'))
                # `reload` checks the file first: the daemon is not asked
                r = ctl(b, prog, "reload")
                self.assertEqual(r.returncode, 2, r.stdout)
                self.assertRegex(r.stderr, r"%s.conf:\d+: log_level" % prog.split("-")[1])
                proc = b.slave if prog == "braid-slave" else b.master
                proc.p.send_signal(signal.SIGHUP)
                braid.wait_until(lambda: "the running configuration stays" in proc.output(), 5,
                                 "the SIGHUP reload to be refused")
                self.assertTrue(proc.alive())
                with open(conf, "w") as f:
                    f.write(good.replace('log_level = "debug";', 'log_level = "info";\n'
                                         'socket_buffer = 1048576;'))
                r = ctl(b, prog, "reload")
                self.assertEqual(r.returncode, 0, r.stdout)
                self.assertIn("restart needed for: socket_buffer", r.stdout)
            self.assertComplete(run_transfer(b, 1000))
            self.assertEqual(len(b.links("slave")), 2)

    def test_master_reload_adds_and_removes_a_site(self):
        """A second site added to the master's config and reloaded: served at once (its slave
        gets a session), while the first site's session and traffic go on; removed again: its
        slave is told, the first site still untouched."""
        with braid.Braid(nlinks=1) as b:
            b.start()
            conf = os.path.join(b.tmp, "master.conf")
            second = braid.genkey(b.build)
            edit(conf, 'sites = ( {', 'sites = ( { name = "two"; public_key = "%s"; '
                 'allowed_ips = [ "10.9.0.2/32" ]; }, {' % braid.pubkey(second, b.build))
            edit(conf, 'name = "site";', 'name = "site"; allowed_ips = [ "%s/32" ];'
                 % "10.0.0.2")
            r = ctl(b, "braid-master", "reload")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("added site two", r.stdout)
            self.assertIn("changed site site", r.stdout)
            sites = [s["name"] for s in b.status("master")["sites"]]
            self.assertEqual(sorted(sites), ["site", "two"])
            self.assertEqual(b.mux("master")["counters"]["sessions"], 1)
            edit(conf, '{ name = "two"; public_key = "%s"; allowed_ips = [ "10.9.0.2/32" ]; }, '
                 % braid.pubkey(second, b.build), "")
            r = ctl(b, "braid-master", "reload")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("removed site two", r.stdout)
            self.assertEqual([s["name"] for s in b.status("master")["sites"]], ["site"])
            self.assertEqual(b.mux("master")["counters"]["sessions"], 1)
            self.assertTrue(b.master.alive())

    def test_hooks_run_with_the_tunnels_facts(self):
        """up_command runs once the tunnel device is up, down_command at the stop, link_command
        at each link's change, each with BRAID_* variables; a failing hook is logged and
        changes nothing else."""
        def hooks(tmp, role):
            return ('up_command = "env | grep ^BRAID_ | sort > %(t)s/%(r)s.up";\n'
                    'down_command = "echo $BRAID_EVENT $BRAID_ROLE > %(t)s/%(r)s.down; exit 3";\n'
                    'link_command = "echo $BRAID_EVENT ${BRAID_SITE:--} $BRAID_LINK '
                    '$BRAID_LINK_ID $BRAID_LINKS_UP >> %(t)s/%(r)s.links";\n'
                    % {"t": tmp, "r": role})
        b = braid.Braid(nlinks=2, emu=[SLOW, SLOW])
        b.master_extra = hooks(b.tmp, "master")
        b.slave_extra = hooks(b.tmp, "slave")
        with b:
            b.start()
            path = lambda n: os.path.join(b.tmp, n)  # noqa: E731
            for role in ("master", "slave"):
                with open(path(role + ".up")) as f:  # written before READY: no waiting
                    env = dict(line.rstrip("\n").split("=", 1) for line in f)
                self.assertEqual(env["BRAID_ROLE"], role)
                self.assertEqual(env["BRAID_EVENT"], "up")
                self.assertEqual(env["BRAID_MTU"], "1428")
                self.assertEqual(env["BRAID_CONFIG"], path(role + ".conf"))
            def lines(role):
                if not os.path.exists(path(role + ".links")):
                    return []
                with open(path(role + ".links")) as f:
                    return f.read().splitlines()
            braid.wait_until(lambda: len(lines("slave")) >= 2 and len(lines("master")) >= 2, 5,
                             "link-up events on both ends")
            self.assertEqual(sorted(l.split()[:4] for l in lines("slave")),
                             [["link-up", "-", "wan0", "0"], ["link-up", "-", "wan1", "1"]])
            # (the master knows the slave's names for its links: LINK_NAME)
            self.assertEqual(sorted(l.split()[:4] for l in lines("master")),
                             [["link-up", "site", "wan0", "0"], ["link-up", "site", "wan1", "1"]])
            b.emu_by_link[1].cmd("blackhole both")
            braid.wait_until(lambda: any(l.startswith("link-down - wan1 1 1") for l in
                                         lines("slave")), 5, "the slave's link-down event")
            b.emu_by_link[1].cmd("clear both")
            braid.wait_until(lambda: len([l for l in lines("slave") if "wan1" in l]) >= 3, 5,
                             "wan1's link-up event again")
            self.assertTrue(lines("slave")[-1].startswith("link-up - wan1 1 2"), lines("slave"))
            for proc in (b.slave, b.master):  # a failing down_command: still a clean exit
                self.assertEqual(proc.stop(), 0)
                self.assertIn("down_command exited with status 3", proc.output())
                b.procs.remove(proc)
            for role in ("master", "slave"):
                with open(path(role + ".down")) as f:
                    self.assertEqual(f.read(), "down %s\n" % role)

    def test_link_down_up_by_the_admin_and_a_backup_link(self):
        """A backup link carries no data either way while the other is up (the master learns
        the mode from the slave's beats); `link wan0 down` moves everything to it (nothing
        lost, the master sees wan0 go down), `link wan0 up` brings wan0 back and the backup
        idle again; an unknown link name is an error."""
        def ctl_link(b, name, state):
            return subprocess.run([os.path.join(b.build, "braid-slave"), "link", name, state, "-c",
                                   os.path.join(b.tmp, "slave.conf")], capture_output=True,
                                  text=True, timeout=10)

        with braid.Braid(nlinks=2, emu=[SLOW, SLOW], link_extra={1: 'mode = "backup";'}) as b:
            b.start()
            self.assertComplete(run_transfer(b, 2000))
            sl, ml = b.links("slave"), b.links("master")
            self.assertTrue(sl[1]["backup"])
            self.assertEqual(sl[1]["tx_data"], 0, sl[1])
            self.assertGreater(sl[0]["tx_data"], 1900)
            # the master learned it from the slave's beats: no return traffic on it either
            self.assertTrue(ml[1]["backup"])
            self.assertEqual(ml[1]["tx_data"], 0, ml[1])
            self.assertGreater(ml[0]["tx_data"], 1900)
            r = ctl_link(b, "wan0", "down")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("link wan0: down (disabled)", r.stdout)
            b.wait_link_state("master", 0, False, timeout=2)
            self.assertTrue(b.links("slave")[0]["admin_down"])
            self.assertComplete(run_transfer(b, 2000))
            self.assertGreater(b.links("slave")[1]["tx_data"], 1900)
            self.assertGreater(b.links("master")[1]["tx_data"], 1900)
            r = ctl_link(b, "wan0", "up")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            b.wait_link_state("slave", 0, True, timeout=3)
            b.wait_link_state("master", 0, True, timeout=3)
            before = b.links("slave")[1]["tx_data"]
            self.assertComplete(run_transfer(b, 2000))
            self.assertEqual(b.links("slave")[1]["tx_data"], before)
            r = ctl_link(b, "nosuch", "down")
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertIn('error: no link named "nosuch"', r.stdout)
            r = subprocess.run([os.path.join(b.build, "braid-master"), "link", "wan0", "down",
                                "-c", os.path.join(b.tmp, "master.conf")], capture_output=True,
                               text=True, timeout=10)
            self.assertEqual(r.returncode, 2, r.stdout)
            self.assertIn("braid-master learns its links from the slaves", r.stderr)

    def test_metrics_endpoint(self):
        """metrics_listen serves /metrics in the Prometheus text format on both ends: each
        family declared once, before its samples; per-link state and byte counters that follow
        the traffic; the master's samples labelled by site; other paths 404, POST 405."""
        mport, sport = braid.free_port(socket.SOCK_STREAM), braid.free_port(socket.SOCK_STREAM)
        with braid.Braid(nlinks=2, emu=[SLOW, SLOW],
                         master_extra='metrics_listen = "127.0.0.1:%d";' % mport,
                         slave_extra='metrics_listen = "127.0.0.1:%d";' % sport) as b:
            b.start()
            self.assertComplete(run_transfer(b, 2000))
            for who, port in (("master", mport), ("slave", sport)):
                with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
                    self.assertEqual(r.status, 200)
                    self.assertTrue(r.headers["Content-Type"].startswith("text/plain; version=0.0.4"))
                    text = r.read().decode()
                samples = parse_prometheus(self, text)
                site = 'site="site",' if who == "master" else ""
                for i, name in enumerate(("wan0", "wan1")):  # the master has the slave's names
                    key = '{%slink="%s",id="%d"}' % (site, name, i)
                    self.assertEqual(samples["braid_link_up" + key], 1, who)
                    self.assertGreater(samples["braid_link_tx_bytes_total" + key], 0, who)
                    # (beats go on between the two reads; the tunnel's packets stopped)
                    self.assertEqual(samples["braid_link_tx_data_total" + key],
                                     b.links(who)[i]["tx_data"], who)
                self.assertEqual(samples["braid_session_up{%s}" % site.rstrip(",")], 1)
                self.assertGreater(samples["braid_tunnel_rx_packets_total"], 1900)
                self.assertIn('braid_info{version="', text)
                with self.assertRaises(urllib.error.HTTPError) as e:
                    urllib.request.urlopen("http://127.0.0.1:%d/other" % port, timeout=5)
                self.assertEqual(e.exception.code, 404)
                e.exception.close()
                with self.assertRaises(urllib.error.HTTPError) as e:
                    urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, data=b"x",
                                           timeout=5)
                self.assertEqual(e.exception.code, 405)
                e.exception.close()
            # status --watch: the table again every second (two of them), with the links' rates
            w = subprocess.Popen([os.path.join(b.build, "braid-slave"), "status", "-c",
                                  os.path.join(b.tmp, "slave.conf"), "--watch"],
                                 stdout=subprocess.PIPE, text=True)
            try:
                seen = 0
                for line in w.stdout:
                    if line.startswith("braid-slave: session established"):
                        seen += 1
                    if line.startswith("id ") and seen:
                        self.assertIn("tx_kbit/s", line)
                        self.assertIn("rx_kbit/s", line)
                    if seen == 2:
                        break
                self.assertEqual(seen, 2)
            finally:
                w.kill()
                w.wait()
                w.stdout.close()


def parse_prometheus(test, text):
    """The samples of a Prometheus text exposition {name+labels: value}, checking its form."""
    declared, seen_family, samples = {}, [], {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        m = re.match(r"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (gauge|counter)$", line)
        if m:
            test.assertNotIn(m.group(1), declared, "declared twice: " + line)
            declared[m.group(1)] = m.group(2)
            seen_family.append(m.group(1))
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*",?)*\})? '
                     r"(-?[0-9.e+-]+|NaN)$", line)
        test.assertTrue(m, "not a sample line: %r" % line)
        test.assertEqual(m.group(1), seen_family[-1], "sample away from its family: " + line)
        if declared[m.group(1)] == "counter":
            test.assertTrue(m.group(1).endswith("_total"), line)
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return samples


if __name__ == "__main__":
    unittest.main(verbosity=2)
