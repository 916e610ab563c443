#!/usr/bin/env bash
# make images: the small images the node's tests run, built like the
# operator's (podman build, OCI archive under target/images/, imported into
# the local node's containerd when one runs), each FROM scratch:
#   localhost/pause:<tag>          the pod sandbox (hack/image/pause)
#   localhost/consumer:<tag>       Debian's static busybox (sh, nc, cat, sleep,
#                                  ...) and Debian's redis-cli
#   localhost/node-consumer:<tag>  Node.js, @upstash/redis and /app/ping.mjs
# A tag is the hash of the image's content: an image is built, checked and
# saved only when what goes into it changed. Prints one NAME_IMAGE=<ref> line
# per image (PAUSE_IMAGE, CONSUMER_IMAGE, NODE_CONSUMER_IMAGE).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

build_root=$IMAGES_OUT/build

# What every test image has: users (root, nobody, nonroot 65532), /tmp, and
# the CA bundle of Debian's ca-certificates (the Mozilla set it ships, not
# this machine's local additions); a test CA comes on top, e.g. with
# NODE_EXTRA_CA_CERTS.
base_files() { # root
  local root=$1
  mkdir -p "$root/etc/ssl/certs" "$root/tmp" "$root/home/nonroot"
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/bin/sh\n' \
    >"$root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$root/etc/group"
  cat /usr/share/ca-certificates/mozilla/*.crt >"$root/etc/ssl/certs/ca-certificates.crt"
}

# Copies programs to the same paths under a root, with exactly the shared
# libraries ldd lists for them and the dynamic loader.
copy_with_libs() { # root, program...
  local root=$1 prog libs lib
  shift
  for prog; do
    libs=$(ldd "$prog")
    if grep -q 'not found' <<<"$libs"; then
      echo "$prog: missing libraries:" >&2
      echo "$libs" >&2
      return 1
    fi
    install -D -m 0755 "$prog" "$root$prog"
    for lib in $(awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<<"$libs"); do
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    done
  done
}

# The content hash of a build context: names, types, modes, link targets
# and file contents.
context_hash() { # dir
  (
    cd "$1"
    find . -printf '%p %y %m %l\n' | LC_ALL=C sort
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
  ) | inputs_hash
}

# Builds <name> from the context directory unless an image of that content
# exists; checks and saves a new one. Prints the reference.
build_image() { # name, context dir
  local name=$1 ctx=$2 ref
  ref=localhost/$name:$(context_hash "$ctx")
  if ! podman image exists "$ref"; then
    # shellcheck disable=SC2046
    logged "$IMAGES_OUT/logs/build-$name.log" podman build --pull=never --layers=false --network=none \
      $(podman_limits) -f "$ctx/Containerfile" -t "$ref" "$ctx"
    if ! CHECK_CONSUMER_IMAGE=${consumer:-} "$IMAGE_SCRIPTS/check.sh" "$name=$ref" >&2; then
      podman rmi "$ref" >/dev/null # not kept as built
      return 1
    fi
    echo "built $ref" >&2
  fi
  save_archive "$ref" "$IMAGES_OUT/$name.oci.tar"
  echo "$ref"
}

# The files are staged in a rootfs/ directory and copied with one COPY; the
# home directory gets its owner with a second one (COPY makes files root's).
containerfile() { # user, then the lines after the COPYs
  local user=$1
  shift
  printf 'FROM scratch\nCOPY rootfs/ /\nCOPY --chown=65532:65532 home/ /home/\n'
  printf 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n'
  printf 'USER %s\n' "$user"
  printf '%s\n' "$@"
}

stage() { # name: prints a fresh context directory
  local ctx=$build_root/$1
  rm -rf "$ctx"
  mkdir -p "$ctx/rootfs" "$ctx/home/nonroot"
  echo "$ctx"
}

pause_image() {
  local ctx
  ctx=$(stage pause)
  # Static, no cgo: runs FROM scratch. GOTOOLCHAIN=local: never download one.
  (cd "$IMAGE_SCRIPTS/pause" && CGO_ENABLED=0 GOTOOLCHAIN=local go build -trimpath -ldflags='-s -w' \
    -o "$ctx/rootfs/pause" .)
  # The sandbox runs as 65535 like the upstream pause image.
  printf 'FROM scratch\nCOPY rootfs/ /\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$ctx/Containerfile"
  build_image pause "$ctx"
}

consumer_image() {
  local ctx applet
  ctx=$(stage consumer)
  base_files "$ctx/rootfs"
  install -D -m 0755 /bin/busybox "$ctx/rootfs/bin/busybox"
  for applet in $(/bin/busybox --list-full); do
    [ "$applet" = bin/busybox ] && continue
    mkdir -p "$ctx/rootfs/$(dirname "$applet")"
    ln -s /bin/busybox "$ctx/rootfs/$applet"
  done
  copy_with_libs "$ctx/rootfs" /usr/bin/redis-cli
  containerfile 65532:65532 'WORKDIR /home/nonroot' 'CMD ["sh"]' >"$ctx/Containerfile"
  build_image consumer "$ctx"
}

node_consumer_image() {
  local ctx npmdir=$build_root/npm-node-consumer src=$IMAGE_SCRIPTS/node-consumer
  local clients=$REPO_ROOT/crates/upstash-sim/tests/clients/package-lock.json
  # The image must run the very @upstash/redis the client tests pin.
  node -e '
    const [a, b] = process.argv.slice(1).map((f) => require(f).packages["node_modules/@upstash/redis"]);
    if (a.version !== b.version || a.integrity !== b.integrity) {
      console.error(`@upstash/redis ${a.version} in ${process.argv[1]}, ${b.version} in ${process.argv[2]}: pin the same one`);
      process.exit(1);
    }' "$src/package-lock.json" "$clients"
  mkdir -p "$npmdir"
  if ! cmp -s "$src/package-lock.json" "$npmdir/node_modules/.package-lock.json"; then
    cp "$src/package.json" "$src/package-lock.json" "$npmdir/"
    (cd "$npmdir" && logged "$IMAGES_OUT/logs/npm-node-consumer.log" npm ci --omit=dev --no-audit --no-fund)
  fi
  ctx=$(stage node-consumer)
  base_files "$ctx/rootfs"
  copy_with_libs "$ctx/rootfs" "$(readlink -f "$(command -v node)")"
  [ -e "$ctx/rootfs/usr/bin/node" ] || ln -s "$(readlink -f "$(command -v node)")" "$ctx/rootfs/usr/bin/node"
  mkdir -p "$ctx/rootfs/app"
  cp "$src/package.json" "$src/ping.mjs" "$ctx/rootfs/app/"
  cp -r "$npmdir/node_modules" "$ctx/rootfs/app/"
  # npm's bookkeeping file holds nothing the program needs.
  rm -f "$ctx/rootfs/app/node_modules/.package-lock.json"
  containerfile 65532:65532 'WORKDIR /app' 'CMD ["node", "/app/ping.mjs"]' >"$ctx/Containerfile"
  build_image node-consumer "$ctx"
}

main() {
  local pause consumer node_consumer
  # The consumer first: the pause check runs an orphan in it.
  consumer=$(consumer_image)
  pause=$(pause_image)
  node_consumer=$(node_consumer_image)
  "$IMAGE_SCRIPTS/import.sh" "$IMAGES_OUT"/{pause,consumer,node-consumer}.oci.tar
  echo "PAUSE_IMAGE=$pause"
  echo "CONSUMER_IMAGE=$consumer"
  echo "NODE_CONSUMER_IMAGE=$node_consumer"
}

main "$@"
