#!/usr/bin/env bash
# make image: builds the operator image from the project's Dockerfile with
# podman, on local stand-ins of its base images when the real ones are absent
# (hack/image/base-images.sh), saves it as an OCI archive and imports it into
# the local node's containerd when a node runs. The last line printed is
# IMAGE=<repository>:<tag>.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

REPOSITORY=localhost/upstash-rotator
ARCHIVE=$IMAGES_OUT/upstash-rotator.oci.tar

"$REPO_ROOT/hack/deps.sh"
"$IMAGE_SCRIPTS/base-images.sh"

ref=$REPOSITORY:$(image_tag)
started=$SECONDS
log=$IMAGES_OUT/logs/build-upstash-rotator.log
echo "building $ref from the Dockerfile (log: ${log#"$REPO_ROOT"/})" >&2
# --pull=never: the base images are the local ones (stand-ins or pulled
# before); --network=host: the RUN steps fetch Debian packages and crates;
# the layer cache and the Dockerfile's cache mounts make rebuilds short.
build_flags=(--pull=never --network=host --layers)
# The RUN steps see the host's CA bundle (read-only), as they use its
# network: where egress goes through a TLS-inspecting proxy, only the host
# trusts its CA, and cargo fails with "self-signed certificate in
# certificate chain". It touches no layer of the final image.
host_ca=/etc/ssl/certs/ca-certificates.crt
[ ! -f "$host_ca" ] || build_flags+=(--volume "$host_ca:$host_ca:ro")
# shellcheck disable=SC2046
logged "$log" podman build "${build_flags[@]}" $(podman_limits) -f Dockerfile -t "$ref" .
echo "built $ref in $((SECONDS - started)) s" >&2
"$IMAGE_SCRIPTS/check.sh" "upstash-rotator=$ref" >&2

save_archive "$ref" "$ARCHIVE"
"$IMAGE_SCRIPTS/import.sh" "$ARCHIVE"
echo "ARCHIVE=$ARCHIVE"
echo "IMAGE=$ref"
