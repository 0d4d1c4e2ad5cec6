#!/usr/bin/env bash
# Kernel reference figures on the two-uplink testbed (make_multipath_testbed
# in lib.sh): uplink 1 40 Mbit/s, 20 ms each way; uplink 2 10 Mbit/s, 35 ms
# each way (RATE1/RATE2/DELAY1/DELAY2/LOSS1/LOSS2 change them).
#   1. plain TCP from the client C through G (routing only, no queue) over
#      uplink 1 alone (to S's 10.41.12.2) and uplink 2 alone (to 10.41.22.2),
#      each direction, DURATION seconds (default 20);
#   2. the Linux kernel's own MPTCP end to end over both uplinks: a client on
#      G (IPPROTO_MPTCP, a subflow endpoint on uplink 2) to an MPTCP server on
#      S, each direction; aggregation ratio = MPTCP / (plain1 + plain2);
#   3. kernel failover: a FAILOVER_SECONDS (30) transfer, uplink 1 cut beyond
#      the gateway (everything dropped in L1) at 10 s and restored at 20 s;
#      the per-second throughput and the stall (longest time with less than
#      10% of uplink 2's plain rate after the cut), each direction; the other
#      figures are described at trace_report.
# No nfq-mptcp here: this is what the translator is to be compared with.
# Checks: sha256 equal on every transfer, a plain transfer stays on its
# uplink, both uplinks carry MPTCP data (G's interface counters), S saw the
# joins (MPJoinSynRx/MPJoinAckRx). Prints RESULT key=value lines.
#
# Receive buffers: the testbed sets net.ipv4.tcp_rmem="4096 131072 33554432"
# on C, G and S. With the default 6 MiB maximum the kernel's MPTCP receiver
# over these unequal paths sometimes stalls for good (out-of-order data from
# the slow subflow fills the receive buffer); the larger maximum avoids it.
set -uo pipefail
export NFQ_MPTCP_OPTIONAL=1   # the daemon is not used here
. "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-20}
FAILOVER_SECONDS=${FAILOVER_SECONDS:-30}; CUT_AT=${CUT_AT:-10}; RESTORE_AT=${RESTORE_AT:-20}

make_multipath_testbed mp
echo "# testbed: uplink 1 $MP_RATE1 ${MP_DELAY1} ms loss $MP_LOSS1; uplink 2 $MP_RATE2 ${MP_DELAY2} ms loss $MP_LOSS2"
mkdir -p "$WORK/strace"
bg_ns $MP_S "$WORK/server-plain.log" python3 "$XFER" serve --port 5002
bg_ns $MP_S "$WORK/server-mptcp.log" python3 "$XFER" serve --mptcp --port 5001 --trace-dir "$WORK/strace"
wait_for 5 grep -q listening "$WORK/server-plain.log"; wait_for 5 grep -q listening "$WORK/server-mptcp.log"

field() { echo "$1" | json_field "$2" 2>/dev/null; }
# counters NS IF...: "rx tx" bytes per interface, space separated
counters() { local ns=$1 i; shift; for i in "$@"; do echo -n "$(if_bytes $ns $i rx) $(if_bytes $ns $i tx) "; done; }
delta() { python3 -c 'import sys; a=sys.argv[1].split(); b=sys.argv[2].split(); print(" ".join(str(int(y)-int(x)) for x,y in zip(a,b)))' "$1" "$2"; }
ratio() { python3 -c 'import sys; a,b,c=map(float,sys.argv[1:]); print(round(a/(b+c),3) if b+c>0 else 0)' "$@"; }

# --- 1. plain TCP over one uplink ------------------------------------------
declare -A PLAIN
for k in 1 2; do
    dst=$MP_S_ADDR1; [ $k = 2 ] && dst=$MP_S_ADDR2
    for dir in up down; do
        before=$(counters $MP_G g1 g2)
        out=$(in_ns $MP_C python3 "$XFER" $dir $dst 5002 0 $((10 + k)) --duration $DURATION --timeout 120); rc=$?
        d=($(delta "$before" "$(counters $MP_G g1 g2)"))   # g1rx g1tx g2rx g2tx
        PLAIN[$k$dir]=$(field "$out" mbit_s); PLAIN[$k$dir]=${PLAIN[$k$dir]:-0}
        check "plain TCP over uplink $k, $dir, ${DURATION} s: sha256 equal" $rc "${PLAIN[$k$dir]} Mbit/s"
        [ $rc = 0 ] || echo "  $out"
        # Data direction at G: up = tx on the uplink, down = rx.
        if [ $dir = up ]; then on=${d[$(( (k-1)*2 + 1 ))]}; off=${d[$(( (2-k)*2 + 1 ))]}; else on=${d[$(( (k-1)*2 ))]}; off=${d[$(( (2-k)*2 ))]}; fi
        [ "$on" -gt 1000000 ] && [ "$off" -lt $((on / 100)) ]
        check "plain TCP over uplink $k, $dir: the data crossed uplink $k only" $? "g$k $on bytes, other uplink $off"
        echo "RESULT plain${k}_${dir}_mbit_s=${PLAIN[$k$dir]}"
    done
