#!/usr/bin/env bash
# Figure "failover": an upload C -> D, uplink 1 cut beyond A (cut_uplink 1:
# L1 drops everything) and restored, per design (BENCH_DESIGNS, default
# plain1 kernel proxy nfq1 nfq2; plain2 runs once at the start to measure the
# surviving link). Shaped. Full: 40 s transfer, cut at 10 s, restored at 25 s;
# quick: 16 s, 4 s, 10 s. Repetitions interleaved (rep 1: every design, ...).
# Times are taken from the sender's start (its first 100 ms trace row - 0.1 s);
# throughput is the receiver's (D's server trace, 100 ms rows, by unix time).
# Metrics (figure failover):
#   surviving_link_mbit (design plain2, rep 1)  plain TCP upload over uplink 2
#                         alone, 10 s (quick 4 s), measured once
#   intact              1 when the transfer completed with sha256 equal, else 0
#   recovery_s          from the cut to the start of the first 1 s window (of
#                       100 ms rows, ending before the restore) whose average
#                       exceeds 0.8 x surviving_link_mbit; `never` if none
#   stall_s             the longest run of 100 ms rows with less than a tenth of
#                       surviving_link_mbit, from the cut to the sender's stop
#   during_cut_mbit     average from 2 s after the cut to the restore
#   after_restore_mbit  average from 3 s after the restore to the sender's stop
#   mean_mbit           the whole transfer (bytes / seconds, the client's JSON)
# The 100 ms series: $BENCH_OUT/failover-series.csv (design,rep,t_s,mbit; t_s
# from the sender's start, the end of each 100 ms row; appended).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
QUICK=${BENCH_QUICK:-0}
REPS=${BENCH_REPS:-5}; [ "$QUICK" = 1 ] && REPS=1
if [ "$QUICK" = 1 ]; then DUR=16 CUT=4 RESTORE=10 SURV_S=4; else DUR=40 CUT=10 RESTORE=25 SURV_S=10; fi
DESIGNS=${BENCH_DESIGNS:-plain1 kernel proxy nfq1 nfq2}
DESIGNS=$(echo " $DESIGNS " | sed 's/ plain2 / /g')
FIG=failover
OUT=${BENCH_OUT:-$WORK}
SERIES=$OUT/failover-series.csv
[ -s "$SERIES" ] || echo "design,rep,t_s,mbit" >"$SERIES"

bench_testbed || exit 1
bench_shape on
echo "INFO failover upload C -> D, ${DUR} s, uplink 1 cut (L1 drops everything) at ${CUT} s, restored at ${RESTORE} s; $REPS repetitions interleaved over:$DESIGNS"

# The surviving link alone.
SURV=
if design_start plain2; then
    out=$(bench_xfer up $SURV_S 1); rc=$?
    SURV=$(bench_mbit "$out")
    [ $rc = 0 ] && [ -n "$SURV" ] || { SURV=; bench_error $FIG plain2 1 "surviving-link upload failed: $(echo "$out" | head -c 200)"; }
else
    bench_error $FIG plain2 1 "design_start plain2 failed"
fi
design_stop
[ -n "$SURV" ] && bench_sample $FIG plain2 1 surviving_link_mbit $SURV Mbit/s
echo "INFO failover recovery threshold 0.8 x ${SURV:-?} Mbit/s (uplink 2 alone, plain TCP)"

