#!/bin/bash
# tun_veth.sh: end-to-end test of the TUN build (root): a slave and a master namespace joined by
# two veth pairs; ping and a 10 s iperf3 TCP run through the tunnel; both links carry traffic.
#
# Layout (all addresses from 198.18.0.0/15):
#   slave ns  vs0 198.18.1.2/24 <-> vm0 198.18.1.1/24  master ns
#             vs1 198.18.2.2/24 <-> vm1 198.18.2.1/24
#   master's public address 198.18.0.1 on its lo, reachable from the slave over either veth;
#   link wan0 is bound to interface vs0, wan1 to vs1 (SO_BINDTODEVICE picks the route).
#   tunnel: master braid0 198.18.100.1/30, slave braid0 198.18.100.2/30.
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
B=${BRAID_TUN_BUILD:-build}
. tests/lib/e2e.sh
command -v iperf3 >/dev/null || { echo "FAIL e2e: iperf3 not installed"; exit 1; }
e2e_init tun_veth
for i in 0 1; do
    ip link add vs$i netns "$S" type veth peer name vm$i netns "$M"
    inS ip addr add 198.18.$((i + 1)).2/24 dev vs$i
    inM ip addr add 198.18.$((i + 1)).1/24 dev vm$i
    inS ip link set vs$i up
    inM ip link set vm$i up
    inS ip route add 198.18.0.1/32 via 198.18.$((i + 1)).1 dev vs$i metric $((10 + i))
done
inM ip addr add 198.18.0.1/32 dev lo

e2e_keys
cat >"$T"/master.conf <<EOF
private_key_file = "master.key";
sites = ( { name = "site"; public_key = "$SPUB"; allowed_ips = [ "198.18.100.2/32" ]; } );
listen = "198.18.0.1:7000";
tunnel = { name = "braid0"; address = "198.18.100.1/30"; };
control_socket = "$T/master.sock";
EOF
cat >"$T"/slave.conf <<EOF
private_key_file = "slave.key";
master_public_key = "$MPUB";
master = "198.18.0.1:7000";
links = ( { name = "wan0"; interface = "vs0"; },
          { name = "wan1"; interface = "vs1"; } );
tunnel = { name = "braid0"; address = "198.18.100.2/30"; };
control_socket = "$T/slave.sock";
EOF

# (ip netns exec execs the program, so $! is the daemon's own PID)
ip netns exec "$M" "$B"/braid-master -c "$T"/master.conf >"$T"/master.log 2>&1 &
pids+=($!)
ip netns exec "$S" "$B"/braid-slave -c "$T"/slave.conf >"$T"/slave.log 2>&1 &
pids+=($!)

echo "e2e tun_veth: TUN build, 2 namespaces, 2 veth links"
DESC="slave: session and both links up within 10 s"
check wait_for 10 slave "m['session'] and m['links_up'] == 2"
DESC="master: session and both links up"
check wait_for 5 master "m['session'] and m['links_up'] == 2"

DESC="tunnel interfaces have MTU 1428 (1500 - 28 - 34 - 10 for a SOCKS5 header)"
check test "$(inS cat /sys/class/net/braid0/mtu)" = 1428

DESC="ping through the tunnel (20 packets, none lost)"
check to "$T"/ping.log inS ping -c 20 -i 0.05 -W 2 -q 198.18.100.1

ip netns exec "$M" iperf3 -s -1 -B 198.18.100.1 >"$T"/iperf-server.log 2>&1 &
pids+=($!)
# wait for the iperf3 server to listen (its port answers)
for _ in $(seq 50); do inM ss -ltn | grep -q '198.18.100.1:5201' && break; sleep 0.1; done
DESC="iperf3 TCP upload through the tunnel for 10 s"
check to "$T"/iperf.json inS timeout 30 iperf3 -c 198.18.100.1 -t 10 -J
gbps=$(python3 -c "import json; j=json.load(open('$T/iperf.json')); print('%.1f' % (j['end']['sum_received']['bits_per_second']/1e6))" 2>/dev/null)
echo "  iperf3: ${gbps:-?} Mbit/s received"
DESC="iperf3 moved data (> 1 Mbit/s)"
check python3 -c "import sys; sys.exit(0 if float('${gbps:-0}') > 1 else 1)"

DESC="both links carried tunnel traffic from the slave (each >= 10 % of packets)"
check test "$(jget slave "min(l['tx_data'] for l in m['links']) >= 0.1 * sum(l['tx_data'] for l in m['links'])")" = True
DESC="both links carried tunnel traffic from the master"
check test "$(jget master "all(l['tx_data'] > 0 for l in m['links'])")" = True

# A link whose interface disappears goes down and comes back by itself when it returns.
inS ip link set vs1 down
DESC="wan1 goes down when its interface goes down"
check wait_for 3 slave "[l for l in m['links'] if l['name']=='wan1'][0]['up'] == False"
DESC="ping still works over wan0 alone"
check to "$T"/ping.log inS ping -c 5 -i 0.1 -W 2 -q 198.18.100.1
inS ip link set vs1 up
inS ip route replace 198.18.0.1/32 via 198.18.2.1 dev vs1 metric 11
DESC="wan1 comes back up by itself within 5 s of the interface returning"
check wait_for 5 slave "[l for l in m['links'] if l['name']=='wan1'][0]['up'] == True"

# USB unplug: the interface is deleted and a new one with the same name appears.
ip netns exec "$S" ip link del vs1
DESC="wan1 goes down when its interface is removed"
check wait_for 3 slave "[l for l in m['links'] if l['name']=='wan1'][0]['up'] == False"
ip link add vs1 netns "$S" type veth peer name vm1 netns "$M"
inS ip addr add 198.18.2.2/24 dev vs1
inM ip addr add 198.18.2.1/24 dev vm1
inS ip link set vs1 up
inM ip link set vm1 up
inS ip route add 198.18.0.1/32 via 198.18.2.1 dev vs1 metric 11
DESC="wan1 comes back by itself on the new interface within 5 s"
check wait_for 5 slave "[l for l in m['links'] if l['name']=='wan1'][0]['up'] == True"
DESC="ping after the re-plug"
check to "$T"/ping.log inS ping -c 5 -i 0.1 -W 2 -q 198.18.100.1

kill "${pids[0]}" "${pids[1]}" 2>/dev/null
wait "${pids[0]}"
rc_master=$?
wait "${pids[1]}"
rc_slave=$?
DESC="master and slave exit cleanly (status 0) on SIGTERM"
check test "$rc_master.$rc_slave" = "0.0"
pids=()
DESC="no sanitizer reports or crashes in the daemons' logs"
check bash -c "! grep -q -E 'AddressSanitizer|runtime error|Segmentation' '$T'/master.log '$T'/slave.log"

e2e_end