done

# The receiver's 100 ms trace: the client's own for a download, the server's
# (named after the client's address and port) for an upload.
# receiver_trace DIR CLIENT_JSON CLIENT_TRACE
receiver_trace() {
    if [ $1 = down ]; then echo "$3"; else
        echo "$WORK/strace/up-$MP_G_ADDR1-$(echo "$2" | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["local"][1])' 2>/dev/null).trace"; fi
}
# trace_report FILE SURVIVOR_MBIT [CUT_EPOCH RESTORE_EPOCH STOP_EPOCH]: key=value words.
#   per_second  Mbit/s in each second of the transfer (receiver's view)
#   min_1s_mbit_s  the lowest 1 s throughput before the last second (no cut)
# With a cut (threshold = 10% of SURVIVOR_MBIT, uplink 2's plain rate):
#   stall_s         longest run of 100 ms intervals under the threshold, from
#                   the cut to the end of the transfer
#   cut_stall_s     the same, only from the cut to the restore
#   during_cut_mbit_s / after_restore_mbit_s  average rates (after: from 2 s
#                   after the restore to the end)
#   recovery_s      from the cut to the end of the last 1 s window (within the
#                   cut) under half SURVIVOR_MBIT: from then on until the
#                   restore at least half the surviving link's rate
#   uplink1_back_s  from the restore to the end of the first 1 s window above
#                   2 x SURVIVOR_MBIT (uplink 1 is carrying again) before the
#                   sender stopped (STOP_EPOCH); -1: not before then
trace_report() {
    python3 - "$@" <<'PY'
import sys
path, surv = sys.argv[1], float(sys.argv[2])
cut = float(sys.argv[3]) if len(sys.argv) > 3 else None
restore = float(sys.argv[4]) if len(sys.argv) > 4 else None
stop = float(sys.argv[5]) if len(sys.argv) > 5 else None
try:
    rows = [l.split() for l in open(path) if not l.startswith("#")]
except OSError:
    rows = []
rows = [(float(r[0]), int(r[4])) for r in rows if len(r) >= 5]
if not rows:
    print("per_second=none"); sys.exit()
t_first = rows[0][0] - 0.1
persec = {}
for ep, b in rows:
    i = int(ep - t_first - 1e-6); persec[i] = persec.get(i, 0) + b
n = max(persec) + 1
mb = [persec.get(i, 0) * 8 / 1e6 for i in range(n)]
out = {"per_second": ",".join("%.1f" % x for x in mb)}
win = lambda seq, i: sum(b for ep, b in seq[i - 10:i]) * 8 / 1e6  # 1 s window ending at row i-1
if cut is None:
    out["min_1s_mbit_s"] = "%.1f" % min(mb[:-1] or mb)
else:
    lim = surv * 0.1 * 1e6 / 8 * 0.1
    def longest(a, z):
        best = run = 0
        for ep, b in rows:
            if a < ep <= z:
                run = run + 1 if b < lim else 0; best = max(best, run)
        return round(best * 0.1, 1)
    def rate(a, z):
        sel = [b for ep, b in rows if a < ep <= z]
        return round(sum(sel) * 8 / 1e6 / (len(sel) * 0.1), 1) if sel else 0
    out["stall_s"] = longest(cut, 1e18)
    out["cut_stall_s"] = longest(cut, restore)
    out["during_cut_mbit_s"] = rate(cut, restore)
    out["after_restore_mbit_s"] = rate(restore + 2, rows[-1][0])
    cr = [(ep, b) for ep, b in rows if cut < ep <= restore]
    rec = 0.0
    for i in range(10, len(cr) + 1):
        if win(cr, i) < 0.5 * surv:
            rec = round(cr[i - 1][0] - cut, 1)
    out["recovery_s"] = rec
    ar = [(ep, b) for ep, b in rows if restore < ep <= stop]
    back = -1
    for i in range(10, len(ar) + 1):
        if win(ar, i) > 2 * surv:
            back = round(ar[i - 1][0] - restore, 1); break
    out["uplink1_back_s"] = back
print(" ".join("%s=%s" % kv for kv in out.items()))
PY
}
kv() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# --- 2. the kernel's MPTCP over both uplinks --------------------------------
mp_kernel_endpoints
echo "  G endpoints: $(ip -n $MP_G mptcp endpoint show | tr '\n' ';')  S limits: $(ip -n $MP_S mptcp limits show | tr '\n' ' ')"
declare -A KMP; seed=20
for dir in up down; do
    seed=$((seed + 1))
    js0=$(nstat_value $MP_S MPTcpExtMPJoinSynRx); ja0=$(nstat_value $MP_S MPTcpExtMPJoinAckRx)
    before=$(counters $MP_G g1 g2)
    out=$(in_ns $MP_G python3 "$XFER" $dir $MP_S_ADDR1 5001 0 $seed --mptcp --duration $DURATION --timeout 120 --trace "$WORK/kmp-$dir.trace"); rc=$?
    d=($(delta "$before" "$(counters $MP_G g1 g2)"))
    KMP[$dir]=$(field "$out" mbit_s); KMP[$dir]=${KMP[$dir]:-0}
    check "kernel MPTCP G -> S, $dir, ${DURATION} s: sha256 equal" $rc "${KMP[$dir]} Mbit/s"
    [ $rc = 0 ] || echo "  $out"
    if [ $dir = up ]; then b1=${d[1]}; b2=${d[3]}; else b1=${d[0]}; b2=${d[2]}; fi
    tot=$((b1 + b2))
    [ "$b1" -gt $((tot / 20)) ] && [ "$b2" -gt $((tot / 20)) ]
    check "kernel MPTCP $dir: both uplinks carry data (G interface counters)" $? "g1 $b1 bytes, g2 $b2 bytes"
    js=$(( $(nstat_value $MP_S MPTcpExtMPJoinSynRx) - js0 )); ja=$(( $(nstat_value $MP_S MPTcpExtMPJoinAckRx) - ja0 ))
    [ "$js" -ge 1 ] && [ "$ja" -ge 1 ]
    check "kernel MPTCP $dir: S saw the join" $? "MPJoinSynRx +$js, MPJoinAckRx +$ja"
    rep=$(trace_report "$(receiver_trace $dir "$out" "$WORK/kmp-$dir.trace")" "${PLAIN[2$dir]}")
    echo "  kernel MPTCP $dir, Mbit/s per second (receiver's view): $(kv "$rep" per_second)"
    r=$(ratio "${KMP[$dir]}" "${PLAIN[1$dir]}" "${PLAIN[2$dir]}")
    echo "RESULT kernel_mptcp_${dir}_mbit_s=${KMP[$dir]} aggregation_${dir}_ratio=$r uplink1_share_${dir}=$(python3 -c "print(round($b1/max($tot,1),3))") kernel_mptcp_${dir}_min_1s_mbit_s=$(kv "$rep" min_1s_mbit_s)"
