#!/usr/bin/env bash
# Stops the local node and removes everything it created: pods and their
# network namespaces and mounts, containerd's and the kubelet's state, the
# iptables rules of kube-proxy and the kubelet, the nft tables iptables-nft
# made for them, kubepods cgroups and the bridge. Run by ../down.sh before the
# control plane stops; safe to run when no node runs.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

state=$TESTENV_STATE
node=$TESTENV_NODE_STATE
run=$TESTENV_NODE_RUN
bin=$(testenv_bin_dir)
owner=$(testenv_node_owner)
if [ -n "$owner" ] && [ "$owner" != "$REPO_ROOT" ]; then
  # The node on this machine is another checkout's: nothing here is ours.
  rm -rf "$node"
  exit 0
fi
[ -d "$node" ] || [ -e "$run" ] || ip link show "$TESTENV_BRIDGE" >/dev/null 2>&1 || exit 0

stop() { # name: TERM, then KILL after 10 s
  testenv_stop_recorded "$state/pids/$1" 10
}

# 1. Pods first, while the kubelet runs, so it tears down their networks
#    (CNI DEL) and unmounts their volumes. Controllers would recreate pods of
#    workloads, so those go first.
kubectl=("$bin/kubectl" --kubeconfig "$state/kubeconfig" --request-timeout=10s)
if "$TESTENV_DIR/node/up.sh" --check 2>/dev/null; then
  "${kubectl[@]}" delete deployments,replicasets,statefulsets,daemonsets,jobs --all -A --wait=false >/dev/null 2>&1 || true
  "${kubectl[@]}" delete pods --all -A --grace-period=1 --timeout=60s >/dev/null 2>&1 || true
fi

# 2. kube-proxy, then its own rule cleanup.
stop kube-proxy
[ -x "$bin/kube-proxy" ] && "$bin/kube-proxy" --cleanup >/dev/null 2>&1 || true
stop kubelet
stop kube-scheduler

# 3. Sandboxes and containers the kubelet did not remove, then containerd and
#    any shim left running.
if [ -S "$run/containerd.sock" ]; then
  ctr=("$bin/ctr" --address "$run/containerd.sock" -n k8s.io)
  for t in $("${ctr[@]}" tasks ls -q 2>/dev/null); do "${ctr[@]}" tasks kill -s KILL "$t" >/dev/null 2>&1 || true; done
  sleep 0.5
  for t in $("${ctr[@]}" tasks ls -q 2>/dev/null); do "${ctr[@]}" tasks rm -f "$t" >/dev/null 2>&1 || true; done
  for c in $("${ctr[@]}" containers ls -q 2>/dev/null); do "${ctr[@]}" containers rm "$c" >/dev/null 2>&1 || true; done
fi
stop containerd
pkill -KILL -f "containerd-shim-runc-v2 .*-address $run/containerd.sock" 2>/dev/null || true

# 4. Mounts (volumes, overlay snapshots, the kubelet's self bind mount,
#    network namespaces), deepest first.
for m in $(awk '{print $5}' /proc/self/mountinfo | grep -E "^($node|$run)(/|$)" | sort -r); do
  umount -l "$m" 2>/dev/null || true
done
if [ -f "$node/netns.before" ]; then
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^cni-' | grep -vxFf "$node/netns.before"); do
    ip netns delete "$ns" 2>/dev/null || true
  done
fi

# 5. Rules the kubelet and kube-proxy leave (kube-proxy --cleanup removes only
#    its own chains) and, further down, their cgroups: sweep.sh.
"$TESTENV_DIR/node/sweep.sh"
# The rule that kept pod traffic on the bridge (bounded: it was added once).
for _ in 1 2 3; do
  iptables -D FORWARD -i "$TESTENV_BRIDGE" ! -o "$TESTENV_BRIDGE" \
    -m comment --comment "$TESTENV_NODE_RULE_COMMENT" -j REJECT 2>/dev/null || break
done
# iptables-nft leaves the tables it created; drop those that are new and hold
# no rules any more.
if command -v nft >/dev/null && [ -f "$node/nft-tables.before" ]; then
  "$TESTENV_DIR/node/footprint.sh" nft-tables | grep -vxFf "$node/nft-tables.before" | while read -r _ family name; do
    if ! nft list table "$family" "$name" 2>/dev/null | grep -qE '^\s+(ip|ip6|meta|jump|counter|tcp|udp|ct|fib|mark|return|drop|accept|reject)'; then
      nft delete table "$family" "$name" 2>/dev/null || true
    fi
  done || true
fi

# 6. Kernel settings back to what they were before the node started.
if [ -f "$node/sysctl.before" ]; then
  while IFS= read -r setting; do sysctl -q -w "$setting" >/dev/null 2>&1 || true; done <"$node/sysctl.before"
fi

# 7. The kubelet's links to container logs (a fixed directory) that point
#    into this node's state.
for link in /var/log/containers/*.log; do
  [ -L "$link" ] && case $(readlink "$link") in "$node"/*) rm -f "$link" ;; esac
done

# 8. Fixed directories the kubelet, CNI and containerd created (the device
#    plugin socket, the CNI result cache, log directories), unless they were
#    there before.
if [ -f "$node/dirs.before" ]; then
  for dir in $TESTENV_NODE_HOST_DIRS; do
    grep -qxF "$dir" "$node/dirs.before" || rm -rf "$dir"
  done
fi

# 9. State, the bridge. Never remove a directory something is still mounted
#    in (the files of the mounted filesystem would go with it).
if awk '{print $5}' /proc/self/mountinfo | grep -qE "^($node|$run)(/|$)"; then
  echo "still mounted under $node or $run; not removing them:" >&2
  awk '{print $5}' /proc/self/mountinfo | grep -E "^($node|$run)(/|$)" >&2
  exit 1
fi
rm -rf "$node" "$run"
"$TESTENV_DIR/node/bridge.sh" down
echo "node stopped" >&2
