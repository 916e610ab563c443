#!/usr/bin/env bash
# The node's bridge: `bridge.sh up` creates it with this machine's address on
# the pod network, `bridge.sh down` deletes it. Refuses a bridge of another
# checkout's running node rather than sharing it.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

case ${1:-} in
  up)
    if ip link show "$TESTENV_BRIDGE" >/dev/null 2>&1; then
      owner=$(cat "$TESTENV_NODE_RUN/owner" 2>/dev/null || true)
      if [ -n "$owner" ] && [ "$owner" != "$REPO_ROOT" ]; then
        echo "a local node of another checkout ($owner) is running; stop it there (make cluster-down)" >&2
        exit 1
      fi
    else
      ip link add "$TESTENV_BRIDGE" type bridge
    fi
    mkdir -p "$TESTENV_NODE_RUN"
    echo "$REPO_ROOT" >"$TESTENV_NODE_RUN/owner"
    ip addr replace "$TESTENV_HOST_IP/${TESTENV_POD_CIDR#*/}" dev "$TESTENV_BRIDGE"
    ip link set "$TESTENV_BRIDGE" up
    ;;
  down)
    ip link del "$TESTENV_BRIDGE" 2>/dev/null || true
    ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
