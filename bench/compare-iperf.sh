#!/usr/bin/env bash
# Two nfq-mptcp binaries compared on the unshaped bench testbed (no rate
# limit, no delay: the CPU is the limit), interleaved per repetition so that
# both see the same machine: one iperf3 flow up (C -> D) and down (-R) per
# design, and for each transfer the gateway programs' CPU seconds and system
# calls (perf stat on raw_syscalls:sys_enter, every thread) per GB moved.
#
#   BEFORE=/path/old-nfq-mptcp AFTER=.build/release/nfq-mptcp \
#       [REPS=3] [SECS=5] [DESIGNS="nfq1 nfq2"] [BASELINES="plain1 proxy"] \
#       bash bench/compare-iperf.sh
#
# Designs as in bench/lib.sh (nfq1: nfq-mptcp on A against the kernel's
# MPTCP on D; nfq2: on A and B, federation). BASELINES run once per
# repetition (with AFTER's binary; they do not use it). STATS=1 also prints
# each gateway's counters after each design. Output: one line per transfer,
#   RESULT WHICH rep=N DESIGN MODE gbit=.. bytes=.. cpu_s_per_gb=.. syscalls_per_gb=..
# (not part of BENCHMARKS.md: for before/after figures in a commit or note).
set -uo pipefail
cd "$(dirname "$0")/.."
: "${BEFORE:?BEFORE=path of the old nfq-mptcp binary}"
AFTER=${AFTER:-.build/release/nfq-mptcp}
REPS=${REPS:-3}
SECS=${SECS:-5}
DESIGNS=${DESIGNS:-nfq1 nfq2}
BASELINES=${BASELINES:-plain1 proxy}
command -v iperf3 >/dev/null || { echo "FAIL - iperf3 is not installed"; exit 1; }
command -v perf >/dev/null || echo "note - perf is not installed: no system call counts"

# run WHICH BINARY REP DESIGNS...: a testbed of its own per call (the
# inner script is a file: netns/lib.sh runs itself again through $0).
INNER=$(mktemp /tmp/compare-iperf.XXXXXX.sh)
trap 'rm -f "$INNER"' EXIT
run() {
    local which=$1 bin=$2 rep=$3; shift 3
    NFQ_MPTCP=$(readlink -f "$bin") WHICH=$which REP=$rep SECS=$SECS STATS=${STATS:-0} bash "$INNER" "$@"
}
cat >"$INNER" <<'EOF'
cd "$BENCH_ROOT"
set -uo pipefail
. bench/lib.sh
bench_testbed >/dev/null || exit 1
bench_shape off
for d in "$@"; do
    design_start $d || { echo "FAIL - $WHICH rep=$REP $d: design_start failed"; design_stop; continue; }
    wrap=(); case $d in kernel|nfq1) wrap=(mptcpize run);; esac
    cwrap=(); [ "$BENCH_CLIENT_MPTCP" = 1 ] && cwrap=(mptcpize run)
    _bench_bg $BENCH_D iperf3 "${wrap[@]}" iperf3 -s -p 5201
    wait_for 10 in_ns $BENCH_D sh -c "ss -ltnH 'sport = :5201' | grep -q ."
    for mode in up down; do
        rev=(); [ $mode = down ] && rev=(-R)
        g0=$(bench_cpu_gw)
        [ -n "$BENCH_GW_PIDS" ] && bench_syscalls_start
        out=$(in_ns $BENCH_C timeout $((SECS + 30)) "${cwrap[@]}" iperf3 -c $BENCH_DST -p 5201 -t $SECS -J "${rev[@]}" 2>&1)
        BENCH_SYSCALLS=; [ -n "$BENCH_GW_PIDS" ] && bench_syscalls_stop
        g1=$(bench_cpu_gw)
        r=$(echo "$out" | python3 -c 'import json,sys
try:
    e = json.load(sys.stdin)["end"]["sum_received"]; print("%.3f %d" % (e["bits_per_second"] / 1e9, e["bytes"]))
except Exception:
    pass')
        [ -n "$r" ] || { echo "FAIL - $WHICH rep=$REP $d $mode: iperf3 failed"; continue; }
        set -- $r
        echo "RESULT $WHICH rep=$REP $d $mode gbit=$1 bytes=$2" \
            "cpu_s_per_gb=$(python3 -c "print(round(($g1 - $g0) / ($2 / 1e9), 3))")" \
            "syscalls_per_gb=${BENCH_SYSCALLS:+$(python3 -c "print(round($BENCH_SYSCALLS / ($2 / 1e9)))")}"
    done
    if [ "$STATS" = 1 ]; then
        for p in $BENCH_GW_PIDS; do kill -USR1 $p; done; sleep 1
        for f in "$BENCH_LOGS"/*nfq-*; do [ -f "$f" ] && echo "# $(basename "$f"): $(grep '\] stats' "$f" | tail -1)"; done
        rm -f "$BENCH_LOGS"/*nfq-*
    fi
    design_stop
done
EOF
export BENCH_ROOT=$PWD

for rep in $(seq $REPS); do
    run before "$BEFORE" $rep $DESIGNS
    run after "$AFTER" $rep $BASELINES $DESIGNS
done
