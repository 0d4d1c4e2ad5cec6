#!/usr/bin/env bash
# The test-bed link emulator (linkemu: NFQUEUE delay/loss; tbf for rate):
#   a (10.32.1.1) -- link router L (FORWARD -> NFQUEUE -> linkemu) -- b (10.32.2.1)
# Checks configured against measured: RTT with 20 ms each way, loss with 10%
# each way, and throughput through tbf 40 Mbit/s plus the delay.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
LINKEMU=${LINKEMU:-$(dirname "$NFQ_MPTCP")/linkemu}
[ -x "$LINKEMU" ] || { echo "FAIL - linkemu not built"; exit 1; }
Q=$((2000 + TID % 20000))
A=nfqa-$TID; L=nfql-$TID; B=nfqb-$TID
ns_add $A; ns_add $L; ns_add $B
ip link add a0 netns $A type veth peer name la netns $L
ip link add lb netns $L type veth peer name b0 netns $B
in_ns $A ip addr add 10.32.1.1/24 dev a0; in_ns $L ip addr add 10.32.1.2/24 dev la
in_ns $L ip addr add 10.32.2.2/24 dev lb; in_ns $B ip addr add 10.32.2.1/24 dev b0
for x in "$A a0" "$L la" "$L lb" "$B b0"; do set -- $x; ip -n $1 link set $2 up; done
in_ns $A ip route add default via 10.32.1.2; in_ns $B ip route add default via 10.32.2.2
in_ns $L sysctl -qw net.ipv4.ip_forward=1
in_ns $L iptables -A FORWARD -j NFQUEUE --queue-num $Q

start_emu() { bg_ns $L "$WORK/emu.log" "$LINKEMU" --queue $Q "$@"; EMU=$LAST_PID; wait_for 5 grep -q "linkemu: queue" "$WORK/emu.log"; }
stop_emu() { kill -TERM $EMU; wait $EMU; }

start_emu --delay-ms 20
rtt=$(in_ns $A ping -c 40 -i 0.05 -q 10.32.2.1 | awk -F/ '/rtt/ {print $5}')
python3 -c "import sys; r=float('$rtt' or 0); sys.exit(0 if 40 <= r <= 44 else 1)"
check "RTT with 20 ms each way is 40-44 ms" $? "measured average $rtt ms"
echo "RESULT configured_rtt_ms=40 measured_rtt_ms=$rtt"
stop_emu

start_emu --loss 0.1 --seed 7
lost=$(in_ns $A ping -c 1000 -i 0.002 -W 1 -q 10.32.2.1 | grep -o '[0-9.]*% packet loss' | cut -d% -f1)
python3 -c "import sys; l=float('$lost' or -1); sys.exit(0 if 13 <= l <= 25 else 1)"
check "10% loss each way loses 13-25% of pings (19% expected)" $? "measured $lost%"
echo "RESULT configured_loss_each_way=0.10 measured_ping_loss_percent=$lost"
stop_emu

# Rate from tbf on L's egress towards b, delay from linkemu, both at once.
in_ns $L tc qdisc add dev lb root tbf rate 40mbit burst 64kb latency 100ms
start_emu --delay-ms 20
bg_ns $B "$WORK/iperf-s.log" iperf3 -s -p 5301
wait_for 5 in_ns $B sh -c "ss -ltnH 'sport = :5301' | grep -q ."
rate=$(in_ns $A iperf3 -c 10.32.2.1 -p 5301 -t 4 -J 2>/dev/null | python3 -c 'import json,sys
d=json.load(sys.stdin); print(round(d["end"]["sum_received"]["bits_per_second"]/1e6,1))' 2>/dev/null || echo 0)
python3 -c "import sys; r=float('$rate' or 0); sys.exit(0 if 32 <= r <= 41 else 1)"
check "tbf 40 Mbit/s with 20 ms delay carries 32-41 Mbit/s" $? "measured $rate Mbit/s"
echo "RESULT configured_rate_mbit_s=40 measured_rate_mbit_s=$rate"
stop_emu
grep -q "passed" "$WORK/emu.log"; check "linkemu exits cleanly and reports its counters" $? "$(tail -1 "$WORK/emu.log")"
finish
