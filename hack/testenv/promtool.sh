#!/usr/bin/env bash
# Builds promtool (Prometheus's rule checker, for the chart's alerts) from its
# wrapper module into a keyed cache directory of its own and prints that
# directory. Does nothing when the cache already holds it. Kept apart from
# build.sh so that a new Prometheus version never rebuilds the cluster.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

key=$({ cat "$TESTENV_DIR"/promtool/go.{mod,sum} "$TESTENV_DIR/promtool.sh"; go env GOVERSION; } | sha256sum | cut -c1-12)
bin="$(testenv_cache_root)/promtool-$key"
if [ -x "$bin/promtool" ]; then
  echo "$bin"
  exit 0
fi

export CGO_ENABLED=0 GOWORK=off GOTOOLCHAIN=local GOFLAGS="-trimpath -mod=readonly"
tmp="$bin.partial.$$"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
echo "building promtool into $bin (a few minutes on 2 cores, once)" >&2
(cd "$TESTENV_DIR/promtool" && go build -ldflags "-s -w" -o "$tmp/promtool" github.com/prometheus/prometheus/cmd/promtool)
mkdir -p "$bin"
mv "$tmp/promtool" "$bin/promtool"
echo "$bin"
