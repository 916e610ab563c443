#!/usr/bin/env bash
# `make bench SIZE=N`: runs benches/operator/ with N resources (BENCH_SIZE) on
# the local control plane (started and stopped here unless it was already
# running), and writes docs/benchmarks/size-N.json and docs/benchmarks.md.
# With BENCH_PEERS set (`make bench-peers`), it runs the operator and External
# Secrets Operator side by side instead (docs/benchmarks/peers/size-N.json).
set -euo pipefail
cd "$(dirname "$0")/.."
hack/deps.sh
running=0
[ -f target/testenv/pids/kube-apiserver ] && kill -0 "$(cat target/testenv/pids/kube-apiserver)" 2>/dev/null && running=1
eval "$(hack/testenv/up.sh)"
[ "$running" = 1 ] || trap 'hack/testenv/down.sh' EXIT
# The benchmark drives the release binaries, built first; the operator is
# measured as the image runs it, a static musl binary (the Dockerfile's build).
cargo build --locked --release --workspace --bins
# A fresh machine's toolchain may lack the musl target (the Dockerfile adds it too).
if command -v rustup >/dev/null && ! rustup target list --installed | grep -x x86_64-unknown-linux-musl >/dev/null; then
  rustup target add x86_64-unknown-linux-musl
fi
cargo build --locked --release --target x86_64-unknown-linux-musl -p upstash-rotator --bin upstash-rotator
export BENCH_OPERATOR_BINARY=$PWD/target/x86_64-unknown-linux-musl/release/upstash-rotator
case "${BENCH_SIZE:=1000}" in
  '' | *[!0-9]*) echo "SIZE must be a number of resources (1000, 10000), not '$BENCH_SIZE'" >&2; exit 2 ;;
esac
export BENCH_SIZE
if [ -n "${BENCH_PEERS:-}" ]; then
  # External Secrets Operator: built once into the cache, its CRDs installed
  # (server-side: two are too large for the last-applied annotation).
  ESO_DIR=$(hack/testenv/eso.sh)
  export ESO_DIR BENCH_PEERS
  kubectl apply --server-side --force-conflicts -f "$ESO_DIR/crds" >/dev/null
  kubectl wait --for condition=established --timeout=60s -f "$ESO_DIR/crds" >/dev/null
fi
cargo bench --locked --bench operator
