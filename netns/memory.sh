#!/usr/bin/env bash
# Memory that follows the data (issue 15): the daemon's resident memory
# (VmRSS) per connection. nfq-mptcp on G with two uplinks, the kernel's MPTCP
# on S; the links unshaped (no tbf, no link emulator: the data moves in
# seconds).
#   moved:      MOVED connections (default 64) each move 4 MiB each way
#               (about 8 MiB of rings each while busy), then stay open and
#               idle. Once idle for the engine's compactAfter (2 s) each gives
#               its rings and queues back (`compactions`), and the daemon's RSS
#               falls back to within 64 KiB per connection of what it was
#               before them. Issue 15's goal is 8 KiB: above it, the figure
#               is reported as a known shortfall (KNOWN), not as a pass.
#   never used: IDLE connections (default 1000; `Bench memory` takes 10 000)
#               opened end to end with a 5-byte request and a 3-byte answer,
#               then idle: at most 8 KiB each; the goal is 4 KiB (KNOWN above).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
MOVED=${MOVED:-64}
IDLE=${IDLE:-1000}
MOVEDCONNS="$REPO/bench/movedconns.py"
IDLECONNS="$REPO/bench/idleconns.py"
make_multipath_testbed mem
C=$MP_C; G=$MP_G; S=$MP_S
for k in 1 2; do
    L=$(_mp_link_ns $k)
    for i in l${k}g l${k}s; do in_ns $L tc qdisc del dev $i root 2>/dev/null; done
    q=$MP_EMU_Q1; [ $k = 2 ] && q=$MP_EMU_Q2
    while in_ns $L iptables -D FORWARD -j NFQUEUE --queue-num $q 2>/dev/null; do :; done
    while in_ns $L ip6tables -D FORWARD -j NFQUEUE --queue-num $q 2>/dev/null; do :; done
done
in_ns $C sysctl -qw net.ipv4.ip_local_port_range="10000 60999"
in_ns $S sysctl -qw net.ipv4.tcp_max_syn_backlog=8192 # bursts of SYNs on an unshaped link

start_mp_daemon "daemon starts with two uplinks" --uplink g1 --uplink g2
rss() { awk '/^VmRSS:/ {print $2}' /proc/$DAEMON/status; } # KiB
stat_of() { # NAME: the counter in a fresh stats line
    kill -USR1 $DAEMON; sleep 0.5
    grep ' stats' "$WORK/daemon.log" | tail -1 | grep -oE "(^| )$1=[0-9]+" | cut -d= -f2
}

# Moved, then idle.
bg_ns $S "$WORK/moved-server.log" python3 "$MOVEDCONNS" serve 5020 --mptcp
wait_for 5 in_ns $S sh -c "ss -Hltn 'sport = :5020' | grep -q ."
before=$(rss)
bg_ns $C "$WORK/moved.log" python3 "$MOVEDCONNS" hold $MP_S_ADDR1 5020 $MOVED $((4 << 20))
holder=$LAST_PID
wait_for 120 grep -q '^READY' "$WORK/moved.log"
opened=$(head -1 "$WORK/moved.log" | json_field opened 2>/dev/null || echo 0)
[ "$opened" = "$MOVED" ]; check "$MOVED connections moved 4 MiB each way and stay open" $? "$(head -c 300 "$WORK/moved.log")"
busy=$(rss)
sleep 4 # beyond compactAfter (2 s): the engine gives the idle connections' buffers back
after=$(rss)
compactions=$(stat_of compactions)
per=$(( (after - before) * 1024 / MOVED ))
echo "RESULT moved_rss_kib_before=$before moved_rss_kib_busy=$busy moved_rss_kib_idle=$after moved_bytes_per_conn=$per compactions=$compactions"
[ "${compactions:-0}" -ge "$MOVED" ]; check "every moved connection gave its buffers back once idle" $? "compactions=${compactions:-?} of $MOVED"
detail="$per bytes each ($before KiB before, $busy KiB at the end of the transfers, $after KiB idle)"
[ $per -le 65536 ]; check "idle after moving 4 MiB each way: the rings' memory went back (at most 64 KiB of daemon RSS per connection)" $? "$detail"
if [ $per -le 8192 ]; then check "idle after moving 4 MiB each way: at most 8 KiB per connection (the goal)" 0 "$detail"
else known "idle after moving 4 MiB each way: at most 8 KiB per connection (the goal)" "$detail: issue 15's memory goal is not met"; fi
kill -TERM $holder; wait $holder
sleep 1

# Never used (one small request and answer), then idle.
bg_ns $S "$WORK/idle-server.log" python3 "$IDLECONNS" serve 5021 --mptcp --status "$WORK/idle.status"
wait_for 5 in_ns $S sh -c "ss -Hltn 'sport = :5021' | grep -q ."
before=$(rss)
bg_ns $C "$WORK/idle.log" python3 "$IDLECONNS" hold $MP_S_ADDR1 5021 $IDLE --batch 50 --timeout 20 --deadline $((60 + IDLE / 50))
holder=$LAST_PID
wait_for $((90 + IDLE / 50)) grep -q '^READY' "$WORK/idle.log"
opened=$(head -1 "$WORK/idle.log" | json_field opened 2>/dev/null || echo 0)
[ "$opened" = "$IDLE" ]; check "$IDLE connections opened end to end" $? "$(head -c 300 "$WORK/idle.log")"
sleep 4
after=$(rss)
per=$(( (after - before) * 1024 / IDLE ))
echo "RESULT idle_rss_kib_before=$before idle_rss_kib=$after idle_bytes_per_conn=$per conns_open=$(stat_of conns_open)"
detail="$per bytes each ($before KiB before, $after KiB with $IDLE open)"
[ $per -le 8192 ]; check "never used: at most 8 KiB of daemon RSS per connection" $? "$detail"
if [ $per -le 4096 ]; then check "never used: at most 4 KiB per connection (the goal)" 0 "$detail"
else known "never used: at most 4 KiB per connection (the goal)" "$detail: issue 15's memory goal is not met"; fi
kill -TERM $holder; wait $holder

kill -TERM $DAEMON; wait $DAEMON; check "daemon exits 0 on SIGTERM" $?
finish
