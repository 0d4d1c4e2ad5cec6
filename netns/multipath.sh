#!/usr/bin/env bash
# Multipath through nfq-mptcp against the Linux kernel (issue 4):
#   plain TCP client C -- gateway G (nfq-mptcp, uplinks g1 and g2) --
#   link routers L1 (40 Mbit/s, 20 ms) and L2 (10 Mbit/s, 35 ms) -- kernel MPTCP server S
# Measures, in one run: plain TCP over each uplink alone (routing only), then
# one plain TCP connection through nfq-mptcp in each direction; checks the
# server kernel accepted MP_JOIN subflows, both uplinks carried the data,
# sha256 equal; then a link cut (uplink 1 down 10 s .. 20 s into a 30 s
# transfer) with a per-second trace, and 1% random loss on one uplink.
# DURATION (default 20 s) sets each throughput measurement's length.
# Debugging: ONLY=throughput stops after the throughput part (printing qdisc,
# server and client TCP counters; see watch_transfer for what it saves each
# second of a transfer); ONLY=up skips the download failover; ONLY=failover
# runs only the two failovers (FOPCAP=1: a capture of uplink 2 for their first 14 s). UPTRACE=1 saves the
# transfers' 100 ms traces (up.trace, down.trace), UPPCAP=1 a capture of uplink 1 (first 7 s),
# DOWNPCAP=1 captures of g0, g1, g2 and c0 during the download; with
# KEEP_WORK=1 the work directory stays for reading them.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-20}
make_multipath_testbed mpt
C=$MP_C; G=$MP_G; S=$MP_S

mbit() { python3 -c "import json,sys; d=json.loads(sys.stdin.readline()); print(round(d['bytes']*8/d['seconds']/1e6, 2))"; }
# Per-direction throughput of a timed transfer: xfer JSON -> Mbit/s (0 on failure).
xfer_rate() { # NS MODE HOST PORT SECONDS [extra]
    local ns=$1 mode=$2 host=$3 port=$4 secs=$5; shift 5
    in_ns $ns python3 "$XFER" $mode $host $port 0 7 --duration $secs --timeout $((secs + 60)) "$@" >"$WORK/last.json" 2>"$WORK/last.err"
    local rc=$?
    [ $rc = 0 ] && mbit <"$WORK/last.json" || echo 0
    return $rc
}

# --- Plain TCP over each uplink alone (no translator, gateway only routes).
if [ "${ONLY:-}" != failover ]; then
bg_ns $S "$WORK/plain-server.log" python3 "$XFER" serve --port 5001
wait_for 5 in_ns $S sh -c "ss -ltnH 'sport = :5001' | grep -q ."
plain1_up=$(xfer_rate $C up $MP_S_ADDR1 5001 $DURATION); plain1_down=$(xfer_rate $C down $MP_S_ADDR1 5001 $DURATION)
plain2_up=$(xfer_rate $C up $MP_S_ADDR2 5001 $DURATION); plain2_down=$(xfer_rate $C down $MP_S_ADDR2 5001 $DURATION)
echo "RESULT plain_uplink1_up_mbit=$plain1_up plain_uplink1_down_mbit=$plain1_down plain_uplink2_up_mbit=$plain2_up plain_uplink2_down_mbit=$plain2_down"
fi

# --- nfq-mptcp on G, kernel MPTCP server on S.
start_mp_daemon "daemon starts with two uplinks" --uplink g1 --uplink g2
start_mp_server --log "$WORK/peers.log"

