#!/usr/bin/env bash
# The daemon killed mid-transfer (issue 13): a crash may end a connection,
# never corrupt it. On the multipath test-bed (40 + 10 Mbit/s, 20 / 35 ms),
# plain client C — gateway G (nfq-mptcp) — kernel MPTCP server S running
# verify.py, which (like its client) compares every byte with the seeded
# stream as it arrives: a wrong byte is seen even when the connection is
# reset afterwards. A 48 MiB transfer runs; 2 s into it the daemon gets
# SIGKILL and is started again with the same command line:
#   at once, with one uplink and with two (download and upload), and
#   after 10 s without it (the queue bypassed: plain TCP passes, MPTCP from
#   the uplinks is dropped), with
#   one uplink and with two (download).
# Each transfer must complete intact or end with an error (reset) with every
# byte received right, and be over within 10 s of the restart. With the
# daemon away, MPTCP packets from the uplinks are dropped (the mark rule):
# untranslated, the server's data-level resends would reach the client as
# new bytes (seen before that rule: the first wrong byte about 1 s into the
# outage). The restarted daemon does not wait for the ends' retransmission
# timers (backed off through the outage; in a download the client is
# silent, and the server's next packet may come on a join subflow, whose
# 4-tuple does not name the client): it reads the connection journal the
# killed one kept (--state-dir), probes both ends of each of its
# connections and resets them exactly, the server's with MP_FASTCLOSE.
# A killed daemon leaves its rules behind: the test shows what is left and
# restarts without cleaning; the daemon must take them over (identical
# iptables and ip rules, routes in its tables) and remove them at its exit,
# checked after the last SIGTERM of each part. (Before, with two uplinks it
# refused, and removing the leftovers by hand opened a window without the
# mark-and-drop rule: in one CI preview a download's retransmissions reached
# the client untranslated, a wrong byte. The fallback is kept, and fails.)
# Each time a new transfer through the restarted daemon must be intact.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
VERIFY="$REPO/netns/verify.py"
SIZE=$((48 << 20)); Q=$((1000 + TID % 20000))
make_multipath_testbed crs
C=$MP_C; G=$MP_G; S=$MP_S
bg_ns $S "$WORK/verify-server.log" python3 "$VERIFY" serve --mptcp --port 5004 --log "$WORK/server.jsonl"
wait_for 5 grep -q listening "$WORK/verify-server.log"
start_mp_server

