#!/usr/bin/env bash
# Local stand-ins for the two base images the Dockerfile names, for machines
# that reach no container registry. Both are made from Debian bookworm
# packages (debootstrap from deb.debian.org) and tagged under the Dockerfile's
# exact names in podman's storage, so the Dockerfile builds unchanged:
#   rust:1.95-bookworm          Debian + this machine's Rust 1.95 toolchain
#                               (with the musl target), laid out like the
#                               official image;
#   gcr.io/distroless/static-debian12:nonroot
#                               CA bundle, tzdata, passwd/group with nonroot
#                               (65532), /tmp, /home/nonroot; no shell.
# docs/image.md lists what differs from the real images.
#
# Each stand-in carries the hash of its inputs in a label and is only rebuilt
# when they change (the functions that make it, the packages, the toolchain). An image under one of those names without that label
# (a real one, pulled from a registry) is never replaced.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

BUILD_IMAGE=docker.io/library/rust:1.95-bookworm
RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot
RUST_SERIES=1.95 # the tag's Rust version
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
HOST_TRIPLE=x86_64-unknown-linux-gnu
MUSL_TRIPLE=x86_64-unknown-linux-musl
# The build stage needs a C toolchain (build scripts, linking) and fetchers;
# buildpack-deps' long list of -dev libraries is left out. The last four are
# what distroless/static is made of.
PACKAGES=ca-certificates,curl,gcc,libc6-dev,make,base-files,netbase,tzdata,media-types
RUNTIME_PACKAGES=(base-files netbase tzdata media-types)

work=$IMAGES_OUT/base-images
cleanup() {
  # debootstrap mounts /proc and /sys in the target; never leave one behind.
  local m
  for m in $(findmnt -rn -o TARGET | grep -F "$work/" | sort -r || true); do umount -l "$m" || true; done
  rm -rf "$work"
}

# Picks an installed toolchain of the tag's Rust series (stable, not a
# nightly or beta); STANDIN_RUST_TOOLCHAIN names one explicitly.
find_toolchain() {
  local tc version
  for tc in ${STANDIN_RUST_TOOLCHAIN:-$(rustup toolchain list | awk '{print $1}')}; do
    version=$(rustup run "$tc" rustc --version 2>/dev/null | awk '{print $2}') || continue
    if [[ $version == "$RUST_SERIES".* && $version != *-* ]]; then
      echo "$tc $version"
      return 0
    fi
  done
  echo "no Rust $RUST_SERIES.x toolchain installed (rustup toolchain list); install one, or point STANDIN_RUST_TOOLCHAIN at one" >&2
  return 1
}

# The components of rustup's minimal profile, plus the musl target's std that
# the Dockerfile adds: the image then holds exactly what rustup would have
# installed, and `rustup target add` finds it present (no download).
components() { echo "cargo-$HOST_TRIPLE rustc-$HOST_TRIPLE rust-std-$HOST_TRIPLE rust-std-$MUSL_TRIPLE"; }

