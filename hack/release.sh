#!/usr/bin/env bash
# Builds the static musl binaries the Dockerfile builds, without Docker.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl
command -v musl-gcc >/dev/null || {
  sudo_cmd=(); [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends musl-tools >/dev/null
}
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
# One package per build, as the Dockerfile does: features are not unified
# with the other binary's dependencies.
cargo build --release --locked --target "$target" -p upstash-rotator --bin upstash-rotator
cargo build --release --locked --target "$target" -p upstash-sim --bin upstash-sim
for b in upstash-rotator upstash-sim; do
  f=${CARGO_TARGET_DIR:-target}/$target/release/$b
  printf '%-18s %6s KiB  %s\n' "$b" "$(( $(stat -c %s "$f") / 1024 ))" "$(file -b "$f" 2>/dev/null | cut -d, -f1-2)"
done
