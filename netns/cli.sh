#!/usr/bin/env bash
# Bad command lines are refused before anything is installed (issue 13,
# item 1). In a throw-away namespace with a LAN interface and two uplinks
# (veth pairs to a second namespace, addresses, default routes through both
# uplinks), each bad command line must:
# exit non-zero and not by a signal (132 was the trap, SIGILL), print one
# "Error:" line naming the option, never bind its queue, and leave the
# namespace's rules, routes and sysctls as they were. A good command line is
# the control: it installs its rules (so the snapshot would see them), logs
# every counter at SIGUSR1 and removes its rules at SIGTERM.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
N=cli-$TID; P=cli-peer-$TID
ns_add $N; ns_add $P
for x in "lan0 10.51.1.1/24 fd51:1::1/64 p0" "up0 10.51.2.1/24 fd51:2::1/64 p1" "up1 10.51.3.1/24 fd51:3::1/64 p2"; do
    set -- $x
    ip link add $1 netns $N type veth peer name $4 netns $P
    ip -n $N addr add $2 dev $1; ip -n $N addr add $3 dev $1 nodad
    ip -n $N link set $1 up; ip -n $P link set $4 up
done
in_ns $N ip route add default via 10.51.2.2 dev up0; in_ns $N ip route add default via 10.51.3.2 dev up1 metric 200
in_ns $N ip -6 route add default via fd51:2::2 dev up0; in_ns $N ip -6 route add default via fd51:3::2 dev up1 metric 200
Q=$((1000 + TID % 20000))

state() {
    local n
    # (Link-local routes come and go with IPv6 autoconfiguration: left out.)
    { in_ns $N ip rule; in_ns $N ip -6 rule; in_ns $N ip -4 route show table all; in_ns $N ip -6 route show table all; } | grep -v fe80
    in_ns $N iptables-save -t raw | grep -v '^#'; in_ns $N ip6tables-save -t raw | grep -v '^#'
    for n in ip_local_reserved_ports ip_local_port_range conf/all/accept_local conf/lan0/accept_local conf/all/rp_filter \
             conf/lan0/rp_filter conf/up0/rp_filter conf/up1/rp_filter; do
        echo "$n $(in_ns $N cat /proc/sys/net/ipv4/$n)"
    done
}
state >"$WORK/state-before.txt"

# refused "WHAT" "TEXT THE ERROR LINE MUST HOLD" ARGS...
k=0
refused() {
    local what=$1 want=$2 rc errs err
    shift 2
    k=$((k + 1))
    in_ns $N timeout 20 "$NFQ_MPTCP" "$@" >"$WORK/bad-$k.log" 2>&1
    rc=$?
    state >"$WORK/state-after-$k.txt"
    errs=$(grep -c '^Error:' "$WORK/bad-$k.log")
    err=$(grep -m1 '^Error:' "$WORK/bad-$k.log")
    [ $rc != 0 ] && [ $rc -lt 124 ] && [ "$errs" = 1 ] && grep -qF -- "$want" <<<"$err" && ! grep -q 'bound' "$WORK/bad-$k.log" \
        && diff -q "$WORK/state-before.txt" "$WORK/state-after-$k.txt" >/dev/null
    check "refused: $what" $? "exit $rc: ${err:-$(head -c 200 "$WORK/bad-$k.log")}"
}
RUN=(--queue $Q --lan lan0 --install-rules)
MP=(--queue $Q --lan lan0 --uplink up0 --uplink up1 --install-rules)

