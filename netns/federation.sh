#!/usr/bin/env bash
# Federation (issue 5): two gateways running nfq-mptcp, plain TCP hosts on
# both sides, both uplinks between them:
#   C 10.41.1.1 -- A (G: nfq-mptcp, uplinks g1 g2) -- L1 / L2 -- B (S: nfq-mptcp,
#     uplinks s1 s2, LAN s0 10.41.30.1) -- D 10.41.30.2
# A connection from C to D is translated by A (initiator role: its SYN enters
# A from the LAN) and by B (responder role: it enters B on an uplink); one
# from D to C the other way round. Checks: a transfer each way at the same
# time (C -> D and D -> C, a plain server on each side), sha256 equal, each
# server logging the other side's own address; both uplinks carried data;
# throughput C -> D each direction against plain TCP on each uplink alone
# (RESULT lines); then uplink 1 cut 10 s .. 20 s into a 30 s transfer each
# way: no byte lost, the stall short, uplink 1 used again after the restore.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-20}
make_multipath_testbed fed
C=$MP_C; A=$MP_G; B=$MP_S

# Plain TCP over each uplink alone (to B's own addresses: B's stack answers,
# A passes the connection on untouched once the answer shows no MPTCP).
bg_ns $B "$WORK/plain-server.log" python3 "$XFER" serve --port 5001
wait_for 5 in_ns $B sh -c "ss -ltnH 'sport = :5001' | grep -q ."
rate() { python3 -c "import json,sys; d=json.loads(open(sys.argv[1]).readline()); print(round(d['bytes']*8/d['seconds']/1e6, 2))" "$1" 2>/dev/null || echo 0; }
plain() { # ADDR MODE -> Mbit/s
    in_ns $C python3 "$XFER" $2 $1 5001 0 5 --duration $DURATION --timeout $((DURATION + 60)) >"$WORK/plain.json" 2>&1
    rate "$WORK/plain.json"
}

start_mp_daemon "gateway A starts with two uplinks" --uplink g1 --uplink g2
DAEMON_A=$DAEMON
make_federation_far_side "gateway B starts with two uplinks"
D=$FED_D; D_ADDR=$FED_D_ADDR

p1_up=$(plain $MP_S_ADDR1 up); p2_up=$(plain $MP_S_ADDR2 up)
p1_down=$(plain $MP_S_ADDR1 down); p2_down=$(plain $MP_S_ADDR2 down)
echo "RESULT plain_uplink1_up_mbit=$p1_up plain_uplink2_up_mbit=$p2_up plain_uplink1_down_mbit=$p1_down plain_uplink2_down_mbit=$p2_down"

bg_ns $D "$WORK/server-d.log" python3 "$XFER" serve --port 5002 --log "$WORK/peers-d.log"
bg_ns $C "$WORK/server-c.log" python3 "$XFER" serve --port 5005 --log "$WORK/peers-c.log"
wait_for 5 in_ns $D sh -c "ss -ltnH 'sport = :5002' | grep -q ."; wait_for 5 in_ns $C sh -c "ss -ltnH 'sport = :5005' | grep -q ."

# Both ways at once.
tx1=$(if_bytes $A g1 tx); tx2=$(if_bytes $A g2 tx); rx1=$(if_bytes $A g1 rx); rx2=$(if_bytes $A g2 rx)
in_ns $C python3 "$XFER" up $D_ADDR 5002 $((64 << 20)) 31 --timeout 120 >"$WORK/cd.json" 2>&1 &
cd_pid=$!
in_ns $D python3 "$XFER" up $MP_C_ADDR 5005 $((64 << 20)) 32 --timeout 120 >"$WORK/dc.json" 2>&1
dc_rc=$?
wait $cd_pid; cd_rc=$?
check "C -> A -> B -> D: 64 MiB, sha256 equal" $cd_rc "$(head -c 300 "$WORK/cd.json")"
check "D -> B -> A -> C at the same time: 64 MiB, sha256 equal" $dc_rc "$(head -c 300 "$WORK/dc.json")"
t1=$(( $(if_bytes $A g1 tx) - tx1 )); t2=$(( $(if_bytes $A g2 tx) - tx2 ))
r1=$(( $(if_bytes $A g1 rx) - rx1 )); r2=$(( $(if_bytes $A g2 rx) - rx2 ))
[ $t1 -gt 10000000 ] && [ $t2 -gt 5000000 ] && [ $r1 -gt 10000000 ] && [ $r2 -gt 5000000 ]
check "both uplinks carried data both ways" $? "A tx g1 $t1 g2 $t2, rx g1 $r1 g2 $r2 B"
grep -q "^$MP_C_ADDR\b" "$WORK/peers-d.log"; check "D's server sees C's own address" $? "$(sort -u "$WORK/peers-d.log" | head -3 | tr '\n' ' ')"
grep -q "^$D_ADDR\b" "$WORK/peers-c.log"; check "C's server sees D's own address" $? "$(sort -u "$WORK/peers-c.log" | head -3 | tr '\n' ' ')"

