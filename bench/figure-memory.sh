#!/usr/bin/env bash
# Figure "memory": what N idle connections cost the gateways.
#
# Shaped testbed (bench/lib.sh). For each design in BENCH_DESIGNS (default
# plain1 kernel proxy nfq1 nfq2) and each N in 1 1000 10000 (BENCH_QUICK=1:
# 1 100 1000), BENCH_MEM_REPS repetitions (default 1, see below; quick 1), each
# on a freshly started design (design_start ... design_stop, so one run's
# freed-but-kept heap does not count in the next):
#   D: bench/idleconns.py serve 5010 (IPPROTO_MPTCP where the design's D is an
#      MPTCP host: kernel, nfq1), counting the connections it holds.
#   C: bench/idleconns.py hold $BENCH_DST 5010 N (--mptcp for kernel): N
#      concurrent connections, at most 200 connecting at a time; each sends
#      one small request ("IDLE\n") and counts as open only when D's answer
#      ("OK\n") is back, then stays idle (no data either way)
#   (each connection: 20 s to open, all of them: 60 + N/50 s), then, 2 s after
#   all are open (A's and B's conntrack tables were flushed before):
#     rss_kib_N      sum of VmRSS of BENCH_GW_PIDS and their descendants (the
#                    nfq-mptcp daemons, ss-redir, ss-server; 0 where the
#                    gateways run none)
#     sockets_N      TCP sockets (ss -tan, TIME-WAIT excluded, listeners
#                    included; MPTCP subflows are TCP sockets) + MPTCP sockets
#                    (ss -Man) in A and B
#     sockmem_kib_N  their memory: sum of ss -tm / ss -Mm skmem r+t+f+w+o (receive
#                    and send queues, forward-allocated, queued, option memory)
#                    + sockets x the slab object size of TCP / MPTCP
#                    (/proc/slabinfo); the MPTCP subflow context (kmalloc) and
#                    TIME-WAIT buckets are not counted
#     conntrack_N    nf_conntrack_count of A + B (conntrack only tracks in a
#                    namespace whose rules need it: the proxy's nat REDIRECT)
#     opened_N       connections D's server holds (confirmed end to end)
#   INFO lines give the client's view (opened/failed/why, seconds to open),
#   the subflows D sees (joins), the nfq-mptcp daemons' counters (conns_open,
#   joins_sent, joins_accepted; joins use source ports from --join-ports,
#   default 61000-61999 per uplink and destination: with 10 000 connections
#   to one server port the range runs out) and the TIME-WAIT counts.
# Repetitions: BENCH_MEM_REPS (default 1, because 5 designs x 3 N x 5
# repetitions of up to 10 000 connections through the userspace link emulator
# take too long on 2 cores; BENCH_MEM_REPS=$BENCH_REPS for the full set).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
IDLE="$BENCH_DIR/idleconns.py"
QUICK=${BENCH_QUICK:-0}
DESIGNS=${BENCH_DESIGNS:-plain1 kernel proxy nfq1 nfq2}
if [ "$QUICK" = 1 ]; then NS_LIST=${BENCH_MEM_N:-1 100 1000}; REPS=1
else NS_LIST=${BENCH_MEM_N:-1 1000 10000}; REPS=${BENCH_MEM_REPS:-1}; fi
PORT=5010
SETTLE=${BENCH_MEM_SETTLE:-2}
FIG=memory

bench_testbed || exit 1
bench_shape on
echo "INFO memory_reps $REPS repetition(s) per design and N (BENCH_MEM_REPS; BENCH_REPS=${BENCH_REPS:-5} is not used here: 5 designs x 3 N x 5 repetitions of up to 10000 connections take too long on 2 cores)"
echo "INFO memory_method sockmem = sum of ss -tm and ss -Mm skmem r+t+f+w+o in A and B + sockets x slab object size (TCP $(awk '$1=="TCP"{print $4}' /proc/slabinfo) B, MPTCP $(awk '$1=="MPTCP"{print $4}' /proc/slabinfo) B, /proc/slabinfo); TIME-WAIT sockets excluded, MPTCP subflow contexts (kmalloc) not counted; rss = VmRSS of BENCH_GW_PIDS and descendants; connections idle after one 5-byte request and its 3-byte answer each"
# C needs N local ports to one server port (and the previous run's TIME-WAIT ones).
old_range=$(in_ns $BENCH_C sysctl -n net.ipv4.ip_local_port_range | tr -s '\t ' ' ')
in_ns $BENCH_C sysctl -qw net.ipv4.ip_local_port_range="10000 60999"
command -v conntrack >/dev/null || echo "INFO memory_conntrack conntrack (package conntrack) missing: conntrack tables are not flushed between designs, conntrack_N may include earlier designs' entries"
echo "INFO memory_client_ports C's net.ipv4.ip_local_port_range widened from '$old_range' to '10000 60999'"
ulimit -n 2>/dev/null | sed 's/^/INFO memory_nofile RLIMIT_NOFILE soft (inherited by the gateway programs) /'
echo "INFO memory_nofile_hard $(ulimit -Hn) (ss-redir holds 2 descriptors per proxied connection)"