done

# --- 3. kernel failover ------------------------------------------------------
for dir in down up; do
    seed=$((seed + 1))
    js0=$(nstat_value $MP_S MPTcpExtMPJoinSynRx)
    bg_ns $MP_G "$WORK/failover-$dir.json" python3 "$XFER" $dir $MP_S_ADDR1 5001 0 $seed --mptcp \
        --duration $FAILOVER_SECONDS --timeout 120 --trace "$WORK/failover-$dir.trace"
    XP=$LAST_PID; t0=$(date +%s.%N)
    sleep $(python3 -c "print(max(0, $t0 + $CUT_AT - $(date +%s.%N)))"); cut_uplink 1; t_cut=$(date +%s.%N)
    sleep $(python3 -c "print(max(0, $t0 + $RESTORE_AT - $(date +%s.%N)))"); restore_uplink 1; t_restore=$(date +%s.%N)
    wait $XP; rc=$?
    out=$(cat "$WORK/failover-$dir.json")
    check "kernel MPTCP failover $dir (uplink 1 cut ${CUT_AT}-${RESTORE_AT} s): sha256 equal" $rc "$(field "$out" bytes) bytes, $(field "$out" mbit_s) Mbit/s average"
    [ $rc = 0 ] || echo "  $out"
    js=$(( $(nstat_value $MP_S MPTcpExtMPJoinSynRx) - js0 ))
    rep=$(trace_report "$(receiver_trace $dir "$out" "$WORK/failover-$dir.trace")" "${PLAIN[2$dir]}" $t_cut $t_restore $(python3 -c "print($t0 + $FAILOVER_SECONDS)"))
    echo "  failover $dir, Mbit/s per second (cut at ${CUT_AT} s, restored at ${RESTORE_AT} s, sender stops at ${FAILOVER_SECONDS} s; receiver's view): $(kv "$rep" per_second)"
    res="failover_${dir}_sha256_ok=$([ $rc = 0 ] && echo 1 || echo 0) failover_${dir}_mbit_s=$(field "$out" mbit_s)"
    for k in stall_s cut_stall_s during_cut_mbit_s recovery_s uplink1_back_s after_restore_mbit_s; do res+=" failover_${dir}_$k=$(kv "$rep" $k)"; done
    echo "RESULT $res failover_${dir}_new_joins=$js"
done
for c in MPTcpExtMPJoinSynRx MPTcpExtMPJoinAckRx MPTcpExtMPCapableSYNRX MPTcpExtMPCapableFallbackACK MPTcpExtRcvPruned MPTcpExtOFOQueue MPTcpExtDuplicateData; do
    echo -n "  S $c=$(nstat_value $MP_S $c)"
done; echo
for k in 1 2; do kill -TERM $(eval echo \$MP_EMU_PID$k); done; sleep 0.3
echo "  linkemu: $(tail -1 "$WORK/linkemu-1.log") | $(tail -1 "$WORK/linkemu-2.log")"
finish