# --- Failover: uplink 1 cut (beyond the gateway) 10 s .. 20 s into a 30 s
# download and upload. Upload: the translator is the sender, its stall must
# stay under 1 s. Download: the kernel server is the sender and decides (its
# own end-to-end MPTCP stalls 1.1-1.9 s here, netns/mp-baseline.sh).
# A new subflow joins from the restored uplink within about 2 s: found dead by
# our RTOs (upload) or by unanswered keepalive probes on the silent subflow
# (download, where the kernel sends; kernel to kernel the stale subflow mostly
# stays unused for the rest of the run).
failover() { # MODE
    local limit=1.0; [ $1 = down ] && limit=2.0
    [ -n "${FOPCAP:-}" ] && { in_ns $G timeout 14 tcpdump -i g2 -s 128 -B 32768 -w "$WORK/failover-$1-g2.pcap" 2>/dev/null & }
    cut_transfer failover $1 cut_uplink restore_uplink 10 20 30 $limit 9
}
if [ "${ONLY:-}" = failover ]; then failover down; failover up; finish; exit; fi
nstat_reset() { in_ns $S nstat -n >/dev/null; }
# During a transfer: the engine's per-subflow state in the daemon log (SIGUSR1)
# mid-transfer; with ONLY=throughput every second, with both ends' ss and the
# gateway's NFQUEUE counters saved to $WORK/{server-ss,client-ss,nfq-stats}-NAME.txt.
watch_transfer() { # NAME
    if [ "${ONLY:-}" != throughput ]; then ( sleep $((DURATION / 2)); kill -USR1 $DAEMON 2>/dev/null ) & return; fi
    ( for t in $(seq 1 $((DURATION - 1))); do
        sleep 1; kill -USR1 $DAEMON 2>/dev/null
        { echo "== t=$t"; in_ns $S ss -tniM; } >>"$WORK/server-ss-$1.txt"
        { echo "== t=$t"; in_ns $C ss -tni dst $MP_S_ADDR1; } >>"$WORK/client-ss-$1.txt"
        { echo "== t=$t"; in_ns $G cat /proc/net/netfilter/nfnetlink_queue; } >>"$WORK/nfq-stats-$1.txt"
    done ) &
}
nstat_reset
up1=$(if_bytes $G g1 tx); up2=$(if_bytes $G g2 tx)
[ -n "${UPPCAP:-}" ] && { in_ns $G timeout 7 tcpdump -i g1 -s 120 -B 16384 -w "$WORK/up-g1.pcap" 2>/dev/null & sleep 0.5; }
mark_up=$(wc -l <"$WORK/daemon.log")
watch_transfer up
mp_up=$(xfer_rate $C up $MP_S_ADDR1 5002 $DURATION ${UPTRACE:+--trace "$WORK/up.trace"}); rc_up=$?
check "upload through nfq-mptcp: sha256 equal" $rc_up "$(cat "$WORK/last.json" "$WORK/last.err" | head -c 400)"
d1=$(( $(if_bytes $G g1 tx) - up1 )); d2=$(( $(if_bytes $G g2 tx) - up2 ))
echo "RESULT nfq_up_mbit=$mp_up uplink1_tx_bytes=$d1 uplink2_tx_bytes=$d2"
joins=$(in_ns $S nstat -az MPTcpExtMPJoinSynRx | awk '/MPJoinSynRx/ {print $2}')
jacks=$(in_ns $S nstat -az MPTcpExtMPJoinAckRx | awk '/MPJoinAckRx/ {print $2}')
[ "${joins:-0}" -ge 1 ] && [ "${jacks:-0}" -ge 1 ]; check "server kernel accepted an MP_JOIN subflow" $? "MPJoinSynRx=$joins MPJoinAckRx=$jacks"
[ $d1 -gt 10000000 ] && [ $d2 -gt 5000000 ]; check "both uplinks carried the upload" $? "g1 $d1 B, g2 $d2 B"
sum_up=$(python3 -c "print(round($plain1_up + $plain2_up, 2))")
python3 -c "import sys; sys.exit(0 if $mp_up >= 0.9 * $sum_up else 1)"
agg_up=$?
detail="$mp_up of $sum_up Mbit/s ($(python3 -c "print(round($mp_up / max($sum_up, 0.001), 3))"))"
# The gateway sends the upload: a shortfall with the signature of the
# defect issue 16 tracks (lib.sh) is reported as that known issue.
signature=$([ $agg_up -ne 0 ] && tail -n +$((mark_up + 1)) "$WORK/daemon.log" | coupled_stall_signature)
if [ -n "$signature" ]; then
    known "upload reaches 90% of plain uplink1 + uplink2" "$detail; issue 16: $signature"
else
    check "upload reaches 90% of plain uplink1 + uplink2" $agg_up "$detail"
fi

dn1=$(if_bytes $G g1 rx); dn2=$(if_bytes $G g2 rx)
if [ -n "${DOWNPCAP:-}" ]; then
    for x in "$G g0" "$G g1" "$G g2" "$C c0"; do set -- $x
        in_ns $1 timeout $((DURATION + 3)) tcpdump -i $2 -s 128 -B 32768 -w "$WORK/down-$2.pcap" 2>/dev/null &
    done; sleep 0.5
