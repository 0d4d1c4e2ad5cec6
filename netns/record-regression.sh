#!/usr/bin/env bash
# Records a regression capture: the daemon (seeded keys) with --record on the
# initiator testbed, during a fixed set of small transfers. The capture holds
# every queued packet (input) and what the daemon emitted (output); the
# replay regression test feeds the inputs through the engine with the same
# seed and expects the same outputs, byte for byte.
#   bash netns/record-regression.sh [OUT.pcap]
set -uo pipefail
. "$(dirname "$0")/lib.sh"
OUT=${1:-$REPO/pcaps/regression/initiator.pcap}
Q=$((1000 + TID % 20000))
C=nfqc-$TID; G=nfqg-$TID; S=nfqs-$TID
make_initiator_testbed $C $G $S
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
