#!/usr/bin/env bash
# Builds External Secrets Operator (for `make bench-peers`) from its wrapper
# module into a keyed cache directory of its own, copies its CRDs beside the
# binary, and prints that directory. Does nothing when the cache already
# holds them. About 5 minutes on 2 cores, once.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

key=$({ cat "$TESTENV_DIR"/eso/go.{mod,sum} "$TESTENV_DIR/eso.sh"; go env GOVERSION; } | sha256sum | cut -c1-12)
dir="$(testenv_cache_root)/eso-$key"
if [ -x "$dir/external-secrets" ] && [ -d "$dir/crds" ]; then
  echo "$dir"
  exit 0
fi

export CGO_ENABLED=0 GOWORK=off GOTOOLCHAIN=local GOFLAGS="-trimpath -mod=readonly"
tmp="$dir.partial.$$"
mkdir -p "$tmp/crds"
trap 'rm -rf "$tmp"' EXIT
module=github.com/external-secrets/external-secrets
echo "building External Secrets Operator into $dir (about 5 minutes on 2 cores, once)" >&2
cd "$TESTENV_DIR/eso"
go build -ldflags "-s -w" -o "$tmp/external-secrets" "$module"
src=$(go list -m -f '{{.Dir}}' "$module")
cp "$src"/config/crds/bases/*.yaml "$tmp/crds/"
rm -f "$tmp/crds/kustomization.yaml"
rm -rf "$dir"
mv "$tmp" "$dir"
echo "$dir"
