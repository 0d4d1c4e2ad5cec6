#!/usr/bin/env bash
# Figure "setup": what a connection costs before and while it carries requests,
# and what a client sees when the far end is not there.
#
# Shaped testbed (bench/lib.sh: 40 + 10 Mbit/s, 20 ms one-way each). For each
# design in BENCH_DESIGNS (default plain1 kernel proxy nfq1 nfq2), BENCH_REPS
# repetitions (BENCH_QUICK=1: 1) of, from C to $BENCH_DST (D):
#   bench/httptime.py new  ... 8080 --count 20 (quick 5): a new connection per GET
#     -> connect_ms   median time until connect() returned
#        new_get_ms   median time from connect() to the complete response
#   bench/httptime.py persistent ... 8080 --count 20 (quick 5): one keep-alive connection
#     -> persistent_get_ms   median time per GET (request sent -> response complete)
#   bench/httptime.py probe, once per repetition (the truth test):
#     closed port D:8099 (nothing listens; D's kernel answers RST)
#       -> closed_port (the outcome word) and closed_port_ms (until the client knew)
#     unreachable host 10.41.30.99 (D's subnet, no such host; B's neighbour
#       resolution fails and B's kernel answers ICMP host unreachable, ~3 s;
#       B's neighbour entry for it is deleted before each probe)
#       -> unreachable_host (word) and unreachable_host_ms
# Outcome words (bench/httptime.py): refused, unreachable, timeout,
# false-success-reset, false-success-eof, false-success-hang, false-success-data, ok.
# Clients use IPPROTO_MPTCP when the design says so (BENCH_CLIENT_MPTCP=1).
# Environment: BENCH_PROBE_WAIT (s, default 8): the probe's connect timeout and
# its wait for an answer after a successful connect().
set -uo pipefail
. "$(dirname "$0")/lib.sh"
HT="$BENCH_DIR/httptime.py"
QUICK=${BENCH_QUICK:-0}
REPS=${BENCH_REPS:-5}; [ "$QUICK" = 1 ] && REPS=1
DESIGNS=${BENCH_DESIGNS:-plain1 kernel proxy nfq1 nfq2}
COUNT=20; [ "$QUICK" = 1 ] && COUNT=5
WAIT=${BENCH_PROBE_WAIT:-8}
CLOSED_PORT=8099
UNREACH=10.41.30.99
FIG=setup

bench_testbed || exit 1
bench_shape on

