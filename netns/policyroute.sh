#!/usr/bin/env bash
# An uplink routed only by the operator's policy routing (issue 12, item 4):
# the multi-WAN set-up where uplink 2's default route is in a table of its own
# (`ip rule from 10.41.3.1 table 102`, `default via 10.41.3.2 dev g2 table
# 102`, and the same for IPv6) and the main table has no route through g2 but
# the connected one. The multipath test-bed already has table 102; this test
# takes the main table's routes through g2 away, and makes L2 answer ARP only
# for the addresses of the interface asked (arp_ignore=1, as a router does),
# so a next hop guessed on-link fails on IPv4 as it does on IPv6.
# Checks: nfq-mptcp --uplink g1 --uplink g2 starts; with its rules in place a
# packet from 10.41.3.1 / fd41:3::1 still leaves g2 via L2; an 8 MiB upload
# over IPv4 and one over IPv6 (kernel MPTCP server): sha256 equal, joins
# established (the server kernel's MPTcpExtMPJoinAckRx grows), uplink 2
# carrying a share. Then, with table 102's defaults gone too (an Ethernet
# uplink with no route at all), the daemon refuses to start with a one-line
# error naming the uplink and leaves no rule, route or sysctl changed.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
make_multipath_testbed prt
C=$MP_C; G=$MP_G; L2=$MP_L2; S=$MP_S

# Uplink 2 through table 102 only.
in_ns $G ip route del 10.41.22.0/24 via 10.41.3.2 dev g2
in_ns $G ip route del default via 10.41.3.2 dev g2 metric 200
in_ns $G ip -6 route del fd41:22::/64 via fd41:3::2 dev g2
in_ns $G ip -6 route del default via fd41:3::2 dev g2 metric 200
in_ns $L2 sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.l2g.arp_ignore=1
main2=$( (in_ns $G ip route show table main dev g2; in_ns $G ip -6 route show table main dev g2) | grep -c via)
[ "$main2" = 0 ]; check "uplink 2 has no gateway in the main table" $? "$main2 routes via g2"

start_mp_daemon "daemon starts, uplink 2 routed by the operator's table 102" --uplink g1 --uplink g2
start_mp_server
in_ns $G ip rule >"$WORK/rules.txt"; in_ns $G ip -6 rule >>"$WORK/rules.txt"
for t in 1000 1001; do echo "table $t:"; in_ns $G ip route show table $t; in_ns $G ip -6 route show table $t; done >"$WORK/tables.txt"
sed 's/^/  G: /' "$WORK/rules.txt" "$WORK/tables.txt"
for x in "-4 8.8.8.8 10.41.3.1 10.41.3.2" "-6 2001:4860:4860::8888 fd41:3::1 fd41:3::2"; do
    set -- $x
    got=$(in_ns $G ip $1 route get $2 from $3 oif g2 2>&1 | head -1)
    echo "$got" | grep -q "via $4 dev g2"
    check "with the daemon's rules, $3 still leaves g2 via $4" $? "$got"
done

# An 8 MiB upload per family to the server's uplink-1 address: the initial
# subflow goes by the main table (g1), the join from g2's address by the
# policy routing.
upload() { # FAMILY DST SEED
    local j0 t0 j1 t1
    j0=$(nstat_value $S MPTcpExtMPJoinAckRx); t0=$(if_bytes $G g2 tx)
    in_ns $C python3 "$XFER" up $2 5002 $((8 << 20)) $3 --timeout 60 >"$WORK/up-$1.json" 2>&1
    check "IPv$1: 8 MiB upload through nfq-mptcp, sha256 equal" $? "$(head -c 300 "$WORK/up-$1.json")"
    j1=$(nstat_value $S MPTcpExtMPJoinAckRx); t1=$(if_bytes $G g2 tx)
    echo "RESULT policyroute_v$1_joins=$((j1 - j0)) policyroute_v$1_uplink2_tx_bytes=$((t1 - t0))"
    [ $((j1 - j0)) -ge 1 ]; check "IPv$1: the server kernel established the join from uplink 2" $? "MPJoinAckRx +$((j1 - j0))"
    [ $((t1 - t0)) -gt 500000 ]; check "IPv$1: uplink 2 carried part of the upload" $? "$((t1 - t0)) B on g2"
}
upload 4 $MP_S_ADDR1 41
upload 6 $MP_S_ADDR16 42

# Stopped: its rules are gone.
kill -TERM $DAEMON; wait $DAEMON 2>/dev/null
left=$( (in_ns $G ip rule; in_ns $G ip -6 rule) | grep -cE 'lookup 10[0-9][0-9]\b')
[ "$left" = 0 ]; check "daemon stopped, its rules removed" $? "$left rules to tables 1000+ left"

# An Ethernet uplink without any route: a one-line error, nothing installed.
in_ns $G ip route del default table 102; in_ns $G ip -6 route del default table 102
state() {
    local n
    in_ns $G ip rule; in_ns $G ip -6 rule; in_ns $G ip route show table all; in_ns $G ip -6 route show table all
    in_ns $G iptables-save -t raw | grep -v '^#'; in_ns $G ip6tables-save -t raw | grep -v '^#'
    for n in ip_local_reserved_ports conf/all/accept_local conf/g0/accept_local conf/all/rp_filter conf/g0/rp_filter conf/g1/rp_filter conf/g2/rp_filter; do
        echo "$n $(in_ns $G cat /proc/sys/net/ipv4/$n)"
    done
}
state >"$WORK/state-before.txt"
in_ns $G timeout 20 "$NFQ_MPTCP" --queue $((1000 + TID % 20000)) --lan g0 --uplink g1 --uplink g2 --install-rules >"$WORK/noroute.log" 2>&1
rc=$?
state >"$WORK/state-after.txt"
errs=$(grep -c '^Error:' "$WORK/noroute.log")
err=$(grep -m1 '^Error:' "$WORK/noroute.log")
[ $rc != 0 ] && [ $rc != 124 ] && [ "$errs" = 1 ] && echo "$err" | grep -q 'uplink g2' && ! grep -q 'bound' "$WORK/noroute.log"
check "no route from uplink 2: refuses to start with a one-line error" $? "exit $rc: $err"
diff "$WORK/state-before.txt" "$WORK/state-after.txt" >"$WORK/state.diff"
check "no route from uplink 2: nothing installed, nothing left" $? "$(head -c 300 "$WORK/state.diff")"
finish
