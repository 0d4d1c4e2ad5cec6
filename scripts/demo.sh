#!/usr/bin/env bash
# The main job, for now: decode a Linux-kernel MPTCP capture with
# `nfq-mptcp inspect` (two subflows: MP_CAPABLE, ADD_ADDR, MP_JOIN, DSS,
# DATA_FIN), showing derived tokens/IDSNs and verified HMACs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product nfq-mptcp
bin=$(swift build -c release --show-bin-path)/nfq-mptcp
cap=${1:-pcaps/reference-shared/b-two-subflows-addaddr-join.pcap}
echo "== $bin inspect $cap (first 14 packets and the summary)"
"$bin" inspect "$cap" | awk 'NR <= 14 { print } { last = $0 } END { print "..."; print last }'
