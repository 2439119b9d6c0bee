#!/bin/bash
# service.sh: end-to-end test of braid run as a service (root, TUN build, two namespaces): the
# up_command sets a route through the tunnel (and sets it again after a restart), a reload that
# removes a link and adds one keeps the TUN device, its route and the traffic (no ping lost),
# and down_command runs at the stop; both daemons run as user nobody after their setup, with
# only the capabilities they still need.
#
# Layout (all addresses from 198.18.0.0/15):
#   slave ns  vs0 198.18.1.2/24 <-> vm0 198.18.1.1/24  master ns
#             vs1 198.18.2.2/24 <-> vm1 198.18.2.1/24
#   master's public address 198.18.0.1 on its lo; tunnel 198.18.100.1/30 (master) and .2
#   (slave); a "remote network" 198.18.200.1/32 on the master's lo, reached from the slave
#   through the route its up_command adds.
set -u
cd "$(dirname "$0")/../.."
B=${BRAID_TUN_BUILD:-build}
. tests/lib/e2e.sh
e2e_init service

for i in 0 1; do
    ip link add vs$i netns "$S" type veth peer name vm$i netns "$M"
    inS ip addr add 198.18.$((i + 1)).2/24 dev vs$i
    inM ip addr add 198.18.$((i + 1)).1/24 dev vm$i
    inS ip link set vs$i up
    inM ip link set vm$i up
    inS ip route add 198.18.0.1/32 via 198.18.$((i + 1)).1 dev vs$i metric $((10 + i))
done
inM ip addr add 198.18.0.1/32 dev lo
inM ip addr add 198.18.200.1/32 dev lo
e2e_keys
# the daemons run as nobody/nogroup after the setup: they read their configs at a reload (640,
# group nogroup) and the hook commands append to one file
chmod 711 "$T"
touch "$T"/hooks
chmod 666 "$T"/hooks
cat >"$T"/master.conf <<EOF2
private_key_file = "master.key";
sites = ( { name = "site"; public_key = "$SPUB"; allowed_ips = [ "198.18.100.2/32" ]; } );
listen = "198.18.0.1:7000";
tunnel = { name = "braid0"; address = "198.18.100.1/30"; };
control_socket = "$T/master.sock";
user = "nobody";
group = "nogroup";
EOF2
chgrp nogroup "$T"/master.conf && chmod 640 "$T"/master.conf
slave_conf() { # slave_conf LINKS...
    local links=$*
    cat >"$T"/slave.conf <<EOF2
private_key_file = "slave.key";
master_public_key = "$MPUB";
master = "198.18.0.1:7000";
links = ( $links );
tunnel = { name = "braid0"; address = "198.18.100.2/30"; };
control_socket = "$T/slave.sock";
up_command = "ip route add 198.18.200.0/24 dev \$BRAID_INTERFACE && echo up \$BRAID_INTERFACE >> $T/hooks";
down_command = "echo down \$BRAID_INTERFACE >> $T/hooks";
user = "nobody";
group = "nogroup";
EOF2
    chgrp nogroup "$T"/slave.conf && chmod 640 "$T"/slave.conf
}
slave_conf '{ name = "wan0"; interface = "vs0"; }, { name = "wan1"; interface = "vs1"; }'
start_slave() {
    ip netns exec "$S" "$B"/braid-slave -c "$T"/slave.conf >>"$T"/slave.log 2>&1 &
    SLAVE=$!
    pids+=($SLAVE)
}
ip netns exec "$M" "$B"/braid-master -c "$T"/master.conf >"$T"/master.log 2>&1 &
pids+=($!)
start_slave

echo "e2e service: hooks, restart, reload (TUN build, 2 namespaces)"
DESC="session and both links up within 10 s"
check wait_for 10 slave "m['session'] and m['links_up'] == 2"
# proc_field PID NAME: a line of /proc/PID/status
proc_field() { sed -n "s/^$2:[[:space:]]*//p" /proc/$1/status; }
nobody=$(id -u nobody)
DESC="the slave runs as nobody with only CAP_NET_ADMIN and CAP_NET_RAW (0x3000)"
check test "$(proc_field $SLAVE Uid | awk '{print $1 $2 $3 $4}').$(proc_field $SLAVE CapEff)" = "$nobody$nobody$nobody$nobody.0000000000003000"
DESC="the master runs as nobody with no capabilities"
check test "$(proc_field ${pids[0]} Uid | awk '{print $1}').$(proc_field ${pids[0]} CapEff)" = "$nobody.0000000000000000"
DESC="up_command added the route to 198.18.200.0/24 through braid0"
check sh -c "ip netns exec $S ip route show 198.18.200.0/24 | grep -q 'dev braid0'"
DESC="ping 198.18.200.1 through that route"
check to "$T"/ping.log inS ping -c 5 -i 0.1 -W 2 -q 198.18.200.1

kill "$SLAVE"
wait "$SLAVE"
DESC="down_command ran at the stop; the route went with the device"
check sh -c "grep -q 'down braid0' $T/hooks && ! ip netns exec $S ip route show 198.18.200.0/24 | grep -q ."
start_slave
DESC="after a restart: session and both links up again"
check wait_for 10 slave "m['session'] and m['links_up'] == 2"
DESC="after a restart: the route is back (up_command)"
check sh -c "ip netns exec $S ip route show 198.18.200.0/24 | grep -q 'dev braid0'"

# a reload that removes wan1 and adds wan2 (also through vs1), under a ping every 20 ms
ifindex=$(inS cat /sys/class/net/braid0/ifindex)
inS ping -c 150 -i 0.02 -W 1 198.18.200.1 >"$T"/ping-reload.log 2>&1 &
PING=$!
sleep 1
slave_conf '{ name = "wan0"; interface = "vs0"; }, { name = "wan2"; interface = "vs1"; }'
DESC="braid-slave reload answers what changed"
check sh -c "'$B'/braid-slave reload -c '$T'/slave.conf | grep -q 'reloaded: 1 added, 1 removed, 0 changed, 1 unchanged'"
wait $PING
DESC="no ping lost across the reload (150 at 20 ms)"
check grep -q " 0% packet loss" "$T"/ping-reload.log
DESC="the TUN device is the same one (same ifindex) and its route stays"
check sh -c "test \"\$(ip netns exec $S cat /sys/class/net/braid0/ifindex)\" = $ifindex &&
             ip netns exec $S ip route show 198.18.200.0/24 | grep -q 'dev braid0'"
DESC="wan2 comes up; the links are wan0 and wan2"
check wait_for 5 slave "sorted(l['name'] for l in m['links'] if l['up']) == ['wan0', 'wan2']"
DESC="up_command ran twice in all (start, restart), not at the reload"
check test "$(grep -c '^up braid0' "$T"/hooks)" = 2

kill "${pids[@]}" 2>/dev/null
for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
pids=()
DESC="no sanitizer reports or crashes in the daemons' logs"
check bash -c "! grep -q -E 'AddressSanitizer|runtime error|Segmentation' '$T'/master.log '$T'/slave.log"
e2e_end
