#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds, runs every test
# (unit, capture, tshark cross-check, and the netns integration tests against
# the kernel's MPTCP, which need root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The engine and the wire stay pure: no Foundation, Glibc or Dispatch.
if grep -rnE '^\s*import\s+(Foundation|Glibc|Dispatch|Musl)' Sources/MPTCPStack Sources/MPTCPWire; then
  echo "test: Sources/MPTCPStack and Sources/MPTCPWire must not import Foundation/Glibc/Dispatch/Musl" >&2
  exit 1
fi
# The wire sits below the engine and cannot depend back on it.
if grep -rnE '^\s*(@[_a-zA-Z]+\s+)*import\s+MPTCPStack' Sources/MPTCPWire; then
  echo "test: Sources/MPTCPWire must not import MPTCPStack" >&2
  exit 1
fi
# The command line imports the shell and the tools, never the engine or the
# wire (their configuration reaches it through the shell's types); the tools
# know nothing of the shell.
if grep -rnE '^\s*(@[_a-zA-Z]+\s+)*import\s+(MPTCPStack|MPTCPWire)\b' Sources/nfq-mptcp; then
  echo "test: Sources/nfq-mptcp must not import MPTCPStack or MPTCPWire" >&2
  exit 1
fi
if grep -rnE '^\s*(@[_a-zA-Z]+\s+)*import\s+Translator\b' Sources/Tools Sources/MPTCPStack Sources/MPTCPWire; then
  echo "test: Sources/Tools, MPTCPStack and MPTCPWire must not import Translator (the shell)" >&2
  exit 1
fi
# The integration tests run the release binaries (throughput figures, and
# heap allocations per packet as shipped: Bench).
swift build -c release --product nfq-mptcp
swift build -c release --product linkemu
swift build -c release --product Bench
swift build --build-tests
swift test --skip-build "$@"
