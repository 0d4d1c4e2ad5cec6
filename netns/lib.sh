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

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
XFER="$REPO/netns/xfer.py"
NFQ_MPTCP=${NFQ_MPTCP:-}
if [ -z "$NFQ_MPTCP" ]; then
    for b in "$REPO/.build/release/nfq-mptcp" "$REPO/.build/debug/nfq-mptcp"; do
        [ -x "$b" ] && { NFQ_MPTCP=$b; break; }
    done
fi
# Scripts that never start the daemon (the kernel-only multipath baseline) set
# NFQ_MPTCP_OPTIONAL=1 before sourcing this file.
[ -x "$NFQ_MPTCP" ] || [ "${NFQ_MPTCP_OPTIONAL:-0}" = 1 ] || { echo "FAIL: nfq-mptcp binary not built (swift build)"; exit 1; }

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
# known NAME DETAIL: a check that failed by a known defect, recognised by
# the defect's own signature (DETAIL: the open issue and the evidence). The
# test runner reports it as a known issue; it does not fail the script.
known() { KNOWN_ISSUES=$((${KNOWN_ISSUES:-0} + 1)); echo "KNOWN - $1 ($2)"; }
finish() {
    echo "# $CHECKS checks, $FAILURES failed${KNOWN_ISSUES:+, $KNOWN_ISSUES known issue(s)}"
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

# ---------------------------------------------------------------------------
# The multipath testbed: a plain TCP client, a gateway with two uplinks, each
# uplink through its own link router (delay/loss from linkemu on FORWARD,
# rate from tbf on both of the router's egress interfaces), and one server
# with an address per uplink.
#
#   C c0 10.41.1.1 ── g0 10.41.1.2  G  g1 10.41.2.1 ── l1g 10.41.2.2  L1  l1s 10.41.12.1 ── s1 10.41.12.2  S
#     fd41:1::1        fd41:1::2       fd41:2::1        fd41:2::2          fd41:12::1        fd41:12::2
#                                   g2 10.41.3.1 ── l2g 10.41.3.2  L2  l2s 10.41.22.1 ── s2 10.41.22.2
#                                      fd41:3::1        fd41:3::2          fd41:22::1        fd41:22::2
#
# Routing. G's main table: S's link-1 address (10.41.12.0/24) and a default
# via uplink 1, S's link-2 address (10.41.22.0/24) via uplink 2 — so a plain
# connection chooses its uplink by the S address it targets. Source-specific
# routing on G: `from 10.41.2.1 table 101` (default via L1) and `from
# 10.41.3.1 table 102` (default via L2), also for forwarded packets whose
# source is rewritten to an uplink address (the translator's extra
# subflows). Each L routes everything towards S (default via S) and G's side
# (LAN, its uplink subnet) back to G. S routes G's uplink-K subnet via link
# K, and the LAN by its own source address: replies to the LAN from
# 10.41.12.2 via link 1, from 10.41.22.2 via link 2 (so both directions of a
# LAN connection use the same uplink). Any S address is reachable over either link (a join from
# 10.41.3.1 to 10.41.12.2 goes G g2 — L2 — S s2).
# G: forwarding, accept_local=1; rp_filter=2 (loose) on every interface of
# every namespace. S: MPTCP enabled, limits subflow 8 add_addr_accepted 8 (joins
# accepted); MP_S_SIGNAL=1 also makes S announce 10.41.22.2 (ADD_ADDR).
# Receive buffers: tcp_rmem "4096 131072 33554432" on C, G and S — with the
# default 6 MiB maximum the kernel's MPTCP receiver over unequal paths can
# stall for good (out-of-order data fills the receive buffer and the
# connection never recovers); the larger maximum avoids it. (Set it on every
# receiving namespace; MP_TCP_RMEM overrides it, e.g. to reproduce the stall.)
#
# Parameters (environment): RATE1/RATE2 (tbf rates, default 40mbit/10mbit),
# DELAY1/DELAY2 (one-way ms, default 20/35), LOSS1/LOSS2 (random loss per
# packet and direction on that link, default $LOSS or 0; seeds SEED1/SEED2),
# TBF_BURST (default 32kb), TBF_LATENCY (default 50ms: the tbf queue),
# LINKEMU (the binary). Optional argument: a name prefix (default "mp").
#
# Exports: MP_C MP_G MP_L1 MP_L2 MP_S (namespaces PREFIX-c-$TID, -g-, -l1-,
#   -l2-, -s-);
#   interfaces MP_C_IF=c0, MP_G_LAN=g0, MP_G_UP1=g1, MP_G_UP2=g2,
#   MP_L1_G=l1g MP_L1_S=l1s MP_L2_G=l2g MP_L2_S=l2s, MP_S_IF1=s1 MP_S_IF2=s2;
#   addresses MP_C_ADDR MP_G_LAN_ADDR MP_G_ADDR1 MP_G_ADDR2 MP_L1_ADDR
#   MP_L2_ADDR (next hops) MP_S_ADDR1 MP_S_ADDR2, and the same with 6
#   appended for IPv6 (MP_C_ADDR6 …);
#   MP_EMU_Q1 MP_EMU_Q2 (the links' NFQUEUE numbers), MP_EMU_PID1 MP_EMU_PID2.
# Functions: cut_uplink K / restore_uplink K (drop everything in L_K: a cut
# beyond the gateway, G sees its interface up), uplink_down K / uplink_up K
# (G's interface down/up; routes are put back), if_bytes NS IF rx|tx,
# mp_kernel_endpoints (G's kernel MPTCP client: limits and a subflow
# endpoint on uplink 2, for the kernel reference).
make_multipath_testbed() {
    local P=${1:-mp}
    MP_C=$P-c-$TID; MP_G=$P-g-$TID; MP_L1=$P-l1-$TID; MP_L2=$P-l2-$TID; MP_S=$P-s-$TID
    MP_C_IF=c0; MP_G_LAN=g0; MP_G_UP1=g1; MP_G_UP2=g2
    MP_L1_G=l1g; MP_L1_S=l1s; MP_L2_G=l2g; MP_L2_S=l2s; MP_S_IF1=s1; MP_S_IF2=s2
    MP_C_ADDR=10.41.1.1; MP_G_LAN_ADDR=10.41.1.2; MP_G_ADDR1=10.41.2.1; MP_G_ADDR2=10.41.3.1
    MP_L1_ADDR=10.41.2.2; MP_L2_ADDR=10.41.3.2; MP_S_ADDR1=10.41.12.2; MP_S_ADDR2=10.41.22.2
    MP_C_ADDR6=fd41:1::1; MP_G_LAN_ADDR6=fd41:1::2; MP_G_ADDR16=fd41:2::1; MP_G_ADDR26=fd41:3::1
    MP_L1_ADDR6=fd41:2::2; MP_L2_ADDR6=fd41:3::2; MP_S_ADDR16=fd41:12::2; MP_S_ADDR26=fd41:22::2
    MP_RATE1=${RATE1:-40mbit}; MP_RATE2=${RATE2:-10mbit}
    MP_DELAY1=${DELAY1:-20}; MP_DELAY2=${DELAY2:-35}
    MP_LOSS1=${LOSS1:-${LOSS:-0}}; MP_LOSS2=${LOSS2:-${LOSS:-0}}
    MP_EMU_Q1=$((3000 + TID % 20000)); MP_EMU_Q2=$((23000 + TID % 20000))
    LINKEMU=${LINKEMU:-}
    if [ -z "$LINKEMU" ]; then
        local b; for b in "$(dirname "${NFQ_MPTCP:-/nonexistent/x}")/linkemu" "$REPO/.build/release/linkemu" "$REPO/.build/debug/linkemu"; do
            [ -x "$b" ] && { LINKEMU=$b; break; }
        done
    fi
    [ -x "$LINKEMU" ] || { echo "FAIL - linkemu not built (set LINKEMU)"; exit 1; }
    local C=$MP_C G=$MP_G L1=$MP_L1 L2=$MP_L2 S=$MP_S n x
    for n in $C $G $L1 $L2 $S; do ns_add $n; done
    ip link add c0 netns $C type veth peer name g0 netns $G
    ip link add g1 netns $G type veth peer name l1g netns $L1
    ip link add l1s netns $L1 type veth peer name s1 netns $S
    ip link add g2 netns $G type veth peer name l2g netns $L2
    ip link add l2s netns $L2 type veth peer name s2 netns $S
    for x in "$C c0 10.41.1.1 fd41:1::1" "$G g0 10.41.1.2 fd41:1::2" \
             "$G g1 10.41.2.1 fd41:2::1" "$L1 l1g 10.41.2.2 fd41:2::2" "$L1 l1s 10.41.12.1 fd41:12::1" "$S s1 10.41.12.2 fd41:12::2" \
             "$G g2 10.41.3.1 fd41:3::1" "$L2 l2g 10.41.3.2 fd41:3::2" "$L2 l2s 10.41.22.1 fd41:22::1" "$S s2 10.41.22.2 fd41:22::2"; do
        set -- $x
        in_ns $1 ip addr add $3/24 dev $2; in_ns $1 ip addr add $4/64 dev $2 nodad; ip -n $1 link set $2 up
    done
    for n in $C $G $L1 $L2 $S; do
        in_ns $n sysctl -qw net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.default.rp_filter=2
        for x in $(ip -n $n -o link show | awk -F': ' '{print $2}' | cut -d@ -f1); do
            in_ns $n sysctl -qw net.ipv4.conf.$x.rp_filter=2
        done
    done
    # C: everything via G.
    in_ns $C ip route add default via 10.41.1.2; in_ns $C ip -6 route add default via fd41:1::2
    # G: forwarding, accept_local, main-table and source-specific routes.
    in_ns $G sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
        net.ipv4.conf.all.accept_local=1 net.ipv4.conf.default.accept_local=1 \
        net.ipv6.conf.all.keep_addr_on_down=1 net.ipv6.conf.g1.keep_addr_on_down=1 net.ipv6.conf.g2.keep_addr_on_down=1
    for x in lo g0 g1 g2; do in_ns $G sysctl -qw net.ipv4.conf.$x.accept_local=1; done
    in_ns $G ip rule add from 10.41.2.1 table 101 pref 101
    in_ns $G ip rule add from 10.41.3.1 table 102 pref 102
    in_ns $G ip -6 rule add from fd41:2::1 table 101 pref 101
    in_ns $G ip -6 rule add from fd41:3::1 table 102 pref 102
    _mp_uplink_routes 1; _mp_uplink_routes 2
    # A second default route, through uplink 2 at a lower priority, as a
    # gateway with two uplinks has: with g1 down the server's addresses stay
    # routable, so peer packets the translator moves onto the client's
    # connection (source: the server's address) pass the loose reverse-path check.
    in_ns $G ip route add default via 10.41.3.2 dev g2 metric 200
    in_ns $G ip -6 route add default via fd41:3::2 dev g2 metric 200
    # L1, L2: forward; towards S by default, G's side back to G.
    for x in "$L1 10.41.2.1 fd41:2::1 10.41.12.2 fd41:12::2" "$L2 10.41.3.1 fd41:3::1 10.41.22.2 fd41:22::2"; do
        set -- $x
        in_ns $1 sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
        in_ns $1 ip route add default via $4; in_ns $1 ip -6 route add default via $5
        in_ns $1 ip route add 10.41.1.0/24 via $2; in_ns $1 ip -6 route add fd41:1::/64 via $3
    done
    # S: G's uplink subnets by link; the LAN by S's own source address.
    in_ns $S ip route add 10.41.2.0/24 via 10.41.12.1; in_ns $S ip route add 10.41.3.0/24 via 10.41.22.1
    in_ns $S ip -6 route add fd41:2::/64 via fd41:12::1; in_ns $S ip -6 route add fd41:3::/64 via fd41:22::1
    in_ns $S ip route add 10.41.1.0/24 via 10.41.12.1
    in_ns $S ip -6 route add fd41:1::/64 via fd41:12::1
    # (Tables 201/202 hold only the LAN route; other destinations fall through to main.)
    in_ns $S ip rule add from 10.41.12.2 table 201 pref 201; in_ns $S ip route add 10.41.1.0/24 via 10.41.12.1 table 201
    in_ns $S ip rule add from 10.41.22.2 table 202 pref 202; in_ns $S ip route add 10.41.1.0/24 via 10.41.22.1 table 202
    in_ns $S ip -6 rule add from fd41:12::2 table 201 pref 201; in_ns $S ip -6 route add fd41:1::/64 via fd41:12::1 table 201
    in_ns $S ip -6 rule add from fd41:22::2 table 202 pref 202; in_ns $S ip -6 route add fd41:1::/64 via fd41:22::1 table 202
    # Kernel MPTCP on S (the peer); C, G, S get the large receive buffer.
    in_ns $S sysctl -qw net.mptcp.enabled=1
    ip -n $S mptcp limits set subflow 8 add_addr_accepted 8
    [ "${MP_S_SIGNAL:-0}" = 1 ] && ip -n $S mptcp endpoint add 10.41.22.2 dev s2 signal
    for n in $C $G $S; do in_ns $n sysctl -qw net.ipv4.tcp_rmem="${MP_TCP_RMEM:-4096 131072 33554432}"; done
    ip -n $C link set c0 gso_max_size 65000
    # The links: tbf on both egress interfaces of each L, linkemu on FORWARD.
    local burst=${TBF_BURST:-32kb} lat=${TBF_LATENCY:-50ms}
    for x in "$L1 l1g l1s $MP_RATE1" "$L2 l2g l2s $MP_RATE2"; do
        set -- $x
        in_ns $1 tc qdisc add dev $2 root tbf rate $4 burst $burst latency $lat
        in_ns $1 tc qdisc add dev $3 root tbf rate $4 burst $burst latency $lat
    done
    local k L Q D LS
    for k in 1 2; do
        if [ $k = 1 ]; then L=$L1 Q=$MP_EMU_Q1 D=$MP_DELAY1 LS=$MP_LOSS1; else L=$L2 Q=$MP_EMU_Q2 D=$MP_DELAY2 LS=$MP_LOSS2; fi
        in_ns $L iptables -A FORWARD -j NFQUEUE --queue-num $Q
        in_ns $L ip6tables -A FORWARD -j NFQUEUE --queue-num $Q
        bg_ns $L "$WORK/linkemu-$k.log" "$LINKEMU" --queue $Q --delay-ms $D --loss $LS --seed "$(eval echo \${SEED$k:-$k})"
        eval MP_EMU_PID$k=$LAST_PID
        wait_for 5 grep -q "linkemu: queue" "$WORK/linkemu-$k.log" || { echo "FAIL - linkemu on link $k did not start: $(cat "$WORK/linkemu-$k.log")"; exit 1; }
    done
    # Warm the neighbour caches (the first IPv6 ping otherwise takes seconds).
    for x in "$C 10.41.12.2" "$C 10.41.22.2" "$C fd41:12::2" "$C fd41:22::2" \
             "$G 10.41.12.2 -I 10.41.3.1" "$G 10.41.22.2 -I 10.41.2.1" "$G fd41:12::2 -I fd41:3::1" "$G fd41:22::2 -I fd41:2::1"; do
        set -- $x; local ns=$1; shift
        in_ns $ns ping -c 1 -W 5 -q "$@" >/dev/null 2>&1 || echo "note: no answer from $1 in $ns (${*:2})"
    done
    return 0
}

# (Re)installs G's routes through uplink K (idempotent): table 10K's default
# and the main-table routes that use it.
_mp_uplink_routes() {
    local G=$MP_G
    if [ "$1" = 1 ]; then
        in_ns $G ip route replace default via 10.41.2.2 dev g1 table 101
        in_ns $G ip -6 route replace default via fd41:2::2 dev g1 table 101
        in_ns $G ip route replace 10.41.12.0/24 via 10.41.2.2 dev g1
        in_ns $G ip -6 route replace fd41:12::/64 via fd41:2::2 dev g1
        in_ns $G ip route replace default via 10.41.2.2 dev g1
        in_ns $G ip -6 route replace default via fd41:2::2 dev g1
    else
        in_ns $G ip route replace default via 10.41.3.2 dev g2 table 102
        in_ns $G ip -6 route replace default via fd41:3::2 dev g2 table 102
        in_ns $G ip route replace 10.41.22.0/24 via 10.41.3.2 dev g2
        in_ns $G ip -6 route replace fd41:22::/64 via fd41:3::2 dev g2
    fi
}
_mp_link_ns() { if [ "$1" = 1 ]; then echo $MP_L1; else echo $MP_L2; fi; }
# A cut beyond the gateway: link router K drops everything it would forward
# (G's interface stays up, G's routes unchanged). restore_uplink undoes it.
cut_uplink() {
    local L; L=$(_mp_link_ns $1)
    in_ns $L iptables -I FORWARD 1 -j DROP; in_ns $L ip6tables -I FORWARD 1 -j DROP
}
restore_uplink() {
    local L; L=$(_mp_link_ns $1)
    in_ns $L iptables -D FORWARD -j DROP 2>/dev/null; in_ns $L ip6tables -D FORWARD -j DROP 2>/dev/null
    return 0
}
# A cut beyond the gateway that link router K reports: it answers everything
# it would forward with destination unreachable (ICMP, ICMPv6).
cut_uplink_icmp() {
    local L; L=$(_mp_link_ns $1)
    in_ns $L iptables -I FORWARD 1 -j REJECT --reject-with icmp-net-unreachable
    in_ns $L ip6tables -I FORWARD 1 -j REJECT --reject-with icmp6-no-route
}
restore_uplink_icmp() {
    local L; L=$(_mp_link_ns $1)
    in_ns $L iptables -D FORWARD -j REJECT --reject-with icmp-net-unreachable 2>/dev/null
    in_ns $L ip6tables -D FORWARD -j REJECT --reject-with icmp6-no-route 2>/dev/null
    return 0
}
# A cut G can see: its uplink interface K goes down (the kernel drops the
# routes through it); uplink_up brings it back and puts the routes back.
uplink_down() { ip -n $MP_G link set g$1 down; }
uplink_up() {
    ip -n $MP_G link set g$1 up
    wait_for 5 sh -c "ip -n $MP_G -o link show g$1 | grep -q 'state UP'"
    _mp_uplink_routes $1
}
if_bytes() { in_ns $1 cat /sys/class/net/$2/statistics/$3_bytes; } # if_bytes NS IF rx|tx
# G as a kernel MPTCP host (the reference): limits and a subflow endpoint on
# uplink 2, so a connection from G via uplink 1 (the main table) gets a join
# from 10.41.3.1 (routed by table 102 through L2).
mp_kernel_endpoints() {
    in_ns $MP_G sysctl -qw net.mptcp.enabled=1
    ip -n $MP_G mptcp limits set subflow 8 add_addr_accepted 8
    ip -n $MP_G mptcp endpoint add 10.41.3.1 dev g2 subflow
}
# A transfer's 100 ms trace (xfer.py --trace) around a cut: per-second
# Mbit/s, then stall_s (the longest run of 100 ms intervals between the cut
# and the restore moving < 12.5 kB, a tenth of uplink 2), during_cut_mbit
# (from 2 s after the cut to the restore) and after_restore_mbit (from 3 s
# after the restore to 1 s before the end). COL 3 = sent, 5 = received.
trace_summary() { # TRACE COL CUT RESTORE END
    python3 - "$@" <<'PYEOF'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip() and l[0].isdigit()]
col = int(sys.argv[2]) - 1
cut, restore, end = (int(x) for x in sys.argv[3:6])
per_s = {}
for r in rows:
    t = float(r[1]); b = int(r[col])
    per_s.setdefault(int(t), 0); per_s[int(t)] += max(b, 0)
secs = sorted(per_s)
print("per-second Mbit/s:", " ".join(f"{per_s[s]*8/1e6:.1f}" for s in secs))
stall = best = 0.0
for r in rows:
    t = float(r[1]); b = int(r[col])
    if t < cut or t > restore: continue
    if b < 12500: stall += 0.1; best = max(best, stall)
    else: stall = 0.0
d0, a0, a1 = cut + 2, restore + 3, end - 1
during = sum(per_s.get(s, 0) for s in range(d0, restore)) * 8 / max(restore - d0, 1) / 1e6
after = sum(per_s.get(s, 0) for s in range(a0, a1)) * 8 / max(a1 - a0, 1) / 1e6
print(f"stall_s={best:.1f} during_cut_mbit={during:.1f} after_restore_mbit={after:.1f}")
PYEOF
}
# The signature of a known defect (issue 16; docs/decisions.md): the
# sender's subflows on the fast uplink 0 lost early in slow start (threshold
# at most 16 segments) and, halfway through, hold less window than those on
# the slow uplink 1, whose queue they fill: with coupled (LIA) growth, the
# fast subflows then recover at a fraction of one TCP's rate. Reads a
# gateway's log after the transfer began (its SIGUSR1 dump); prints the
# evidence, or nothing when the dump does not show it.
coupled_stall_signature() {
    python3 -c '
import re, sys
conn = None; found = []
for line in sys.stdin:
    m = re.search(r"phase (\w+) buffered (\d+)", line)
    if m:
        conn = {"buffered": int(m.group(2)), "subs": []} if m.group(1) == "established" else None
        if conn: found.append(conn)
        continue
    m = re.search(r"\[\d\] active uplink (\d) flight -?\d+ cwnd (\d+) ssthresh (-?\d+)", line)
    if m and conn is not None: conn["subs"].append(tuple(int(x) for x in m.groups()))
for c in found:
    fast = [s for s in c["subs"] if s[0] == 0]; slow = [s for s in c["subs"] if s[0] == 1]
    if c["buffered"] > 0 and fast and slow and all(0 <= s[2] <= 16 * 1420 for s in fast) \
       and sum(s[1] for s in fast) < sum(s[1] for s in slow):
        print("halfway, uplink 0 subflows cwnd/ssthresh %s against uplink 1 cwnd %s" % (
            ",".join("%d/%d" % (s[1], s[2]) for s in fast), ",".join(str(s[1]) for s in slow)))
        break
'
}

