# Shared settings of the testenv scripts; sourced, never run.
# shellcheck shell=bash
TESTENV_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$TESTENV_DIR/../.." && pwd)
# shellcheck source=versions.env
. "$TESTENV_DIR/versions.env"

# The cache key covers the versions, the wrapper modules and the Go toolchain,
# so any change to them yields a fresh build directory.
testenv_cache_key() {
  {
    cat "$TESTENV_DIR/versions.env" "$TESTENV_DIR/build.sh"
    cat "$TESTENV_DIR"/{k8s,etcd,helm,containerd}/go.{mod,sum}
    go env GOVERSION
  } | sha256sum | cut -c1-12
}

# Where built binaries are cached, outside the checkout.
testenv_cache_root() {
  echo "${UPSTASH_ROTATOR_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/upstash-rotator/testenv}"
}

testenv_bin_dir() {
  echo "$(testenv_cache_root)/$KUBE_VERSION-$(testenv_cache_key)/bin"
}

# State of a running plane lives in the checkout's target/, like cargo's output.
TESTENV_STATE="$REPO_ROOT/target/testenv"

# Waits until a command succeeds, for at most `limit` seconds; on timeout it
# shows the last lines of the component's log and fails.
testenv_wait_for() { # component, seconds, then the command
  local what=$1 limit=$2; shift 2
  local deadline=$(($(date +%s) + limit))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "$what not ready after ${limit}s; last log lines:" >&2
      tail -n 30 "$TESTENV_STATE/logs/$what.log" >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

# The node (NODE=1): one bridge, the pod network on it, the service range
# routed to it. The bridge address is this machine on the pod network: the
# apiserver and any test server pods must reach listen there. Nothing is
# routed beyond these two ranges, so no pod traffic leaves the machine.
TESTENV_BRIDGE=urtest0
TESTENV_HOST_IP=10.217.0.1
TESTENV_POD_CIDR=10.217.0.0/24
TESTENV_SERVICE_CIDR=10.0.0.0/24
TESTENV_NODE_NAME=testenv-node
TESTENV_NODE_STATE="$TESTENV_STATE/node"
# containerd's sockets (a unix socket path is limited to 107 bytes, so not
# under the checkout). One node per machine.
TESTENV_NODE_RUN=/run/upstash-rotator-testenv
# Kernel settings the node changes while it runs (the kubelet sets the first
# three unless protectKernelDefaults; the CNI bridge turns on forwarding for
# Services); node/down.sh restores the values node/up.sh found.
TESTENV_NODE_SYSCTLS="kernel.panic kernel.panic_on_oops vm.overcommit_memory net.ipv4.ip_forward"
# Fixed paths the kubelet, CNI and containerd create whatever they are told:
# removed on cluster-down when they did not exist before.
TESTENV_NODE_HOST_DIRS="/var/lib/kubelet /var/lib/cni /var/log/pods /var/log/containers"
# Marks the FORWARD rule that keeps pod traffic on the bridge.
TESTENV_NODE_RULE_COMMENT=upstash-rotator-testenv-node

# The checkout whose node runs on this machine, if any.
testenv_node_owner() { cat "$TESTENV_NODE_RUN/owner" 2>/dev/null || true; }

# The sandbox image every pod starts with: built here (hack/image).
TESTENV_PAUSE_IMAGE=localhost/pause:testenv

# Sends SIGNAL to PID, gives it SECONDS to exit, then kills it and waits
# (at most 5 s more) until it is gone.
testenv_stop_pid() { # pid, signal, seconds
  local pid=$1 signal=$2 tenths=$(($3 * 10))
  kill -0 "$pid" 2>/dev/null || return 0
  kill "-$signal" "$pid" 2>/dev/null || true
  for _ in $(seq 1 "$tenths"); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
}

# Stops the process whose pid is recorded in FILE (TERM, then KILL after
# SECONDS) and removes the record.
testenv_stop_recorded() { # pid file, seconds
  [ -f "$1" ] || return 0
  testenv_stop_pid "$(cat "$1")" TERM "$2"
  rm -f "$1"
}
