#!/usr/bin/env bash
# Memory that follows the data (issue 15): the daemon's resident memory
# (VmRSS) per connection. nfq-mptcp on G with two uplinks, the kernel's MPTCP
# on S; the links unshaped (no tbf, no link emulator: the data moves in
# seconds).
#   warm-up:    one connection moves 4 MiB each way and closes (the fixed
#               cost of having moved data at all is not per connection).
#   moved:      MOVED connections (default 64) each move 4 MiB each way
#               (about 8 MiB of rings each while busy), then stay open and
#               idle. Once idle for the engine's compactAfter (2 s) each gives
#               its rings and queues back (`compactions`), and the daemon's RSS
#               falls back to within 16 KiB per connection of what it was
#               before them (measured: 5-6 KiB). Issue 15's goal is 8 KiB:
#               between the two, the figure is reported as a known shortfall
#               (KNOWN), not as a pass.
#   never used: IDLE connections (default 1000; `Bench memory` takes 10 000)
#               opened end to end with a 5-byte request and a 3-byte answer,
#               then idle: at most 6 KiB each (measured: 3.3-3.6 KiB); the
#               goal is 4 KiB (KNOWN above).
#   light traffic: CHATTY connections (default 1000) ping 64 bytes every
#               2 s for SOAK seconds (default 60; issue 15's soak: 600):
#               every ping echoed intact, RSS grows by at most 5%.
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
fresh_stats() { # asks the daemon for its counters once (not in a subshell: sets STATS_LINE)
    kill -USR1 $DAEMON; sleep 0.5
    STATS_LINE=$(grep ' stats' "$WORK/daemon.log" | tail -1)
}
stat_of() { # NAME: the counter in the line fresh_stats read
    echo "$STATS_LINE" | grep -oE "(^| )$1=[0-9]+" | cut -d= -f2
}

# Moved, then idle.
bg_ns $S "$WORK/moved-server.log" python3 "$MOVEDCONNS" serve 5020 --mptcp
wait_for 5 in_ns $S sh -c "ss -Hltn 'sport = :5020' | grep -q ."
# A warm-up first: one connection moves 4 MiB each way and closes. What
# any transfer makes resident once, whatever the number of connections (the
# code run on the data path, the queue's batch of receive buffers that GSO
# super-segments fill), is then in the baseline and not counted per
# connection; the figures are printed.
rss0=$(rss)
bg_ns $C "$WORK/warmup.log" python3 "$MOVEDCONNS" hold $MP_S_ADDR1 5020 1 $((4 << 20))
warm=$LAST_PID
wait_for 60 grep -q '^READY' "$WORK/warmup.log"
kill -TERM $warm; wait $warm
sleep 4 # closed, compacted and trimmed
before=$(rss); fresh_stats; heap0=$(stat_of heap_in_use); free0=$(stat_of heap_free)
echo "RESULT warmup_rss_kib_before=$rss0 warmup_rss_kib_after=$before"
bg_ns $C "$WORK/moved.log" python3 "$MOVEDCONNS" hold $MP_S_ADDR1 5020 $MOVED $((4 << 20))
holder=$LAST_PID
wait_for 120 grep -q '^READY' "$WORK/moved.log"
opened=$(head -1 "$WORK/moved.log" | json_field opened 2>/dev/null || echo 0)
[ "$opened" = "$MOVED" ]; check "$MOVED connections moved 4 MiB each way and stay open" $? "$(head -c 300 "$WORK/moved.log")"
busy=$(rss)
sleep 4 # beyond compactAfter (2 s): the engine gives the idle connections' buffers back
after=$(rss)
fresh_stats; compactions=$(stat_of compactions); heap1=$(stat_of heap_in_use); free1=$(stat_of heap_free)
echo "RESULT moved_heap_in_use_per_conn=$(( (heap1 - heap0) / MOVED )) moved_heap_free_per_conn=$(( (free1 - free0) / MOVED ))"
per=$(( (after - before) * 1024 / MOVED ))
echo "RESULT moved_rss_kib_before=$before moved_rss_kib_busy=$busy moved_rss_kib_idle=$after moved_bytes_per_conn=$per compactions=$compactions"
[ "${compactions:-0}" -ge "$MOVED" ]; check "every moved connection gave its buffers back once idle" $? "compactions=${compactions:-?} of $MOVED"
detail="$per bytes each ($before KiB before, $busy KiB at the end of the transfers, $after KiB idle)"
[ $per -le 16384 ]; check "idle after moving 4 MiB each way: the rings' memory went back (at most 16 KiB of daemon RSS per connection)" $? "$detail"
if [ $per -le 8192 ]; then check "idle after moving 4 MiB each way: at most 8 KiB per connection (the goal)" 0 "$detail"
else known "idle after moving 4 MiB each way: at most 8 KiB per connection (the goal)" "$detail: issue 15's memory goal is not met"; fi
kill -TERM $holder; wait $holder
sleep 1

