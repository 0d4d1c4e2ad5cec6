# The benchmark testbed (sourced by bench/figure-*.sh; see /tmp/bench-contract.md).
#
#   C c0 10.41.1.1 ─ g0 A g1 10.41.2.1 ─ L1 ─ s1 10.41.12.2 B s0 10.41.30.1 ─ d0 10.41.30.2 D
#                         g2 10.41.3.1 ─ L2 ─ s2 10.41.22.2
#
# make_multipath_testbed (netns/lib.sh) builds C, A (its G), L1, L2
# and B (its S), with tbf + linkemu on each uplink; D sits behind B as in
# netns/federation.sh. Bench defaults: RATE1=40mbit RATE2=10mbit,
# DELAY1=20 DELAY2=20 (one-way ms, fixed when the testbed is built: linkemu's
# delay), LOSS1/LOSS2 0.
#
# Routing in the base state (after bench_testbed and after every design_stop):
# C -> D leaves A by its main default route (uplink 1); B routes the LAN
# 10.41.1.0/24 back via uplink 1. A's source rules send 10.41.3.1 (A's uplink-2
# address: nfq-mptcp's and the kernel's joins) via L2; L2 forwards to B, B
# forwards to D, and B routes A's uplink-2 subnet 10.41.3.0/24 back via L2.
# net.mptcp.enabled=0 in C, A, B, D (each design turns on what it needs); B
# keeps the testbed's MPTCP limits (subflow 8 add_addr_accepted 8).
#
# Designs (design_start NAME ... design_stop):
#   plain1  routing only; D's servers plain.
#   plain2  routing only, via uplink 2: A routes 10.41.30.0/24 via L2, B routes
#           10.41.1.0/24 via L2.
#   kernel  end-to-end kernel MPTCP: C and D MPTCP-enabled, limits on both; C
#           gets 10.41.1.11 on c0 with a `subflow` endpoint; A routes traffic
#           from 10.41.1.11 by table 102 (via L2), B routes 10.41.1.11 via L2.
#           D's servers IPPROTO_MPTCP; BENCH_CLIENT_MPTCP=1.
#   proxy   shadowsocks-libev: ss-redir on A (nat PREROUTING REDIRECT of C's TCP
#           to 10.41.30.0/24 to port 1080), ss-server on B (10.41.12.2:8388),
#           both under `mptcpize run`; A and B MPTCP-enabled, A has a subflow
#           endpoint on g2 (10.41.3.1), so the A<->B leg is kernel MPTCP over
#           both uplinks; ss-server's connection to D falls back to plain TCP
#           (D's MPTCP is off).
#   nfq1    nfq-mptcp on A (--lan g0 --uplink g1 --uplink g2); D is an MPTCP
#           host (enabled, limits subflow 8 add_addr_accepted 8, servers
#           IPPROTO_MPTCP); B only routes.
#   nfq2    nfq-mptcp on A and on B (--lan s0 --uplink s1 --uplink s2); D plain.
# D's servers (plain, or IPPROTO_MPTCP for kernel and nfq1): on 5002
# bench/xfer_timed.py serve — xfer.py's own server code (UP, UPEOF, DOWN,
# DOWNFOR, ECHO) plus UPFOR, a timed upload that needs no half-close, which
# bench_xfer uses for uploads in the proxy design (shadowsocks-libev closes
# both directions at the client's FIN, so xfer.py's UPEOF answer never
# arrives); --trace-dir $BENCH_TRACE_DIR: every timed upload leaves a receiver
# trace there. On 8080 bench/httpd.py (HTTP/1.1 keep-alive, 100-byte body).
#
# Extras beyond the contract: bench_cpu_gw / bench_cpu_all (CPU seconds),
# bench_uplink_bytes (A's g1/g2 counters), bench_mbit (Mbit/s of a JSON line),
# bench_sample / bench_error (output lines), bench_forget, BENCH_DESIGN,
# BENCH_SHAPED, BENCH_TRACE_DIR, BENCH_LOGS (the started programs' logs),
# bench_state_check (design_stop compares the testbed with the state after
# bench_testbed — or the last bench_shape — and warns on stderr, "note - ...",
# about anything left behind).

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$BENCH_DIR/../netns/lib.sh"
BENCH_HTTPD="$BENCH_DIR/httpd.py"
# D's transfer server: xfer.py's protocol (its own code) plus UPFOR, a timed
# upload without a half-close (bench/xfer_timed.py explains why the proxy needs it).
BENCH_XFER_SERVER="$BENCH_DIR/xfer_timed.py"
BENCH_ALL_DESIGNS="plain1 plain2 kernel proxy nfq1 nfq2"
BENCH_REPS=${BENCH_REPS:-5}
BENCH_QUICK=${BENCH_QUICK:-0}
BENCH_SS_PASSWORD=${BENCH_SS_PASSWORD:-bench-$TID}
BENCH_SS_METHOD=chacha20-ietf-poly1305
CLK_TCK=$(getconf CLK_TCK)
BENCH_NOFILE=$(ulimit -Hn); [ "$BENCH_NOFILE" = unlimited ] && BENCH_NOFILE=1048576

