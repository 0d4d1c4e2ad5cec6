#!/usr/bin/env bash
# Installs what nfq-mptcp needs to build and test on Debian 12 (run as root).
# Idempotent: packages already present are not fetched again.
set -euo pipefail
PKGS=(
  pkg-config libnetfilter-queue-dev libmnl-dev libpcap-dev   # build: system libraries
  tshark tcpdump                                             # tests: independent MPTCP dissector, captures
  iproute2 iptables ethtool iperf3 python3 mptcpd iputils-ping # tests/demo: namespaces, queue rules, kernel MPTCP peer
  mptcpize shadowsocks-libev                                  # bench: mptcpize run (MPTCP sockets), the split-proxy design
  linux-perf                                                  # bench: system calls per GB (perf stat)
  gnuplot-nox                                                 # bench: the report's charts
  conntrack                                                   # bench: conntrack -F between designs (memory figure)
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing packages ${missing[*]}; run as root (or install them yourself)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "setup: swift not on PATH (Swift 6.1 or later is required)" >&2; exit 1; }
