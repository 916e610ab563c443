#!/usr/bin/env bash
# Removes what a Kubernetes node leaves in the kernel once its processes are
# gone: jumps into KUBE-* chains and the chains (kube-proxy --cleanup removes
# only its own), and the empty kubepods / k8s.io cgroups, deepest first.
# Run by down.sh, and by up.sh when a node that is no longer running left
# them (a test run killed before its cleanup).
set -euo pipefail

for cmd in iptables ip6tables; do
  command -v "$cmd" >/dev/null || continue
  for table in filter nat mangle; do
    "$cmd" -t "$table" -S 2>/dev/null | grep -E '^-A [A-Z]+ .*-j KUBE-' | while read -r rule; do
      # `-A CHAIN spec…` as listed, with quoted comments: xargs splits it into
      # words the way the shell would, without evaluating anything.
      printf '%s\n' "${rule#-A }" | xargs "$cmd" -t "$table" -D 2>/dev/null || true
    done || true
    for chain in $("$cmd" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}'); do
      "$cmd" -t "$table" -F "$chain" 2>/dev/null || true
    done
    for chain in $("$cmd" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}'); do
      "$cmd" -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
done

for root in /sys/fs/cgroup/*/; do
  for top in kubepods k8s.io; do
    [ -d "$root$top" ] && find "$root$top" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
done

