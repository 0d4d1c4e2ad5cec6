#!/usr/bin/env bash
# The main job: a plain TCP client reaches the Linux kernel's MPTCP server
# through nfq-mptcp, on a throw-away namespace testbed:
#   client (plain TCP) -- gateway (nfq-mptcp) -- server (kernel MPTCP)
# It shows the MPTCP connection from the server kernel's side, the options on
# the uplink as nfq-mptcp inspect decodes them, and a checked transfer.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product nfq-mptcp
set +e
. netns/lib.sh
C=demo-c-$TID; G=demo-g-$TID; S=demo-s-$TID; Q=$((1000 + TID % 20000))
make_initiator_testbed $C $G $S
echo "== testbed: client 10.31.1.1 (plain TCP) -> gateway (nfq-mptcp, LAN g0, uplink g1) -> server 10.31.2.2 (kernel MPTCP)"
bg_ns $S "$WORK/server.log" python3 "$XFER" serve --mptcp --port 5001 --log "$WORK/peers.log"
wait_for 5 grep -q listening "$WORK/server.log"
bg_ns $G "$WORK/tcpdump.log" tcpdump -i g1 -s 200 -c 12 -w "$WORK/uplink.pcap" -U tcp port 5001
TCPDUMP=$LAST_PID
bg_ns $G "$WORK/daemon.log" "$NFQ_MPTCP" --queue $Q --lan g0 --uplink g1 --install-rules
D=$LAST_PID
wait_for 10 grep -q "queue $Q bound" "$WORK/daemon.log"
echo "== nfq-mptcp running; iptables rules it installed in the gateway:"
in_ns $G iptables -t raw -S PREROUTING | sed 's/^/   /'
in_ns $S nstat -n >/dev/null
echo "== 64 MiB from the server down to the plain client, then 64 MiB up (sha256 checked by the client):"
in_ns $C python3 "$XFER" down 10.31.2.2 5001 67108864 1 --timeout 60 > "$WORK/down.json" &
XF=$!
sleep 0.3
echo "== while it runs, the server kernel sees an MPTCP connection (ss -M lists MPTCP sockets):"
in_ns $S ss -Mn | sed 's/^/   /'
wait $XF; sed 's/^/   /' "$WORK/down.json"
in_ns $C python3 "$XFER" up 10.31.2.2 5001 67108864 2 --timeout 60 | sed 's/^/   /'
echo "== server kernel MPTCP counters:"
in_ns $S nstat -az 'MPTcpExtMPCapable*' | grep -v ' 0 ' | sed 's/^/   /'
wait $TCPDUMP 2>/dev/null
echo "== the first packets on the uplink, as nfq-mptcp inspect decodes them:"
"$NFQ_MPTCP" inspect "$WORK/uplink.pcap" | cut -c1-220 | sed 's/^/   /'
kill -TERM $D; wait $D
echo "== nfq-mptcp stopped (rules removed); its counters:"
grep '\] stats' "$WORK/daemon.log" | tail -1 | sed 's/^.*nfq-mptcp: /   /; s/ \[Translator\] stats//'