# Never used (one small request and answer), then idle.
bg_ns $S "$WORK/idle-server.log" python3 "$IDLECONNS" serve 5021 --mptcp --status "$WORK/idle.status"
wait_for 5 in_ns $S sh -c "ss -Hltn 'sport = :5021' | grep -q ."
before=$(rss); fresh_stats; heap0=$(stat_of heap_in_use); free0=$(stat_of heap_free)
bg_ns $C "$WORK/idle.log" python3 "$IDLECONNS" hold $MP_S_ADDR1 5021 $IDLE --batch 50 --timeout 20 --deadline $((60 + IDLE / 50))
holder=$LAST_PID
wait_for $((90 + IDLE / 50)) grep -q '^READY' "$WORK/idle.log"
opened=$(head -1 "$WORK/idle.log" | json_field opened 2>/dev/null || echo 0)
[ "$opened" = "$IDLE" ]; check "$IDLE connections opened end to end" $? "$(head -c 300 "$WORK/idle.log")"
sleep 4
after=$(rss); fresh_stats; heap1=$(stat_of heap_in_use); free1=$(stat_of heap_free)
echo "RESULT idle_heap_in_use_per_conn=$(( (heap1 - heap0) / IDLE )) idle_heap_free_per_conn=$(( (free1 - free0) / IDLE ))"
per=$(( (after - before) * 1024 / IDLE ))
echo "RESULT idle_rss_kib_before=$before idle_rss_kib=$after idle_bytes_per_conn=$per conns_open=$(stat_of conns_open)"
detail="$per bytes each ($before KiB before, $after KiB with $IDLE open)"
[ $per -le 6144 ]; check "never used: at most 6 KiB of daemon RSS per connection" $? "$detail"
if [ $per -le 4096 ]; then check "never used: at most 4 KiB per connection (the goal)" 0 "$detail"
else known "never used: at most 4 KiB per connection (the goal)" "$detail: issue 15's memory goal is not met"; fi
kill -TERM $holder; wait $holder
sleep 1

# Light traffic for SOAK seconds: CHATTY connections (default 1000) each
# send a 64-byte ping every 2 s that the server echoes. The daemon's RSS,
# sampled from SOAK_WARM seconds on (once every connection has pinged and
# taken what steady traffic needs), may grow by at most 5% of itself; a
# leak of a few KB per connection and minute shows within the CI's
# SOAK=60. Issue 15's soak is SOAK=600.
SOAK=${SOAK:-60}
CHATTY=${CHATTY:-1000}
SOAK_WARM=${SOAK_WARM:-15}
bg_ns $C "$WORK/chatter.log" python3 "$IDLECONNS" hold $MP_S_ADDR1 5021 $CHATTY --batch 50 --timeout 20 --deadline $((60 + CHATTY / 50)) --chatter 2
holder=$LAST_PID
wait_for $((90 + CHATTY / 50)) grep -q '^READY' "$WORK/chatter.log"
opened=$(head -1 "$WORK/chatter.log" | json_field opened 2>/dev/null || echo 0)
[ "$opened" = "$CHATTY" ]; check "$CHATTY connections opened for light traffic" $? "$(head -c 300 "$WORK/chatter.log")"
sleep $SOAK_WARM
start=$(rss); samples="$start"
t=$SOAK_WARM
while [ $t -lt $SOAK ]; do
    step=$(( SOAK - t < 30 ? SOAK - t : 30 )); sleep $step; t=$((t + step))
    samples="$samples $(rss)"
done
end=$(rss)
kill -TERM $holder; wait $holder
last=$(tail -1 "$WORK/chatter.log")
pings=$(echo "$last" | json_field pings 2>/dev/null || echo 0)
echoes=$(echo "$last" | json_field echoes 2>/dev/null || echo 0)
bad=$(echo "$last" | json_field bad 2>/dev/null || echo -1)
lost=$(echo "$last" | json_field lost 2>/dev/null || echo -1)
fresh_stats
echo "RESULT soak_seconds=$SOAK soak_conns=$CHATTY soak_rss_kib_start=$start soak_rss_kib_end=$end soak_rss_kib_samples=\"$samples\" pings=$pings echoes=$echoes bad=$bad lost=$lost compactions=$(stat_of compactions)"
[ "$bad" = 0 ] && [ "$lost" = 0 ] && [ "$pings" -gt $((CHATTY * (SOAK + SOAK_WARM) / 4)) ] && [ $((pings - echoes)) -le $CHATTY ]
check "light traffic: every ping echoed intact, no connection lost" $? "$last"
[ $(( (end - start) * 100 )) -le $(( start * 5 )) ]
check "light traffic for ${SOAK} s: the daemon's RSS grows by at most 5%" $? "$start KiB -> $end KiB (samples: $samples)"

kill -TERM $DAEMON; wait $DAEMON; check "daemon exits 0 on SIGTERM" $?
finish
