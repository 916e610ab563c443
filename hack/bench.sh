#!/usr/bin/env bash
# `make bench SIZE=N`: runs benches/operator/ with N resources (BENCH_SIZE) on
# the local control plane (started and stopped here unless it was already
# running), and writes docs/benchmarks/size-N.json and docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
hack/deps.sh
running=0
[ -f target/testenv/pids/kube-apiserver ] && kill -0 "$(cat target/testenv/pids/kube-apiserver)" 2>/dev/null && running=1
eval "$(hack/testenv/up.sh)"
[ "$running" = 1 ] || trap 'hack/testenv/down.sh' EXIT
# The benchmark drives the release binaries, built first.
cargo build --locked --release --workspace --bins
case "${BENCH_SIZE:=1000}" in
  '' | *[!0-9]*) echo "SIZE must be a number of resources (1000, 10000), not '$BENCH_SIZE'" >&2; exit 2 ;;
esac
export BENCH_SIZE
cargo bench --locked --bench operator
