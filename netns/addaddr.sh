#!/usr/bin/env bash
# Addresses the peer announces (issue 4), against the Linux kernel: the
# server S has a `signal` endpoint for its second address (10.41.22.2), so
# on each connection it sends ADD_ADDR. nfq-mptcp (two uplinks) checks the
# HMAC, echoes it and joins the announced address from both uplinks; during
# a download the server's endpoint is deleted, so it sends REMOVE_ADDR (and
# closes those subflows): the transfer goes on over the others, sha256 equal.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
MP_S_SIGNAL=1 make_multipath_testbed aad
C=$MP_C; G=$MP_G; S=$MP_S

start_mp_daemon "daemon starts" --uplink g1 --uplink g2
start_mp_server
in_ns $S nstat -n >/dev/null

# Subflows the server has on its announced address (ss: local 10.41.22.2:5002), by peer address.
announced_subflows() { in_ns $S ss -Htn state established '( sport = :5002 )' src 10.41.22.2 | awk '{print $4}' | grep -oE '10\.41\.[0-9]+\.[0-9]+' | sort -u | tr '\n' ' '; }

in_ns $C python3 "$XFER" down $MP_S_ADDR1 5002 0 31 --duration 12 --timeout 90 >"$WORK/down.json" 2>&1 &
XF=$!
sleep 4
peers=$(announced_subflows)
echo "RESULT subflows_to_announced_address_from=\"$peers\""
[[ "$peers" == *10.41.2.1* && "$peers" == *10.41.3.1* ]]
check "the announced address is joined from both uplinks" $? "server sees subflows on 10.41.22.2 from: $peers"
ea=$(nstat_value $S MPTcpExtEchoAdd)
[ "${ea:-0}" -ge 1 ]; check "the server received the ADD_ADDR echo" $? "EchoAdd=$ea"
a1=$(if_bytes $G g1 rx); a2=$(if_bytes $G g2 rx)
# The server gives the address up: REMOVE_ADDR, and its subflows there close.
ip -n $S mptcp endpoint flush
sleep 3
left=$(announced_subflows)
[ -z "$left" ]; check "after REMOVE_ADDR no subflow uses the removed address" $? "left: ${left:-none}"
sleep 2
b1=$(if_bytes $G g1 rx); b2=$(if_bytes $G g2 rx)
wait $XF
check "download through ADD_ADDR and REMOVE_ADDR: sha256 equal" $? "$(head -c 300 "$WORK/down.json")"
echo "RESULT after_remove_uplink1_rx_bytes=$((b1 - a1)) after_remove_uplink2_rx_bytes=$((b2 - a2))"
[ $((b1 - a1)) -gt 5000000 ] && [ $((b2 - a2)) -gt 1000000 ]
check "both uplinks still carry the download after the removal" $? "g1 $((b1 - a1)) B, g2 $((b2 - a2)) B in 5 s"
rt=$(nstat_value $S MPTcpExtRmAddrTx)
kill -USR1 $DAEMON; sleep 0.5
stats=$(grep 'subflows_opened' "$WORK/daemon.log" | tail -1)
echo "daemon: $stats"
rr=$(grep -o 'remove_addr_received=[0-9]*' <<<"$stats" | cut -d= -f2)
[ "${rr:-0}" -ge 1 ]; check "the daemon received the REMOVE_ADDR" $? "server RmAddrTx=$rt, daemon remove_addr_received=$rr"
kill -TERM $DAEMON; wait $DAEMON
check "daemon exits 0 on SIGTERM" $?
finish