# The six that trapped (SIGILL), four of them after installing every rule.
refused "--mss-clamp 65000" --mss-clamp "${RUN[@]}" --uplink up0 --mss-clamp 65000
refused "--idle-timeout=-1" --idle-timeout "${RUN[@]}" --uplink up0 --idle-timeout=-1
refused "--time-wait=-1" --time-wait "${RUN[@]}" --uplink up0 --time-wait=-1
refused "--stats-interval 1e300" --stats-interval "${RUN[@]}" --uplink up0 --stats-interval 1e300
refused "--idle-timeout 1e300" --idle-timeout "${RUN[@]}" --uplink up0 --idle-timeout 1e300
refused "--time-wait nan" --time-wait "${RUN[@]}" --uplink up0 --time-wait nan
# Accepted though wrong.
refused "the same interface as --lan and --uplink" "--lan and --uplink" "${RUN[@]}" --uplink lan0
refused "the same interface twice as --lan" "--lan" "${RUN[@]}" --lan lan0 --uplink up0
refused "--join-ports in the ephemeral range (two uplinks)" --join-ports "${MP[@]}" --join-ports 40000-40999
refused "--join-ports all ports" --join-ports "${MP[@]}" --join-ports 1-65535
refused "--join-ports one port" --join-ports "${MP[@]}" --join-ports 61000-61000
refused "--join-ports well-known ports" --join-ports "${MP[@]}" --join-ports 20-30
refused "--max-connections=-1" --max-connections "${RUN[@]}" --uplink up0 --max-connections=-1
# The rest of the ranges.
refused "--max-connections 0" --max-connections "${RUN[@]}" --uplink up0 --max-connections 0
refused "--max-connections 9999999999" --max-connections "${RUN[@]}" --uplink up0 --max-connections 9999999999
refused "--mss-clamp 1025" --mss-clamp "${RUN[@]}" --uplink up0 --mss-clamp 1025
refused "--time-wait 0" --time-wait "${RUN[@]}" --uplink up0 --time-wait 0
refused "--idle-timeout inf" --idle-timeout "${RUN[@]}" --uplink up0 --idle-timeout inf
refused "--idle-timeout 2592001" --idle-timeout "${RUN[@]}" --uplink up0 --idle-timeout 2592001
refused "--stats-interval nan" --stats-interval "${RUN[@]}" --uplink up0 --stats-interval nan
refused "--stats-interval=-1" --stats-interval "${RUN[@]}" --uplink up0 --stats-interval=-1
refused "--stats-interval 0.01" --stats-interval "${RUN[@]}" --uplink up0 --stats-interval 0.01
refused "--send-buffer 1" --send-buffer "${MP[@]}" --send-buffer 1
refused "--max-subflows 9" --max-subflows "${MP[@]}" --max-subflows 9
refused "--max-subflows 0" --max-subflows "${MP[@]}" --max-subflows 0
refused "--add-addr-accepted=-1" --add-addr-accepted "${MP[@]}" --add-addr-accepted=-1
refused "--mss-clamp 70000 (not a UInt16)" --mss-clamp "${RUN[@]}" --uplink up0 --mss-clamp 70000
# replay shares the engine's options, and its --lan prefixes are checked.
refused "replay --time-wait nan" --time-wait replay --in /nonexistent --out "$WORK/r.pcap" --time-wait nan
refused "replay --mss-clamp 65000" --mss-clamp replay --in /nonexistent --out "$WORK/r.pcap" --mss-clamp 65000
refused "replay --lan 10.0.0.0/40" --lan replay --in /nonexistent --out "$WORK/r.pcap" --lan 10.0.0.0/40
refused "replay --lan fd00::/129" --lan replay --in /nonexistent --out "$WORK/r.pcap" --lan fd00::/129
refused "replay --lan 10.0.0.0/-1" --lan replay --in /nonexistent --out "$WORK/r.pcap" --lan=10.0.0.0/-1

# The gateway's own ephemeral range moved over the default join ports:
# refused with two uplinks (the ports are reserved and used), not with one.
old_range=$(in_ns $N cat /proc/sys/net/ipv4/ip_local_port_range)
in_ns $N sysctl -qw net.ipv4.ip_local_port_range="1024 65000"
state >"$WORK/state-before.txt"
refused "default --join-ports inside a widened ephemeral range" "ip_local_port_range" "${MP[@]}"

