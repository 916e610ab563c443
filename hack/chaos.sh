#!/usr/bin/env bash
# make chaos: the fault campaign (tests/chaos) against the real operator
# binary, the local control plane and upstash-sim. SIZE=ci (default, a few
# minutes) or SIZE=full (1,000+ faults, about half an hour; writes
# docs/reliability.md). CHAOS_SEED replays a run's choices; CHAOS_ONLY=a,b
# runs some scenarios. Always stops the plane again.
set -euo pipefail
cd "$(dirname "$0")/.."

size=${SIZE:-ci}
case $size in ci | full) ;; *) echo "SIZE must be ci or full, not $size" >&2; exit 2 ;; esac

started=$SECONDS
phase() { echo "== $1 (t+$((SECONDS - started))s)"; }

phase "build"
cargo build --locked --workspace --bins --test chaos
phase "control plane"
exports=$(hack/testenv/up.sh)
trap 'hack/testenv/down.sh' EXIT
eval "$exports"

phase "chaos (CHAOS_SIZE=$size)"
log=target/chaos-$size.log
status=0
CHAOS_SIZE=$size cargo test --locked --test chaos 2>&1 | tee "$log" || status=$?
hack/testenv/down.sh
trap - EXIT
phase "done (output in $log)"
# The verdict again, last, after cargo's and the plane's messages.
grep '^chaos: [0-9]* faults' "$log" | tail -n 1 || echo "chaos: no verdict (see $log)"
exit "$status"
