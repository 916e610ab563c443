#!/usr/bin/env bash
# `make bench`: runs benches/operator.rs on the local control plane (started
# and stopped here unless it was already running).
set -euo pipefail
cd "$(dirname "$0")/.."
hack/deps.sh
running=0
[ -f target/testenv/pids/kube-apiserver ] && kill -0 "$(cat target/testenv/pids/kube-apiserver)" 2>/dev/null && running=1
eval "$(hack/testenv/up.sh)"
[ "$running" = 1 ] || trap 'hack/testenv/down.sh' EXIT
# The benchmark drives the release binaries, built first.
cargo build --locked --release --workspace --bins
cargo bench --locked --bench operator
