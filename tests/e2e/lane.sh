#!/bin/bash
# lane.sh: end-to-end test of the TCP lane (root, TUN build): a slave and a master namespace
# joined by two veth pairs, tcp_lane = "on"; TCP connections from the slave's side to a server
# behind the master are terminated and carried over the links' TCP connections. Exact bytes
# both ways (many connections, half-close), an HTTP download checked by its digest, a refused
# port, iperf3 both ways, a link through a SOCKS5 proxy (Dante: CONNECT for its lane connection),
# a link of type socks5-tcp through a proxy that only does CONNECT (its datagrams and its lane
# connection both over TCP), and a link that dies in the middle of a transfer.
#
# Layout (all addresses from 198.18.0.0/15):
#   slave ns  vs0 198.18.1.2/24 <-> vm0 198.18.1.1/24  master ns
#             vs1 198.18.2.2/24 <-> vm1 198.18.2.1/24
#   master's public address 198.18.0.1 on its lo; "the internet" 198.18.50.1 on its lo too,
#   routed from the slave through the tunnel (master braid0 198.18.100.1, slave .2).
#   Link "phone" goes through Dante on 198.18.2.1:1080 in the master ns (a phone's proxy);
#   link "phone2" (socks5-tcp) through another on 198.18.1.1:1081 that refuses UDP ASSOCIATE.
set -u
cd "$(dirname "$0")/../.."
B=${BRAID_TUN_BUILD:-build}
. tests/lib/e2e.sh
DANTED=$(command -v danted || echo /usr/sbin/danted)
[ -x "$DANTED" ] || { echo "FAIL e2e: danted not installed (dante-server)"; exit 1; }
for t in iperf3 curl; do command -v $t >/dev/null || { echo "FAIL e2e: $t not installed"; exit 1; }; done
e2e_init lane
for i in 0 1; do
    ip link add vs$i netns "$S" type veth peer name vm$i netns "$M"
    inS ip addr add 198.18.$((i + 1)).2/24 dev vs$i
    inM ip addr add 198.18.$((i + 1)).1/24 dev vm$i
    inS ip link set vs$i up
    inM ip link set vm$i up
    inS ip route add 198.18.0.1/32 via 198.18.$((i + 1)).1 dev vs$i metric $((10 + i))
done
inM ip addr add 198.18.0.1/32 dev lo
inM ip addr add 198.18.50.1/32 dev lo

cat >"$T"/danted.conf <<EOF
logoutput: stderr
internal: 198.18.2.1 port = 1080
external: 198.18.0.1
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass { from: 198.18.0.0/15 to: 0.0.0.0/0 }
socks pass { from: 198.18.0.0/15 to: 198.18.0.0/15 command: connect udpassociate udpreply }
socks block { from: 0.0.0.0/0 to: 0.0.0.0/0 }
EOF
ip netns exec "$M" "$DANTED" -f "$T"/danted.conf -p "$T"/danted.pid -N 1 >"$T"/danted.log 2>&1 &
pids+=($!)
sed -e 's/^internal: .*/internal: 198.18.1.1 port = 1081/' \
    -e 's/command: connect udpassociate udpreply/command: connect/' "$T"/danted.conf >"$T"/danted2.conf
ip netns exec "$M" "$DANTED" -f "$T"/danted2.conf -p "$T"/danted2.pid -N 1 >"$T"/danted2.log 2>&1 &
pids+=($!)

e2e_keys
cat >"$T"/master.conf <<EOF
private_key_file = "master.key";
sites = ( { name = "site"; public_key = "$SPUB"; allowed_ips = [ "198.18.100.2/32" ]; } );
listen = "198.18.0.1:7000";
tunnel = { name = "braid0"; address = "198.18.100.1/30"; };
control_socket = "$T/master.sock";
tcp_lane = "on";
EOF
cat >"$T"/slave.conf <<EOF
private_key_file = "slave.key";
master_public_key = "$MPUB";
master = "198.18.0.1:7000";
links = ( { name = "wan0"; interface = "vs0"; },
          { name = "wan1"; interface = "vs1"; },
          { name = "phone"; type = "socks5"; proxy = "198.18.2.1:1080"; },
          { name = "phone2"; type = "socks5-tcp"; proxy = "198.18.1.1:1081"; } );
tunnel = { name = "braid0"; address = "198.18.100.2/30"; };
control_socket = "$T/slave.sock";
tcp_lane = "on";
metrics_listen = "127.0.0.1:9477";
EOF

ip netns exec "$M" "$B"/braid-master -c "$T"/master.conf >"$T"/master.log 2>&1 &
pids+=($!)
ip netns exec "$S" "$B"/braid-slave -c "$T"/slave.conf >"$T"/slave.log 2>&1 &
pids+=($!)
inS ip route add 198.18.50.0/24 dev braid0 2>/dev/null || true

echo "e2e lane: TUN build, 2 namespaces, 2 veth links, tcp_lane = on"
DESC="slave: session and the four links up within 10 s"
check wait_for 10 slave "m['session'] and m['links_up'] == 4"
DESC="phone2 is a socks5-tcp link (its proxy refuses UDP ASSOCIATE)"
check test "$(jget slave "[l for l in m['links'] if l['name'] == 'phone2'][0]['transport'].startswith('socks5-tcp via 198.18.1.1:1081 to')")" = True
inS ip route replace 198.18.50.0/24 dev braid0
DESC="the four links' lane connections are up within 5 s (the phones' through their proxies)"
check wait_for 5 slave "sorted(l['id'] for l in j['lane']['peer']['links']) == [0, 1, 2, 3]"
DESC="the phone's lane connection goes through the proxy (CONNECT): the master sees it from Dante's address"
check bash -c "ip netns exec $M ss -Htn state established src 198.18.0.1:7000 | grep -q '198.18.0.1:[0-9]*\s*\$'" 

