#!/usr/bin/env bash
# Figures "tput_shaped", "tput_unshaped" and "cost": goodput C -> D (up) and
# D -> C (down) per design, shaped (40 + 10 Mbit/s, 20 ms each way) then
# unshaped (no tbf, no linkemu: CPU-bound), BENCH_REPS repetitions.
# Order: interleaved — repetition 1 runs every design, then repetition 2 ...
# (design_start/design_stop around each design's pair of transfers), so
# ratios can be taken pairwise within a repetition.
# Metrics per transfer (xfer.py --duration, sha256 checked):
#   up_mbit / down_mbit          bytes moved x 8 / seconds (connect to the
#                                server's answer), Mbit/s
#   up_uplink2_share / down_...  share of the data direction's bytes that
#                                crossed uplink 2 (A's g1/g2 counters), 1
# Unshaped only, figure "cost" (CPU seconds per GB moved, GB = 1e9 bytes):
#   cpu_s_per_gb_gw    utime+stime of BENCH_GW_PIDS (threads, descendants)
#                      during the transfers; 0 where the design runs no
#                      gateway program (the kernel's forwarding and MPTCP
#                      run in softirq context, counted only in _all)
#   cpu_s_per_gb_all   the machine's busy CPU seconds (/proc/stat, all cores,
#                      all namespaces: endpoints, gateways, kernel — and
#                      whatever else runs on the machine meanwhile)
#   both for up+down together, and _up / _down separately.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
QUICK=${BENCH_QUICK:-0}
REPS=${BENCH_REPS:-5}; [ "$QUICK" = 1 ] && REPS=1
DESIGNS=${BENCH_DESIGNS:-$BENCH_ALL_DESIGNS}
if [ "$QUICK" = 1 ]; then SHAPED_S=4 UNSHAPED_S=3; else SHAPED_S=10 UNSHAPED_S=5; fi

bench_testbed || exit 1
echo "INFO throughput order interleaved (each repetition runs every design: $DESIGNS), $REPS repetitions; shaped ${SHAPED_S} s, unshaped ${UNSHAPED_S} s per transfer"
echo "INFO cost cpu_s_per_gb_all counts every busy CPU second of the machine ($(nproc) cores) during the transfers, other users' included"
calc() { python3 -c "print($1)"; }

for shape in on off; do
    bench_shape $shape
    if [ $shape = on ]; then FIG=tput_shaped SECS=$SHAPED_S; else FIG=tput_unshaped SECS=$UNSHAPED_S; fi
    for rep in $(seq $REPS); do
        for d in $DESIGNS; do
            if ! design_start $d; then
                bench_error $FIG $d $rep "design_start $d failed"
                design_stop; continue
            fi
            declare -A GW=() ALL=() GB=()
            ok=1
            for mode in up down; do
                seed=$((rep * 10 + ${#mode})) # up 2, down 4
                b0=($(bench_uplink_bytes)); g0=$(bench_cpu_gw); a0=$(bench_cpu_all)
                out=$(bench_xfer $mode $SECS $seed); rc=$?
                a1=$(bench_cpu_all); g1=$(bench_cpu_gw); b1=($(bench_uplink_bytes))
                m=$(bench_mbit "$out")
                if [ $rc != 0 ] || [ -z "$m" ]; then
                    bench_error $FIG $d $rep "$mode transfer failed (rc $rc): $(echo "$out" | head -c 300)"
                    ok=0; continue
                fi
                bench_sample $FIG $d $rep ${mode}_mbit $m Mbit/s
                # Data direction at A: up = tx on g1/g2, down = rx.
                if [ $mode = up ]; then u1=$((b1[1] - b0[1])) u2=$((b1[3] - b0[3])); else u1=$((b1[0] - b0[0])) u2=$((b1[2] - b0[2])); fi
                bench_sample $FIG $d $rep ${mode}_uplink2_share $(calc "round($u2 / max($u1 + $u2, 1), 3)") 1
                GW[$mode]=$(calc "$g1 - $g0"); ALL[$mode]=$(calc "$a1 - $a0")
                GB[$mode]=$(echo "$out" | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["bytes"] / 1e9)')
            done
            if [ $shape = off ] && [ $ok = 1 ]; then
                for mode in up down; do
                    bench_sample cost $d $rep cpu_s_per_gb_gw_$mode $(calc "round(${GW[$mode]} / ${GB[$mode]}, 3)") s/GB
                    bench_sample cost $d $rep cpu_s_per_gb_all_$mode $(calc "round(${ALL[$mode]} / ${GB[$mode]}, 3)") s/GB
                done
                bench_sample cost $d $rep cpu_s_per_gb_gw $(calc "round((${GW[up]} + ${GW[down]}) / (${GB[up]} + ${GB[down]}), 3)") s/GB
                bench_sample cost $d $rep cpu_s_per_gb_all $(calc "round((${ALL[up]} + ${ALL[down]}) / (${GB[up]} + ${GB[down]}), 3)") s/GB
            fi
            design_stop
        done
    done
done
bench_shape on
exit 0