# json KEY.PATH <<< JSON  (empty when absent/null)
jget() { python3 -c 'import json,sys
try:
    v = json.loads(sys.stdin.readline())
    for k in sys.argv[1].split("."): v = v[k]
    print("" if v is None else v)
except Exception: pass' "$1"; }

# The unreachable host: B has no neighbour for it. Check once, with routing
# only (the base state), what a plain client sees and how soon; when B's
# kernel does not report it within the wait, make B reject it explicitly.
# Each probe of it starts from no neighbour entry on B (a resolution left
# running by an earlier probe's retransmitted SYN would answer it early).
forget_unreach() { ip -n $BENCH_B neigh del $UNREACH dev s0 2>/dev/null; return 0; }
forget_unreach
pre=$(in_ns $BENCH_C python3 "$HT" probe $UNREACH 8080 --wait $WAIT)
pre_out=$(jget outcome <<<"$pre"); pre_ms=$(jget outcome_ms <<<"$pre")
echo "INFO setup_unreachable_base routing only (no design): $UNREACH:8080 -> $pre_out after $pre_ms ms (B's neighbour resolution of $UNREACH fails: $(in_ns $BENCH_B sysctl -n net.ipv4.neigh.s0.mcast_solicit) ARP probes $(in_ns $BENCH_B sysctl -n net.ipv4.neigh.s0.retrans_time_ms) ms apart, then ICMP host unreachable)"
REJECT=0
if [ "$pre_out" != unreachable ]; then
    REJECT=1
    in_ns $BENCH_B iptables -I FORWARD -d $UNREACH -j REJECT --reject-with icmp-host-unreachable
    in_ns $BENCH_B iptables -I OUTPUT -d $UNREACH -j REJECT --reject-with icmp-host-unreachable
    echo "INFO setup_unreachable_reject B's kernel did not report $UNREACH unreachable within ${WAIT} s ($pre_out): added on B iptables FORWARD and OUTPUT -d $UNREACH -j REJECT --reject-with icmp-host-unreachable for the truth test"
    _BENCH_BASE=$(_bench_state) # (bench/lib.sh's base state, so design_stop does not report the rules)
fi
echo "INFO setup_method new/persistent: $COUNT GETs of D's bench/httpd.py (100-byte body) per repetition, the median is the sample; truth test: one probe each of $BENCH_D_ADDR:$CLOSED_PORT (closed) and $UNREACH:8080 (no such host) per repetition, connect timeout and answer wait ${WAIT} s"

for d in $DESIGNS; do
    if ! design_start $d; then
        for r in $(seq $REPS); do echo "SAMPLE $FIG $d $r error 1 1"; done
        echo "FAIL - $d: design_start failed"
        design_stop
        continue
    fi
    mp=(); [ "$BENCH_CLIENT_MPTCP" = 1 ] && mp=(--mptcp)
    echo "INFO setup_design $d client ${mp[*]:-plain-TCP} -> $BENCH_DST; gateway PIDs ${BENCH_GW_PIDS:-none}"
    for r in $(seq $REPS); do
        ok=1
        new=$(in_ns $BENCH_C python3 "$HT" new $BENCH_DST 8080 --count $COUNT "${mp[@]}"); rc=$?
        echo "$d rep $r new: $new"
        if [ $rc = 0 ]; then
            echo "SAMPLE $FIG $d $r connect_ms $(jget connect.median <<<"$new") ms"
            echo "SAMPLE $FIG $d $r new_get_ms $(jget complete.median <<<"$new") ms"
        else
            ok=0; echo "FAIL - $d rep $r: new connections: $(jget errors <<<"$new" | head -c 300)"
        fi
        per=$(in_ns $BENCH_C python3 "$HT" persistent $BENCH_DST 8080 --count $COUNT "${mp[@]}"); rc=$?
        echo "$d rep $r persistent: $per"
        if [ $rc = 0 ]; then
            echo "SAMPLE $FIG $d $r persistent_get_ms $(jget all.median <<<"$per") ms"
        else
            ok=0; echo "FAIL - $d rep $r: persistent connection: $(jget errors <<<"$per" | head -c 300)"
        fi
        [ $ok = 1 ] || echo "SAMPLE $FIG $d $r error 1 1"
        for t in "closed_port $BENCH_DST $CLOSED_PORT" "unreachable_host $UNREACH 8080"; do
            set -- $t
            [ $1 = unreachable_host ] && forget_unreach
            pr=$(in_ns $BENCH_C python3 "$HT" probe $2 $3 --wait $WAIT "${mp[@]}")
            echo "$d rep $r probe $1: $pr"
            o=$(jget outcome <<<"$pr")
            if [ -z "$o" ]; then
                echo "SAMPLE $FIG $d $r error 1 1"; echo "FAIL - $d rep $r: probe $1 did not run: $pr"; continue
            fi
            echo "SAMPLE $FIG $d $r $1 $o 1"
            echo "SAMPLE $FIG $d $r ${1}_ms $(jget outcome_ms <<<"$pr") ms"
        done
    done
    design_stop
done
if [ $REJECT = 1 ]; then
    in_ns $BENCH_B iptables -D FORWARD -d $UNREACH -j REJECT --reject-with icmp-host-unreachable 2>/dev/null
    in_ns $BENCH_B iptables -D OUTPUT -d $UNREACH -j REJECT --reject-with icmp-host-unreachable 2>/dev/null
fi
exit 0
