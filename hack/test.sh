#!/usr/bin/env bash
# The whole suite: installs what is missing, starts the local control plane
# and node, builds the operator image, runs fmt, clippy and every test, and
# always stops the cluster again, then checks it left nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
phase() { echo "== $1 (t+$((SECONDS - started))s)"; }

phase "dependencies"
hack/deps.sh
# Upstash's own npm clients, pinned by their package-lock.json.
clients=crates/upstash-sim/tests/clients
if ! cmp -s $clients/package-lock.json $clients/node_modules/.package-lock.json 2>/dev/null; then
  (cd $clients && npm ci --no-audit --no-fund --loglevel=error)
fi
phase "control plane and node"
footprint=target/testenv-footprint
mkdir -p "$footprint"
hack/testenv/node/footprint.sh >"$footprint/before"
exports=$(NODE=1 hack/testenv/up.sh)
trap 'hack/testenv/down.sh' EXIT
eval "$exports"

phase "operator image"
image=$(hack/image/build.sh | tail -n 1)
export UPSTASH_ROTATOR_IMAGE=${image#IMAGE=}

phase "cargo fmt --check"
cargo fmt --all -- --check
phase "cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings
phase "cargo test"
# Every crate's tests; the end-to-end ones in tests/ run the binaries this
# same command builds.
cargo test --locked --workspace --no-fail-fast

phase "cluster down"
hack/testenv/down.sh
trap - EXIT
hack/testenv/node/footprint.sh >"$footprint/after"
if ! diff -u "$footprint/before" "$footprint/after"; then
  echo "the local node left the lines above (+) behind" >&2
  exit 1
fi
phase "done"