fi
watch_transfer down
mp_down=$(xfer_rate $C down $MP_S_ADDR1 5002 $DURATION ${UPTRACE:+--trace "$WORK/down.trace"}); rc_down=$?
check "download through nfq-mptcp: sha256 equal" $rc_down "$(cat "$WORK/last.json" "$WORK/last.err" | head -c 400)"
e1=$(( $(if_bytes $G g1 rx) - dn1 )); e2=$(( $(if_bytes $G g2 rx) - dn2 ))
echo "RESULT nfq_down_mbit=$mp_down uplink1_rx_bytes=$e1 uplink2_rx_bytes=$e2"
[ $e1 -gt 10000000 ] && [ $e2 -gt 5000000 ]; check "both uplinks carried the download" $? "g1 $e1 B, g2 $e2 B"
sum_down=$(python3 -c "print(round($plain1_down + $plain2_down, 2))")
python3 -c "import sys; sys.exit(0 if $mp_down >= 0.9 * $sum_down else 1)"
check "download reaches 90% of plain uplink1 + uplink2" $? "$mp_down of $sum_down Mbit/s ($(python3 -c "print(round($mp_down / max($sum_down, 0.001), 3))"))"
echo "RESULT aggregation_up=$(python3 -c "print(round($mp_up / max($sum_up, 0.001), 3))") aggregation_down=$(python3 -c "print(round($mp_down / max($sum_down, 0.001), 3))")"
grep -q "^$MP_C_ADDR\b" "$WORK/peers.log"; check "the server sees the client's own address" $? "$(sort -u "$WORK/peers.log" | head -3 | tr '\n' ' ')"

if [ "${ONLY:-}" = throughput ]; then
    for L in $MP_L1 $MP_L2; do in_ns $L tc -s qdisc show | grep -A2 tbf; done
    in_ns $S nstat -az | grep -E "TCPTimeouts|TCPLossProbes|TCPSackRecovery|TCPLostRetransmit|TCPSpuriousRTOs|TCPDSACKRecv|TcpRetransSegs|TCPFastRetrans|TCPSlowStartRetrans|TCPLossUndo|TCPSACKReorder|TCPRcvQDrop|MPTcpExtDuplicateData|MPTcpExtOFO|TCPDSACKIgnored|TCPSackShifted|TCPTSReorder|TCPAbortOnData" | sed "s/^/S: /"
    in_ns $C nstat -az | grep -E "TcpRetransSegs|TCPTimeouts|TCPSpuriousRTOs|TCPLossUndo|TCPFastRetrans|TCPSackRecovery|TCPRenoRecovery|TCPDSACK|TCPTSReorder|TCPRenoReorder|TCPSACKReorder|TcpExtTCPLostRetransmit|TCPLoss |OFODrop|PAWS|RcvQDrop|PruneCalled|RcvPruned|OfoPruned|ZeroWindowDrop|BacklogDrop" | sed "s/^/C: /"
    finish; exit
fi

[ "${ONLY:-}" = up ] || failover down
failover up

# --- 1% random loss on uplink 2 (both directions, after the link emulator).
for L in $MP_L2; do
    in_ns $L iptables -I FORWARD 1 -m statistic --mode random --probability 0.01 -j DROP
done
in_ns $C python3 "$XFER" up $MP_S_ADDR1 5002 $((24 << 20)) 11 --timeout 120 >"$WORK/loss-up.json" 2>&1
check "1% loss on uplink 2: 24 MiB upload intact" $? "$(head -c 300 "$WORK/loss-up.json")"
in_ns $C python3 "$XFER" down $MP_S_ADDR1 5002 $((24 << 20)) 12 --timeout 120 >"$WORK/loss-down.json" 2>&1
check "1% loss on uplink 2: 24 MiB download intact" $? "$(head -c 300 "$WORK/loss-down.json")"
in_ns $MP_L2 iptables -D FORWARD -m statistic --mode random --probability 0.01 -j DROP

# --- The daemon's view, and a clean exit.
kill -USR1 $DAEMON; sleep 0.5
stats=$(grep 'subflows_opened' "$WORK/daemon.log" | tail -1)
echo "daemon: $stats"
kill -TERM $DAEMON; wait $DAEMON; rc=$?
check "daemon exits 0 on SIGTERM" $rc
in_ns $G iptables -t raw -S | grep -q NFQUEUE; [ $? = 1 ]; check "rules removed at exit" $?
for k in reinjected_bytes retransmits; do echo "RESULT daemon_$k=$(grep -o "$k=[0-9]*" <<<"$stats" | cut -d= -f2)"; done
finish
