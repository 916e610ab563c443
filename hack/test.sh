#!/usr/bin/env bash
# The whole suite: installs what is missing, starts the local control plane,
# runs fmt, clippy and every test, and always stops the plane again.
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
phase "control plane"
exports=$(hack/testenv/up.sh)
trap 'hack/testenv/down.sh' EXIT
eval "$exports"

phase "cargo fmt --check"
cargo fmt --all -- --check
phase "cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings
phase "cargo test"
# Every crate's tests; the end-to-end ones in tests/ run the binaries this
# same command builds.
cargo test --locked --workspace --no-fail-fast
phase "done"
