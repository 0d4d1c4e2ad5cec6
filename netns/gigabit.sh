#!/usr/bin/env bash
# Aggregation at gigabit rates (issue 15): both uplinks shaped by tbf to
# 1 Gbit/s (burst 256 KB, 10 ms of queue), no added delay and no link
# emulator in the path (it could not keep up), as `Bench iperf`'s tput_gbit.
#   one-sided:  C -- G (nfq-mptcp, uplinks g1 g2) -- L1 / L2 -- kernel MPTCP S
#   federation: C -- A (nfq-mptcp) -- L1 / L2 -- B (nfq-mptcp) -- D
# Each case: SIZE bytes (default 256 MiB) up and down, one at a time, sha256
# equal, and each uplink of the gateway on C's side carried at least 30% of
# the transfer's bytes (its interface counters: the scheduler must use both
# links at rate, not only one). The rates are RESULT lines against plain TCP
# over each uplink alone (not checked: this script's client is Python, the
# benchmark measures them with iperf3).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
SIZE=${SIZE:-$((256 << 20))}
make_multipath_testbed gbit
C=$MP_C; G=$MP_G; S=$MP_S
for k in 1 2; do
    L=$(_mp_link_ns $k)
    for i in l${k}g l${k}s; do in_ns $L tc qdisc replace dev $i root tbf rate 1gbit burst 256kb latency 10ms; done
    while in_ns $L iptables -D FORWARD -j NFQUEUE --queue-num $( [ $k = 1 ] && echo $MP_EMU_Q1 || echo $MP_EMU_Q2 ) 2>/dev/null; do :; done
    while in_ns $L ip6tables -D FORWARD -j NFQUEUE --queue-num $( [ $k = 1 ] && echo $MP_EMU_Q1 || echo $MP_EMU_Q2 ) 2>/dev/null; do :; done
done

# Plain TCP over each uplink alone, for the RESULT lines.
bg_ns $S "$WORK/plain-server.log" python3 "$XFER" serve --port 5001
wait_for 5 in_ns $S sh -c "ss -Hltn 'sport = :5001' | grep -q ."
plain() { # ADDR MODE -> Mbit/s
    in_ns $C python3 "$XFER" $2 $1 5001 $SIZE 3 --timeout 120 >"$WORK/plain.json" 2>&1
    json_field mbit_s <"$WORK/plain.json" 2>/dev/null || echo 0
}
p1_up=$(plain $MP_S_ADDR1 up); p2_up=$(plain $MP_S_ADDR2 up)
p1_down=$(plain $MP_S_ADDR1 down); p2_down=$(plain $MP_S_ADDR2 down)
echo "RESULT plain_uplink1_up_mbit=$p1_up plain_uplink2_up_mbit=$p2_up plain_uplink1_down_mbit=$p1_down plain_uplink2_down_mbit=$p2_down"

# One transfer MODE to ADDR:PORT through the gateway on C's side: sha256
# equal, each uplink at least 30% of the bytes.
transfer() { # CASE MODE ADDR PORT SEED
    local case=$1 mode=$2 addr=$3 port=$4 seed=$5 dir b1 b2 rc
    dir=tx; [ $mode = down ] && dir=rx
    b1=$(if_bytes $G g1 $dir); b2=$(if_bytes $G g2 $dir)
    # The sending gateway (A uploads; B downloads in federation; the
    # kernel in a one-sided download) logs its subflows 0.7 s into the
    # transfer (SIGUSR1), for the signature below.
    local sender="" log="" mark=0
    if [ $mode = up ]; then sender=$DAEMON log=$WORK/daemon.log
    elif [ $case = federation ]; then sender=$DAEMON_B log=$WORK/daemon-b.log; fi
    if [ -n "$sender" ]; then mark=$(wc -l <"$log"); (sleep 0.7; kill -USR1 $sender 2>/dev/null) & fi
    in_ns $C python3 "$XFER" $mode $addr $port $SIZE $seed --timeout 120 >"$WORK/$case-$mode.json" 2>&1
    rc=$?
    b1=$(( $(if_bytes $G g1 $dir) - b1 )); b2=$(( $(if_bytes $G g2 $dir) - b2 ))
    check "$case $mode: $((SIZE >> 20)) MiB at 1 Gbit/s per uplink, sha256 equal" $rc "$(head -c 300 "$WORK/$case-$mode.json")"
    local share rate one
    share=$(python3 -c "t = $b1 + $b2; print('%.2f %.2f' % ($b1 / max(t, 1), $b2 / max(t, 1)))")
    rate=$(json_field mbit_s <"$WORK/$case-$mode.json" 2>/dev/null || echo 0)
    one=$p1_up; [ $mode = down ] && one=$p1_down
    set -- $share
    echo "RESULT ${case}_${mode}_mbit=$rate ${case}_${mode}_uplink2_share=$2 plain_uplink1_${mode}_mbit=$one"
    python3 -c "import sys; sys.exit(0 if min($1, $2) >= 0.30 else 1)"
    local ok=$? detail="uplink 1 $1, uplink 2 $2 ($b1 + $b2 bytes on g1, g2)"
    # Slower than one link alone, the translation is the bottleneck (CPU):
    # the scheduler then rightly fills the faster subflow, and an even share
    # is not to be had. Reported as the known shortfall, not as a pass.
    # An early loss on uplink 1 leaves its subflows growing at LIA's
    # coupled rate (issue 16), recognised by its signature in the sender's
    # dump (netns/lib.sh, as in federation.sh and multipath.sh).
    local sig=""
    [ $ok -ne 0 ] && [ -n "$log" ] && sig=$(tail -n +$((mark + 1)) "$log" | coupled_stall_signature)
    if [ $ok -ne 0 ] && python3 -c "import sys; sys.exit(0 if $rate < $one else 1)"; then
        known "$case $mode: each uplink carried at least 30% of the bytes" \
            "$detail; at $rate Mbit/s, below one uplink alone ($one): issue 15's gigabit goal is not met here"
    elif [ -n "$sig" ]; then
        known "$case $mode: each uplink carried at least 30% of the bytes" "$detail; issue 16: $sig"
    else
        check "$case $mode: each uplink carried at least 30% of the bytes" $ok "$detail"
    fi
}

# One-sided: nfq-mptcp on G, the kernel's MPTCP on S.
start_mp_daemon "gateway starts with two uplinks" --uplink g1 --uplink g2
start_mp_server
transfer onesided up $MP_S_ADDR1 5002 11
transfer onesided down $MP_S_ADDR1 5002 12
kill -TERM $DAEMON; wait $DAEMON; check "gateway exits 0 on SIGTERM" $?

# Federation: S becomes gateway B for D.
start_mp_daemon "gateway A starts with two uplinks" --uplink g1 --uplink g2
make_federation_far_side "gateway B starts with two uplinks"
bg_ns $FED_D "$WORK/server-d.log" python3 "$XFER" serve --port 5002
wait_for 5 in_ns $FED_D sh -c "ss -Hltn 'sport = :5002' | grep -q ."
transfer federation up $FED_D_ADDR 5002 13
transfer federation down $FED_D_ADDR 5002 14
for d in "A $DAEMON $WORK/daemon.log" "B $DAEMON_B $WORK/daemon-b.log"; do
    set -- $d
    kill -USR1 $2; sleep 0.5
    echo "daemon $1: $(grep 'responder_syns' "$3" | tail -1)"
    kill -TERM $2; wait $2; check "daemon $1 exits 0 on SIGTERM" $?
done
finish
