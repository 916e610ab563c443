#!/usr/bin/env bash
# Stops every process up.sh started (by recorded pid) and removes its state.
# --keep-logs leaves target/testenv/logs for a post-mortem.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
state=$TESTENV_STATE

# The node first: its pods are deleted through the apiserver.
"$TESTENV_DIR/node/down.sh"
[ -d "$state/pids" ] || exit 0
# Reverse start order: the controller manager, then the apiserver, then etcd.
for name in kube-controller-manager kube-apiserver etcd; do
  testenv_stop_recorded "$state/pids/$name" 5
done
if [ "${1:-}" = --keep-logs ]; then
  find "$state" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} +
else
  rm -rf "$state"
fi
echo "control plane stopped" >&2