# One number per design start: log names stay unique.
_BENCH_SEQ=0

bench_testbed() {
    export RATE1=${RATE1:-40mbit} RATE2=${RATE2:-10mbit} DELAY1=${DELAY1:-20} DELAY2=${DELAY2:-20}
    make_multipath_testbed bench || return 1
    BENCH_C=$MP_C BENCH_A=$MP_G BENCH_L1=$MP_L1 BENCH_L2=$MP_L2 BENCH_B=$MP_S BENCH_D=bench-d-$TID
    BENCH_C_ADDR=$MP_C_ADDR BENCH_D_ADDR=10.41.30.2
    local B=$BENCH_B D=$BENCH_D n
    ns_add $D
    ip link add s0 netns $B type veth peer name d0 netns $D
    in_ns $B ip addr add 10.41.30.1/24 dev s0; in_ns $D ip addr add 10.41.30.2/24 dev d0
    ip -n $B link set s0 up; ip -n $D link set d0 up
    in_ns $D ip route add default via 10.41.30.1
    in_ns $D sysctl -qw net.ipv4.tcp_rmem="${MP_TCP_RMEM:-4096 131072 33554432}" \
        net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.default.rp_filter=2 net.ipv4.conf.d0.rp_filter=2
    in_ns $B sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.s0.rp_filter=2 net.ipv4.conf.all.accept_local=1
    for n in $BENCH_C $BENCH_A $BENCH_B $BENCH_D; do in_ns $n sysctl -qw net.mptcp.enabled=0; done
    BENCH_TRACE_DIR=$WORK/dtrace; mkdir -p "$BENCH_TRACE_DIR"
    BENCH_LOGS=$WORK/logs; mkdir -p "$BENCH_LOGS"
    BENCH_SHAPED=1
    BENCH_DESIGN=
    in_ns $BENCH_C ping -c 1 -W 5 -q $BENCH_D_ADDR >/dev/null 2>&1 || { echo "FAIL - testbed: C cannot reach D"; return 1; }
    _BENCH_BASE=$(_bench_state)
    echo "INFO testbed uplink1 ${MP_RATE1} ${MP_DELAY1}ms-one-way loss ${MP_LOSS1}; uplink2 ${MP_RATE2} ${MP_DELAY2}ms-one-way loss ${MP_LOSS2}; tbf burst ${TBF_BURST:-32kb} latency ${TBF_LATENCY:-50ms}; kernel $(uname -r)"
    return 0
}

# bench_shape on|off|gbit: tbf (MP_RATE1/MP_RATE2, read now) and linkemu's
# NFQUEUE rule on both links, or neither (linkemu keeps running, idle), or
# tbf at GBIT_RATE (1gbit) on both links and no delay (gbit: a rate the
# gateway's CPU, not the link, may limit; a burst that takes super-segments).
bench_shape() {
    local k L Q R i burst=${TBF_BURST:-32kb} lat=${TBF_LATENCY:-50ms}
    for k in 1 2; do
        if [ $k = 1 ]; then L=$MP_L1 Q=$MP_EMU_Q1 R=$MP_RATE1; else L=$MP_L2 Q=$MP_EMU_Q2 R=$MP_RATE2; fi
        if [ "$1" = gbit ]; then
            for i in l${k}g l${k}s; do
                in_ns $L tc qdisc replace dev $i root tbf rate ${GBIT_RATE:-1gbit} burst ${GBIT_BURST:-256kb} latency ${GBIT_LATENCY:-10ms}
            done
            while in_ns $L iptables -D FORWARD -j NFQUEUE --queue-num $Q 2>/dev/null; do :; done
            while in_ns $L ip6tables -D FORWARD -j NFQUEUE --queue-num $Q 2>/dev/null; do :; done
        elif [ "$1" = on ]; then
            for i in l${k}g l${k}s; do in_ns $L tc qdisc replace dev $i root tbf rate $R burst $burst latency $lat; done
            in_ns $L iptables -C FORWARD -j NFQUEUE --queue-num $Q 2>/dev/null || in_ns $L iptables -A FORWARD -j NFQUEUE --queue-num $Q
            in_ns $L ip6tables -C FORWARD -j NFQUEUE --queue-num $Q 2>/dev/null || in_ns $L ip6tables -A FORWARD -j NFQUEUE --queue-num $Q
        else
            for i in l${k}g l${k}s; do in_ns $L tc qdisc del dev $i root 2>/dev/null; done
            while in_ns $L iptables -D FORWARD -j NFQUEUE --queue-num $Q 2>/dev/null; do :; done
            while in_ns $L ip6tables -D FORWARD -j NFQUEUE --queue-num $Q 2>/dev/null; do :; done
        fi
    done
    if [ "$1" = off ]; then BENCH_SHAPED=0; else BENCH_SHAPED=1; fi
    # The base state follows the shaping.
    [ -n "${_BENCH_BASE:-}" ] && _BENCH_BASE=$(_bench_state)
    return 0
}

