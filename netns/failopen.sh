#!/usr/bin/env bash
# --fail-open (issue 13, item 2): a full queue lets packets pass instead of
# dropping them. On the initiator testbed (plain client — gateway — server),
# the daemon is stopped (SIGSTOP) and the client floods the queued path with
# more TCP segments than the queue holds (8192); then a new plain TCP
# connection to the server:
#   - with --fail-open it connects (its packets pass untranslated);
#   - without it, it does not (the full queue drops them), and the daemon's
#     stats count the drops (queue_dropped, from the kernel).
# Either way the daemon goes on after SIGCONT (a new connection works) and
# exits 0 at SIGTERM.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
Q=$((1000 + TID % 20000))
C=foc-$TID; G=fog-$TID; S=fos-$TID
make_initiator_testbed $C $G $S
bg_ns $S "$WORK/server.log" python3 "$XFER" serve --port 5002
wait_for 5 grep -q listening "$WORK/server.log"

# 12000 bare ACKs from the client to a closed port of the server, through
# the gateway (each one queued while the daemon is stopped).
flood() {
    in_ns $C python3 -c '
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
for i in range(12000):
    tcp = struct.pack("!HHIIBBHHH", 20000 + i % 1000, 9, i, 0, 5 << 4, 0x10, 1000, 0, 0)
    s.sendto(tcp, ("10.31.2.2", 0))
'
}
connects() { in_ns $C python3 "$XFER" echo 10.31.2.2 5002 --timeout 4 >>"$WORK/echo.log" 2>&1; }

run() { # NAME ARGS...
    local name=$1 log=$WORK/daemon-$1.log rc st
    shift
    bg_ns $G "$log" "$NFQ_MPTCP" --queue $Q --lan g0 --uplink g1 --install-rules "$@"
    local d=$LAST_PID
    wait_for 10 grep -q "queue $Q bound" "$log"
    check "$name: daemon started" $?
    connects; check "$name: a connection through the running daemon" $?
    kill -STOP $d
    flood
    if [ "$name" = fail-open ]; then
        connects; check "$name: daemon stopped, queue full: a new connection still connects" $? "$(tail -1 "$WORK/echo.log")"
    else
        ! connects; check "$name: daemon stopped, queue full: a new connection fails" $? "$(tail -1 "$WORK/echo.log")"
    fi
    in_ns $G cat /proc/net/netfilter/nfnetlink_queue | sed "s/^/  $name, stopped: queue /"
    kill -CONT $d
    sleep 1
    connects; check "$name: daemon continued: a new connection works" $? "$(tail -1 "$WORK/echo.log")"
    kill -TERM $d; wait $d; rc=$?
    check "$name: daemon exits 0 at SIGTERM" $rc
    st=$(grep '\] stats' "$log" | tail -1)
    QUEUE_DROPPED=$(grep -o ' queue_dropped=[0-9]*' <<<"$st" | cut -d= -f2)
    echo "  $name: $(grep -oE ' (queue_[a-z_]+|packets|malformed|untracked)=[0-9]*' <<<"$st" | tr -d '\n')"
}

run fail-open --fail-open
[ "${QUEUE_DROPPED:-x}" = 0 ]; check "fail-open: nothing dropped by the kernel (queue_dropped=0)" $? "queue_dropped=${QUEUE_DROPPED:-none}"
run fail-closed
[ "${QUEUE_DROPPED:-0}" -gt 0 ]; check "fail-closed: the kernel's drops counted in the stats (queue_dropped)" $? "queue_dropped=${QUEUE_DROPPED:-none}"
finish
