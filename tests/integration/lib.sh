# Shared helpers for the netns integration tests (sourced, not run).
# Every test makes its own uniquely named namespaces and removes them, and
# every process it started (by PID), on every exit path.

# A test runner may hand us blocked or ignored signals (inherited across
# exec); then SIGINT/SIGTERM would never reach tcpdump, servers or the
# daemon. Start afresh with a clean signal mask and default dispositions.
if [ -z "${NFQ_IT_SIGNALS_RESET:-}" ] && ! grep -qE '^SigBlk:\s*0+$' /proc/$$/status; then
    export NFQ_IT_SIGNALS_RESET=1
    exec python3 -c 'import os, signal, sys
signal.pthread_sigmask(signal.SIG_SETMASK, [])
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGPIPE, signal.SIGUSR1):
    signal.signal(s, signal.SIG_DFL)
os.execvp("bash", ["bash"] + sys.argv[1:])' "$0" "$@"
fi

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
XFER="$REPO/tests/integration/xfer.py"
NFQ_MPTCP=${NFQ_MPTCP:-}
if [ -z "$NFQ_MPTCP" ]; then
    for b in "$REPO/.build/release/nfq-mptcp" "$REPO/.build/debug/nfq-mptcp"; do
        [ -x "$b" ] && { NFQ_MPTCP=$b; break; }
    done
fi
[ -x "$NFQ_MPTCP" ] || { echo "FAIL: nfq-mptcp binary not built (swift build)"; exit 1; }

TID=${TID:-$$}
WORK=$(mktemp -d "/tmp/nfq-it.$TID.XXXXXX")
NAMESPACES=()
PIDS=()
FAILURES=0
CHECKS=0

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
    done
    for n in "${NAMESPACES[@]}"; do ip netns del "$n" 2>/dev/null; done
    if [ "${KEEP_WORK:-0}" = 1 ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

ns_add() { ip netns add "$1"; NAMESPACES+=("$1"); ip -n "$1" link set lo up; }
in_ns() { local n=$1; shift; ip netns exec "$n" "$@"; }
# Starts a background process in a namespace; its PID is remembered.
bg_ns() { local n=$1 log=$2; shift 2; ip netns exec "$n" "$@" >"$log" 2>&1 & PIDS+=($!); LAST_PID=$!; }

check() { # check NAME CONDITION-RESULT(0/1) DETAIL
    CHECKS=$((CHECKS + 1))
    if [ "$2" = 0 ]; then echo "ok   - $1${3:+ ($3)}"; else echo "FAIL - $1${3:+ ($3)}"; FAILURES=$((FAILURES + 1)); fi
}
json_field() { python3 -c 'import json,sys; d=json.loads(sys.stdin.readline()); v=d
for k in sys.argv[1].split("."): v=v[k] if isinstance(v,dict) else v
print(v)' "$1"; }
nstat_value() { # nstat_value NS COUNTER -> absolute value (0 when absent)
    in_ns "$1" nstat -az "$2" 2>/dev/null | awk -v c="$2" '$1==c {print $2; f=1} END {if(!f) print 0}'
}
wait_for() { # wait_for SECONDS CMD...: retries CMD until it succeeds
    local t=$1; shift
    for _ in $(seq $((t * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    return 1
}
finish() {
    echo "# $CHECKS checks, $FAILURES failed"
    [ "$FAILURES" = 0 ]
}

# The initiator testbed: client $1 (plain TCP, 10.31.1.1 / fd31:1::1) —
# gateway $2 (LAN g0, uplink g1, forwarding) — server $3 (10.31.2.2 /
# fd31:2::2, kernel MPTCP enabled). The client's GSO size is capped so a
# super-segment plus DSS still fits in what a verdict carries.
make_initiator_testbed() {
    local C=$1 G=$2 S=$3
    ns_add $C; ns_add $G; ns_add $S
    ip link add c0 netns $C type veth peer name g0 netns $G
    ip link add g1 netns $G type veth peer name s1 netns $S
    in_ns $C ip addr add 10.31.1.1/24 dev c0; in_ns $C ip addr add fd31:1::1/64 dev c0 nodad
    in_ns $G ip addr add 10.31.1.2/24 dev g0; in_ns $G ip addr add fd31:1::2/64 dev g0 nodad
    in_ns $G ip addr add 10.31.2.1/24 dev g1; in_ns $G ip addr add fd31:2::1/64 dev g1 nodad
    in_ns $S ip addr add 10.31.2.2/24 dev s1; in_ns $S ip addr add fd31:2::2/64 dev s1 nodad
    local x; for x in "$C c0" "$G g0" "$G g1" "$S s1"; do set -- $x; ip -n $1 link set $2 up; done
    in_ns $C ip route add default via 10.31.1.2; in_ns $C ip -6 route add default via fd31:1::2
    in_ns $S ip route add 10.31.1.0/24 via 10.31.2.1; in_ns $S ip -6 route add fd31:1::/64 via fd31:2::1
    in_ns $G sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    in_ns $S sysctl -qw net.mptcp.enabled=1
    ip -n $C link set c0 gso_max_size 65000
}
