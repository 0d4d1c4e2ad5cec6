#!/usr/bin/env bash
# Figure "pps": the NFQUEUE ceiling. One uplink, unshaped: client C — gateway
# G — server S (make_initiator_testbed; S is a kernel MPTCP host serving
# `xfer.py serve --mptcp`, which plain clients fall back from). An upload of
# BENCH_QUICK ? 3 : 5 s per repetition through G doing one of:
#   forward     G only routes
#   nfq-accept  the iptables rules nfq-mptcp installs for one uplink (raw
#               PREROUTING, -i g0 and -i g1: CT --notrack and NFQUEUE
#               --queue-bypass) with `Bench nfq-accept`, a loop that accepts
#               every queued packet unchanged
#   nfq-mptcp   the daemon (--lan g0 --uplink g1 --install-rules), translating
# each with the client's GSO/TSO on (-gso: super-segments reach G) and off
# (-nogso: `ethtool -K c0 gso off tso off`, wire-sized packets: the per-packet
# cost). Prints (bench contract):
#   SAMPLE pps DESIGN REP mbit X Mbit/s         the upload's rate (sha256 checked by xfer.py)
#   SAMPLE pps DESIGN REP pps X pps             packets per second that hit the NFQUEUE rules, both
#                                                directions (forward: packets received on g0 + g1)
#   SAMPLE pps DESIGN REP pps_lan X pps         the same for the LAN side only (the rule on g0; forward: g0 rx)
#   SAMPLE pps DESIGN REP cpu_s_per_gb X s/GB   CPU seconds of the gateway process per GB uploaded
#   SAMPLE pps DESIGN REP queue_drops X 1       packets the queue dropped (queue full / user drop)
# Environment: BENCH_OUT, BENCH_REPS (5), BENCH_QUICK (0), BENCH_DESIGNS (a subset: forward,
# nfq-accept, nfq-mptcp, or full names like nfq-mptcp-nogso), BENCH_BIN (the Bench executable),
# NFQ_MPTCP.
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$REPO/netns/lib.sh"

BENCH_OUT=${BENCH_OUT:-$WORK}
BENCH_REPS=${BENCH_REPS:-5}
BENCH_QUICK=${BENCH_QUICK:-0}
BENCH_DESIGNS=${BENCH_DESIGNS:-}
BENCH_BIN=${BENCH_BIN:-$REPO/.build/release/Bench}
[ -x "$BENCH_BIN" ] || { echo "FAIL - Bench not built ($BENCH_BIN): swift build -c release --product Bench"; exit 1; }
DUR=5; [ "$BENCH_QUICK" = 1 ] && DUR=3
mkdir -p "$BENCH_OUT/pps"

# The variants to run (BENCH_DESIGNS names a base design or a variant).
selected() { # selected BASE VARIANT
    [ -z "$BENCH_DESIGNS" ] && return 0
    local d; for d in $BENCH_DESIGNS; do [ "$d" = "$1" ] || [ "$d" = "$1-$2" ] && return 0; done
    return 1
}
BASES=()
for b in forward nfq-accept nfq-mptcp; do
    if selected $b gso || selected $b nogso; then BASES+=($b); fi
