#!/usr/bin/env bash
# Starts the worker node of the local cluster (NODE=1; run by ../up.sh after
# the control plane): containerd with runc and the CNI bridge, the images
# pods need, the kubelet, kube-scheduler and kube-proxy. Waits until the node
# is Ready and the `kubernetes` Service routes to the apiserver.
#   up.sh --check   exits 0 when the node is running and Ready.
# Every setting that this machine needs and a stock node would not is noted
# in docs/testenv.md.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

state=$TESTENV_STATE
node=$TESTENV_NODE_STATE
pki=$state/pki
run=$TESTENV_NODE_RUN
bin=$(testenv_bin_dir)
kubectl=("$bin/kubectl" --kubeconfig "$state/kubeconfig")

ready() {
  for p in containerd kubelet kube-scheduler kube-proxy; do
    kill -0 "$(cat "$state/pids/$p" 2>/dev/null)" 2>/dev/null || return 1
  done
  [ "$("${kubectl[@]}" get node "$TESTENV_NODE_NAME" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}
if [ "${1:-}" = --check ]; then ready; exit; fi
bin=$("$TESTENV_DIR/build.sh")

# Another Kubernetes node on this machine would share iptables chains and
# cgroups with this one; cleaning up after ours would break it. Chains and
# cgroups with no node process left are what a killed run left behind.
leftovers() {
  iptables -S 2>/dev/null | grep -q -- '-N KUBE-' || compgen -G '/sys/fs/cgroup/*/kubepods' >/dev/null
}
if leftovers && ! pgrep -x 'kubelet|kube-proxy|containerd' >/dev/null; then
  echo "removing the iptables chains and cgroups a node that no longer runs left behind" >&2
  "$TESTENV_DIR/node/sweep.sh"
fi
if leftovers; then
  echo "this machine already has a Kubernetes node's iptables chains or kubepods cgroups;" \
    "stop it first (or run make cluster-down in the checkout that started it)" >&2
  exit 1
fi

started_ns=$(date +%s%N)
# What exists before the node does, so down.sh removes only what it added and
# restores what it changed.
mkdir -p "$node"
"$TESTENV_DIR/node/footprint.sh" nft-tables >"$node/nft-tables.before"
ip netns list 2>/dev/null | awk '{print $1}' >"$node/netns.before"
for key in $TESTENV_NODE_SYSCTLS; do echo "$key=$(sysctl -n "$key")"; done >"$node/sysctl.before"
for dir in $TESTENV_NODE_HOST_DIRS; do [ -e "$dir" ] && echo "$dir"; done >"$node/dirs.before" || true
mkdir -p "$node"/{cni,ipam,kubelet,containerd} "$run"

# Forwarding is on while the node runs (Services to pods on the bridge), so a
# pod could send a packet for an unused service address out of the machine's
# default route. Nothing that enters from the bridge leaves by another link.
iptables -I FORWARD 1 -i "$TESTENV_BRIDGE" ! -o "$TESTENV_BRIDGE" \
  -m comment --comment "$TESTENV_NODE_RULE_COMMENT" -j REJECT

start() { # name, then the command line
  local name=$1; shift
  "$@" >"$state/logs/$name.log" 2>&1 &
  echo $! >"$state/pids/$name"
}

# --- certificates: the kubelet's node identity and its serving certificate
(
  cd "$pki"
  exec 2>"$state/logs/node-pki.log"
  openssl req -newkey rsa:2048 -nodes -keyout kubelet.key -out kubelet.csr \
    -subj "/O=system:nodes/CN=system:node:$TESTENV_NODE_NAME"
  openssl x509 -req -in kubelet.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -out kubelet.crt -extfile cli.ext
  openssl req -newkey rsa:2048 -nodes -keyout kubelet-serving.key -out kubelet-serving.csr -subj "/CN=$TESTENV_NODE_NAME"
  printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' \
    "$TESTENV_HOST_IP" >kubelet-serving.ext
  openssl x509 -req -in kubelet-serving.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
    -out kubelet-serving.crt -extfile kubelet-serving.ext
)
server=$(sed -n 's/^ *server: //p' "$state/kubeconfig")
b64() { base64 -w0 <"$1"; }
umask 077
cat >"$node/kubelet.kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster: {server: "$server", certificate-authority-data: $(b64 "$pki/ca.crt")}
users:
- name: node
  user: {client-certificate-data: $(b64 "$pki/kubelet.crt"), client-key-data: $(b64 "$pki/kubelet.key")}
contexts:
- name: node
  context: {cluster: testenv, user: node}
current-context: node
KUBECONFIG
umask 022

# --- CNI: a bridge network with no default route. Pods reach each other, this
# machine's bridge address and the service range, and nothing else.
subnet_prefix=${TESTENV_POD_CIDR%.*}
cat >"$node/cni/10-testenv.conflist" <<CNI
{
  "cniVersion": "1.0.0",
  "name": "testenv",
  "plugins": [
    {
      "type": "bridge", "bridge": "$TESTENV_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$node/ipam",
        "ranges": [[{"subnet": "$TESTENV_POD_CIDR", "gateway": "$TESTENV_HOST_IP", "rangeStart": "$subnet_prefix.10"}]],
        "routes": [{"dst": "$TESTENV_SERVICE_CIDR"}]
      }
    }
  ]
}
CNI

# --- containerd
# No registry is reachable, and none may be asked: every registry host is
# replaced by a closed port on loopback, so an image that is not already
# present fails at once (ErrImagePull) instead of being looked up in DNS.
mkdir -p "$node/registries/_default"
cat >"$node/registries/_default/hosts.toml" <<TOML
server = "http://127.0.0.1:9"
[host."http://127.0.0.1:9"]
  capabilities = ["pull", "resolve"]
TOML
cat >"$node/containerd.toml" <<TOML
version = 3
root = "$node/containerd"
state = "$run/containerd"
[grpc]
  address = "$run/containerd.sock"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "$node/registries"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "$TESTENV_PAUSE_IMAGE"
[plugins."io.containerd.cri.v1.runtime"]
  # Root here lacks CAP_SYS_RESOURCE, so no process may lower its
  # oom_score_adj; without this every sandbox fails to start.
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$node/cni"
TOML
# The runc shim is found on containerd's PATH.
start containerd env PATH="$bin:$PATH" "$bin/containerd" --config "$node/containerd.toml"
testenv_wait_for containerd 30 "$bin/ctr" --address "$run/containerd.sock" version
printf 'CTR=%q\nCONTAINERD_ADDRESS=%q\n' "$bin/ctr" "$run/containerd.sock" >"$node/ctr.env"

# --- images pods need (no registry is reachable: built here, imported)
"$REPO_ROOT/hack/image/test-images.sh" >"$node/images.env"
pause=$(sed -n 's/^PAUSE_IMAGE=//p' "$node/images.env")
"$bin/ctr" --address "$run/containerd.sock" -n k8s.io images tag --force "$pause" "$TESTENV_PAUSE_IMAGE" >/dev/null

# --- kubelet
cat >"$node/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine: cgroup v1, no systemd, swap allowed.
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix://$run/containerd.sock
address: $TESTENV_HOST_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 0
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
rotateCertificates: false
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
# No cluster DNS, and no host resolver either: a pod must never send a DNS
# query off this machine.
resolvConf: ""
# Container logs under the node's state, not /var/log/pods.
podLogsDir: $node/pod-logs
# Mounted Secrets refresh within this period (default 1m); see docs/testenv.md.
syncFrequency: 10s
# The disk is shared with builds: never evict or garbage-collect images here.
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
YAML
start kubelet "$bin/kubelet" --config="$node/kubelet.yaml" --kubeconfig="$node/kubelet.kubeconfig" \
  --root-dir="$node/kubelet" --hostname-override="$TESTENV_NODE_NAME" --node-ip="$TESTENV_HOST_IP"

# --- scheduler and kube-proxy, as the admin (no separate identities needed here)
start kube-scheduler "$bin/kube-scheduler" --kubeconfig="$state/kubeconfig" \
  --authentication-kubeconfig="$state/kubeconfig" --authorization-kubeconfig="$state/kubeconfig" \
  --leader-elect=false --secure-port=0
# Leaves the machine's conntrack sysctls and route_localnet alone; NodePorts
# only on the bridge.
start kube-proxy "$bin/kube-proxy" --kubeconfig="$state/kubeconfig" --proxy-mode=iptables \
  --cluster-cidr="$TESTENV_POD_CIDR" --hostname-override="$TESTENV_NODE_NAME" \
  --conntrack-max-per-core=0 --conntrack-tcp-timeout-established=0 --conntrack-tcp-timeout-close-wait=0 \
  --iptables-localhost-nodeports=false --nodeport-addresses="$TESTENV_POD_CIDR" \
  --metrics-bind-address="" --healthz-bind-address=""

testenv_wait_for kubelet 90 ready
# The `kubernetes` Service routes to the apiserver (in-cluster config).
service_ip=${TESTENV_SERVICE_CIDR%.*}.1
testenv_wait_for kube-proxy 60 sh -c "iptables -t nat -S KUBE-SERVICES | grep -q -- '-d $service_ip/32'"
elapsed_ms=$((($(date +%s%N) - started_ns) / 1000000))
echo "node $TESTENV_NODE_NAME ready in ${elapsed_ms} ms" >&2