# Throughput C -> D, each direction, against the uplinks alone; REPEAT=N
# runs this part N times (diagnosis of a slow run; one check each).
# Halfway through each transfer, both gateways log their connections
# (SIGUSR1: each subflow's cwnd, ssthresh, RTTs), printed should the check fail.
dump_midway() { (sleep $((DURATION / 2)); kill -USR1 $DAEMON_A $DAEMON_B) & }
ratio() { python3 -c "print(round($1 / max($2 + $3, 0.001), 3))"; }
for rep in $(seq ${REPEAT:-1}); do
    marks="$(wc -l <"$WORK/daemon.log") $(wc -l <"$WORK/daemon-b.log")"
    dump_midway
    in_ns $C python3 "$XFER" up $D_ADDR 5002 0 33 --duration $DURATION --timeout $((DURATION + 60)) --trace "$WORK/fup.trace" >"$WORK/fup.json" 2>&1
    check "federation upload ($DURATION s): sha256 equal" $? "$(head -c 300 "$WORK/fup.json")"
    dump_midway
    in_ns $C python3 "$XFER" down $D_ADDR 5002 0 34 --duration $DURATION --timeout $((DURATION + 60)) --trace "$WORK/fdown.trace" >"$WORK/fdown.json" 2>&1
    check "federation download ($DURATION s): sha256 equal" $? "$(head -c 300 "$WORK/fdown.json")"
    f_up=$(rate "$WORK/fup.json"); f_down=$(rate "$WORK/fdown.json")
    echo "RESULT federation_up_mbit=$f_up federation_down_mbit=$f_down aggregation_up=$(ratio $f_up $p1_up $p2_up) aggregation_down=$(ratio $f_down $p1_down $p2_down)"
    python3 -c "import sys; sys.exit(0 if $f_up > 1.1 * max($p1_up, $p2_up) and $f_down > 1.1 * max($p1_down, $p2_down) else 1)"
    beats=$?
    detail="up $f_up, down $f_down Mbit/s; uplinks alone up $p1_up + $p2_up, down $p1_down + $p2_down"
    signature=""
    if [ $beats -ne 0 ]; then # every direction that fell short must show it
        set -- $marks
        for d in "up $f_up $p1_up $p2_up $WORK/daemon.log $1" "down $f_down $p1_down $p2_down $WORK/daemon-b.log $2"; do
            set -- $d
            python3 -c "import sys; sys.exit(0 if $2 > 1.1 * max($3, $4) else 1)" && continue
            s=$(tail -n +$(($6 + 1)) "$5" | coupled_stall_signature)
            if [ -z "$s" ]; then signature=""; break; fi
            signature="${signature:+$signature; }$1: $s"
        done
    fi
    if [ -n "$signature" ]; then
        # The defect issue 16 tracks, recognised by its signature (not by
        # the rate): reported as a known issue, not as a pass.
        known "federation beats the best single uplink by 10% each way" "$detail; issue 16: $signature"
    else
        check "federation beats the best single uplink by 10% each way" $beats "$detail"
    fi
    echo "# upload (acked) $(trace_summary "$WORK/fup.trace" 4 0 0 $DURATION | head -1)"
    echo "# download (received) $(trace_summary "$WORK/fdown.trace" 5 0 0 $DURATION | head -1)"
    if [ $beats -ne 0 ] || [ -n "${DUMPS:-}" ]; then # diagnosis: the gateways' counters and subflows
        kill -USR1 $DAEMON_A $DAEMON_B; sleep 0.5
        set -- $marks
        for g in "A $WORK/daemon.log $1" "B $WORK/daemon-b.log $2"; do
            set -- $g
            echo "# daemon $1: $(grep 'responder_syns' "$2" | tail -1)"
            echo "# daemon $1, its multipath connections halfway through each transfer:"
            tail -n +$(($3 + 1)) "$2" | grep -E 'phase |\[[0-9]\] .* cwnd ' | head -40 | sed 's/^/#   /'
        done
    fi
done

# Failover: uplink 1 cut beyond A (in L1) 10 s .. 20 s into a 30 s transfer;
# both senders are nfq-mptcp engines (A's for the upload, B's for the download).
MP_S_ADDR1=$D_ADDR DAEMON=$DAEMON_A cut_transfer fed-failover up cut_uplink restore_uplink 10 20 30 1.0 35
MP_S_ADDR1=$D_ADDR DAEMON=$DAEMON_A cut_transfer fed-failover down cut_uplink restore_uplink 10 20 30 1.0 36

for d in "A $DAEMON_A $WORK/daemon.log" "B $DAEMON_B $WORK/daemon-b.log"; do
    set -- $d
    kill -USR1 $2; sleep 0.5
    stats=$(grep 'responder_syns' "$3" | tail -1)
    echo "daemon $1: $stats"
    # A packet a gateway carried onto a subflow must leave by that
    # subflow's uplink: one routed out of another uplink comes back to the
    # gateway from the far side's router, matches no connection and draws
    # a reset (each one breaks a subflow).
    n=$(grep -oE '(^| )unknown_resets=[0-9]+' <<<"$stats" | cut -d= -f2)
    [ "${n:-x}" = 0 ]; check "gateway $1 reset no packet of an unknown connection (none came back to it)" $? "unknown_resets=${n:-missing}"
    kill -TERM $2; wait $2; check "daemon $1 exits 0 on SIGTERM" $?
done
finish