# Sum of VmRSS (kB) of the given PIDs and all their descendants.
rss_kib() {
    python3 - "$@" <<'PY'
import os, sys
roots = {int(p) for p in sys.argv[1:]}
ppid = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        try: ppid[int(d)] = int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError): pass
want, grow = {p for p in roots if p in ppid}, True
while grow:
    new = {p for p, pp in ppid.items() if pp in want and p not in want}
    want |= new; grow = bool(new)
kb = 0
for p in want:
    try:
        for ln in open(f"/proc/{p}/status"):
            if ln.startswith("VmRSS:"): kb += int(ln.split()[1])
    except OSError: pass
print(kb)
PY
}
# Sockets in namespaces: "sockets sockmem_kib tcp mptcp timewait".
sock_stats() {
    python3 - "$@" <<'PY'
import re, subprocess, sys
slab = {}
for ln in open("/proc/slabinfo"):
    f = ln.split()
    if f and f[0] in ("TCP", "MPTCP"): slab[f[0]] = int(f[3])
tot = {"tcp": 0, "mptcp": 0, "tw": 0, "mem": 0}
for ns in sys.argv[1:]:
    for kind, opt in (("tcp", "-tanm"), ("mptcp", "-Manm")):
        out = subprocess.run(["ip", "netns", "exec", ns, "ss", "-H", opt], capture_output=True, text=True).stdout
        for ln in out.splitlines():
            if not ln.strip(): continue
            m = re.search(r"skmem:\(([^)]*)\)", ln)
            if not ln[0].isspace():
                st = ln.split()[0]
                if st == "TIME-WAIT": tot["tw"] += 1
                else:
                    tot[kind] += 1; tot["mem"] += slab.get(kind.upper(), 0)
            if m:
                v = dict((k, int(n)) for k, n in re.findall(r"([a-z]+)(\d+)", m.group(1)))
                tot["mem"] += sum(v.get(k, 0) for k in ("r", "t", "f", "w", "o"))
print(tot["tcp"] + tot["mptcp"], round(tot["mem"] / 1024), tot["tcp"], tot["mptcp"], tot["tw"])
PY
}
conntrack_count() {
    local n s=0 c
    for n in "$@"; do
        c=$(in_ns $n cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo 0); s=$((s + c))
    done
    echo $s
}
# The last stats line of each nfq-mptcp daemon of the design: selected counters.
daemon_counters() {
    local p log
    for p in $BENCH_GW_PIDS; do
        log=${_BENCH_DLOGS[$p]:-}
        case "$(basename "$log")" in *-nfq-*) ;; *) continue;; esac
        kill -USR1 $p 2>/dev/null; sleep 0.3
        echo "$(basename "$log" .log): $(grep ' stats' "$log" | tail -1 | grep -oE '(^| )(conns_open|opened|mptcp|fallback|joins_sent|subflows_opened|subflows_failed|joins_accepted|joins_refused|responder_syns|dropped|outbox_overflow|raw_send_errors)=[^ ]*' | tr '\n' ' ')"
    done
}
d_mptcp() { case $1 in kernel|nfq1) echo --mptcp;; esac; }

