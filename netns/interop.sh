#!/usr/bin/env bash
# Interoperability with ordinary Linux settings (issue 12), against the
# kernel's MPTCP on the multipath test-bed (40 + 10 Mbit/s, 20 / 35 ms):
#  A. responder role with ONE uplink, the kernel client having a second
#     address (a `subflow` endpoint, 10.41.12.3 on the same link): its join
#     is answered by the gateway (RST + MP_TCPRST) and never reaches the
#     plain LAN server; 16 MiB each way intact with no stall over 1 s; its
#     first data (MP_CAPABLE with a data length) taken, so a 1 KB request
#     needs no retransmission timeout; the client's ADD_ADDR echoed.
#     Then the second address routed by link 2, outside the gateway's
#     uplinks: the join reaches the LAN server, which answers plain TCP, and
#     the kernel resends at data level on the first subflow under new subflow
#     sequence numbers: 16 MiB up intact, no stall over 1 s.
#  B. initiator, two uplinks, the server with allow_join_initial_addr_port=0
#     (flag C) and a `signal` endpoint: no join to the initial address and
#     port in the capture; the announced address joined.
#  C. TCP Fast Open: the client's second connection carries its request in
#     the SYN: MPTCP (the SYN goes out with MP_CAPABLE and its data; the
#     server took it as TFO), over both uplinks, intact.
#  D. responder, two uplinks, IPv6 with timestamps: the kernel client gets
#     the ADD_ADDR of uplink 2 (no room beside timestamps with port and
#     HMAC: sent without them) and joins it.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
MP_S_SIGNAL=1 make_multipath_testbed iop
C=$MP_C; G=$MP_G; S=$MP_S
TFO="$REPO/netns/tfo.py"

stop_daemon() { kill -TERM $DAEMON; wait $DAEMON; check "daemon exits 0 on SIGTERM ($1)" $?; }
daemon_stat() { kill -USR1 $DAEMON; sleep 0.5; grep -o "$1=[0-9]*" "$WORK/daemon.log" | tail -1 | cut -d= -f2; }
# The longest run of 100 ms trace intervals with no bytes in column COL,
# between the first and the last interval that had some (seconds).
max_stall() { # TRACE COL
    python3 - "$1" "$2" <<'PYEOF'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip() and l[0].isdigit()]
col = int(sys.argv[2]) - 1
v = [int(r[col]) for r in rows]
nz = [i for i, b in enumerate(v) if b > 0]
best = run = 0
for b in (v[nz[0]:nz[-1] + 1] if nz else []):
    run = run + 1 if b <= 0 else 0
    best = max(best, run)
print(f"{best * 0.1:.1f}")
PYEOF
}
below() { python3 -c "import sys; sys.exit(0 if float('${1:-99}') < float('$2') else 1)"; }

# PARTS (environment) runs some of them only, e.g. PARTS="B C".
want() { [[ " ${PARTS:-A B C D} " == *" $1 "* ]]; }

# ---------------------------------------------------------------- A
if want A; then
in_ns $S ip addr add 10.41.12.3/24 dev s1
in_ns $S ip rule add from 10.41.12.3 table 201 pref 200
ip -n $S mptcp endpoint add 10.41.12.3 dev s1 subflow
start_mp_daemon "A: daemon starts with one uplink" --uplink g1
mkdir -p "$WORK/traces"
bg_ns $C "$WORK/server.log" python3 "$XFER" serve --port 5003 --trace-dir "$WORK/traces"
wait_for 5 in_ns $C sh -c "ss -ltnH 'sport = :5003' | grep -q ."
bg_ns $G "$WORK/lan.pcap.log" tcpdump -i g0 -w "$WORK/lan.pcap" -U -s 128 "tcp[tcpflags] & tcp-syn != 0"
TD=$LAST_PID
sleep 1

to0=$(nstat_value $S TcpExtTCPTimeouts); rs0=$(nstat_value $S TcpRetransSegs)
in_ns $S python3 "$XFER" up $MP_C_ADDR 5003 1024 40 --mptcp --timeout 20 >"$WORK/small.json" 2>&1
check "A: 1 KB request through the one-uplink responder, sha256 equal" $? "$(head -c 200 "$WORK/small.json")"
secs=$(json_field seconds <"$WORK/small.json")
to=$(( $(nstat_value $S TcpExtTCPTimeouts) - to0 )); rs=$(( $(nstat_value $S TcpRetransSegs) - rs0 ))
echo "RESULT responder1_1k_request_s=$secs"
below "$secs" 0.2 && [ "${to:-0}" = 0 ]
check "A: ... without a retransmission timeout (was one RTO: the first data was dropped)" $? "${secs}s, client TCPTimeouts=$to RetransSegs=$rs"

