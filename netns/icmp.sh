#!/usr/bin/env bash
# A cut that a router reports (issue 4), against the Linux kernel: link
# router L1 answers everything it would forward with ICMP "network
# unreachable" from 4 s to 9 s of a 20 s transfer. nfq-mptcp reads the
# errors about its subflows' segments (queued from the uplinks): the
# subflow is given up at once, the kernel server gets a REMOVE_ADDR for it,
# and it is joined again once L1 forwards again.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
make_multipath_testbed icm
C=$MP_C; G=$MP_G; S=$MP_S
start_mp_daemon "daemon starts" --uplink g1 --uplink g2
start_mp_server
in_ns $G iptables -t raw -S PREROUTING | grep -q 'icmp-type 3 -j NFQUEUE'
check "ICMP destination unreachable from the uplinks is queued" $? "$(in_ns $G iptables -t raw -S PREROUTING | grep -c icmp) rules"

# Upload: the translator sends and moves at once. Download: the kernel sends;
# REMOVE_ADDR tells it, it resends what was lost on uplink 1 later.
icmp_run() { # MODE
    local limit=0.5; [ $1 = down ] && limit=2.0
    in_ns $S nstat -n >/dev/null
    cut_transfer icmp $1 cut_uplink_icmp restore_uplink_icmp 4 9 20 $limit 51
    local rm
    rm=$(nstat_value $S MPTcpExtRmAddr)
    [ "${rm:-0}" -ge 1 ]; check "icmp ($1): the server kernel received a REMOVE_ADDR" $? "RmAddr=$rm"
}
icmp_run up
icmp_run down

kill -USR1 $DAEMON; sleep 0.5
stats=$(grep 'subflows_opened' "$WORK/daemon.log" | tail -1)
echo "daemon: $stats"
su=$(grep -o 'subflows_unreachable=[0-9]*' <<<"$stats" | cut -d= -f2)
[ "${su:-0}" -ge 2 ]; check "the daemon gave up a subflow on ICMP in each transfer" $? "subflows_unreachable=$su, $(grep -o 'icmp_unreachable=[0-9]*' <<<"$stats")"
kill -TERM $DAEMON; wait $DAEMON
check "daemon exits 0 on SIGTERM" $?
finish
