#!/usr/bin/env bash
# Forged segments from the uplink side into a live transfer (issue 13):
# nothing a forged packet does may corrupt, truncate or kill a connection.
# On the multipath test-bed (40 + 10 Mbit/s, 20 / 35 ms), plain client C —
# gateway G (nfq-mptcp) — kernel MPTCP server S. forge.py runs in S's
# namespace: it watches the server's own packets for 200 ms (the subflow's
# 4-tuple, SND.NXT, ACK, timestamps, DATA_ACK, DSN), then sends one forged
# segment from the server's address, behind the server's own packets on the
# same route. Each injection goes into its own 16 MiB transfer (1.2 s into
# it), after which: the transfer completed with sha256 equal, neither end
# saw a reset (nstat TcpEstabResets on C and S, MPTcpExtMPRstRx and
# MPTcpExtMPFastcloseRx on S), and the daemon's counter for that rejection
# grew. A control transfer without injection first shows those counters
# standing still.
#   One uplink (--uplink g1): RST out of window, RST in window but not exact
#   (challenged), MP_FASTCLOSE with a wrong key, DATA_FIN at the next DSN +
#   2^40, a DATA_ACK 2^40 ahead; then an infinite mapping (exact, and 12345
#   off at data level): either the transfer goes on intact or both ends are
#   reset — never a wrong or missing byte.
#   Two uplinks: the same RSTs on the join subflow, MP_FASTCLOSE, REMOVE_ADDR
#   of address id 0 (both subflows probed, the join subflow kept), DATA_FIN
#   at DSN + 2^40 on the join subflow, a DATA_ACK 2^40 ahead on the join
#   subflow (the outcome only: the multipath plane ignores it uncounted).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
FORGE="$REPO/netns/forge.py"
SIZE=$((16 << 20))
make_multipath_testbed inj
C=$MP_C; G=$MP_G; S=$MP_S
start_mp_server

