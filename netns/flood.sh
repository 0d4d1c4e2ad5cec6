#!/usr/bin/env bash
# SYN floods through the gateway (issue 13): a flood may cost the flood, not
# the connections. On the multipath test-bed (two uplinks: 40 + 10 Mbit/s,
# 20 / 35 ms), nfq-mptcp with its defaults (--max-half-open 16384,
# --handshake-timeout 30 s):
#   A. initiator role: 10 000 SYN/s for 20 s from the LAN (flood.py in C's
#      namespace: random sources in 100.64.0.0/10, random ports) to the
#      kernel MPTCP server's port;
#   B. responder role: 10 000 SYN/s for 20 s with MP_CAPABLE (1e 04 01 01)
#      from uplink 1's link router to a plain TCP server on the LAN.
# For each: a 10 s transfer through the gateway without the flood, then the
# same during it (at least 50% of the rate, sha256 equal); 20 new
# connections opened during the flood, all translated (the daemon's mptcp
# counter, the kernel's MPCapableSYNRX / MPCapableSYNACKRX); the SYN rate
# achieved (the sender's count and an iptables counter on the gateway,
# at least 8 000/s); the daemon's RSS (below RSS_LIMIT_MB, default 300);
# conns_open never above the half-open bound; and after the flood, the
# half-open state reclaimed within 60 s (conns_open back to its value
# before, give or take the test's own 21 connections in their time-wait;
# half_open_evicted / half_open_expired counted).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
FLOOD="$REPO/netns/flood.py"
RATE=${FLOOD_RATE:-10000}; FLOOD_S=${FLOOD_S:-20}; XFER_S=10
RSS_LIMIT_MB=${RSS_LIMIT_MB:-300}; MAX_HALF_OPEN=16384
make_multipath_testbed fld
C=$MP_C; G=$MP_G; S=$MP_S; L1=$MP_L1
start_mp_server
bg_ns $C "$WORK/lan-server.log" python3 "$XFER" serve --port 5003
wait_for 5 in_ns $C sh -c "ss -ltnH 'sport = :5003' | grep -q ."
start_mp_daemon "daemon starts with two uplinks" --uplink g1 --uplink g2
sleep 0.5

stats_now() {
    local n; n=$(grep -c '\] stats' "$WORK/daemon.log")
    kill -USR1 $DAEMON
    for _ in $(seq 50); do [ "$(grep -c '\] stats' "$WORK/daemon.log")" -gt "$n" ] && break; sleep 0.1; done
    grep '\] stats' "$WORK/daemon.log" | tail -1
}
stat_of() { grep -oE "(^| |,)$1=[0-9]+" <<<"$2" | tail -1 | cut -d= -f2; } # NAME LINE
mbit() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(round(d['bytes']*8/d['seconds']/1e6, 2) if d.get('ok') else 0)" "$1" 2>/dev/null || echo 0; }
at_least() { python3 -c "import sys; sys.exit(0 if float('${1:-0}') >= float('$2') else 1)"; }
rss_kb() { awk '/^VmRSS/ {print $2}' /proc/$DAEMON/status 2>/dev/null || echo 0; }
# The flood's SYNs as the gateway counts them (an iptables rule with no
# target, ahead of the daemon's).
in_ns $G iptables -t raw -I PREROUTING 1 -s 100.64.0.0/10 -p tcp --syn
flood_syns_at_gateway() { in_ns $G iptables -t raw -L PREROUTING 1 -v -x -n | awk '{print $1}'; }