done
if [ ${#BASES[@]} = 0 ]; then
    echo "INFO pps-skipped no pps design in BENCH_DESIGNS ($BENCH_DESIGNS)"
    exit 0
fi

C=bpps-c-$TID G=bpps-g-$TID S=bpps-s-$TID
Q=$((1000 + TID % 20000))
S_ADDR=10.31.2.2
make_initiator_testbed $C $G $S
bg_ns $S "$WORK/server.log" python3 "$XFER" serve --mptcp --port 5002
wait_for 5 in_ns $S ss -ltn 'sport = :5002' || { echo "FAIL - the MPTCP server on S did not start: $(cat "$WORK/server.log")"; exit 1; }
TICK=$(getconf CLK_TCK)
echo "INFO pps-testbed C — G — S (veth, one uplink, unshaped, no linkemu); S kernel MPTCP (xfer.py serve --mptcp); $DUR s upload per repetition; client c0 gso_max_size 65000"
echo "INFO pps-offloads G g0: $(in_ns $G ethtool -k g0 2>/dev/null | grep -E '^generic-receive-offload' | tr -d '\t'); client -nogso: ethtool -K c0 gso off tso off"

# Forgets a PID lib.sh's cleanup would otherwise signal again.
forget_pid() { local p keep=(); for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done; PIDS=("${keep[@]}"); }
stop_pid() { # stop_pid PID: SIGTERM, wait (at most 10 s), then forget it
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    forget_pid "$1"
}

# The rules nfq-mptcp installs with one uplink (Sources/Translator/Daemon/Rules.swift).
accept_rules() { # accept_rules -A|-D
    local tool i
    for tool in iptables ip6tables; do
        for i in g0 g1; do
            in_ns $G $tool -w -t raw $1 PREROUTING -i $i -p tcp -m addrtype ! --dst-type LOCAL -j CT --notrack
            in_ns $G $tool -w -t raw $1 PREROUTING -i $i -p tcp -m addrtype ! --dst-type LOCAL -j NFQUEUE --queue-num $Q --queue-bypass
        done
    done
}
nfqueue_rules() { in_ns $G iptables -w -t raw -L PREROUTING -v -x -n | grep -c NFQUEUE; }

# Packets counted for a design: "ALL LAN" (queued packets, or for forward
# the interfaces' received packets).
packets() { # packets BASE
    if [ "$1" = forward ]; then
        local a b
        a=$(in_ns $G cat /sys/class/net/g0/statistics/rx_packets); b=$(in_ns $G cat /sys/class/net/g1/statistics/rx_packets)
        echo "$((a + b)) $a"
    else
        in_ns $G iptables -w -t raw -L PREROUTING -v -x -n | awk '$3 == "NFQUEUE" {all += $1; if ($6 == "g0") lan += $1} END {print all + 0, lan + 0}'
    fi
}
queue_drops() { # queue_dropped + user_dropped of queue Q in G (0 when not bound)
    in_ns $G awk -v q=$Q '$1 == q {print $6 + $7; f = 1} END {if (!f) print 0}' /proc/net/netfilter/nfnetlink_queue 2>/dev/null || echo 0
}
cpu_ticks() { # utime + stime of PID (all its threads), in clock ticks
    if [ -n "$1" ]; then sed 's/.*) //' /proc/$1/stat 2>/dev/null | awk '{t = $12 + $13} END {print t + 0}'; else echo 0; fi
}

GW_PID=
start_design() { # start_design BASE: sets GW_PID (empty for forward)
    GW_PID=
    case $1 in
    forward) return 0 ;;
    nfq-accept)
        accept_rules -A
        bg_ns $G "$WORK/nfq-accept.log" "$BENCH_BIN" nfq-accept --queue $Q
        GW_PID=$LAST_PID
        wait_for 10 grep -q "queue $Q bound" "$WORK/nfq-accept.log" || { echo "FAIL - nfq-accept did not bind queue $Q: $(cat "$WORK/nfq-accept.log")"; return 1; } ;;
    nfq-mptcp)
        bg_ns $G "$WORK/daemon.log" "$NFQ_MPTCP" --queue $Q --lan g0 --uplink g1 --install-rules --stats-interval 0
        GW_PID=$LAST_PID
        wait_for 20 grep -q "queue $Q bound" "$WORK/daemon.log" || { echo "FAIL - nfq-mptcp did not bind queue $Q: $(tail -5 "$WORK/daemon.log")"; return 1; } ;;
    esac
}
stop_design() { # stop_design BASE
    case $1 in
    forward) ;;
    nfq-accept)
        stop_pid $GW_PID
        echo "note: $(grep 'packets=' "$WORK/nfq-accept.log" | tail -1)"
        cat "$WORK/nfq-accept.log" >>"$BENCH_OUT/pps/nfq-accept.log"
        accept_rules -D ;;
    nfq-mptcp)
        stop_pid $GW_PID
        local st; st=$(grep '\] stats' "$WORK/daemon.log" | tail -1)
        echo "note: daemon at exit: $(echo "$st" | grep -oE ' (opened|mptcp|fallback|dropped|truncated|verdict_errors)=[^ ]*' | tr '\n' ' ')"
        cat "$WORK/daemon.log" >>"$BENCH_OUT/pps/daemon.log"
        # A translated connection, not a fallback.
        local m; m=$(echo "$st" | grep -o ' mptcp=[0-9]*' | cut -d= -f2)
        [ "${m:-0}" -ge 1 ] || echo "FAIL - nfq-mptcp: no connection was translated to MPTCP (stats: ${st:-none})"
        if [ "$(nfqueue_rules)" != 0 ]; then echo "FAIL - nfq-mptcp left its rules behind"; in_ns $G iptables -w -t raw -F PREROUTING; in_ns $G ip6tables -w -t raw -F PREROUTING; fi ;;
    esac
    GW_PID=
}