debootstrap_rootfs() { # target directory
  local root=$1
  mkdir -p "$IMAGES_CACHE/debootstrap"
  echo "debootstrap $SUITE (minbase + ${PACKAGES//,/ }) from $MIRROR" >&2
  logged "$IMAGES_OUT/logs/debootstrap.log" debootstrap --variant=minbase --include="$PACKAGES" \
    --cache-dir="$IMAGES_CACHE/debootstrap" "$SUITE" "$root" "$MIRROR"
  # What a container engine provides at run time, and what apt fetched.
  rm -rf "$root"/dev/* "$root"/proc/* "$root"/sys/* "$root"/run/* "$root"/tmp/* \
    "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/* \
    "$root"/etc/hostname "$root"/etc/resolv.conf "$root"/etc/apt/sources.list
  mkdir -p "$root"/var/lib/apt/lists/partial
  # The sources of the official debian:bookworm image: updates and security too.
  cat >"$root"/etc/apt/sources.list.d/debian.sources <<EOF
Types: deb
URIs: http://deb.debian.org/debian
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  # Package installs in a build must not try to start services.
  printf '#!/bin/sh\nexit 101\n' >"$root"/usr/sbin/policy-rc.d
  chmod 755 "$root"/usr/sbin/policy-rc.d
}

# /usr/local/{rustup,cargo} of the official image: rustup and its proxies in
# CARGO_HOME/bin, one toolchain named <version>-<host> as the default, world-
# writable like the official image's `chmod -R a+w`.
rust_tar() { # toolchain, version, output tar
  local tc=$1 version=$2 out=$3 sysroot name stage c
  sysroot=$(rustup run "$tc" rustc --print sysroot)
  name=$version-$HOST_TRIPLE
  stage=$work/rust
  local tcdir=$stage/usr/local/rustup/toolchains/$name
  mkdir -p "$stage/usr/local/cargo/bin" "$tcdir/lib/rustlib" "$stage/usr/local/rustup/downloads" "$stage/usr/local/rustup/tmp"
  : >"$work/rust-files"
  for c in $(components); do
    [ -f "$sysroot/lib/rustlib/manifest-$c" ] || {
      echo "toolchain $tc lacks component $c (rustup +$tc target add $MUSL_TRIPLE)" >&2
      return 1
    }
    sed -n 's/^\(file\|dir\)://p' "$sysroot/lib/rustlib/manifest-$c" >>"$work/rust-files"
    echo "lib/rustlib/manifest-$c" >>"$work/rust-files"
    echo "$c" >>"$tcdir/lib/rustlib/components"
  done
  echo "lib/rustlib/multirust-channel-manifest.toml" >>"$work/rust-files"
  echo "lib/rustlib/rust-installer-version" >>"$work/rust-files"
  {
    echo 'config_version = "1"'
    for c in $(components); do
      printf '\n[[components]]\npkg = "%s"\ntarget = "%s"\nis_extension = false\n' \
        "$(sed -E 's/-x86_64-.*//' <<<"$c")" "$(sed -E 's/.*-(x86_64-)/\1/' <<<"$c")"
    done
  } >"$tcdir/lib/rustlib/multirust-config.toml"
  # Every directory the files live in, so they get the same modes.
  (cd "$tcdir" && sed 's,/[^/]*$,,' "$work/rust-files" | sort -u | xargs mkdir -p)
  printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\n\n[overrides]\n' "$name" \
    >"$stage/usr/local/rustup/settings.toml"
  cp "$(command -v rustup)" "$stage/usr/local/cargo/bin/rustup"
  for c in cargo cargo-clippy cargo-fmt cargo-miri clippy-driver rls rust-analyzer rust-gdb rust-gdbgui \
    rust-lldb rustc rustdoc rustfmt; do
    ln "$stage/usr/local/cargo/bin/rustup" "$stage/usr/local/cargo/bin/$c"
  done
  local tarflags=(--numeric-owner --owner=0 --group=0 --mode=a+w)
  tar -C "$stage" -cf "$out" "${tarflags[@]}" usr
  tar -C "$sysroot" -rf "$out" "${tarflags[@]}" --no-recursion \
    --transform "s,^,usr/local/rustup/toolchains/$name/," -T "$work/rust-files"
}

# distroless/static's content: the files of its Debian packages, the CA
# bundle, passwd/group (root, nobody, nonroot), home directories, /tmp.
runtime_tar() { # debootstrapped root, output tar
  local root=$1 out=$2 rt=$work/runtime p
  mkdir -p "$rt"
  chmod 755 "$rt"
  for p in "${RUNTIME_PACKAGES[@]}"; do
    dpkg-query --admindir="$root/var/lib/dpkg" -L "$p" | grep '^/.' | sed 's,^/,,'
  done | sort -u >"$work/runtime-files"
  tar -C "$root" -cf - --no-recursion -T "$work/runtime-files" | tar -C "$rt" -xpf -
  mkdir -p "$rt/etc/ssl/certs" "$rt/usr/share/doc/ca-certificates" "$rt/var/lib/dpkg/status.d"
  cp "$root/etc/ssl/certs/ca-certificates.crt" "$rt/etc/ssl/certs/"
  cp "$root/usr/share/doc/ca-certificates/copyright" "$rt/usr/share/doc/ca-certificates/"
  # Package records for image scanners, as distroless keeps them.
  for p in "${RUNTIME_PACKAGES[@]}" ca-certificates; do
    dpkg-query --admindir="$root/var/lib/dpkg" -s "$p" >"$rt/var/lib/dpkg/status.d/$p"
  done
  cat >"$rt/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
  cat >"$rt/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:
EOF
  # Static binaries (Go's resolver, glibc-static NSS) read this for lookups.
  printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\nethers: files\nrpc: files\n' \
    >"$rt/etc/nsswitch.conf"
  chmod 644 "$rt/etc/passwd" "$rt/etc/group" "$rt/etc/nsswitch.conf"
  install -d -m 0700 -o 0 -g 0 "$rt/root"
  install -d -m 0755 -o 0 -g 0 "$rt/home"
  install -d -m 0700 -o 65532 -g 65532 "$rt/home/nonroot"
  install -d -m 1777 -o 0 -g 0 "$rt/tmp"
  tar -C "$rt" -cf "$out" --numeric-owner .
}

