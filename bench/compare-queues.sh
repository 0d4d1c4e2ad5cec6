#!/usr/bin/env bash
# --queues N on the unshaped bench testbed (no rate limit, no delay: the CPU
# is the limit): FLOWS iperf3 flows at once from as many client addresses
# (10.41.1.1, .4, .5, ...: the low bits spread them over the threads), each
# to its own iperf3 server on D, up then down; per design the sum of the
# flows' rates. Designs: plain1 (plain forwarding, the same flows), nfq1 and
# nfq2 (one gateway against the kernel's MPTCP on D; both gateways) with
# each N in QUEUES. Interleaved per repetition, so every figure of one
# repetition saw the same machine; compare within a repetition.
#
#   [REPS=3] [SECS=5] [FLOWS=4] [QUEUES="1 2"] [DESIGNS="nfq1 nfq2"] [STATS=1 [DUMP=1]] bash bench/compare-queues.sh
#
# Output: RESULT rep=N DESIGN queues=Q MODE gbit=.. flows=.. min_flow_gbit=..
# and the gateways' CPU seconds per GB (not part of BENCHMARKS.md).
set -uo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-3}
SECS=${SECS:-5}
FLOWS=${FLOWS:-4}
QUEUES=${QUEUES:-1 2}
DESIGNS=${DESIGNS:-nfq1 nfq2}
command -v iperf3 >/dev/null || { echo "FAIL - iperf3 is not installed"; exit 1; }
export NFQ_MPTCP=$(readlink -f "${NFQ_MPTCP:-.build/release/nfq-mptcp}")
export BENCH_ROOT=$PWD REPS SECS FLOWS QUEUES DESIGNS
# (The inner script is a file: netns/lib.sh runs itself again through $0.)
INNER=$(mktemp /tmp/compare-queues.XXXXXX.sh)
trap 'rm -f "$INNER"' EXIT
cat >"$INNER" <<'INNER_EOF'
cd "$BENCH_ROOT"
set -uo pipefail
. bench/lib.sh
bench_testbed >/dev/null || exit 1
bench_shape off
addrs=(10.41.1.1); for i in $(seq 2 $FLOWS); do addrs+=(10.41.1.$((i + 2))); done
for a in "${addrs[@]:1}"; do in_ns $BENCH_C ip addr add $a/24 dev c0; done
_BENCH_BASE=$(_bench_state) # (the addresses are part of the base state)
run() { # DESIGN QUEUES REP
    local d=$1 q=$2 rep=$3
    BENCH_NFQ_ARGS="--queues $q"; [ $d = plain1 ] && BENCH_NFQ_ARGS=
    design_start $d || { echo "FAIL - rep=$rep $d queues=$q: design_start failed"; design_stop; return; }
    local wrap=(); [ $d = nfq1 ] && wrap=(mptcpize run)
    local k
    for k in $(seq $FLOWS); do _bench_bg $BENCH_D iperf3-$k "${wrap[@]}" iperf3 -s -p $((5210 + k)); done
    for k in $(seq $FLOWS); do wait_for 10 in_ns $BENCH_D sh -c "ss -ltnH \"sport = :$((5210 + k))\" | grep -q ."; done
    local mode
    for mode in up down; do
        local rev=(); [ $mode = down ] && rev=(-R)
        local g0; g0=$(bench_cpu_gw)
        local pids=()
        for k in $(seq $FLOWS); do
            in_ns $BENCH_C timeout $((SECS + 30)) iperf3 -c $BENCH_DST -p $((5210 + k)) -B ${addrs[$((k - 1))]} -t $SECS -J "${rev[@]}" \
                >"$WORK/flow-$k.json" 2>&1 &
            pids+=($!)
        done
        if [ "${DUMP:-0}" = 1 ]; then # the gateways' connections halfway through (in their logs)
            sleep $((SECS / 2)); for p in $BENCH_GW_PIDS; do kill -USR1 $p; done
        fi
        wait "${pids[@]}"
        local g1; g1=$(bench_cpu_gw)
        python3 - "$rep" "$d" "$q" "$mode" "$g0" "$g1" "$WORK"/flow-*.json <<PY
import json, sys
rep, d, q, mode, g0, g1 = sys.argv[1:7]
rates, total = [], 0
for f in sys.argv[7:]:
    try:
        e = json.load(open(f))["end"]["sum_received"]; rates.append(e["bits_per_second"] / 1e9); total += e["bytes"]
    except Exception:
        print("FAIL - rep=%s %s queues=%s %s: a flow failed (%s)" % (rep, d, q, mode, f)); sys.exit()
cpu = round((float(g1) - float(g0)) / (total / 1e9), 3) if d != "plain1" else ""
print("RESULT rep=%s %s queues=%s %s gbit=%.3f flows=%d min_flow_gbit=%.3f cpu_s_per_gb=%s" % (rep, d, q, mode, sum(rates), len(rates), min(rates), cpu))
PY
        rm -f "$WORK"/flow-*.json
    done
    if [ "${STATS:-0}" = 1 ]; then
        for p in $BENCH_GW_PIDS; do kill -USR1 $p; done; sleep 1
        for f in "$BENCH_LOGS"/*nfq-*; do [ -f "$f" ] && echo "# $(basename "$f"): $(grep "\] stats" "$f" | tail -$q)"; done
        [ "${DUMP:-0}" = 1 ] && for f in "$BENCH_LOGS"/*nfq-*; do echo "## $(basename "$f")"; grep -vE "\] stats" "$f" | grep -A400 "multipath state" | sed "s/^/## /"; done
        rm -f "$BENCH_LOGS"/*nfq-*
    fi
    design_stop
}
for rep in $(seq $REPS); do
    run plain1 1 $rep
    for d in $DESIGNS; do for q in $QUEUES; do run $d $q $rep; done; done
done
INNER_EOF
bash "$INNER"