# A timed transfer (xfer.py MODE to the server's address 1, port 5002, END s)
# with uplink 1 broken by BREAK at CUT s and mended by MEND at RESTORE s
# (cut_uplink/restore_uplink: beyond the gateway; uplink_down/uplink_up: the
# gateway's interface), then its 100 ms trace summarised and checked: sha256
# equal, the stall shorter than LIMIT s, uplink 2 carrying more than 7 Mbit/s
# meanwhile, and uplink 1 used again after the restore (twice that rate).
# The daemon ($DAEMON) logs its state 5 s after the restore (SIGUSR1).
cut_transfer() { # NAME MODE BREAK MEND CUT RESTORE END LIMIT SEED
    local name=$1 mode=$2 brk=$3 mend=$4 cut=$5 restore=$6 end=$7 limit=$8 seed=$9
    local trace="$WORK/$name-$mode.trace" out="$WORK/$name-$mode"
    ( sleep $cut; $brk 1; sleep $((restore - cut)); $mend 1; sleep 5; kill -USR1 ${DAEMON:-0} 2>/dev/null ) &
    local cutter=$!
    in_ns $MP_C python3 "$XFER" $mode $MP_S_ADDR1 5002 0 $seed --duration $end --timeout $((end + 90)) --trace "$trace" >"$out.json" 2>&1
    local rc=$?
    wait $cutter
    check "$name ($mode): transfer completes, sha256 equal" $rc "$(head -c 300 "$out.json")"
    local col=3; [ $mode = down ] && col=5 # the trace's sent / received bytes
    trace_summary "$trace" $col $cut $restore $end >"$out.txt"
    cat "$out.txt"
    local stall during after
    stall=$(grep -o 'stall_s=[0-9.]*' "$out.txt" | cut -d= -f2)
    during=$(grep -o 'during_cut_mbit=[0-9.]*' "$out.txt" | cut -d= -f2)
    after=$(grep -o 'after_restore_mbit=[0-9.]*' "$out.txt" | cut -d= -f2)
    echo "RESULT ${name}_${mode}_stall_s=$stall ${name}_${mode}_during_cut_mbit=$during ${name}_${mode}_after_restore_mbit=$after"
    python3 -c "import sys; sys.exit(0 if float('${stall:-99}') < $limit else 1)"
    check "$name ($mode): stall shorter than $limit s" $? "${stall}s"
    python3 -c "import sys; sys.exit(0 if float('${during:-0}') > 7 else 1)"
    check "$name ($mode): uplink 2 carries the transfer meanwhile" $? "${during} Mbit/s"
    python3 -c "import sys; sys.exit(0 if float('${after:-0}') > float('${during:-0}') * 2 else 1)"
    check "$name ($mode): uplink 1 used again after the restore" $? "${after} Mbit/s after, ${during} during"
}
# nfq-mptcp on the multipath test-bed's gateway (LAN g0, the uplinks in ARGS,
# rules installed, stats every 2 s, log $WORK/daemon.log); sets DAEMON and
# checks that it binds its queue.
start_mp_daemon() { # CHECK-NAME ARGS...
    local name=$1 q=$((1000 + TID % 20000)); shift
    bg_ns $MP_G "$WORK/daemon.log" "$NFQ_MPTCP" --queue $q --lan g0 "$@" --install-rules --stats-interval 2
    DAEMON=$LAST_PID
    wait_for 20 grep -q "queue $q bound" "$WORK/daemon.log"
    check "$name" $? "$(grep -m1 -iE 'error|bound' "$WORK/daemon.log")"
}
# The kernel MPTCP server on S (xfer.py serve --mptcp, port 5002; ARGS to it).
start_mp_server() {
    bg_ns $MP_S "$WORK/mptcp-server.log" python3 "$XFER" serve --mptcp --port 5002 "$@"
    wait_for 5 in_ns $MP_S sh -c "ss -ltnH 'sport = :5002' | grep -q ." # (ss alone succeeds with no match)
}
# Federation on the multipath test-bed: S becomes gateway B (MPTCP off in its
# stack, nfq-mptcp with LAN s0 and uplinks s1 s2) for a plain host D
# (10.41.30.2, net 10.41.30.0/24 behind s0). Sets FED_D, FED_D_ADDR,
# DAEMON_B (log $WORK/daemon-b.log) and checks that B binds its queue. ARGS
# go to B's daemon.
make_federation_far_side() { # CHECK-NAME ARGS...
    local name=$1 qb=$((1000 + (TID + 7) % 20000)); shift
    FED_D=${MP_S%%-s-*}-d-$TID; FED_D_ADDR=10.41.30.2
    ns_add $FED_D
    ip link add s0 netns $MP_S type veth peer name d0 netns $FED_D
    in_ns $MP_S ip addr add 10.41.30.1/24 dev s0; in_ns $FED_D ip addr add $FED_D_ADDR/24 dev d0
    ip -n $MP_S link set s0 up; ip -n $FED_D link set d0 up
    in_ns $FED_D ip route add default via 10.41.30.1
    in_ns $FED_D sysctl -qw net.ipv4.tcp_rmem="4096 131072 33554432"
    in_ns $MP_S sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.s0.rp_filter=2 net.ipv4.conf.all.accept_local=1
    in_ns $MP_S sysctl -qw net.mptcp.enabled=0 # S is a gateway now, not an MPTCP host
    bg_ns $MP_S "$WORK/daemon-b.log" "$NFQ_MPTCP" --queue $qb --lan s0 --uplink s1 --uplink s2 --install-rules --stats-interval 2 "$@"
    DAEMON_B=$LAST_PID
    wait_for 20 grep -q "queue $qb bound" "$WORK/daemon-b.log"
    check "$name" $? "$(grep -m1 -iE 'error|bound' "$WORK/daemon-b.log")"
}
