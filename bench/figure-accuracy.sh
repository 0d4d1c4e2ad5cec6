#!/usr/bin/env bash
# Figure "accuracy": does the emulated link do what it is configured to do?
# Per uplink (A's uplink address -> B's address on that link, no design
# running, gateways only route):
#   rtt_configured_ms   2 x the configured one-way delay (linkemu)
#   rtt_min_ms / rtt_avg_ms / rtt_max_ms   idle ping, 20 x every 50 ms
#   rtt_loaded_avg_ms / rtt_loaded_max_ms  ping (every 100 ms) during the upload below
#   rate_configured_mbit   the tbf rate
#   rate_measured_mbit / rate_measured_down_mbit   plain TCP goodput A -> B / B -> A
#                          (xfer.py, sha256 checked; 10 s each, 3 s quick)
#   rate_ratio             measured (up) / configured: TCP/IP headers cost ~4.4 % of
#                          a 1514-byte frame (1448 payload bytes), so ~0.95 is exact
#   linkemu_cpu_pct        the link's linkemu process CPU (% of one core) during the upload
# Designs: link1, link2, and link1-200mbit (tbf 200mbit on link 1, same 20 ms
# delay: linkemu keeping up at 100+ Mbit/s).
set -uo pipefail
export NFQ_MPTCP_OPTIONAL=1
. "$(dirname "$0")/lib.sh"
QUICK=${BENCH_QUICK:-0}
SECS=10; [ "$QUICK" = 1 ] && SECS=3
FIG=accuracy
FAST_RATE=${BENCH_FAST_RATE:-200mbit}

bench_testbed || exit 1
A=$BENCH_A B=$BENCH_B
bg_ns $B "$WORK/acc-server.log" python3 "$XFER" serve --port 5001
wait_for 5 grep -q listening "$WORK/acc-server.log" || { echo "FAIL - no server on B"; exit 1; }

rtt() { # NS DST COUNT INTERVAL -> "min avg max" (ms) or nothing
    in_ns $1 ping -n -q -c $3 -i $4 -W 2 $2 2>/dev/null | sed -nE 's|.*= ([0-9.]+)/([0-9.]+)/([0-9.]+)/.*|\1 \2 \3|p'
}

measure() { # DESIGN K DST RATE DELAY_MS EMU_PID
    local d=$1 k=$2 dst=$3 rate=$4 delay=$5 emu=$6 r out rc c0 c1 t0 t1 pingf=$WORK/ping-$1.txt
    local cfg_mbit; cfg_mbit=$(python3 -c "import re,sys; m=re.fullmatch(r'([0-9.]+)([kmg]?)bit','$rate'); print(float(m[1])*{'':1e-6,'k':1e-3,'m':1,'g':1e3}[m[2]])")
    bench_sample $FIG $d 1 rtt_configured_ms $((2 * delay)) ms
    bench_sample $FIG $d 1 rate_configured_mbit $cfg_mbit Mbit/s
    r=($(rtt $A $dst 20 0.05))
    if [ ${#r[@]} = 3 ]; then
        bench_sample $FIG $d 1 rtt_min_ms ${r[0]} ms; bench_sample $FIG $d 1 rtt_avg_ms ${r[1]} ms; bench_sample $FIG $d 1 rtt_max_ms ${r[2]} ms
    else
        bench_error $FIG $d 1 "no ping answer from $dst over link $k"
    fi
    # Upload with a ping alongside; linkemu's CPU meanwhile.
    in_ns $A ping -n -q -c $((SECS * 10 - 5)) -i 0.1 -W 2 $dst >"$pingf" 2>&1 &
    local pp=$!
    c0=$(bench_cpu_gw $emu); t0=$(date +%s.%N)
    out=$(in_ns $A python3 "$XFER" up $dst 5001 0 $((10 + k)) --duration $SECS --timeout 60); rc=$?
    c1=$(bench_cpu_gw $emu); t1=$(date +%s.%N)
    wait $pp
    local m; m=$(bench_mbit "$out")
    if [ $rc = 0 ] && [ -n "$m" ]; then
        bench_sample $FIG $d 1 rate_measured_mbit $m Mbit/s
        bench_sample $FIG $d 1 rate_ratio $(python3 -c "print(round($m / $cfg_mbit, 3))") 1
        bench_sample $FIG $d 1 linkemu_cpu_pct $(python3 -c "print(round(100 * ($c1 - $c0) / ($t1 - $t0), 1))") %
    else
        bench_error $FIG $d 1 "upload over link $k failed: $(echo "$out" | head -c 200)"
    fi
    r=($(sed -nE 's|.*= ([0-9.]+)/([0-9.]+)/([0-9.]+)/.*|\1 \2 \3|p' "$pingf"))
    if [ ${#r[@]} = 3 ]; then
        bench_sample $FIG $d 1 rtt_loaded_avg_ms ${r[1]} ms; bench_sample $FIG $d 1 rtt_loaded_max_ms ${r[2]} ms
        echo "INFO accuracy $d loaded ping: $(grep -E 'packets transmitted' "$pingf")"
    fi
    out=$(in_ns $A python3 "$XFER" down $dst 5001 0 $((20 + k)) --duration $SECS --timeout 60); rc=$?
    m=$(bench_mbit "$out")
    if [ $rc = 0 ] && [ -n "$m" ]; then
        bench_sample $FIG $d 1 rate_measured_down_mbit $m Mbit/s
    else
        bench_error $FIG $d 1 "download over link $k failed: $(echo "$out" | head -c 200)"
    fi
}

echo "INFO accuracy ping A -> B across each link (idle: 20 x 50 ms; loaded: every 100 ms during the upload); plain TCP A -> B ${SECS} s each way"
measure link1 1 $MP_S_ADDR1 $MP_RATE1 $MP_DELAY1 $MP_EMU_PID1
measure link2 2 $MP_S_ADDR2 $MP_RATE2 $MP_DELAY2 $MP_EMU_PID2
# The fast case: link 1 at $FAST_RATE, same delay.
SLOW_RATE=$MP_RATE1
MP_RATE1=$FAST_RATE; bench_shape on
echo "INFO accuracy link1-$FAST_RATE: tbf $FAST_RATE burst ${TBF_BURST:-32kb} latency ${TBF_LATENCY:-50ms}, linkemu ${MP_DELAY1} ms"
measure link1-$FAST_RATE 1 $MP_S_ADDR1 $FAST_RATE $MP_DELAY1 $MP_EMU_PID1
MP_RATE1=$SLOW_RATE; bench_shape on
echo "INFO accuracy linkemu log link 1: $(tail -1 "$WORK/linkemu-1.log")"
exit 0