# good ARGS...: starts (queue bound), its rules are in place, SIGTERM
# removes them.
good() {
    local what=$1 rules rc
    shift
    k=$((k + 1))
    bg_ns $N "$WORK/good-$k.log" "$NFQ_MPTCP" "$@"
    wait_for 20 grep -q "queue $Q bound" "$WORK/good-$k.log"
    rules=$(in_ns $N iptables -t raw -S PREROUTING | grep -c NFQUEUE)
    [ "$rules" -gt 0 ]
    check "accepted: $what (queue bound, rules installed)" $? "$rules NFQUEUE rules; $(grep -m1 -E 'Error|bound' "$WORK/good-$k.log")"
    # SIGUSR1: the counters at once, every one (the engine's table_full, the
    # queue's kernel counters), and the daemon goes on.
    kill -USR1 $LAST_PID
    wait_for 5 grep -q ' table_full=0 .*\] stats' "$WORK/good-$k.log"
    check "accepted: $what: SIGUSR1 logs every counter" $? "$(grep '\] stats' "$WORK/good-$k.log" | grep -oE ' (table_full|queue_dropped|queue_enobufs|not_tcp)=[0-9]*' | tr -d '\n')"
    kill -TERM $LAST_PID; wait $LAST_PID; rc=$?
    state >"$WORK/state-after-$k.txt"
    [ $rc = 0 ] && diff -q "$WORK/state-before.txt" "$WORK/state-after-$k.txt" >/dev/null
    check "accepted: $what: exit 0 at SIGTERM, nothing left" $? "exit $rc; $(diff "$WORK/state-before.txt" "$WORK/state-after-$k.txt" | head -c 200)"
}
good "one uplink, the join ports inside the ephemeral range (unused)" "${RUN[@]}" --uplink up0
in_ns $N sysctl -qw net.ipv4.ip_local_port_range="$old_range"
state >"$WORK/state-before.txt"
good "two uplinks, every value at an end of its range" "${MP[@]}" --mss-clamp 1024 --time-wait 0.001 \
    --idle-timeout 2592000 --stats-interval 86400 --max-connections 1048576 --join-ports 61000-61001 \
    --send-buffer 65536 --max-subflows 8 --add-addr-accepted 0 --fail-open

# A second instance on a queue a live one holds is refused before it touches
# a rule (it would take over the live one's rules and remove them at exit).
k=$((k + 1))
bg_ns $N "$WORK/good-$k.log" "$NFQ_MPTCP" "${MP[@]}"
first=$LAST_PID
wait_for 20 grep -q "queue $Q bound" "$WORK/good-$k.log"
state >"$WORK/state-live.txt"
in_ns $N timeout 20 "$NFQ_MPTCP" "${MP[@]}" >"$WORK/second.log" 2>&1; rc=$?
state >"$WORK/state-live-after.txt"
[ $rc != 0 ] && [ $rc -lt 128 ] && grep -q "another program holds this queue" "$WORK/second.log" \
    && diff -q "$WORK/state-live.txt" "$WORK/state-live-after.txt" >/dev/null && kill -0 $first
check "refused: a second instance on the live one's queue, the live one's rules untouched" $? \
    "exit $rc: $(grep -m1 Error "$WORK/second.log" | head -c 200); $(diff "$WORK/state-live.txt" "$WORK/state-live-after.txt" | head -c 200)"
kill -TERM $first; wait $first; rc=$?
state >"$WORK/state-after-$k.txt"
[ $rc = 0 ] && diff -q "$WORK/state-before.txt" "$WORK/state-after-$k.txt" >/dev/null
check "the live one: exit 0 at SIGTERM, nothing left" $? "exit $rc; $(diff "$WORK/state-before.txt" "$WORK/state-after-$k.txt" | head -c 200)"
finish