# One upload through the running design; prints its SAMPLE lines.
measure() { # measure BASE VARIANT REP
    local base=$1 var=$2 rep=$3 name=$1-$2 out="$WORK/xfer-$1-$2-$3.json"
    if [ $var = nogso ]; then in_ns $C ethtool -K c0 gso off tso off >/dev/null; else in_ns $C ethtool -K c0 gso on tso on >/dev/null; fi
    local p0 c0 d0 t0 p1 c1 d1 t1 rc
    p0=$(packets $base); c0=$(cpu_ticks "$GW_PID"); d0=$(queue_drops); t0=$(date +%s.%N)
    in_ns $C python3 "$XFER" up $S_ADDR 5002 0 $((rep * 10 + ${#var})) --duration $DUR --timeout $((DUR + 60)) >"$out" 2>&1
    rc=$?
    t1=$(date +%s.%N); p1=$(packets $base); c1=$(cpu_ticks "$GW_PID"); d1=$(queue_drops)
    in_ns $C ethtool -K c0 gso on tso on >/dev/null
    echo "note: $name rep $rep: $(head -c 400 "$out")"
    if [ $rc != 0 ] || ! grep -q '"ok": true' "$out"; then
        echo "SAMPLE pps $name $rep error 1 1"
        echo "FAIL - pps $name rep $rep: the upload failed (xfer rc $rc): $(head -c 300 "$out")"
        return
    fi
    python3 - "$out" "$p0" "$p1" "$t0" "$t1" "$c0" "$c1" "$TICK" "$d0" "$d1" "$name" "$rep" "${GW_PID:+gw}" <<'EOF'
import json, sys
a = sys.argv
d = json.load(open(a[1]))
all0, lan0 = (int(x) for x in a[2].split()); all1, lan1 = (int(x) for x in a[3].split())
secs = float(a[5]) - float(a[4])
name, rep = a[11], a[12]
print(f"SAMPLE pps {name} {rep} mbit {d['mbit_s']} Mbit/s")
print(f"SAMPLE pps {name} {rep} pps {(all1 - all0) / secs:.0f} pps")
print(f"SAMPLE pps {name} {rep} pps_lan {(lan1 - lan0) / secs:.0f} pps")
if a[13] == "gw":
    cpu = (int(a[7]) - int(a[6])) / int(a[8])
    print(f"SAMPLE pps {name} {rep} cpu_s_per_gb {cpu / (d['bytes'] / 1e9):.3f} s/GB")
    print(f"SAMPLE pps {name} {rep} queue_drops {int(a[10]) - int(a[9])} 1")
EOF
}

for rep in $(seq 1 "$BENCH_REPS"); do
    for base in "${BASES[@]}"; do
        if ! start_design $base; then
            for var in gso nogso; do selected $base $var && echo "SAMPLE pps $base-$var $rep error 1 1"; done
            stop_design $base
            continue
        fi
        for var in gso nogso; do
            selected $base $var && measure $base $var $rep
        done
        stop_design $base
    done
done
cp "$WORK"/xfer-*.json "$BENCH_OUT/pps/" 2>/dev/null
exit 0