# Builds FROM scratch with ADD of the prepared tars (ADD keeps the owners
# and modes recorded in a local tar; COPY would make every file root's).
build_from_tars() { # image, inputs hash, Containerfile text, context dir
  local image=$1 key=$2 containerfile=$3 context=$4
  printf '%s\n' "$containerfile" >"$context/Containerfile"
  logged "$IMAGES_OUT/logs/build-$(basename "${image%%:*}").log" podman build --pull=never --layers=false \
    --label "$INPUTS_LABEL=$key" -f "$context/Containerfile" -t "$image" "$context"
}

# Decides what to build: absent, or a stand-in of other inputs.
needs_build() { # image, inputs hash
  local have
  podman image exists "$1" || return 0
  have=$(image_inputs "$1")
  if [ -z "$have" ]; then
    echo "$1 is present and not a stand-in: kept" >&2
    return 1
  fi
  [ "$have" != "$2" ]
}

runtime_containerfile() {
  cat <<'EOF'
FROM scratch
ADD runtime.tar /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532
WORKDIR /home/nonroot
EOF
}

build_containerfile() { # Rust version
  cat <<EOF
FROM scratch
ADD debian.tar /
ADD rust.tar /
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin RUST_VERSION=$1
CMD ["bash"]
EOF
}

# What makes each image's content, and nothing else (comments and the rest
# of this script can change without a rebuild): the Debian side, and for the
# build stage the toolchain's version, rustup's and the component manifests.
debian_inputs() {
  echo "$SUITE $MIRROR $PACKAGES"
  declare -f debootstrap_rootfs build_from_tars
}

build_inputs() { # toolchain, version
  local sysroot c
  sysroot=$(rustup run "$1" rustc --print sysroot)
  debian_inputs
  declare -f rust_tar components
  build_containerfile "$2"
  rustup --version 2>/dev/null
  for c in $(components); do cat "$sysroot/lib/rustlib/manifest-$c"; done
}

runtime_inputs() {
  debian_inputs
  echo "${RUNTIME_PACKAGES[*]}"
  declare -f runtime_tar
  runtime_containerfile
}

main() {
  local found tc version build_key runtime_key old_build old_runtime build=0 runtime=0
  found=$(find_toolchain)
  read -r tc version <<<"$found"
  # Like hack/release.sh: the musl target is part of the toolchain we ship.
  [ -d "$(rustup run "$tc" rustc --print sysroot)/lib/rustlib/$MUSL_TRIPLE" ] \
    || rustup target add --toolchain "$tc" "$MUSL_TRIPLE"
  build_key=$(build_inputs "$tc" "$version" | inputs_hash)
  runtime_key=$(runtime_inputs | inputs_hash)
  needs_build "$BUILD_IMAGE" "$build_key" && build=1
  needs_build "$RUNTIME_IMAGE" "$runtime_key" && runtime=1
  if [ $build = 0 ] && [ $runtime = 0 ]; then
    echo "base stand-ins up to date" >&2
    return 0
  fi
  old_build=$(image_inputs "$BUILD_IMAGE")
  old_runtime=$(image_inputs "$RUNTIME_IMAGE")

  trap cleanup EXIT
  cleanup
  mkdir -p "$work/ctx-build" "$work/ctx-runtime"
  local started=$SECONDS
  debootstrap_rootfs "$work/rootfs"
  if [ $runtime = 1 ]; then
    runtime_tar "$work/rootfs" "$work/ctx-runtime/runtime.tar"
    build_from_tars "$RUNTIME_IMAGE" "$runtime_key" "$(runtime_containerfile)" "$work/ctx-runtime"
    echo "built $RUNTIME_IMAGE (stand-in, inputs $runtime_key)" >&2
    prune_built_on "$old_runtime"
  fi
  if [ $build = 1 ]; then
    tar -C "$work/rootfs" -cf "$work/ctx-build/debian.tar" --numeric-owner .
    rm -rf "$work/rootfs"
    rust_tar "$tc" "$version" "$work/ctx-build/rust.tar"
    build_from_tars "$BUILD_IMAGE" "$build_key" "$(build_containerfile "$version")" "$work/ctx-build"
    # The Dockerfile's toolchain step must find everything in place, offline.
    if ! logged "$IMAGES_OUT/logs/check-rust-standin.log" podman_run "$BUILD_IMAGE" \
      sh -c "rustup target add $MUSL_TRIPLE && cargo --version && rustc --version"; then
      podman rmi "$BUILD_IMAGE" >/dev/null # not kept as up to date
      return 1
    fi
    echo "built $BUILD_IMAGE (stand-in, Rust $version, inputs $build_key)" >&2
    prune_built_on "$old_build"
  fi
  echo "base stand-ins built in $((SECONDS - started)) s" >&2
}

main "$@"
