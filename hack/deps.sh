#!/usr/bin/env bash
# Installs what the build and tests need when it is missing: Debian packages
# (openssl, curl, redis-server, python3; the node's runc, CNI plugins,
# iptables and nftables; podman, debootstrap and busybox-static for the
# images) and the Rust components fmt and clippy.
# Go and Rust themselves are prerequisites (see README).
set -euo pipefail

missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed' || missing+=("$1"); }
need openssl openssl
need curl curl
need redis-server redis-server
need redis-cli redis-tools
need python3 python3
# The local node (NODE=1): runtime, pod network, kube-proxy's rules.
need runc runc
need iptables iptables
need nft nftables
need conntrack conntrack
need_pkg containernetworking-plugins
# The images (hack/image): podman builds them, debootstrap makes the base
# stand-ins, the test images take Debian's static busybox (not `busybox`,
# which is dynamic) and the CA bundle.
need podman podman
need_pkg debootstrap
need_pkg busybox-static
need_pkg ca-certificates
# `make bench` measures the image's static (musl) operator binary.
need musl-gcc musl-tools
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

for tool in go cargo node npm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "missing prerequisite: $tool (see README, Development)" >&2; exit 1; }
done
for component in rustfmt clippy; do
  cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1 || rustup component add "$component"
done
