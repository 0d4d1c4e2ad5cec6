#!/usr/bin/env bash
# Records a regression capture: the daemon (seeded keys) with --record on the
# initiator testbed, during a fixed set of small transfers. The capture holds
# every queued packet (input) and what the daemon emitted (output); the
# replay regression test feeds the inputs through the engine with the same
# seed and expects the same outputs, byte for byte.
#   bash tests/integration/record-regression.sh [OUT.pcap]
set -uo pipefail
. "$(dirname "$0")/lib.sh"
OUT=${1:-$REPO/pcaps/regression/initiator.pcap}
Q=$((1000 + TID % 20000))
C=nfqc-$TID; G=nfqg-$TID; S=nfqs-$TID
ns_add $C; ns_add $G; ns_add $S
ip link add c0 netns $C type veth peer name g0 netns $G
ip link add g1 netns $G type veth peer name s1 netns $S
in_ns $C ip addr add 10.31.1.1/24 dev c0; in_ns $C ip addr add fd31:1::1/64 dev c0 nodad
in_ns $G ip addr add 10.31.1.2/24 dev g0; in_ns $G ip addr add fd31:1::2/64 dev g0 nodad
in_ns $G ip addr add 10.31.2.1/24 dev g1; in_ns $G ip addr add fd31:2::1/64 dev g1 nodad
in_ns $S ip addr add 10.31.2.2/24 dev s1; in_ns $S ip addr add fd31:2::2/64 dev s1 nodad
for x in "$C c0" "$G g0" "$G g1" "$S s1"; do set -- $x; ip -n $1 link set $2 up; done
in_ns $C ip route add default via 10.31.1.2; in_ns $C ip -6 route add default via fd31:1::2
in_ns $S ip route add 10.31.1.0/24 via 10.31.2.1; in_ns $S ip -6 route add fd31:1::/64 via fd31:2::1
in_ns $G sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
in_ns $S sysctl -qw net.mptcp.enabled=1
ip -n $C link set c0 gso_max_size 65000
bg_ns $S "$WORK/s1.log" python3 "$XFER" serve --mptcp --port 5001
bg_ns $S "$WORK/s2.log" python3 "$XFER" serve --port 5002
wait_for 5 grep -q listening "$WORK/s1.log"; wait_for 5 grep -q listening "$WORK/s2.log"
bg_ns $G "$WORK/daemon.log" "$NFQ_MPTCP" --queue $Q --lan g0 --uplink g1 --install-rules --seed 42 --record "$WORK/rec.pcap"
D=$LAST_PID; wait_for 10 grep -q "queue $Q bound" "$WORK/daemon.log"; sleep 0.5
x() { in_ns $C python3 "$XFER" "$@" --timeout 30 >/dev/null; check "$*" $?; }
x up 10.31.2.2 5001 200000 1
x down 10.31.2.2 5001 200000 2
x echo 10.31.2.2 5001 --count 3
x up 10.31.2.2 5002 50000 3
x up fd31:2::2 5001 100000 4
x down fd31:2::2 5001 100000 5
sleep 0.5
kill -TERM $D; wait $D; check "daemon stopped" $?
cp "$WORK/rec.pcap" "$OUT"
echo "recorded $(stat -c %s "$OUT") bytes to $OUT"
finish