# The daemon's counters now (SIGUSR1, then the newest stats line).
stats_now() {
    local n; n=$(grep -c '\] stats' "$WORK/daemon.log")
    kill -USR1 $DAEMON
    for _ in $(seq 50); do [ "$(grep -c '\] stats' "$WORK/daemon.log")" -gt "$n" ] && break; sleep 0.1; done
    grep '\] stats' "$WORK/daemon.log" | tail -1
}
stat_of() { grep -oE "(^| |,)$1=[0-9]+" <<<"$2" | tail -1 | cut -d= -f2; } # NAME LINE
# Counters whose growth a test looks at.
WATCH="rst_ignored rst_challenged challenge_acks out_of_window fastclose_rejected fastclose_received data_ack_invalid data_out_of_window aborted_both unknown_mptcp unknown_resets remove_addr_probes remove_addr_ignored remove_addr_applied subflows_failed"
resets_at_ends() { # -> "C_TcpEstabResets S_TcpEstabResets S_MPRstRx S_MPFastcloseRx"
    echo "$(nstat_value $C TcpEstabResets) $(nstat_value $S TcpEstabResets) $(nstat_value $S MPTcpExtMPRstRx) $(nstat_value $S MPTcpExtMPFastcloseRx)"
}
# DELTA[name] = counter growth over the last transfer.
declare -A DELTA
deltas() { # BEFORE-LINE AFTER-LINE
    local k a b parts=()
    for k in $WATCH; do
        a=$(stat_of $k "$1"); b=$(stat_of $k "$2")
        DELTA[$k]=$(( ${b:-0} - ${a:-0} ))
        [ "${DELTA[$k]}" != 0 ] && parts+=("$k+${DELTA[$k]}")
    done
    echo "  counters: ${parts[*]:-none moved}"
}
SEED=100
# One transfer with one injection. KIND "none": the control.
# inject NAME MODE KIND SUBFLOW EXPECT [forge args]
#   EXPECT: the counters that must grow, "a,b" (all) or "a|b" (either).
inject() {
    local name=$1 mode=$2 kind=$3 sub=$4 expect=$5; shift 5
    local s0 s1 r0 r1 xf rc frc=0 alive=0 out=$WORK/$name
    SEED=$((SEED + 1))
    s0=$(stats_now); r0=$(resets_at_ends); SERVER_BEFORE=$(server_conns)
    in_ns $C python3 "$XFER" $mode $MP_S_ADDR1 5002 $SIZE $SEED --timeout 60 >"$out.json" 2>&1 &
    xf=$!
    sleep 1.2
    if [ "$kind" != none ]; then
        [ "$kind" = remove-addr ] && JOIN_BEFORE=$(join_subflows)
        in_ns $S python3 "$FORGE" $kind --port 5002 --client $MP_C_ADDR --subflow $sub "$@" >"$out.forge" 2>&1
        frc=$?
        kill -0 $xf 2>/dev/null; alive=$?
        [ "$kind" = remove-addr ] && remove_addr_followup
    fi
    wait $xf; rc=$?
    sleep 0.5
    s1=$(stats_now); r1=$(resets_at_ends)
    echo "# $name: $(head -c 400 "$out.forge" 2>/dev/null)"
    deltas "$s0" "$s1"
    if [ "$kind" != none ]; then
        [ $frc = 0 ] && [ $alive = 0 ]
        check "$name: $kind forged on the $sub subflow mid-transfer" $? "forge rc=$frc, transfer running=$([ $alive = 0 ] && echo yes || echo no)"
    fi
    LAST_RC=$rc; LAST_RESETS="$r0 -> $r1"
    if [ "$expect" = outcome ]; then return; fi # the caller judges (infinite mapping)
    check "$name: 16 MiB $mode intact, sha256 equal" $rc "$(head -c 250 "$out.json")"
    [ "$r0" = "$r1" ]; check "$name: no reset at either end" $? "C TcpEstabResets, S TcpEstabResets MPRstRx MPFastcloseRx: $r0 -> $r1"
    if [ "$expect" = intact ]; then return; fi # no counter asked for
    if [ "$expect" = none ]; then
        local moved=""; for k in $WATCH; do [ "${DELTA[$k]}" != 0 ] && moved+="$k "; done
        [ -z "$moved" ]; check "$name: no rejection counted without an injection" $? "${moved:-none moved}"
        return
    fi
    local ok=1 e
    if [[ "$expect" == *"|"* ]]; then
        for e in ${expect//|/ }; do [ "${DELTA[$e]}" -ge 1 ] && ok=0; done
    else
        ok=0; for e in ${expect//,/ }; do [ "${DELTA[$e]}" -ge 1 ] || ok=1; done
    fi
    local shown=""; for e in ${expect//[,|]/ }; do shown+="$e+${DELTA[$e]} "; done
    check "$name: the daemon saw it and rejected it ($expect)" $ok "$shown"
    [ "${DELTA[fastclose_received]}" = 0 ] && [ "${DELTA[aborted_both]}" = 0 ] && [ "${DELTA[unknown_resets]}" = 0 ]
    check "$name: nothing torn down by the daemon" $? "fastclose_received+${DELTA[fastclose_received]} aborted_both+${DELTA[aborted_both]} unknown_resets+${DELTA[unknown_resets]}"
}
# REMOVE_ADDR: the join subflow (from uplink 2's address) must still be the
# same one a second later — probed, answered, kept; not torn down and rejoined.
JOIN_BEFORE=""
join_subflows() { in_ns $S ss -Htn state established "( sport = :5002 )" dst $MP_G_ADDR2 | awk '{print $4}' | sort | tr '\n' ' '; }
remove_addr_followup() {
    sleep 1
    local now; now=$(join_subflows)
    [ -n "$JOIN_BEFORE" ] && [ "$now" = "$JOIN_BEFORE" ]
    check "REMOVE_ADDR: the join subflow is kept (same 4-tuple 1 s later)" $? "before: ${JOIN_BEFORE:-none}, after: ${now:-none}"
}
# Established sockets on the server's port (MPTCP connections and subflows).
server_conns() { in_ns $S ss -HtanM state established "( sport = :5002 )" | awk '{print $1 "," $5}' | sort | tr '\n' ' '; }
# ... those of the last transfer (not there before it).
SERVER_BEFORE=""
new_server_conns() { local x; for x in $(server_conns); do [[ " $SERVER_BEFORE " == *" $x "* ]] || echo -n "$x "; done; }
# An infinite mapping: intact, or both ends reset — never wrong or missing data.
infinite_outcome() { # NAME
    local name=$1 j=$WORK/$1.json ok err
    ok=$(json_field ok <"$j" 2>/dev/null); err=$(json_field error <"$j" 2>/dev/null)
    local outcome=FAIL
    if [ "$LAST_RC" = 0 ] && [ "$ok" = True ]; then outcome=intact
    elif [[ "$err" == *"reset"* ]]; then outcome=reset; fi
    echo "RESULT ${name}_outcome=$outcome"
    [ $outcome != FAIL ]; check "$name: the transfer is intact or the client was reset (no wrong or missing byte)" $? "$outcome: $(head -c 250 "$j")"
    if [ $outcome = reset ]; then
        [ "${DELTA[aborted_both]}" -ge 1 ] || [ "${DELTA[unknown_resets]}" -ge 1 ]
        check "$name: the daemon reset both ends (aborted_both or unknown_resets)" $? "aborted_both+${DELTA[aborted_both]} unknown_resets+${DELTA[unknown_resets]}; ends $LAST_RESETS"
        local s0 s1; s0=${LAST_RESETS%% -> *}; s1=${LAST_RESETS##* -> }
        set -- $s0; local a=$(( $2 + $3 + $4 )); set -- $s1; local b=$(( $2 + $3 + $4 ))
        [ $b -gt $a ]; check "$name: the server's subflow was reset too" $? "S TcpEstabResets+MPRstRx+MPFastcloseRx: $a -> $b"
        # ... and its MPTCP connection: not left established without a
        # subflow (its application would wait for ever).
        local left=""
        for _ in $(seq 25); do left=$(new_server_conns); [ -z "$left" ] && break; sleep 0.2; done
        [ -z "$left" ]; check "$name: the server's MPTCP connection is closed too (within 5 s)" $? "left: ${left:-none}"
    fi
}

# ------------------------------------------------------------ one uplink
start_mp_daemon "one uplink: daemon starts" --uplink g1
sleep 0.5
inject 1-control       down none        initial none
inject 1a-rst-out      down rst-out     initial rst_ignored
inject 1b-rst-in       down rst-in      initial rst_challenged
inject 1b-rst-in-up    up   rst-in      initial rst_challenged,challenge_acks
inject 1c-fastclose    down fastclose   initial fastclose_rejected
inject 1e-datafin      down datafin     initial data_out_of_window
inject 1e-datafin-up   up   datafin     initial data_out_of_window
inject 1f-dataack      up   dataack     initial data_ack_invalid
inject 1g-infinite     down infinite    initial outcome
infinite_outcome 1g-infinite
inject 1g-infinite-off down infinite    initial outcome --offset 12345
infinite_outcome 1g-infinite-off
kill -TERM $DAEMON; wait $DAEMON; check "one uplink: daemon exits 0 on SIGTERM" $?

# ------------------------------------------------------------ two uplinks
mv "$WORK/daemon.log" "$WORK/daemon-1.log"
start_mp_daemon "two uplinks: daemon starts" --uplink g1 --uplink g2
sleep 0.5
inject 2-control       down none        initial none
inject 2a-rst-out      down rst-out     join    rst_ignored
inject 2b-rst-in-up    up   rst-in      join    rst_challenged,challenge_acks
inject 2c-fastclose    down fastclose   initial fastclose_rejected
inject 2d-remove-addr   down remove-addr initial remove_addr_probes,remove_addr_ignored
[ "${DELTA[remove_addr_applied]}" = 0 ]; check "2d-remove-addr: no removal applied" $? "remove_addr_applied+${DELTA[remove_addr_applied]}"
inject 2d-remove-addr-up up remove-addr initial remove_addr_probes,remove_addr_ignored
[ "${DELTA[remove_addr_applied]}" = 0 ]; check "2d-remove-addr-up: no removal applied" $? "remove_addr_applied+${DELTA[remove_addr_applied]}"
inject 2e-datafin      down datafin     join    data_out_of_window
inject 2e-datafin-up   up   datafin     join    data_out_of_window
# (With two uplinks a DATA_ACK beyond the data sent is ignored without a
# counter of its own: only the outcome is checked.)
inject 2f-dataack      up   dataack     join    intact
inject 2g-infinite     down infinite    join    outcome
infinite_outcome 2g-infinite
kill -TERM $DAEMON; wait $DAEMON; check "two uplinks: daemon exits 0 on SIGTERM" $?
finish
