#!/usr/bin/env bash
# Imports OCI archives into the local node's containerd, in the k8s.io
# namespace the kubelet uses, when a node runs; does nothing (exit 0) when
# none runs. The image name comes from the archive's
# org.opencontainers.image.ref.name (podman save writes the full reference).
# Usage: hack/image/import.sh ARCHIVE...
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -ge 1 ] || { echo "usage: $0 ARCHIVE..." >&2; exit 2; }
if [ ! -f "$NODE_CTR_ENV" ]; then
  echo "no local node ($NODE_CTR_ENV absent): not imported" >&2
  exit 0
fi
# shellcheck disable=SC1090
. "$NODE_CTR_ENV"
: "${CTR:?not set by $NODE_CTR_ENV}" "${CONTAINERD_ADDRESS:?not set by $NODE_CTR_ENV}"
for archive in "$@"; do
  out=$("$CTR" --address "$CONTAINERD_ADDRESS" -n k8s.io images import --all-platforms "$archive" 2>&1) || {
    echo "import of $archive into the node's containerd failed:" >&2
    echo "$out" >&2
    exit 1
  }
  # The names the archive gives its images must now be in containerd (ctr's
  # progress lines show them with spaces for dashes, so ask it).
  names=$(tar -xOf "$archive" index.json | grep -o '"org.opencontainers.image.ref.name":"[^"]*"' | cut -d'"' -f4) ||
    { echo "$archive names no image (no org.opencontainers.image.ref.name in its index.json)" >&2; exit 1; }
  imported=$("$CTR" --address "$CONTAINERD_ADDRESS" -n k8s.io images ls -q 2>/dev/null)
  for name in $names; do
    grep -qxF "$name" <<<"$imported" || { echo "$name not in the node after importing $archive: $out" >&2; exit 1; }
    echo "imported $name into the node" >&2
  done
done
