# Shared settings of the image scripts; sourced, never run.
# shellcheck shell=bash
# A failure inside $(...) fails the script too, as it would outside.
shopt -s inherit_errexit
IMAGE_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$IMAGE_SCRIPTS/../.." && pwd)
# Archives and build scratch live in the checkout's target/, like cargo's output.
IMAGES_OUT="$REPO_ROOT/target/images"
# Downloads worth keeping across checkouts (debootstrap's .debs, npm's cache).
IMAGES_CACHE=${UPSTASH_ROTATOR_IMAGES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/upstash-rotator/images}
# The label of a base-image stand-in: the hash of what it was built from. A
# build is skipped when the image under that name carries the same value.
# Images built on a stand-in inherit it, which tells them from real builds.
INPUTS_LABEL=io.upstash-rotator.standin-inputs
# The node's interface (hack/testenv): when this file exists, it defines CTR
# and CONTAINERD_ADDRESS of the running node's containerd.
NODE_CTR_ENV="$REPO_ROOT/target/testenv/node/ctr.env"

# Podman asks runc for RLIMIT_NOFILE 1048576 and (podman run, as root)
# RLIMIT_NPROC 4194304 in containers, above what a process without
# CAP_SYS_RESOURCE may set, and runc then fails with "error setting rlimit".
# Ask for the hard nofile limit we have (20000 on the test machines), and for
# at most 32768 processes: podman runs conmon and runc with that nproc limit
# (seen in /proc/<conmon>/limits) even when the shell's is higher.
podman_limits() {
  local nofile nproc
  nofile=$(ulimit -Hn)
  nproc=$(ulimit -Hu)
  [ "$nofile" = unlimited ] || echo "--ulimit=nofile=$nofile:$nofile"
  [ "$nproc" != unlimited ] && [ "$nproc" -lt 32768 ] || nproc=32768
  echo "--ulimit=nproc=$nproc:$nproc"
}

# Flags for every `podman run` of the checks: no network at all (no CNI
# bridge, no iptables rules), the limits above.
podman_run() {
  # shellcheck disable=SC2046
  podman run --rm --network=none --pull=never $(podman_limits) "$@"
}

# Runs a noisy command with its output in a log file; on failure shows the
# log's last lines on stderr, so the cause is visible without scrolling.
logged() { # log file, then the command
  local log=$1; shift
  mkdir -p "$(dirname "$log")"
  if ! "$@" >"$log" 2>&1; then
    echo "failed: $* (last lines of $log):" >&2
    tail -n 40 "$log" >&2
    return 1
  fi
}

# Hash of files and strings, short enough for a tag.
inputs_hash() { sha256sum | cut -c1-16; }

# The value of the inputs label of a local image, empty when it is absent.
image_inputs() {
  podman image inspect --format "{{ index .Labels \"$INPUTS_LABEL\" }}" "$1" 2>/dev/null || true
}

# Removes the images built on a stand-in (they inherit its label) that no
# name holds any more: stale build steps and replaced images, 1.2 GB for the
# build stage's. Tagged images and their layers stay.
prune_built_on() { # inputs hash of a stand-in; nothing when empty
  [ -z "$1" ] || podman image prune -f --filter "label=$INPUTS_LABEL=$1" >/dev/null
}

# The operator image's tag: what `git describe` says about the checkout, or
# `dev` outside a git checkout.
image_tag() {
  git -C "$REPO_ROOT" describe --tags --always --dirty 2>/dev/null || echo dev
}

# Saves a local image to an OCI archive, unless the archive already holds
# that image under that name (both are kept next to it, in ARCHIVE.ref). podman
# names the index entry `org.opencontainers.image.ref.name: <ref>`, which
# containerd's import uses as the image name. The image the archive held
# before is then dropped from podman's storage, with what was built for it,
# so rebuilds do not pile up there.
save_archive() { # image ref, archive path
  local ref=$1 out=$2 id previous
  id=$(podman image inspect --format '{{.Id}}' "$ref")
  previous=$(cat "$out.ref" 2>/dev/null || true)
  if [ -f "$out" ] && [ "$previous" = "$ref $id" ]; then
    return 0
  fi
  mkdir -p "$(dirname "$out")"
  rm -f "$out" "$out.ref"
  logged "$IMAGES_OUT/logs/save-$(basename "$out").log" podman save --format oci-archive -o "$out.partial" "$ref"
  mv "$out.partial" "$out"
  echo "$ref $id" >"$out.ref"
  [ -z "$previous" ] || drop_image "${previous% *}" "${previous#* }" "$ref" "$id"
}

# Drops an image this checkout built before, unless it is still current; a
# name that moved on to another image, or an image that has names again
# (another checkout's), is left alone.
drop_image() { # old ref, old ID, new ref, new ID
  local old_ref=$1 old_id=$2 key
  key=$(image_inputs "$old_id")
  if [ "$old_ref" != "$3" ] \
    && [ "$(podman image inspect --format '{{.Id}}' "$old_ref" 2>/dev/null)" = "$old_id" ]; then
    podman untag "$old_id" "$old_ref" 2>/dev/null || true
  fi
  if [ "$old_id" != "$4" ] \
    && [ "$(podman image inspect --format '{{len .RepoTags}}' "$old_id" 2>/dev/null)" = 0 ]; then
    podman rmi "$old_id" >/dev/null 2>&1 || true # used by a container: kept
  fi
  prune_built_on "$key"
}
