#!/usr/bin/env bash
# What the local node leaves on this machine, one line per item, sorted:
# processes of its binaries, mounts, network namespaces, links, nft rules,
# kubepods cgroups, kernel settings, fixed directories. make test compares the footprint before the node starts
# with the one after it stops.
#   footprint.sh              everything
#   footprint.sh nft-tables   only the nft tables (used by up.sh/down.sh)
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

nft_tables() { nft list tables 2>/dev/null | sort; }
if [ "${1:-}" = nft-tables ]; then nft_tables; exit 0; fi

{
  # Process names as the kernel keeps them (15 characters).
  for p in containerd containerd-shim kubelet kube-scheduler kube-proxy pause; do
    if pgrep -x "$p" >/dev/null; then echo "process $p"; fi
  done
  # Mounts under the node's directories, or created for pods.
  awk '{print $5}' /proc/self/mountinfo | grep -E "^($TESTENV_NODE_STATE|$TESTENV_NODE_RUN|/run/netns|/var/run/netns|/run/containerd)" |
    sed 's/^/mount /' || true
  # Each reading may find nothing (or its directory may be absent): never an
  # error that would cut the listing short.
  ip netns list 2>/dev/null | awk '{print "netns " $1}' || true
  ip -o link show | awk -F': ' '{print "link " $2}' | sed 's/@.*//' || true
  # Rules without counters, so traffic between the two readings does not count.
  nft list ruleset 2>/dev/null | sed -E 's/counter packets [0-9]+ bytes [0-9]+ ?//' | sed 's/^/nft /' || true
  find /sys/fs/cgroup -maxdepth 3 -type d \( -name kubepods -o -name k8s.io \) 2>/dev/null | sed 's/^/cgroup /' || true
  # The kubelet links every container's log here (a fixed path).
  find /var/log/containers -maxdepth 1 -type l 2>/dev/null | sed 's/^/log-link /' || true
  for key in $TESTENV_NODE_SYSCTLS; do echo "sysctl $key=$(sysctl -n "$key" 2>/dev/null)"; done
  for dir in $TESTENV_NODE_HOST_DIRS; do
    if [ -e "$dir" ]; then echo "dir $dir"; fi
  done
  if [ -e "$TESTENV_NODE_RUN" ]; then echo "dir $TESTENV_NODE_RUN"; fi
} | sort
