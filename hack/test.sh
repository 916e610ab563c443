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
phase "promtool"
# The chart's alert rules are checked with it (tests/monitoring.rs).
PATH="$(hack/testenv/promtool.sh):$PATH"
export PATH
phase "control plane and node"
footprint=target/testenv-footprint
mkdir -p "$footprint"
hack/testenv/node/footprint.sh >"$footprint/before"
exports=$(NODE=1 hack/testenv/up.sh)
trap 'hack/testenv/down.sh' EXIT
eval "$exports"

# The image builds while clippy and the other tests run (they mostly wait on
# the apiserver); the node tests wait for the file it writes when done.
phase "operator image (in the background)"
image_file=$PWD/target/images/operator.image
mkdir -p target/images
rm -f "$image_file" "$image_file.log"
(
  if out=$(hack/image/build.sh 2>"$image_file.log"); then
    echo "${out##*IMAGE=}" >"$image_file.partial"
  else
    echo FAILED >"$image_file.partial"
  fi
  mv "$image_file.partial" "$image_file"
) &
image_build=$!
# The build imports into the node: let it finish before the node goes.
trap 'wait; hack/testenv/down.sh' EXIT
export UPSTASH_ROTATOR_IMAGE_FILE=$image_file

phase "cargo fmt --check"
cargo fmt --all -- --check
phase "cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings
phase "cargo test"
# Every crate's tests; the end-to-end ones in tests/ run the binaries this
# same command builds.
# The end-to-end tests mostly wait on the apiserver, the kubelet and their
# own processes, so four at a time per binary on two cores (libtest's default
# is one per core).
RUST_TEST_THREADS=${RUST_TEST_THREADS:-4} cargo test --locked --workspace --no-fail-fast

phase "operator image build"
wait "$image_build"
if [ "$(cat "$image_file")" = FAILED ]; then
  echo "make image failed:" >&2
  tail -n 40 "$image_file.log" >&2
  exit 1
fi
echo "built $(cat "$image_file")"

phase "cluster down"
hack/testenv/down.sh
trap - EXIT
hack/testenv/node/footprint.sh >"$footprint/after"
# Only what is new counts: up.sh may have swept what a killed run had left.
if comm -13 "$footprint/before" "$footprint/after" | grep -q .; then
  diff -u "$footprint/before" "$footprint/after" >&2 || true
  echo "the local node left the lines above (+) behind" >&2
  exit 1
fi
phase "done"
