#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds, runs every test
# (unit, capture, tshark cross-check, and the netns integration tests against
# the kernel's MPTCP, which need root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The engine stays pure: no Foundation, Glibc or Dispatch in MPTCPStack.
if grep -rnE '^\s*import\s+(Foundation|Glibc|Dispatch|Musl)' Sources/MPTCPStack; then
  echo "test: Sources/MPTCPStack must not import Foundation/Glibc/Dispatch/Musl" >&2
  exit 1
fi
# The integration tests run the release binaries (throughput figures, and
# heap allocations per packet as shipped: Bench).
swift build -c release --product nfq-mptcp
swift build -c release --product linkemu
swift build -c release --product Bench
swift build --build-tests
swift test --skip-build "$@"
