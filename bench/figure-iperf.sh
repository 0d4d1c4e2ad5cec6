#!/usr/bin/env bash
# Figures "tput_iperf" and "tput_gbit": goodput of one TCP flow measured by
# iperf3 (C -> D up, D -> C down with -R), per design, BENCH_REPS
# repetitions, interleaved as in figure-throughput.sh: unshaped (no tbf, no
# delay: the CPU is the limit), then both uplinks shaped to 1 Gbit/s with no
# added delay (bench_shape gbit). xfer.py, which checks sha256, tops out
# near 2.4 Gbit/s itself, so the designs are compared here, where the load
# generator is not the limit; integrity stays with the sha256 transfers
# (figure-throughput.sh, the netns suite).
# Metrics per transfer:
#   up_gbit / down_gbit    iperf3's receiver-side goodput, Gbit/s
#   *_uplink2_share        share of the data direction's bytes on uplink 2
#                          (A's g1/g2 counters), tput_gbit only
#   cpu_s_per_gb_gw        utime+stime of the design's gateway programs per
#                          GB moved (1e9 bytes), up and down together
#                          (tput_iperf only; none where the design runs no
#                          gateway program)
#   syscalls_per_gb_gw     system calls of the same programs (every thread)
#                          per GB moved, up and down together, counted by
#                          perf on raw_syscalls:sys_enter (tput_iperf only;
#                          none without perf)
set -uo pipefail
. "$(dirname "$0")/lib.sh"
QUICK=${BENCH_QUICK:-0}
REPS=${BENCH_REPS:-3}; [ "$QUICK" = 1 ] && REPS=1
DESIGNS=${BENCH_DESIGNS:-$BENCH_ALL_DESIGNS}
SECS=${BENCH_IPERF_SECONDS:-5}; [ "$QUICK" = 1 ] && SECS=3
command -v iperf3 >/dev/null || { echo "FAIL - iperf3 is not installed"; exit 1; }

bench_testbed || exit 1
calc() { python3 -c "print($1)"; }

for shape in off gbit; do
bench_shape $shape
if [ $shape = off ]; then FIG=tput_iperf; else FIG=tput_gbit; fi
echo "INFO $FIG: iperf3, one flow, ${SECS} s per transfer, $REPS repetitions, designs: $DESIGNS"
for rep in $(seq $REPS); do
    for d in $DESIGNS; do
        if ! design_start $d; then
            bench_error $FIG $d $rep "design_start $d failed"
            design_stop; continue
        fi
        wrap=()
        case $d in kernel|nfq1) wrap=(mptcpize run);; esac
        _bench_bg $BENCH_D iperf3 "${wrap[@]}" iperf3 -s -p 5201
        srv=$BENCH_LAST_LOG
        if ! wait_for 10 in_ns $BENCH_D sh -c "ss -ltnH 'sport = :5201' | grep -q ."; then
            bench_error $FIG $d $rep "iperf3 server did not start: $(head -c 300 "$srv")"
            design_stop; continue
        fi
        cwrap=(); [ "$BENCH_CLIENT_MPTCP" = 1 ] && cwrap=(mptcpize run)
        gw=0 gb=0 sc=0 scok=1
        for mode in up down; do
            rev=(); [ $mode = down ] && rev=(-R)
            g0=$(bench_cpu_gw); b0=($(bench_uplink_bytes))
            [ $FIG = tput_iperf ] && [ -n "$BENCH_GW_PIDS" ] && bench_syscalls_start
            out=$(in_ns $BENCH_C timeout $((SECS + 30)) "${cwrap[@]}" iperf3 -c $BENCH_DST -p 5201 -t $SECS -J "${rev[@]}" 2>&1)
            rc=$?
            bench_syscalls_stop
            g1=$(bench_cpu_gw); b1=($(bench_uplink_bytes))
            if [ -n "$BENCH_SYSCALLS" ]; then sc=$((sc + BENCH_SYSCALLS)); else scok=0; fi
            r=$(echo "$out" | python3 -c 'import json,sys
try:
    e = json.load(sys.stdin)["end"]["sum_received"]
    print("%.3f %d" % (e["bits_per_second"] / 1e9, e["bytes"]))
except Exception:
    pass' 2>/dev/null)
            if [ $rc != 0 ] || [ -z "$r" ]; then
                bench_error $FIG $d $rep "$mode iperf3 failed (rc $rc): $(echo "$out" | grep -m1 -i error | head -c 300)"
                continue
            fi
            set -- $r
            bench_sample $FIG $d $rep ${mode}_gbit $1 Gbit/s
            if [ $FIG = tput_gbit ]; then
                if [ $mode = up ]; then u1=$((b1[1] - b0[1])) u2=$((b1[3] - b0[3])); else u1=$((b1[0] - b0[0])) u2=$((b1[2] - b0[2])); fi
                bench_sample $FIG $d $rep ${mode}_uplink2_share $(calc "round($u2 / max($u1 + $u2, 1), 3)") 1
            fi
            gw=$(calc "$gw + $g1 - $g0"); gb=$(calc "$gb + $2 / 1e9")
        done
        if [ $FIG = tput_iperf ] && [ -n "$BENCH_GW_PIDS" ] && [ "$(calc "$gb > 0")" = True ]; then
            bench_sample $FIG $d $rep cpu_s_per_gb_gw $(calc "round($gw / $gb, 3)") s/GB
            [ $scok = 1 ] && bench_sample $FIG $d $rep syscalls_per_gb_gw $(calc "round($sc / $gb)") 1/GB
        fi
        design_stop
    done
done
done
echo "INFO iperf done"
