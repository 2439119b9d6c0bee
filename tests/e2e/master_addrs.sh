#!/bin/bash
# master_addrs.sh: end-to-end test (root): a master listening on the wildcard address of a host
# with two addresses answers each link from the address the link sent to (IP_PKTINFO and, on a
# dual-stack [::] socket, IPV6_PKTINFO with v4-mapped addresses), so a link to the second address
# comes up and the slave hears the master on both links.
#
# Layout (all addresses from 198.18.0.0/15):
#   slave ns  vs0 198.18.1.2/24 <-> vm0 198.18.1.1/24 and 198.18.1.3/24  master ns
#   link wan0 to 198.18.1.1:7000 (the address routing picks to answer), wan1 to 198.18.1.3:7000;
#   tunnel: master braid0 198.18.100.1/30, slave braid0 198.18.100.2/30.
set -u
cd "$(dirname "$0")/../.."
B=${BRAID_TUN_BUILD:-build}
. tests/lib/e2e.sh
e2e_init master_addrs

ip link add vs0 netns "$S" type veth peer name vm0 netns "$M"
inS ip addr add 198.18.1.2/24 dev vs0
inM ip addr add 198.18.1.1/24 dev vm0
inM ip addr add 198.18.1.3/24 dev vm0
inS ip link set vs0 up
inM ip link set vm0 up
e2e_keys

echo "e2e master_addrs: a master on a wildcard address of a host with two addresses"
for listen in "0.0.0.0:7000" "[::]:7000"; do
    cat >"$T"/master.conf <<EOF2
private_key_file = "master.key";
sites = ( { name = "site"; public_key = "$SPUB"; allowed_ips = [ "198.18.100.2/32" ]; } );
listen = "$listen";
tunnel = { name = "braid0"; address = "198.18.100.1/30"; };
control_socket = "$T/master.sock";
EOF2
    cat >"$T"/slave.conf <<EOF2
private_key_file = "slave.key";
master_public_key = "$MPUB";
master = "198.18.1.1:7000";
links = ( { name = "wan0"; },
          { name = "wan1"; master = "198.18.1.3:7000"; } );
tunnel = { name = "braid0"; address = "198.18.100.2/30"; };
control_socket = "$T/slave.sock";
EOF2
    # (ip netns exec execs the program, so $! is the daemon's own PID)
    ip netns exec "$M" "$B"/braid-master -c "$T"/master.conf >>"$T"/master.log 2>&1 &
    pids+=($!)
    ip netns exec "$S" "$B"/braid-slave -c "$T"/slave.conf >>"$T"/slave.log 2>&1 &
    pids+=($!)

    DESC="listen $listen: the slave's session and both links up within 10 s"
    check wait_for 10 slave "m['session'] and m['links_up'] == 2"
    DESC="listen $listen: the master answers wan1 from 198.18.1.3 (its status says so)"
    check test "$(jget master "any(l['transport'].endswith(' to 198.18.1.3') or l['transport'].endswith(' to ::ffff:198.18.1.3') for l in m['links'])")" = True
    DESC="listen $listen: ping through the tunnel (20 packets, none lost)"
    check to "$T"/ping.log inS ping -c 20 -i 0.05 -W 2 -q 198.18.100.1
    DESC="listen $listen: the slave hears the master on both links (5 datagrams each)"
    check wait_for 5 slave "all(l['rx_packets'] >= 5 and l['up'] for l in m['links'])"

    kill "${pids[@]}" 2>/dev/null
    wait "${pids[0]}"
    rc_master=$?
    wait "${pids[1]}"
    rc_slave=$?
    pids=()
    DESC="listen $listen: master and slave exit cleanly on SIGTERM"
    check test "$rc_master.$rc_slave" = "0.0"
done
DESC="no sanitizer reports or crashes in the daemons' logs"
check bash -c "! grep -q -E 'AddressSanitizer|runtime error|Segmentation' '$T'/master.log '$T'/slave.log"
e2e_end
