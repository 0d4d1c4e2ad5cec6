#!/usr/bin/env bash
# Several queues, one engine thread each (issue 15, --queues N): every
# packet of a connection, its join subflows included, must reach the thread
# that owns it. Multipath test-bed (C -- G -- two links -- S), then
# federation (S becomes gateway B for a plain host D).
#   1. G with --queues 2 against the kernel's MPTCP on S: transfers from two
#      client addresses at once (10.41.1.1: thread 1, 10.41.1.4: thread 0,
#      and an IPv6 one from fd41:1::4), sha256 equal; each thread translated
#      its own connections over both uplinks (joins opened and established)
#      and neither saw an MPTCP packet of a connection it does not know
#      (unknown_mptcp, unknown_resets: a packet steered to the wrong thread).
#   2. Both gateways with --queues 2: C to D's two addresses (one per thread
#      of B, responder role), sha256 equal; each of B's threads took its own
#      connection and the joins to it; nothing unknown on either gateway.
#   3. SIGUSR1 logs every thread's counters; SIGTERM stops every thread,
#      exit status 0, and the rules are gone.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
RATE1=${RATE1:-200mbit} RATE2=${RATE2:-200mbit} DELAY1=${DELAY1:-5} DELAY2=${DELAY2:-10}
make_multipath_testbed qu
C=$MP_C; G=$MP_G; S=$MP_S
in_ns $C ip addr add 10.41.1.4/24 dev c0
in_ns $C ip addr add fd41:1::4/64 dev c0 nodad
Q=$((1000 + TID % 20000))

# The last stats line of queue N's thread in LOG (they log queue=N).
stats_of() { grep '\] stats' "$1" | grep -E "queue=$2( |,|$)" | tail -1; }
stat_of() { grep -oE "(^| |,)$1=[0-9]+" <<<"$2" | tail -1 | cut -d= -f2; } # NAME LINE
fresh_stats() { # PID LOG: SIGUSR1, then wait until both threads logged again
    local n; n=$(grep -c '\] stats' "$2")
    kill -USR1 $1
    for _ in $(seq 50); do [ "$(grep -c '\] stats' "$2")" -ge $((n + 2)) ] && return 0; sleep 0.1; done
    return 1
}
# Checks a thread's counters after transfers: connections of its own over
# both uplinks, nothing unknown. NAME LOG QUEUE MIN-MPTCP JOIN-COUNTER
thread_checks() {
    local name=$1 log=$2 q=$3 min=$4 joins=$5 line
    line=$(stats_of "$log" $q)
    local mp=$(stat_of mptcp "$line") rsp=$(stat_of responder_syns "$line") sub=$(stat_of subflows_opened "$line")
    local j=$(stat_of $joins "$line") unk=$(stat_of unknown_mptcp "$line") ur=$(stat_of unknown_resets "$line")
    local refused=$(stat_of joins_refused "$line") rejected=$(stat_of joins_rejected "$line")
    [ "${mp:-0}" -ge $min ] && [ "${sub:-0}" -ge $min ] && [ "${j:-0}" -ge $min ]
    check "$name: queue $q translated its own connections over both uplinks" $? \
        "mptcp=$mp responder_syns=$rsp subflows_opened=$sub $joins=$j"
    [ "${unk:-1}" = 0 ] && [ "${ur:-1}" = 0 ] && [ "${refused:-1}" = 0 ] && [ "${rejected:-1}" = 0 ]
    check "$name: queue $q saw no packet of a connection it does not own" $? \
        "unknown_mptcp=$unk unknown_resets=$ur joins_refused=$refused joins_rejected=$rejected"
}

start_mp_server
start_mp_daemon "G starts with --queues 2" --uplink g1 --uplink g2 --queues 2
grep -q "queue $((Q + 1)) bound" "$WORK/daemon.log"
check "G bound queues $Q and $((Q + 1))" $? "$(grep -m2 'bound' "$WORK/daemon.log" | tr '\n' ' ')"
rules=$(in_ns $G iptables -t raw -S PREROUTING)
grep -q -- "-s 0.0.0.1/0.0.0.1 -i g0 .*--queue-num $((Q + 1))" <<<"$rules" && grep -q -- "-d 0.0.0.0/0.0.0.1 -i g1 .*--queue-num $Q" <<<"$rules"
check "rules steer by the LAN host's address (source from the LAN, destination from an uplink)" $? "$(grep -c NFQUEUE <<<"$rules") NFQUEUE rules"

