#!/usr/bin/env bash
# SIGUSR1 never holds up the packet loop (issue 13, item 3): the multipath
# state of every connection is written in parts, one per loop pass (64 table
# slots each), and the counters at once. On the multipath test-bed, N plain
# TCP connections (default 300) are held open through the gateway (two
# uplinks, so each is a multipath connection with a join) to a kernel MPTCP
# server; then SIGUSR1. Checks: the dump comes in several parts, every held
# connection is in it exactly once, a connection opened during it connects,
# and the daemon exits 0 at SIGTERM.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
N=${N:-300}
make_multipath_testbed dump
C=$MP_C; S=$MP_S
start_mp_daemon "daemon starts with two uplinks" --uplink g1 --uplink g2
start_mp_server
# A kernel MPTCP server that accepts and holds (port 5003).
bg_ns $S "$WORK/hold-server.log" python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5003)); s.listen(4096)
print("listening", flush=True)
held = []
while True:
    c, _ = s.accept(); held.append(c)
'
wait_for 5 grep -q listening "$WORK/hold-server.log"
bg_ns $C "$WORK/hold-client.log" python3 -c '
import socket, sys, time
held = []
for i in range('$N'):
    held.append(socket.create_connection(("'$MP_S_ADDR1'", 5003), timeout=10))
print("ready", len(held), flush=True)
time.sleep(600)
'
HOLDER=$LAST_PID
wait_for 60 grep -q ready "$WORK/hold-client.log"
check "$N connections held through the gateway" $? "$(tail -1 "$WORK/hold-client.log")"
sleep 2 # their joins

in_ns $C python3 "$XFER" echo $MP_S_ADDR1 5002 --timeout 5 >"$WORK/echo-before.json" 2>&1
kill -USR1 $DAEMON
in_ns $C python3 "$XFER" echo $MP_S_ADDR1 5002 --timeout 5 >"$WORK/echo.json" 2>&1
check "a connection opened during the dump connects" $? \
    "connect $(json_field connect_ms <"$WORK/echo.json" 2>/dev/null) ms; before the dump $(json_field connect_ms <"$WORK/echo-before.json" 2>/dev/null) ms (one RTT is 40 ms)"
wait_for 20 bash -c "[ \$(grep -c ':5003 phase' '$WORK/daemon.log') -ge $N ]"
sleep 1
parts=$(grep -c 'multipath state (from slot' "$WORK/daemon.log")
conns=$(grep -oE '^10\.41\.1\.1:[0-9]+ -> [^ ]+:5003 phase' "$WORK/daemon.log" | sort | uniq -c)
once=$(awk '$1 == 1' <<<"$conns" | wc -l); more=$(awk '$1 > 1' <<<"$conns" | wc -l)
[ "$parts" -ge 2 ]; check "the dump came in parts" $? "$parts parts"
[ "$once" = "$N" ] && [ "$more" = 0 ]; check "every held connection in the dump exactly once" $? "$once once, $more more than once"
grep -q ' table_full=0 .*\] stats' "$WORK/daemon.log"; check "the counters logged at once" $?

kill $HOLDER 2>/dev/null
kill -TERM $DAEMON; wait $DAEMON; rc=$?
check "daemon exits 0 at SIGTERM" $rc
finish