# Everything a design may change, per namespace (counters stripped).
_bench_state() {
    local n
    for n in $BENCH_C $BENCH_A $BENCH_L1 $BENCH_L2 $BENCH_B $BENCH_D; do
        echo "== ${n%-$TID}"
        ip -n $n -4 addr show | grep -E 'inet '
        ip -n $n -4 route show table all | grep -vE '^(local|broadcast) '
        ip -n $n -6 route show table all | grep -vE '^(local|multicast|anycast) |^fe80|table local'
        ip -n $n rule show; ip -n $n -6 rule show
        ip -n $n mptcp endpoint show; ip -n $n mptcp limits show
        # Rules and non-default policies only (a table shows up in *-save once used).
        in_ns $n iptables-save | grep -E '^(\*|-A|:[^ ]+ (DROP|-))' | grep -vxE '\*[a-z]+'
        in_ns $n ip6tables-save | grep -E '^(-A|:[^ ]+ (DROP|-))'
        in_ns $n sysctl -n net.mptcp.enabled net.ipv4.ip_forward
        tc -n $n qdisc show | grep -E 'tbf|netem'
    done 2>&1 | sed -E 's/\[[0-9]+:[0-9]+\]/[]/'
}
bench_state_check() { # warns (stderr) when the testbed differs from its base state
    local now; now=$(_bench_state)
    [ "$now" = "$_BENCH_BASE" ] && return 0
    echo "note - state left behind after design ${1:-?}:" >&2
    diff <(echo "$_BENCH_BASE") <(echo "$now") | sed 's/^/note -   /' >&2
    return 1
}

# Background program for the current design: logged, stopped by design_stop.
_bench_bg() { # NS NAME CMD...
    local n=$1 name=$2; shift 2
    local log="$BENCH_LOGS/$_BENCH_SEQ-$BENCH_DESIGN-$name.log"
    bg_ns $n "$log" "$@"
    _BENCH_DPIDS+=($LAST_PID); _BENCH_DLOGS[$LAST_PID]=$log
    BENCH_LAST_LOG=$log
}
declare -A _BENCH_DLOGS
_bench_kill() { # PID: TERM, up to 5 s, KILL; forgotten by the exit trap
    local p=$1
    kill -TERM "$p" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    bench_forget "$p"
}
bench_forget() { # PID...: the exit trap no longer kills them (they have exited)
    local q p keep=()
    for q in "${PIDS[@]}"; do for p in "$@"; do [ "$q" = "$p" ] && continue 2; done; keep+=("$q"); done
    PIDS=("${keep[@]}")
}