RUN=0
# start_daemon UPLINKS...: the same command line each time; sets DAEMON and
# DLOG; returns 0 when it bound its queue, 1 when it exited first.
start_daemon() {
    RUN=$((RUN + 1)); DLOG=$WORK/daemon-$RUN.log
    local up=() u; for u in "$@"; do up+=(--uplink $u); done
    bg_ns $G "$DLOG" "$NFQ_MPTCP" --queue $Q --lan g0 "${up[@]}" --install-rules --stats-interval 2 --log-level debug
    DAEMON=$LAST_PID
    for _ in $(seq 100); do
        grep -q "queue $Q bound" "$DLOG" && return 0
        kill -0 $DAEMON 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
# What a daemon leaves in G: its iptables rules, ip rules to its tables,
# routes in them.
leftovers() {
    local ipt ipt6 rules routes
    ipt=$(in_ns $G iptables -t raw -S | grep -cE "queue-num $Q|notrack|mark 0x6d70")
    ipt6=$(in_ns $G ip6tables -t raw -S | grep -cE "queue-num $Q|notrack|mark 0x6d70")
    rules=$( (in_ns $G ip -4 rule; in_ns $G ip -6 rule) | grep -cE "lookup 100[0-7]")
    routes=$( (for t in 1000 1001 1002; do in_ns $G ip -4 route show table $t; in_ns $G ip -6 route show table $t; done) 2>/dev/null | grep -c .)
    echo "iptables=$ipt ip6tables=$ipt6 ip_rules=$rules routes_in_tables=$routes"
}
# The README's procedure after a SIGKILL: undo, newest first, what the
# daemon's debug log lists as installed ("installed: CMD", "set: sysctl
# NAME ... (was OLD)").
undo_from_log() { # LOG
    in_ns $G python3 - "$1" <<'PYEOF'
import re, subprocess, sys
steps = []
for line in open(sys.argv[1]):
    m = re.search(r"installed: (.*)$", line)
    if m:
        argv = m.group(1).split()
        if argv[0] in ("iptables", "ip6tables"):
            argv[argv.index("-A")] = "-D"
        elif argv[0] == "ip":
            argv[argv.index("add")] = "del"
        steps.append(("cmd", argv))
    m = re.search(r"set: sysctl (\S+) .*\(was (.*)\)$", line)
    if m:
        steps.append(("sysctl", m.group(1), m.group(2)))
for s in reversed(steps):
    if s[0] == "cmd":
        r = subprocess.run(s[1], capture_output=True, text=True)
        print(("undone: " if r.returncode == 0 else "FAILED: ") + " ".join(s[1]) + ("" if r.returncode == 0 else " (" + r.stderr.strip() + ")"))
    else:
        open("/proc/sys/" + s[1].replace(".", "/"), "w").write(s[2] + "\n")
        print("restored: %s = %s" % (s[1], s[2]))
PYEOF
}

# crash NAME MODE GAP UPLINKS...: a transfer, the daemon killed 2 s into it,
# restarted GAP s later.
crash() {
    local name=$1 mode=$2 gap=$3; shift 3
    local out=$WORK/$name.json xf t_restart left
    SEED=$((${SEED:-60} + 1))
    [[ " ${CASES:-$name} " == *" $name "* ]] || return 0
    if [ -n "${CRASHPCAP:-}" ]; then
        local i; for i in g0 g1 g2; do bg_ns $G /dev/null tcpdump -i $i -s 128 -B 32768 -w "$WORK/$name-$i.pcap" tcp port 5004; done
        sleep 0.5
    fi
    in_ns $C python3 "$VERIFY" $mode $MP_S_ADDR1 5004 $SIZE $SEED --timeout 30 >"$out" 2>&1 &
    xf=$!
    sleep 2
    kill -0 $xf 2>/dev/null; check "$name: the transfer is running when the daemon is killed" $?
    kill -KILL $DAEMON; wait $DAEMON 2>/dev/null
    left=$(leftovers)
    echo "  $name: SIGKILL; left behind: $left"
    sleep $gap
    local how="restarted at once with the leftovers in place"
    if ! start_daemon "$@"; then
        local why; why=$(grep -m1 -iE "error|fail" "$DLOG" | cut -c1-220)
        echo "  $name: restart refused: ${why:-exited} (leftovers: $(leftovers))"
        kill $DAEMON 2>/dev/null; wait $DAEMON 2>/dev/null
        undo_from_log "$WORK/daemon-$((RUN - 1)).log" | sed "s/^/  $name: /" | grep -v "^  $name: undone" 
        echo "  $name: after undoing the killed daemon's steps: $(leftovers)"
        how="refused with the leftovers in place; started after undoing them (README)"
        start_daemon "$@"
    fi
    local started=$?
    t_restart=$(date +%s.%N)
    echo "RESULT ${name}_restart=\"$how\""
    # Undoing by hand would open a window without the mark-and-drop rule,
    # in which peer packets reach the LAN untranslated (README).
    [ "$how" = "restarted at once with the leftovers in place" ]
    check "$name: the daemon restarted at once over the killed one's rules (no hands, no window)" $? "$how"
    check "$name: the daemon runs again after the restart" $started "$(grep -m1 "bound" "$DLOG")"
    # The transfer: over within 10 s of the restart.
    local limit=10
    local deadline; deadline=$(python3 -c "print($t_restart + $limit)")
    while kill -0 $xf 2>/dev/null && python3 -c "import sys,time; sys.exit(0 if time.time() < $deadline else 1)"; do sleep 0.2; done
    local hung=1; kill -0 $xf 2>/dev/null && { hung=0; kill $xf; }
    wait $xf 2>/dev/null
    local after; after=$(python3 -c "import time; print(round(time.time() - $t_restart, 1))")
    local end mism got
    end=$(json_field end <"$out" 2>/dev/null); mism=$(json_field first_mismatch <"$out" 2>/dev/null)
    got=$(json_field $([ $mode = down ] && echo received || echo sent) <"$out" 2>/dev/null)
    local outcome=intact
    if [ $hung = 0 ]; then outcome=HUNG
    elif [ "$mism" != None ]; then outcome=CORRUPT
    elif [ "$end" = complete ]; then outcome=intact
    elif [[ "$end" == error* ]]; then outcome=reset
    else outcome=TRUNCATED; fi
    # The server's end of it: over too, within the limit (a connection left
    # open there holds its application), and for an upload, what it got
    # compared there.
    local port srv="" srv_after="" i
    port=$(python3 -c "import json; print(json.load(open('$out'))['local'][1])" 2>/dev/null)
    for i in $(seq 50); do
        srv=$(grep "\"$MP_C_ADDR\", ${port:-0}\]" "$WORK/server.jsonl" | tail -1)
        [ -n "$srv" ] && break
        python3 -c "import sys,time; sys.exit(0 if time.time() < $deadline else 1)" || break
        sleep 0.2
    done
    srv_after=$(python3 -c "import json,sys; print(round(json.loads(sys.argv[1])['t_end'] - $t_restart, 1))" "$srv" 2>/dev/null)
    python3 -c "import sys; sys.exit(0 if float('$srv_after') <= $limit else 1)" 2>/dev/null
    check "$name: the server's end is over within $limit s of the restart too" $? "${srv:-no record}, ${srv_after:-?} s"
    if [ $mode = up ]; then
        local smism; smism=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['first_mismatch'])" "$srv" 2>/dev/null)
        [ -n "$srv" ] && [ "$smism" != None ] && outcome=CORRUPT
    fi
    echo "RESULT ${name}_outcome=$outcome ${name}_bytes=${got:-0} ${name}_ended_s_after_restart=$after"
    echo "  $name: client: $(head -c 300 "$out")"
    echo "  $name: server: ${srv:-no record}"
    check "$name: the transfer is over within $limit s of the restart" $((1 - hung)) "$outcome, $after s"
    [ $outcome = intact ] || [ $outcome = reset ]
    check "$name: intact, or ended by an error with every byte right (no wrong byte, no silent truncation)" $? "$outcome: end=$end first_mismatch=$mism bytes=$got"
    # The killed daemon's connection was taken over from its journal.
    grep -q "resetting at both ends 1 connection" "$DLOG"
    check "$name: the restarted daemon read the killed one's journal" $? "$(grep -m1 "resetting at both ends" "$DLOG")"
    # The restarted daemon translates a new connection.
    in_ns $C python3 "$XFER" $mode $MP_S_ADDR1 5002 $((16 << 20)) $((SEED + 100)) --timeout 60 >"$WORK/$name-new.json" 2>&1
    check "$name: a new 16 MiB $mode through the restarted daemon, sha256 equal" $? "$(head -c 200 "$WORK/$name-new.json")"
}

