#!/usr/bin/env bash
# An image derived from another with one more CA in its own trust store, the
# way a company bakes its CA into the images it runs: the PEM is appended to
# the image's /etc/ssl/certs/ca-certificates.crt (the file SSL_CERT_FILE names
# in distroless images). Saved as an OCI archive and imported into the local
# node when one runs. The tests use it to show that the operator uses the
# image's store by default.
#   with-ca.sh BASE_REF CA_PEM   prints IMAGE=<ref> as its last line
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

[ $# = 2 ] || { echo "usage: $0 BASE_REF CA_PEM" >&2; exit 2; }
base=$1 ca=$2
tag=$({ echo "$base"; podman image inspect --format '{{.Id}}' "$base"; cat "$ca"; } | inputs_hash)
ref="localhost/upstash-rotator-with-ca:$tag"
dir=$(mktemp -d)
container=""
trap 'rm -rf "$dir"; [ -z "$container" ] || podman rm -f "$container" >/dev/null 2>&1' EXIT
bundle=/etc/ssl/certs/ca-certificates.crt
# The image's bundle, copied out without running anything in it.
container=$(podman create --pull=never "$base")
podman cp "$container:$bundle" "$dir/ca-certificates.crt"
cat "$ca" >>"$dir/ca-certificates.crt"
printf 'FROM %s\nCOPY ca-certificates.crt %s\n' "$base" "$bundle" >"$dir/Containerfile"
logged "$IMAGES_OUT/logs/build-with-ca-$tag.log" podman build --pull=never --network=none -t "$ref" "$dir"
archive="$IMAGES_OUT/with-ca-$tag.oci.tar"
logged "$IMAGES_OUT/logs/save-with-ca-$tag.log" podman save --format oci-archive -o "$archive" "$ref"
"$IMAGE_SCRIPTS/import.sh" "$archive"
rm -f "$archive"
podman rmi "$ref" >/dev/null 2>&1 || true
echo "IMAGE=$ref"