# 1. Three transfers at once, on both threads.
tx1=$(if_bytes $G g1 tx); tx2=$(if_bytes $G g2 tx)
in_ns $C python3 "$XFER" up $MP_S_ADDR1 5002 $((16 << 20)) 41 --bind 10.41.1.1 --timeout 120 >"$WORK/a.json" 2>&1 & a=$!
in_ns $C python3 "$XFER" down $MP_S_ADDR1 5002 $((16 << 20)) 42 --bind 10.41.1.4 --timeout 120 >"$WORK/b.json" 2>&1 & b=$!
in_ns $C python3 "$XFER" up $MP_S_ADDR16 5002 $((8 << 20)) 43 --bind fd41:1::4 --timeout 120 >"$WORK/c.json" 2>&1
c_rc=$?
wait $a; a_rc=$?; wait $b; b_rc=$?
check "upload from 10.41.1.1 (thread 1): 16 MiB, sha256 equal" $a_rc "$(head -c 300 "$WORK/a.json")"
check "download to 10.41.1.4 (thread 0) at the same time: 16 MiB, sha256 equal" $b_rc "$(head -c 300 "$WORK/b.json")"
check "IPv6 upload from fd41:1::4 (thread 0) at the same time: 8 MiB, sha256 equal" $c_rc "$(head -c 300 "$WORK/c.json")"
t1=$(( $(if_bytes $G g1 tx) - tx1 )); t2=$(( $(if_bytes $G g2 tx) - tx2 ))
[ $t1 -gt 4000000 ] && [ $t2 -gt 4000000 ]
check "both uplinks carried the uploads" $? "g1 $t1, g2 $t2 bytes"
fresh_stats $DAEMON "$WORK/daemon.log"
check "SIGUSR1: both threads log their counters" $? "$(grep -c '\] stats' "$WORK/daemon.log") stats lines"
thread_checks "G" "$WORK/daemon.log" $Q 2 joins_sent
thread_checks "G" "$WORK/daemon.log" $((Q + 1)) 1 joins_sent

# 2. Federation: B with two threads in front of D's two addresses.
make_federation_far_side "B starts with --queues 2" --queues 2
D=$FED_D; QB=$((1000 + (TID + 7) % 20000))
in_ns $D ip addr add 10.41.30.3/24 dev d0
bg_ns $D "$WORK/server-d.log" python3 "$XFER" serve --port 5003
wait_for 5 in_ns $D sh -c "ss -ltnH 'sport = :5003' | grep -q ."  # (ss alone succeeds with no match)
in_ns $C python3 "$XFER" up 10.41.30.2 5003 $((16 << 20)) 44 --bind 10.41.1.4 --timeout 120 >"$WORK/d.json" 2>&1 & d=$!
in_ns $C python3 "$XFER" down 10.41.30.3 5003 $((16 << 20)) 45 --bind 10.41.1.1 --timeout 120 >"$WORK/e.json" 2>&1
e_rc=$?
wait $d; d_rc=$?
check "C -> A -> B -> D 10.41.30.2 (B's thread 0): 16 MiB, sha256 equal" $d_rc "$(head -c 300 "$WORK/d.json")"
check "D 10.41.30.3 (B's thread 1) -> C at the same time: 16 MiB, sha256 equal" $e_rc "$(head -c 300 "$WORK/e.json")"
fresh_stats $DAEMON_B "$WORK/daemon-b.log"
check "SIGUSR1: both of B's threads log their counters" $?
thread_checks "B" "$WORK/daemon-b.log" $QB 1 joins_accepted
thread_checks "B" "$WORK/daemon-b.log" $((QB + 1)) 1 joins_accepted
fresh_stats $DAEMON "$WORK/daemon.log"
for q in $Q $((Q + 1)); do
    line=$(stats_of "$WORK/daemon.log" $q)
    [ "$(stat_of unknown_mptcp "$line")" = 0 ] && [ "$(stat_of unknown_resets "$line")" = 0 ]
    check "A: queue $q saw nothing unknown in federation" $? "$(grep -oE ' unknown_(mptcp|resets)=[0-9]+' <<<"$line" | tr -d '\n')"
done

# 3. SIGTERM: every thread stops, the rules go.
for p in $DAEMON $DAEMON_B; do kill -TERM $p; done
wait $DAEMON; rc_a=$?; wait $DAEMON_B; rc_b=$?
[ $rc_a = 0 ] && [ $rc_b = 0 ]
check "SIGTERM: both daemons stop with status 0" $? "A $rc_a, B $rc_b; $(grep -E '\] (signal|stopping)' "$WORK/daemon.log" | head -3 | cut -c1-100 | tr '\n' ' ')"
la=$(in_ns $G iptables -t raw -S | grep -c NFQUEUE); lb=$(in_ns $S iptables -t raw -S | grep -c NFQUEUE)
[ $la = 0 ] && [ $lb = 0 ]
check "the rules are removed on both gateways" $? "NFQUEUE rules left: A $la, B $lb"
finish