for d in $DESIGNS; do
    for N in $NS_LIST; do
        for r in $(seq $REPS); do
            tag="$d N=$N rep $r"
            if ! design_start $d; then
                echo "SAMPLE $FIG $d $r error 1 1"; echo "FAIL - $tag: design_start failed"; design_stop; continue
            fi
            # Entries left by an earlier design (a killed proxy's, TIME_WAIT ones) do not count.
            for n in $BENCH_A $BENCH_B; do in_ns $n conntrack -F >/dev/null 2>&1; done
            st="$WORK/idle-$d-$N-$r.status" hl="$WORK/idle-$d-$N-$r.hold"
            bg_ns $BENCH_D "$WORK/idle-$d-$N-$r.serve" python3 "$IDLE" serve $PORT $(d_mptcp $d) --status "$st"
            srv=$LAST_PID
            if ! wait_for 10 in_ns $BENCH_D sh -c "ss -Hltn 'sport = :$PORT' | grep -q ."; then
                echo "SAMPLE $FIG $d $r error 1 1"; echo "FAIL - $tag: idle server on D did not start: $(head -c 300 "$WORK/idle-$d-$N-$r.serve")"
                _bench_kill $srv; design_stop; continue
            fi
            mp=(); [ "$BENCH_CLIENT_MPTCP" = 1 ] && mp=(--mptcp)
            t0=$(date +%s.%N)
            bg_ns $BENCH_C "$hl" python3 "$IDLE" hold $BENCH_DST $PORT $N "${mp[@]}" --batch 200 --timeout 20 --deadline $((60 + N / 50))
            holder=$LAST_PID
            ready=0
            for _ in $(seq $(( (90 + N / 50) * 4 ))); do
                grep -q '^READY' "$hl" 2>/dev/null && { ready=1; break; }
                kill -0 $holder 2>/dev/null || break
                sleep 0.25
            done
            if [ $ready = 0 ]; then
                echo "SAMPLE $FIG $d $r error 1 1"; echo "FAIL - $tag: the client did not get its connections open: $(head -c 300 "$hl")"
                _bench_kill $holder; _bench_kill $srv; design_stop; continue
            fi
            sleep $SETTLE
            cj=$(head -1 "$hl")
            rss=$(rss_kib $BENCH_GW_PIDS)
            read -r socks skkib ntcp nmptcp ntw <<<"$(sock_stats $BENCH_A $BENCH_B)"
            ct=$(conntrack_count $BENCH_A $BENCH_B)
            srvc=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["confirmed"])' "$st" 2>/dev/null || echo 0)
            read -r dsub dmp <<<"$(in_ns $BENCH_D sh -c "ss -Htn state established 'sport = :$PORT' | wc -l; ss -HMn state established 'sport = :$PORT' 2>/dev/null | wc -l" | tr '\n' ' ')"
            read -r hsocks hkib _ <<<"$(sock_stats $BENCH_C $BENCH_D)"
            cnt=$(daemon_counters)
            echo "SAMPLE $FIG $d $r rss_kib_$N $rss KiB"
            echo "SAMPLE $FIG $d $r sockmem_kib_$N $skkib KiB"
            echo "SAMPLE $FIG $d $r sockets_$N $socks 1"
            echo "SAMPLE $FIG $d $r conntrack_$N $ct 1"
            echo "SAMPLE $FIG $d $r opened_$N $srvc 1"
            echo "INFO memory_detail $d N=$N rep=$r client $cj; D holds $srvc confirmed ($dsub TCP subflows/connections, $dmp MPTCP sockets established on :$PORT); A+B: $ntcp TCP + $nmptcp MPTCP sockets, $ntw TIME-WAIT; gateway PIDs ${BENCH_GW_PIDS:-none}"
            echo "INFO memory_hosts $d N=$N rep=$r end hosts C+D (not the gateways, for comparison): $hsocks TCP+MPTCP sockets, $hkib KiB by the same method"
            [ -n "$cnt" ] && while IFS= read -r ln; do echo "INFO memory_daemon $d N=$N rep=$r $ln"; done <<<"$cnt"
            if [ "$srvc" != "$N" ]; then
                echo "FAIL - $tag: D holds $srvc of $N connections (client: $cj)"
                for p in $BENCH_GW_PIDS; do # the gateway programs' last words (the log, not parsed)
                    [ -n "${_BENCH_DLOGS[$p]:-}" ] && grep -v ' stats' "${_BENCH_DLOGS[$p]}" | tail -3 | sed "s|^|$tag: $(basename "${_BENCH_DLOGS[$p]}"): |"
                done
            fi
            _bench_kill $holder
            echo "$tag: holder exit: $(tail -1 "$hl"); $(( $(date +%s) - ${t0%.*} )) s"
            # Let the closes reach D before the design goes.
            for _ in $(seq 40); do
                c=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["active"])' "$st" 2>/dev/null || echo 0)
                [ "$c" = 0 ] && break; sleep 0.25
            done
            _bench_kill $srv
            design_stop
        done
    done
done
in_ns $BENCH_C sysctl -qw net.ipv4.ip_local_port_range="$old_range"
exit 0
