#!/usr/bin/env bash
# A backup uplink through nfq-mptcp against the Linux kernel (issue 4):
#   nfq-mptcp --uplink g1 --uplink g2:backup, on the multipath testbed
#   (uplink 1 40 Mbit/s 20 ms, uplink 2 10 Mbit/s 35 ms; kernel MPTCP server).
# The join from uplink 2 carries MP_JOIN's backup flag (the server kernel
# counts it). In each direction, a 16 s transfer: while uplink 1 works the
# backup uplink carries (almost) none of the data; uplink 1 is cut at 5 s
# (beyond the gateway) and the transfer moves to the backup uplink; uplink 1
# comes back at 11 s; sha256 equal at the end.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
make_multipath_testbed bku
C=$MP_C; G=$MP_G; S=$MP_S

start_mp_daemon "daemon starts with uplink 2 as backup" --uplink g1 --uplink g2:backup
start_mp_server
in_ns $S nstat -n >/dev/null

backup_run() { # MODE (up: the gateway sends on the uplinks, tx; down: the kernel does, rx)
    local mode=$1 dir=tx; [ $mode = down ] && dir=rx
    local a1 a2 b1 b2 c2 rc
    a1=$(if_bytes $G g1 $dir); a2=$(if_bytes $G g2 $dir)
    in_ns $C python3 "$XFER" $mode $MP_S_ADDR1 5002 0 21 --duration 16 --timeout 90 >"$WORK/backup-$mode.json" 2>&1 &
    local xfer=$!
    sleep 4.5
    b1=$(if_bytes $G g1 $dir); b2=$(if_bytes $G g2 $dir)
    sleep 0.5; cut_uplink 1; sleep 6
    c2=$(if_bytes $G g2 $dir)
    restore_uplink 1
    wait $xfer; rc=$?
    check "backup ($mode): transfer through the cut completes, sha256 equal" $rc "$(head -c 300 "$WORK/backup-$mode.json")"
    local before1=$((b1 - a1)) before2=$((b2 - a2)) during2=$((c2 - b2))
    echo "RESULT backup_${mode}_uplink1_bytes_before_cut=$before1 backup_${mode}_uplink2_bytes_before_cut=$before2 backup_${mode}_uplink2_bytes_during_cut=$during2"
    # Before the cut: uplink 2 carries signalling (the join, ACKs, probes), not the data.
    [ $before1 -gt 5000000 ] && [ $((before2 * 50)) -lt $before1 ]
    check "backup ($mode): before the cut the backup uplink carries under 2% of the bytes" $? "uplink 1 $before1 B, uplink 2 $before2 B"
    # During the 6 s cut: most of what 10 Mbit/s carries in 6 s (7.5 MB).
    [ $during2 -gt 3000000 ]
    check "backup ($mode): during the cut the backup uplink carries the transfer" $? "uplink 2 $during2 B in 6 s"
}
backup_run up
backup_run down

bk=$(nstat_value $S MPTcpExtMPJoinSynBackupRx)
[ "${bk:-0}" -ge 1 ]; check "the server kernel received MP_JOIN with the backup flag" $? "MPJoinSynBackupRx=$bk"
kill -USR1 $DAEMON; sleep 0.5
echo "daemon: $(grep 'subflows_opened' "$WORK/daemon.log" | tail -1)"
kill -TERM $DAEMON; wait $DAEMON
check "daemon exits 0 on SIGTERM" $?
finish