_bench_d_servers() { # [--mptcp]
    _bench_bg $BENCH_D xfer python3 "$BENCH_XFER_SERVER" serve --port 5002 --trace-dir "$BENCH_TRACE_DIR" ${1:-}
    local l1=$BENCH_LAST_LOG
    _bench_bg $BENCH_D httpd python3 "$BENCH_HTTPD" --port 8080 ${1:-}
    local l2=$BENCH_LAST_LOG
    wait_for 10 grep -q listening "$l1" && wait_for 10 grep -q listening "$l2" \
        || { echo "FAIL - D's servers did not start: $(cat "$l1" "$l2" | head -c 300)"; return 1; }
}
_bench_daemon() { # NS NAME QUEUE ARGS... (and BENCH_NFQ_ARGS, e.g. "--queues 2")
    local n=$1 name=$2 q=$3; shift 3
    _bench_bg $n $name "$NFQ_MPTCP" --queue $q "$@" ${BENCH_NFQ_ARGS:-} --install-rules --stats-interval 2
    BENCH_GW_PIDS="$BENCH_GW_PIDS $LAST_PID"
    wait_for 20 grep -q "queue $q bound" "$BENCH_LAST_LOG" \
        || { echo "FAIL - nfq-mptcp ($name) did not bind queue $q: $(grep -m3 -iE 'error|fail' "$BENCH_LAST_LOG")"; return 1; }
}
_bench_limits() { ip -n $1 mptcp limits show | awk '{for(i=1;i<NF;i+=2) printf "%s %s ", $i, $(i+1)}'; }

design_start() {
    local d=$1 A=$BENCH_A B=$BENCH_B C=$BENCH_C D=$BENCH_D
    [ -n "$BENCH_DESIGN" ] && design_stop
    case " $BENCH_ALL_DESIGNS " in *" $d "*) ;; *) echo "FAIL - unknown design $d"; return 1;; esac
    _BENCH_SEQ=$((_BENCH_SEQ + 1))
    BENCH_DESIGN=$d BENCH_DST=$BENCH_D_ADDR BENCH_CLIENT_MPTCP=0 BENCH_GW_PIDS=
    _BENCH_DPIDS=(); _BENCH_UNDO=()
    local rc=0
    case $d in
    plain1)
        _bench_d_servers || rc=1 ;;
    plain2)
        in_ns $A ip route add 10.41.30.0/24 via 10.41.3.2 dev g2
        _BENCH_UNDO+=("in_ns $A ip route del 10.41.30.0/24 via 10.41.3.2 dev g2")
        in_ns $B ip route replace 10.41.1.0/24 via 10.41.22.1 dev s2
        _BENCH_UNDO+=("in_ns $B ip route replace 10.41.1.0/24 via 10.41.12.1 dev s1")
        _bench_d_servers || rc=1 ;;
    kernel)
        local cl dl; cl=$(_bench_limits $C); dl=$(_bench_limits $D)
        in_ns $C sysctl -qw net.mptcp.enabled=1; _BENCH_UNDO+=("in_ns $C sysctl -qw net.mptcp.enabled=0")
        in_ns $D sysctl -qw net.mptcp.enabled=1; _BENCH_UNDO+=("in_ns $D sysctl -qw net.mptcp.enabled=0")
        ip -n $C mptcp limits set subflow 8 add_addr_accepted 8; _BENCH_UNDO+=("ip -n $C mptcp limits set $cl")
        ip -n $D mptcp limits set subflow 8 add_addr_accepted 8; _BENCH_UNDO+=("ip -n $D mptcp limits set $dl")
        in_ns $C ip addr add 10.41.1.11/24 dev c0; _BENCH_UNDO+=("in_ns $C ip addr del 10.41.1.11/24 dev c0")
        ip -n $C mptcp endpoint add 10.41.1.11 dev c0 subflow; _BENCH_UNDO+=("ip -n $C mptcp endpoint flush")
        in_ns $A ip rule add from 10.41.1.11 table 102 pref 100; _BENCH_UNDO+=("in_ns $A ip rule del from 10.41.1.11 table 102 pref 100")
        in_ns $B ip route add 10.41.1.11/32 via 10.41.22.1 dev s2; _BENCH_UNDO+=("in_ns $B ip route del 10.41.1.11/32 via 10.41.22.1 dev s2")
        BENCH_CLIENT_MPTCP=1
        _bench_d_servers --mptcp || rc=1 ;;
    proxy)
        local al; al=$(_bench_limits $A)
        in_ns $A sysctl -qw net.mptcp.enabled=1; _BENCH_UNDO+=("in_ns $A sysctl -qw net.mptcp.enabled=0")
        in_ns $B sysctl -qw net.mptcp.enabled=1; _BENCH_UNDO+=("in_ns $B sysctl -qw net.mptcp.enabled=0")
        ip -n $A mptcp limits set subflow 8 add_addr_accepted 8; _BENCH_UNDO+=("ip -n $A mptcp limits set $al")
        ip -n $A mptcp endpoint add 10.41.3.1 dev g2 subflow; _BENCH_UNDO+=("ip -n $A mptcp endpoint flush")
        in_ns $A iptables -t nat -A PREROUTING -i g0 -p tcp -d 10.41.30.0/24 -j REDIRECT --to-ports 1080
        _BENCH_UNDO+=("in_ns $A iptables -t nat -D PREROUTING -i g0 -p tcp -d 10.41.30.0/24 -j REDIRECT --to-ports 1080")
        _bench_d_servers || rc=1
        # TCP only (no -u), no config file; idle timeout 1 h, as many open files as
        # the hard limit allows (idle-connection figures), TCP_NODELAY.
        _bench_bg $B ss-server mptcpize run ss-server -s 10.41.12.2 -p 8388 -k "$BENCH_SS_PASSWORD" -m $BENCH_SS_METHOD -t 3600 -n $BENCH_NOFILE --no-delay
        local ls=$BENCH_LAST_LOG; BENCH_GW_PIDS="$BENCH_GW_PIDS $LAST_PID"
        _bench_bg $A ss-redir mptcpize run ss-redir -s 10.41.12.2 -p 8388 -b 0.0.0.0 -l 1080 -k "$BENCH_SS_PASSWORD" -m $BENCH_SS_METHOD -t 3600 -n $BENCH_NOFILE --no-delay
        local lr=$BENCH_LAST_LOG; BENCH_GW_PIDS="$BENCH_GW_PIDS $LAST_PID"
        wait_for 10 in_ns $B sh -c "ss -ltnH 'sport = :8388' | grep -q ." \
            && wait_for 10 in_ns $A sh -c "ss -ltnH 'sport = :1080' | grep -q ." \
            || { echo "FAIL - shadowsocks did not start: $(tail -3 "$ls" "$lr" | tr '\n' ' ')"; rc=1; } ;;
    nfq1)
        local dl; dl=$(_bench_limits $D)
        in_ns $D sysctl -qw net.mptcp.enabled=1; _BENCH_UNDO+=("in_ns $D sysctl -qw net.mptcp.enabled=0")
        ip -n $D mptcp limits set subflow 8 add_addr_accepted 8; _BENCH_UNDO+=("ip -n $D mptcp limits set $dl")
        _bench_d_servers --mptcp || rc=1
        _bench_daemon $A nfq-a $((1000 + TID % 20000)) --lan g0 --uplink g1 --uplink g2 || rc=1 ;;
    nfq2)
        _bench_d_servers || rc=1
        _bench_daemon $A nfq-a $((1000 + TID % 20000)) --lan g0 --uplink g1 --uplink g2 || rc=1
        _bench_daemon $B nfq-b $((1000 + (TID + 7) % 20000)) --lan s0 --uplink s1 --uplink s2 || rc=1 ;;
    esac
    BENCH_GW_PIDS=${BENCH_GW_PIDS# }
    return $rc
}

