#!/usr/bin/env bash
# The whole suite: installs what is missing, starts the local control plane,
# runs fmt, clippy and every test, and always stops the plane again.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
phase() { echo "== $1 (t+$((SECONDS - started))s)"; }

phase "dependencies"
hack/deps.sh
# Upstash's own npm clients, pinned by tests/clients/package-lock.json.
if ! cmp -s tests/clients/package-lock.json tests/clients/node_modules/.package-lock.json 2>/dev/null; then
  (cd tests/clients && npm ci --no-audit --no-fund --loglevel=error)
fi
phase "control plane"
exports=$(hack/testenv/up.sh)
trap 'hack/testenv/down.sh' EXIT
eval "$exports"

phase "cargo fmt --check"
cargo fmt --all -- --check
phase "cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
phase "cargo test"
cargo test --locked --no-fail-fast
phase "done"
