#!/usr/bin/env bash
# Responder role (issue 5): a kernel MPTCP client beyond the uplinks, the
# gateway with nfq-mptcp, a plain TCP server on the LAN:
#   S (kernel MPTCP: 10.41.12.2 by link 1, subflow endpoint 10.41.22.2 by link 2)
#     -- L1 / L2 -- G (nfq-mptcp, uplinks g1 g2) -- C (plain TCP server 10.41.1.1:5003)
# S connects to C's own address; the SYN enters G on an uplink, so G takes the
# responder role: C answers plain TCP and G becomes its MPTCP end, accepts
# S's joins (to C's address, and to G's uplink 2 address it announces) and
# reassembles the data in order for C. Checks: 64 MiB each way, sha256
# equal; C sees S's own address; S's kernel counters show MPTCP (MP_CAPABLE
# SYN/ACK received, no fallback) and joins answered (MP_JOIN SYN/ACK
# received), ADD_ADDR received; both uplinks carried data each way; the
# daemon's counters. Then a native MPTCP server on C: the connection passes
# untouched (C's kernel answers with its own MP_CAPABLE).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
make_multipath_testbed rsp
C=$MP_C; G=$MP_G; S=$MP_S
start_mp_daemon "daemon starts with two uplinks" --uplink g1 --uplink g2
bg_ns $C "$WORK/server.log" python3 "$XFER" serve --port 5003 --log "$WORK/peers.log"
wait_for 5 in_ns $C sh -c "ss -ltnH 'sport = :5003' | grep -q ."
in_ns $S sysctl -qw net.mptcp.enabled=1
ip -n $S mptcp limits set subflow 8 add_addr_accepted 8
ip -n $S mptcp endpoint add $MP_S_ADDR2 dev s2 subflow
in_ns $S nstat -n >/dev/null
nstat_value() { in_ns $1 nstat -az "$2" | awk -v k="$2" '$1 == k {print $2}'; }

# One 64 MiB transfer from S (MODE up: S sends; down: C sends) and the
# bytes each uplink carried (DIR: the gateway's rx or tx counters).
transfer() { # MODE DIR SEED WHAT
    local mode=$1 dir=$2 a1 a2 b1 b2
    a1=$(if_bytes $G g1 $dir); a2=$(if_bytes $G g2 $dir)
    in_ns $S python3 "$XFER" $mode $MP_C_ADDR 5003 $((64 << 20)) $3 --mptcp --timeout 120 >"$WORK/$mode.json" 2>&1
    check "$4: 64 MiB $mode, sha256 equal" $? "$(head -c 300 "$WORK/$mode.json")"
    b1=$(( $(if_bytes $G g1 $dir) - a1 )); b2=$(( $(if_bytes $G g2 $dir) - a2 ))
    echo "RESULT responder_${mode}_mbit=$(python3 -c "import json; d=json.load(open('$WORK/$mode.json')); print(round(d['bytes']*8/d['seconds']/1e6, 2))" 2>/dev/null) uplink1_${dir}_bytes=$b1 uplink2_${dir}_bytes=$b2"
    [ $b1 -gt 10000000 ] && [ $b2 -gt 5000000 ]; check "both uplinks carried the $mode transfer" $? "g1 $b1 B, g2 $b2 B"
}
transfer up rx 21 "kernel MPTCP client -> nfq-mptcp -> plain server"
transfer down tx 22 "plain server -> nfq-mptcp -> kernel MPTCP client"

grep -q "^$MP_S_ADDR1\b" "$WORK/peers.log"; check "the server sees the client's own address" $? "$(sort -u "$WORK/peers.log" | tr '\n' ' ')"
capable=$(nstat_value $S MPTcpExtMPCapableSYNACKRX); fb=$(nstat_value $S MPTcpExtMPCapableFallbackSYNACK)
[ "${capable:-0}" -ge 2 ] && [ "${fb:-0}" = 0 ]; check "client kernel: MPTCP negotiated, no fallback" $? "MPCapableSYNACKRX=$capable MPCapableFallbackSYNACK=${fb:-0}"
jsa=$(nstat_value $S MPTcpExtMPJoinSynAckRx); jhf=$(nstat_value $S MPTcpExtMPJoinSynAckHMacFailure)
[ "${jsa:-0}" -ge 2 ] && [ "${jhf:-0}" = 0 ]; check "client kernel: joins answered with a good HMAC" $? "MPJoinSynAckRx=$jsa MPJoinSynAckHMacFailure=${jhf:-0}"
aa=$(nstat_value $S MPTcpExtAddAddr)
[ "${aa:-0}" -ge 1 ]; check "client kernel: ADD_ADDR received (the gateway's uplink 2)" $? "AddAddr=$aa"
in_ns $S nstat -az | grep -E "MPTcpExt(MPCapable|MPJoin|AddAddr|Echo|DSS|Infinite|Fallback|DataCsum|OFO|Duplicate)" | awk '$2 != 0' | sed 's/^/  S: /'

# A native MPTCP server on the LAN: passed untouched.
bg_ns $C "$WORK/native.log" python3 "$XFER" serve --mptcp --port 5004
wait_for 5 in_ns $C sh -c "ss -ltnH 'sport = :5004' | grep -q ."
in_ns $C nstat -n >/dev/null
in_ns $S python3 "$XFER" up $MP_C_ADDR 5004 $((4 << 20)) 23 --mptcp --timeout 60 >"$WORK/native.json" 2>&1
check "MPTCP-native LAN server: 4 MiB up, sha256 equal" $? "$(head -c 300 "$WORK/native.json")"
ncap=$(nstat_value $C MPTcpExtMPCapableSYNRX)
[ "${ncap:-0}" -ge 1 ]; check "the native server's kernel negotiated MPTCP itself" $? "MPCapableSYNRX=$ncap"

kill -USR1 $DAEMON; sleep 0.5
stats=$(grep 'responder_syns' "$WORK/daemon.log" | tail -1)
echo "daemon: $stats"
syns=$(grep -o "responder_syns=[0-9]*" <<<"$stats" | cut -d= -f2); acc=$(grep -o "joins_accepted=[0-9]*" <<<"$stats" | cut -d= -f2)
nat=$(grep -o "passed_native=[0-9]*" <<<"$stats" | cut -d= -f2)
[ "${syns:-0}" -ge 3 ] && [ "${acc:-0}" -ge 2 ] && [ "${nat:-0}" -ge 1 ]; check "daemon: responder connections, joins accepted, native one passed" $? "responder_syns=$syns joins_accepted=$acc passed_native=$nat"
kill -TERM $DAEMON; wait $DAEMON; check "daemon exits 0 on SIGTERM" $?
finish