stop_daemon() { # NAME
    kill -TERM $DAEMON; wait $DAEMON; check "$1: daemon exits 0 on SIGTERM" $?
    local left; left=$(leftovers)
    echo "RESULT $1_left_after_sigterm=\"$left\""
    [ "$left" = "iptables=0 ip6tables=0 ip_rules=0 routes_in_tables=0" ]
    check "$1: nothing left after SIGTERM (the killed daemons' rules taken over and removed)" $? "$left"
    if [ "$left" != "iptables=0 ip6tables=0 ip_rules=0 routes_in_tables=0" ]; then
        echo "  $1: the rules of the killed daemon(s) are still there; undone by hand:"
        local r; for r in $(seq $RUN -1 1); do undo_from_log "$WORK/daemon-$r.log" >/dev/null 2>&1; done
        echo "  $1: now $(leftovers)"
    fi
}

# ------------------------------------------------------------ one uplink
start_daemon g1; check "one uplink: daemon starts" $?
crash 1-down-restart     down 0  g1
crash 1-up-restart       up   0  g1
crash 1-down-gap10       down 10 g1
stop_daemon one-uplink

# ------------------------------------------------------------ two uplinks
start_daemon g1 g2; check "two uplinks: daemon starts" $?
crash 2-down-restart     down 0  g1 g2
crash 2-up-restart       up   0  g1 g2
crash 2-down-gap10       down 10 g1 g2
stop_daemon two-uplinks
finish
