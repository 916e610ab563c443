#!/usr/bin/env bash
# The whole suite: installs what is missing, starts the local control plane,
# runs fmt, clippy and every test, and always stops the plane again.
set -euo pipefail
cd "$(dirname "$0")/.."

hack/deps.sh
exports=$(hack/testenv/up.sh)
trap 'hack/testenv/down.sh' EXIT
eval "$exports"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "== cargo test"
cargo test --locked