design_stop() {
    [ -n "${BENCH_DESIGN:-}" ] || return 0
    local p i
    for p in "${_BENCH_DPIDS[@]}"; do _bench_kill "$p"; done
    for ((i = ${#_BENCH_UNDO[@]} - 1; i >= 0; i--)); do eval "${_BENCH_UNDO[$i]}" 2>/dev/null; done
    local d=$BENCH_DESIGN
    _BENCH_DPIDS=(); _BENCH_UNDO=(); BENCH_DESIGN= BENCH_GW_PIDS= BENCH_CLIENT_MPTCP=0
    bench_state_check $d
    return 0
}

# bench_xfer MODE SECONDS SEED [xfer.py options]: C -> $BENCH_DST:5002.
# An upload in the proxy design (or with BENCH_UPFOR=1) is xfer_timed.py's
# UPFOR (the server times it; no half-close); its JSON has "method": "upfor".
bench_xfer() {
    local mode=$1 secs=$2 seed=$3; shift 3
    local extra=() t=${secs%.*}
    [ "$BENCH_CLIENT_MPTCP" = 1 ] && extra+=(--mptcp)
    case " $* " in *" --timeout "*) ;; *) extra+=(--timeout $((${t:-0} + 60)));; esac
    if [ $mode = up ] && { [ "$BENCH_DESIGN" = proxy ] || [ "${BENCH_UPFOR:-0}" = 1 ]; }; then
        in_ns $BENCH_C python3 "$BENCH_XFER_SERVER" upfor $BENCH_DST 5002 $seed --duration $secs "${extra[@]}" "$@"
    else
        in_ns $BENCH_C python3 "$XFER" $mode $BENCH_DST 5002 0 $seed --duration $secs "${extra[@]}" "$@"
    fi
}

# CPU seconds (float) of BENCH_GW_PIDS (or the PIDs given) with all their
# threads and descendants (their waited-for children included).
bench_cpu_gw() {
    python3 - $CLK_TCK ${@:-$BENCH_GW_PIDS} <<'PY'
import os, sys
hz = int(sys.argv[1]); roots = set(int(p) for p in sys.argv[2:])
stat = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            f = open("/proc/%s/stat" % d).read().rsplit(")", 1)[1].split()
            stat[int(d)] = (int(f[1]), sum(int(x) for x in f[11:15]))  # ppid; utime stime cutime cstime
        except (OSError, IndexError):
            pass
want, grow = set(p for p in roots if p in stat), True
while grow:
    new = {p for p, (pp, _) in stat.items() if pp in want and p not in want}
    want |= new; grow = bool(new)
print("%.3f" % (sum(stat[p][1] for p in want) / hz))
PY
}
# The PIDs of BENCH_GW_PIDS (or the PIDs given) and all their descendants,
# comma separated (for perf -p).
bench_gw_tree() {
    python3 - ${@:-$BENCH_GW_PIDS} <<'PY'
import os, sys
roots = set(int(p) for p in sys.argv[1:]); parent = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            parent[int(d)] = int(open("/proc/%s/stat" % d).read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError):
            pass
want, grow = set(p for p in roots if p in parent), True
while grow:
    new = {p for p, pp in parent.items() if pp in want and p not in want}
    want |= new; grow = bool(new)
print(",".join(str(p) for p in sorted(want)))
PY
}
# System calls made by the gateway programs (every thread) between
# bench_syscalls_start and bench_syscalls_stop, counted by perf on the
# raw_syscalls:sys_enter tracepoint (no sampling, little overhead).
# bench_syscalls_stop sets BENCH_SYSCALLS to the count, or to nothing when
# perf is missing (not in a $(...): perf is this shell's child).
bench_syscalls_start() {
    _BENCH_PERF_PID= _BENCH_PERF_OUT=$WORK/perf-syscalls.$$.txt
    command -v perf >/dev/null || return 0
    local pids; pids=$(bench_gw_tree) || return 0
    [ -n "$pids" ] || return 0
    rm -f "$_BENCH_PERF_OUT"
    perf stat -x, -e raw_syscalls:sys_enter -o "$_BENCH_PERF_OUT" -p "$pids" >/dev/null 2>&1 &
    _BENCH_PERF_PID=$!
    sleep 0.3   # attached (perf opens the counters at once; this is slack)
}
bench_syscalls_stop() {
    BENCH_SYSCALLS=
    [ -n "${_BENCH_PERF_PID:-}" ] || return 0
    kill -INT $_BENCH_PERF_PID 2>/dev/null; wait $_BENCH_PERF_PID 2>/dev/null
    _BENCH_PERF_PID=
    BENCH_SYSCALLS=$(awk -F, '/raw_syscalls:sys_enter/ && $1 ~ /^[0-9]+$/ {print $1}' "$_BENCH_PERF_OUT" 2>/dev/null)
}
# Busy CPU seconds of the whole machine (all cores; /proc/stat: everything but idle and iowait).
bench_cpu_all() {
    awk -v hz=$CLK_TCK '$1=="cpu" {printf "%.3f\n", ($2+$3+$4+$7+$8+$9)/hz; exit}' /proc/stat
}
# A's uplink counters: "g1rx g1tx g2rx g2tx" (bytes).
bench_uplink_bytes() { echo "$(if_bytes $BENCH_A g1 rx) $(if_bytes $BENCH_A g1 tx) $(if_bytes $BENCH_A g2 rx) $(if_bytes $BENCH_A g2 tx)"; }
# Mbit/s of an xfer.py JSON line (bytes / seconds), or nothing when it failed.
bench_mbit() { python3 -c 'import json,sys
try:
    d = json.loads(sys.argv[1])
    if d.get("ok"): print(round(d["bytes"] * 8 / d["seconds"] / 1e6, 2))
except Exception: pass' "$1"; }
# Output lines (stdout) in the contract's format.
bench_sample() { echo "SAMPLE $1 $2 $3 $4 $5 $6"; } # FIGURE DESIGN REP METRIC VALUE UNIT
bench_error() { # FIGURE DESIGN REP WHY...
    local f=$1 d=$2 r=$3; shift 3
    echo "SAMPLE $f $d $r error 1 1"; echo "FAIL - $f $d rep $r: $*"
}