# run_flood NAME FLOOD-NS FLOOD-ARGS XFER-NS XFER-ARGS ECHO-NS ECHO-ARGS KERNEL-NS KERNEL-COUNTER
run_flood() {
    local name=$1 fns=$2 fargs=$3 xns=$4 xargs=$5 ens=$6 eargs=$7 kns=$8 kctr=$9
    local w=$WORK/$name s0 s1 base during k0 k1 g0 g1 open0

    # The same transfer without the flood.
    in_ns $xns python3 "$XFER" $xargs 0 51 --duration $XFER_S --timeout 60 >"$w-base.json" 2>&1
    check "$name: transfer without the flood, sha256 equal" $? "$(head -c 200 "$w-base.json")"
    base=$(mbit "$w-base.json")
    sleep 1
    s0=$(stats_now); open0=$(stat_of conns_open "$s0"); k0=$(nstat_value $kns $kctr); g0=$(flood_syns_at_gateway)
    echo "  before: conns_open=$open0 rss=$(( $(rss_kb) / 1024 )) MB"

    # The flood; RSS and conns_open sampled every second (stats line).
    in_ns $fns python3 "$FLOOD" $fargs --rate $RATE --duration $FLOOD_S >"$w-flood.json" 2>&1 &
    local fpid=$!
    ( while kill -0 $fpid 2>/dev/null; do echo "$(rss_kb)" >>"$w-rss"; kill -USR1 $DAEMON 2>/dev/null; sleep 1; done ) &
    local sampler=$!; PIDS+=($sampler)
    sleep 3
    in_ns $ens python3 "$XFER" $eargs --count 20 --timeout 5 >"$w-echo.json" 2>&1 &
    local epid=$!
    in_ns $xns python3 "$XFER" $xargs 0 52 --duration $XFER_S --timeout 60 >"$w-during.json" 2>&1
    local xrc=$?
    wait $epid; local erc=$?
    wait $fpid; wait $sampler 2>/dev/null
    local stop; stop=$(date +%s.%N)
    g1=$(flood_syns_at_gateway)
    s1=$(stats_now); k1=$(nstat_value $kns $kctr)
    during=$(mbit "$w-during.json")

    local sent secs pps at_g
    sent=$(json_field sent <"$w-flood.json" 2>/dev/null); secs=$(json_field seconds <"$w-flood.json" 2>/dev/null)
    pps=$(json_field rate_pps <"$w-flood.json" 2>/dev/null)
    at_g=$(python3 -c "print(round(($g1 - $g0) / ${secs:-$FLOOD_S}))")
    echo "RESULT ${name}_flood_sent=${sent:-0} ${name}_flood_pps=${pps:-0} ${name}_flood_pps_at_gateway=$at_g"
    at_least "${pps:-0}" $((RATE * 8 / 10)) && at_least "$at_g" $((RATE * 8 / 10))
    check "$name: the flood reached $RATE SYN/s (at least 80%)" $? "sender ${pps:-?}/s, gateway counted $at_g/s ($((g1 - g0)) SYNs)"

    echo "RESULT ${name}_mbit_without_flood=$base ${name}_mbit_during_flood=$during"
    check "$name: transfer during the flood, sha256 equal" $xrc "$(head -c 200 "$w-during.json")"
    at_least "$during" "$(python3 -c "print($base / 2)")"
    check "$name: rate during the flood at least 50% of without" $? "$during of $base Mbit/s"

    local done_n mp=$(( $(stat_of mptcp "$s1") - $(stat_of mptcp "$s0") ))
    done_n=$(json_field completed <"$w-echo.json" 2>/dev/null)
    check "$name: 20 new connections during the flood all complete" $erc "${done_n:-0}/20 $(head -c 200 "$w-echo.json")"
    [ $mp -ge 21 ] && [ $((k1 - k0)) -ge 21 ]
    check "$name: ... translated to MPTCP (daemon mptcp, kernel $kctr)" $? "daemon mptcp +$mp, $kctr +$((k1 - k0)) (20 connections + the transfer)"

    local rss_max peak
    rss_max=$(sort -n "$w-rss" | tail -1)
    peak=$(grep '\] stats' "$WORK/daemon.log" | grep -oE " conns_open=[0-9]+" | cut -d= -f2 | sort -n | tail -1)
    echo "RESULT ${name}_rss_max_mb=$((rss_max / 1024)) ${name}_conns_open_peak=$peak ${name}_half_open_evicted=$(( $(stat_of half_open_evicted "$s1") - $(stat_of half_open_evicted "$s0") )) ${name}_table_full=$(( $(stat_of table_full "$s1") - $(stat_of table_full "$s0") ))"
    [ $((rss_max / 1024)) -lt $RSS_LIMIT_MB ]; check "$name: the daemon's RSS stays below $RSS_LIMIT_MB MB" $? "max $((rss_max / 1024)) MB"
    [ "${peak:-0}" -le $((MAX_HALF_OPEN + 64)) ]; check "$name: conns_open bounded by the half-open limit" $? "peak $peak (limit $MAX_HALF_OPEN half-open)"

    # After the flood: the half-open state reclaimed within 60 s.
    local t open="" back=1 s2
    for t in $(seq 2 2 60); do
        sleep 2
        s2=$(stats_now); open=$(stat_of conns_open "$s2")
        # (the test's own 21 connections may still be in their 60 s
        # time-wait: two table entries each with a join subflow)
        [ "$open" -le $((open0 + 48)) ] && { back=0; break; }
    done
    local waited; waited=$(python3 -c "import time; print(round(time.time() - $stop, 1))")
    local ev=$(( $(stat_of half_open_evicted "$s2") - $(stat_of half_open_evicted "$s0") ))
    local ex=$(( $(stat_of half_open_expired "$s2") - $(stat_of half_open_expired "$s0") ))
    echo "RESULT ${name}_reclaimed_after_s=$waited ${name}_half_open_expired=$ex ${name}_half_open_evicted=$ev ${name}_rss_after_mb=$(( $(rss_kb) / 1024 ))"
    check "$name: half-open state reclaimed within 60 s of the flood's end" $back "conns_open $open (before: $open0) ${waited} s after"
    [ $((ev + ex)) -gt 0 ]; check "$name: half-open connections evicted or expired" $? "half_open_evicted +$ev, half_open_expired +$ex"
}

# ---------------------------------------------------------------- A
run_flood A-initiator $C "$MP_S_ADDR1 5002" \
    $C "down $MP_S_ADDR1 5002" $C "echo $MP_S_ADDR1 5002" $S MPTcpExtMPCapableSYNRX
# ---------------------------------------------------------------- B
run_flood B-responder $L1 "$MP_C_ADDR 5003 --mpc" \
    $S "up $MP_C_ADDR 5003 --mptcp" $S "echo $MP_C_ADDR 5003 --mptcp" $S MPTcpExtMPCapableSYNACKRX

in_ns $G iptables -t raw -D PREROUTING -s 100.64.0.0/10 -p tcp --syn
kill -TERM $DAEMON; wait $DAEMON; check "daemon exits 0 on SIGTERM" $?
finish