summary() { # SERVER_TRACE T0 T_CUT T_RESTORE T_STOP SURV DESIGN REP SERIES
    python3 - "$@" <<'PY'
import sys
path, t0, tcut, trest, tstop = sys.argv[1], *map(float, sys.argv[2:6])
surv = float(sys.argv[6]) if sys.argv[6] else None
design, rep, series = sys.argv[7], sys.argv[8], sys.argv[9]
rows = []
for l in open(path):
    if l[:1].isdigit():
        r = l.split(); rows.append((float(r[0]), int(r[4])))
with open(series, "a") as f:
    for ep, b in rows:
        f.write("%s,%s,%.1f,%.2f\n" % (design, rep, ep - t0, b * 8 / 0.1 / 1e6))
mbit = lambda sel: sum(b for _, b in sel) * 8 / 1e6 / (len(sel) * 0.1) if sel else 0.0
out = {}
out["during_cut_mbit"] = "%.2f" % mbit([r for r in rows if tcut + 2 < r[0] <= trest])
out["after_restore_mbit"] = "%.2f" % mbit([r for r in rows if trest + 3 < r[0] <= tstop])
if surv:
    lim = surv * 1e6 / 8 * 0.1 * 0.1      # bytes per 100 ms row: a tenth of the surviving link
    best = run = 0
    for ep, b in rows:
        if tcut < ep <= tstop:
            run = run + 1 if b < lim else 0; best = max(best, run)
    out["stall_s"] = "%.1f" % (best * 0.1)
    cut_rows = [r for r in rows if tcut < r[0] <= trest]
    rec = "never"
    for i in range(len(cut_rows) - 9):
        w = cut_rows[i:i + 10]
        if mbit(w) > 0.8 * surv:
            rec = "%.1f" % max(0.0, w[0][0] - 0.1 - tcut); break
    out["recovery_s"] = rec
print(" ".join("%s=%s" % kv for kv in out.items()))
PY
}

seed=100
for rep in $(seq $REPS); do
    for d in $DESIGNS; do
        if ! design_start $d; then bench_error $FIG $d $rep "design_start $d failed"; design_stop; continue; fi
        seed=$((seed + 1))
        ctrace=$WORK/fo-$d-$rep.ctrace json=$WORK/fo-$d-$rep.json
        touch "$WORK/fo-mark"; sleep 0.05
        bench_xfer up $DUR $seed --trace "$ctrace" --timeout $((DUR + 60)) >"$json" 2>&1 &
        xp=$!; PIDS+=($xp)
        # The cut and the restore are timed from the connection's appearance on D
        # (the traces are written only at the end); the figures use the
        # sender's own start (its trace's first row - 0.1 s) and the actual
        # cut/restore times.
        wait_for 20 sh -c "ip netns exec $BENCH_D ss -tnH state established '( sport = :5002 )' | grep -q ."
        tc0=$(date +%s.%N)
        xc=$(pgrep -P $xp); PIDS+=($xc) # the client itself (an interrupted run kills it)
        sleep $(python3 -c "print(max(0, $tc0 + $CUT - $(date +%s.%N)))"); cut_uplink 1; tcut=$(date +%s.%N)
        sleep $(python3 -c "print(max(0, $tc0 + $RESTORE - $(date +%s.%N)))"); restore_uplink 1; trest=$(date +%s.%N)
        wait $xp; rc=$?
        bench_forget $xp $xc
        t0=$(awk '/^[0-9]/ {printf "%.3f", $1 - 0.1; exit}' "$ctrace" 2>/dev/null)
        [ -n "$t0" ] || t0=$tc0
        echo "INFO failover $d rep $rep: cut at $(python3 -c "print(round($tcut - $t0, 2))") s, restored at $(python3 -c "print(round($trest - $t0, 2))") s (from the sender's start)"
        out=$(head -1 "$json")
        strace=$(find "$BENCH_TRACE_DIR" -name 'up-*.trace' -newer "$WORK/fo-mark" -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2)
        bench_sample $FIG $d $rep intact $([ $rc = 0 ] && echo 1 || echo 0) 1
        [ $rc = 0 ] || echo "INFO failover $d rep $rep: the transfer did not complete intact: $(head -c 300 "$json")"
        m=$(bench_mbit "$out"); [ -n "$m" ] && bench_sample $FIG $d $rep mean_mbit $m Mbit/s
        if [ -z "$strace" ]; then
            bench_error $FIG $d $rep "no receiver trace on D"
        else
            res=$(summary "$strace" $t0 $tcut $trest $(python3 -c "print($t0 + $DUR)") "$SURV" $d $rep "$SERIES")
            for kv in $res; do bench_sample $FIG $d $rep ${kv%%=*} ${kv#*=} $(case ${kv%%=*} in *_mbit) echo Mbit/s;; recovery_s|stall_s) echo s;; esac); done
            echo "INFO failover $d rep $rep per-second Mbit/s: $(awk -v t0=$t0 '/^[0-9]/ {s=int($1-0.1-t0); b[s]+=$5; if(s>m)m=s} END {for(i=0;i<=m;i++) printf "%.1f ", b[i]*8/1e6}' "$strace")"
        fi
        rm -f "$WORK/fo-mark"
        design_stop
    done
done
exit 0