one_way() { # NAME MODE SEED
    local name=$1 mode=$2 trace col stall
    rm -f "$WORK"/traces/*
    if [ $mode = down ]; then trace="$WORK/$name.trace"; else trace=""; fi
    in_ns $S python3 "$XFER" $mode $MP_C_ADDR 5003 $((16 << 20)) $3 --mptcp --timeout 120 ${trace:+--trace $trace} >"$WORK/$name.json" 2>&1
    check "$name: 16 MiB $mode, sha256 equal" $? "$(head -c 300 "$WORK/$name.json")"
    [ -z "$trace" ] && trace=$(ls "$WORK"/traces/up-* 2>/dev/null | head -1)
    stall=$(max_stall "${trace:-/dev/null}" 5)
    echo "RESULT ${name}_mbit=$(python3 -c "import json; d=json.load(open('$WORK/$name.json')); print(round(d['bytes']*8/d['seconds']/1e6, 1))" 2>/dev/null) ${name}_longest_stall_s=$stall"
    below "$stall" 1.0; check "$name: no stall over 1 s" $? "longest ${stall}s"
}
one_way A-up up 41
one_way A-down down 42
jtx=$(nstat_value $S MPTcpExtMPJoinSynTx)
refused=$(daemon_stat joins_refused)
[ "${refused:-0}" -ge 1 ]; check "A: the client's join is refused by the gateway" $? "client MPJoinSynTx=$jtx, daemon joins_refused=$refused"
echoes=$(nstat_value $S MPTcpExtEchoAdd)
[ "${echoes:-0}" -ge 1 ]; check "A: the client's ADD_ADDR is echoed with one uplink" $? "client EchoAdd=$echoes"
kill -INT $TD; wait $TD 2>/dev/null
joins_at_server=$(tshark -r "$WORK/lan.pcap" -Y "ip.src == 10.41.12.3" 2>/dev/null | wc -l)
[ "$joins_at_server" = 0 ]; check "A: no join SYN reaches the plain LAN server" $? "$joins_at_server SYNs from 10.41.12.3 on the LAN"

# The second address routed by link 2, which is no uplink of this gateway.
ip -n $S mptcp endpoint flush
ip -n $S mptcp endpoint add 10.41.22.2 dev s2 subflow
j0=$(nstat_value $S MPTcpExtMPJoinSynTx)
one_way A2-up up 43
echo "RESULT A2_client_join_syns=$(( $(nstat_value $S MPTcpExtMPJoinSynTx) - j0 ))"
stop_daemon A
ip -n $S mptcp endpoint flush
fi

# ---------------------------------------------------------------- B
if want B || want C; then
in_ns $S sysctl -qw net.mptcp.allow_join_initial_addr_port=0
ip -n $S mptcp endpoint add 10.41.22.2 dev s2 signal
start_mp_daemon "B: daemon starts with two uplinks" --uplink g1 --uplink g2
start_mp_server
bg_ns $G "$WORK/up.pcap.log" tcpdump -i any -w "$WORK/up.pcap" -U -s 128 "tcp[tcpflags] & tcp-syn != 0 and (src host 10.41.2.1 or src host 10.41.3.1)"
TD=$LAST_PID
sleep 1
in_ns $C python3 "$XFER" down $MP_S_ADDR1 5002 $((8 << 20)) 44 --timeout 60 >"$WORK/B.json" 2>&1
check "B: 8 MiB down from a server with flag C, sha256 equal" $? "$(head -c 200 "$WORK/B.json")"
sleep 1; kill -INT $TD; wait $TD 2>/dev/null
to_initial=$(tshark -r "$WORK/up.pcap" -Y "tcp.options.mptcp.subtype == 1 && ip.dst == $MP_S_ADDR1 && tcp.dstport == 5002" 2>/dev/null | wc -l)
to_announced=$(tshark -r "$WORK/up.pcap" -Y "tcp.options.mptcp.subtype == 1 && ip.dst == $MP_S_ADDR2" 2>/dev/null | wc -l)
echo "RESULT B_joins_to_initial=$to_initial B_joins_to_announced=$to_announced"
[ "$to_initial" = 0 ]; check "B: no join to the initial address and port (flag C)" $? "$to_initial join SYNs to $MP_S_ADDR1:5002"
[ "$to_announced" -ge 1 ]; check "B: the announced address is joined" $? "$to_announced join SYNs to $MP_S_ADDR2"
in_ns $S sysctl -qw net.mptcp.allow_join_initial_addr_port=1
ip -n $S mptcp endpoint flush

# ---------------------------------------------------------------- C
in_ns $S sysctl -qw net.ipv4.tcp_fastopen=3
in_ns $C sysctl -qw net.ipv4.tcp_fastopen=1
bg_ns $S "$WORK/tfo-server.log" python3 "$TFO" serve 5005
wait_for 5 in_ns $S sh -c "ss -ltnH 'sport = :5005' | grep -q ."
p0=$(nstat_value $S TcpExtTCPFastOpenPassive); m0=$(nstat_value $S MPTcpExtMPCapableSYNRX)
in_ns $C python3 "$TFO" get $MP_S_ADDR1 5005 1000 45 >"$WORK/C1.json" 2>&1
check "C: first TFO connection (cookie request), intact" $? "$(cat "$WORK/C1.json")"
bg_ns $G "$WORK/tfo.pcap.log" tcpdump -i g1 -w "$WORK/tfo.pcap" -U -s 256 "tcp port 5005"
TD=$LAST_PID
sleep 1
a2=$(if_bytes $G g2 rx)
in_ns $C python3 "$TFO" get $MP_S_ADDR1 5005 $((16 << 20)) 46 >"$WORK/C2.json" 2>&1
check "C: second TFO connection (request in the SYN): 16 MiB intact" $? "$(cat "$WORK/C2.json")"
b2=$(( $(if_bytes $G g2 rx) - a2 ))
sleep 0.5; kill -INT $TD; wait $TD 2>/dev/null
synd=$(tshark -r "$WORK/tfo.pcap" -Y "tcp.flags.syn == 1 && tcp.flags.ack == 0 && tcp.len > 0 && tcp.options.mptcp.subtype == 0" 2>/dev/null | wc -l)
passive=$(( $(nstat_value $S TcpExtTCPFastOpenPassive) - p0 ))
capable=$(( $(nstat_value $S MPTcpExtMPCapableSYNRX) - m0 ))
echo "RESULT C_syn_with_data_and_mpc=$synd C_server_TFOPassive=$passive C_uplink2_rx_bytes=$b2"
[ "$synd" -ge 1 ] && [ "${passive:-0}" -ge 1 ] && [ "${capable:-0}" -ge 2 ]
check "C: the SYN carries the request and MP_CAPABLE; the server took it as TFO over MPTCP" $? "SYN+data+MPC=$synd TCPFastOpenPassive=$passive MPCapableSYNRX=$capable"
[ $b2 -gt 2000000 ]; check "C: the TFO connection used uplink 2 too" $? "$b2 B on g2"
stop_daemon B+C
fi

# ---------------------------------------------------------------- D
if want D; then
start_mp_daemon "D: daemon starts with two uplinks (responder, IPv6)" --uplink g1 --uplink g2
bg_ns $C "$WORK/server6.log" python3 "$XFER" serve --port 5006
wait_for 5 in_ns $C sh -c "ss -ltnH 'sport = :5006' | grep -q ."
aa0=$(nstat_value $S MPTcpExtAddAddr); jsa0=$(nstat_value $S MPTcpExtMPJoinSynAckRx)
a2=$(if_bytes $G g2 rx)
in_ns $S python3 "$XFER" up $MP_C_ADDR6 5006 $((16 << 20)) 47 --mptcp --timeout 60 >"$WORK/D.json" 2>&1
check "D: IPv6, kernel client -> responder: 16 MiB up, sha256 equal" $? "$(head -c 200 "$WORK/D.json")"
b2=$(( $(if_bytes $G g2 rx) - a2 ))
aa=$(( $(nstat_value $S MPTcpExtAddAddr) - aa0 )); jsa=$(( $(nstat_value $S MPTcpExtMPJoinSynAckRx) - jsa0 ))
nots=$(daemon_stat add_addr_without_ts)
echo "RESULT D_add_addr_rx=$aa D_join_synack_rx=$jsa D_uplink2_rx_bytes=$b2 D_add_addr_without_ts=$nots"
[ "${aa:-0}" -ge 1 ] && [ "${jsa:-0}" -ge 1 ]
check "D: the client got uplink 2's ADD_ADDR over IPv6 and joined it" $? "AddAddr=$aa MPJoinSynAckRx=$jsa add_addr_without_ts=$nots"
[ $b2 -gt 2000000 ]; check "D: uplink 2 carried part of the upload" $? "$b2 B on g2"
stop_daemon D
fi
finish