X="python3 tests/tools/lane_xfer.py"
ip netns exec "$M" $X serve 198.18.50.1 9000 120 >"$T"/xfer-server.log 2>&1 &
pids+=($!)
for _ in $(seq 50); do inM ss -ltn | grep -q '198.18.50.1:9000' && break; sleep 0.1; done

DESC="one connection: 4 MiB up, 4 MiB down, exact bytes (half-close both ways)"
check to "$T"/xfer.log inS timeout 60 $X send 198.18.50.1 9000 4194304 4194304 1 50
DESC="20 parallel connections: 256 KiB up and 1 MiB down each, exact"
check to "$T"/xfer.log inS timeout 60 $X send 198.18.50.1 9000 262144 1048576 20 50
DESC="the slave terminated them (its lane counts connections) and every link connection carried records"
check test "$(jget slave "j['lane']['peer']['streams_opened'] >= 21 and j['lane']['terminator']['accepted'] >= 21 and all(l['tx_frames'] > 0 for l in j['lane']['peer']['links'])")" = True

DESC="the slave's /metrics has the lane's counters"
check bash -c "ip netns exec $S curl -s http://127.0.0.1:9477/metrics | grep -E '^braid_lane_streams_opened_total [0-9]+' | awk '{exit !(\$2 >= 21)}'"

ip netns exec "$M" $X reset-server 198.18.50.1 9001 60 >"$T"/xfer-rst.log 2>&1 &
pids+=($!)
for _ in $(seq 50); do inM ss -ltn | grep -q '198.18.50.1:9001' && break; sleep 0.1; done
DESC="a destination that resets the connection: the client gets its bytes, then the reset"
check to "$T"/xfer.log inS timeout 20 $X reset-client 198.18.50.1 9001

DESC="a closed port is refused to the client (curl: connection refused)"
inS timeout 20 curl -s -o /dev/null http://198.18.50.1:9 >/dev/null 2>&1
rc=$?
check test "$rc" = 7

# an HTTP download, checked by digest
head -c 20000000 /dev/urandom >"$T"/www.bin
(cd "$T" && exec ip netns exec "$M" python3 -m http.server --bind 198.18.50.1 8080) >"$T"/http.log 2>&1 &
pids+=($!)
for _ in $(seq 50); do inM ss -ltn | grep -q '198.18.50.1:8080' && break; sleep 0.1; done
DESC="HTTP download of 20 MB through the lane, digest matches"
check bash -c "ip netns exec $S timeout 60 curl -s http://198.18.50.1:8080/www.bin | sha256sum | cut -d' ' -f1 | grep -qx \$(sha256sum '$T'/www.bin | cut -d' ' -f1)"

ip netns exec "$M" iperf3 -s -B 198.18.50.1 >"$T"/iperf-server.log 2>&1 &
pids+=($!)
for _ in $(seq 50); do inM ss -ltn | grep -q '198.18.50.1:5201' && break; sleep 0.1; done
for dir in up down; do
    flag=; [ $dir = down ] && flag=-R
    DESC="iperf3 TCP $dir through the lane for 5 s"
    check to "$T"/iperf-$dir.json inS timeout 30 iperf3 -c 198.18.50.1 -t 5 $flag -J
    mbit=$(python3 -c "import json; j=json.load(open('$T/iperf-$dir.json')); print('%.0f' % (j['end']['sum_received']['bits_per_second']/1e6))" 2>/dev/null)
    echo "  iperf3 $dir: ${mbit:-?} Mbit/s"
done

# a link dies in the middle of a transfer: nothing is lost
base=$(jget slave "j['lane']['peer']['rx_data_bytes']")
inS timeout 90 $X send 198.18.50.1 9000 2000000 200000000 2 80 >"$T"/xfer-kill.log 2>&1 &
xp=$!
DESC="the transfers are under way (40 MB arrived through the lane)"
check wait_for 20 slave "j['lane']['peer']['rx_data_bytes'] > $base + 40000000"
inS ip link set vs1 down
DESC="a link's interface goes down during two transfers of 200 MB: both get exact bytes"
check wait "$xp"
cat "$T"/xfer-kill.log
# (whether the dead link held bytes of these transfers at that moment is timing; what is
# not: a stream that stalled is not stuck at the same point, e.g. waiting for an ACK lost with
# the link: that took 30 s, until the dead connection timed out, in 1 of 5 runs)
echo "  master: $(jget master "' '.join('%s %s' % (k, j['sites'][0]['lane'][k]) for k in ('reinjected_bytes', 'resent_bytes', 'stalls', 'stalls_again', 'link_losses'))")"
DESC="no stream of the master was stuck (a stuck one stalls at the same point 14 times a second)"
check test "$(jget master "j['sites'][0]['lane']['stalls_again'] < 30")" = True
inS ip link set vs1 up

kill "${pids[0]}" "${pids[1]}" 2>/dev/null
wait "${pids[0]}"
rc_master=$?
wait "${pids[1]}"
rc_slave=$?
DESC="master and slave exit cleanly (status 0) on SIGTERM"
check test "$rc_master.$rc_slave" = "0.0"
pids=("${pids[@]:2}")
DESC="no sanitizer reports or crashes in the daemons' logs"
check bash -c "! grep -q -E 'AddressSanitizer|runtime error|Segmentation' '$T'/master.log '$T'/slave.log"
e2e_end
