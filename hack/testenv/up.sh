#!/usr/bin/env bash
# Starts a local control plane: etcd, kube-apiserver (RBAC, client-certificate
# auth, ServiceAccount token signing) and kube-controller-manager.
#   NODE=0 (default): on loopback, with the garbage collector, namespace and
#     ServiceAccount controllers only; nothing runs pods.
#   NODE=1: the apiserver listens on a bridge pods reach, every default
#     controller runs, and node/up.sh adds a worker node (containerd, kubelet,
#     kube-scheduler, kube-proxy).
# Idempotent: a healthy running plane of the same kind is reused. Stop it with
# down.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

node=${NODE:-0}
case $node in 0 | 1) ;; *) echo "NODE must be 0 or 1, not $node" >&2; exit 2 ;; esac
bin=$("$TESTENV_DIR/build.sh")
state=$TESTENV_STATE
kubeconfig=$state/kubeconfig
address=127.0.0.1
[ "$node" = 0 ] || address=$TESTENV_HOST_IP

print_exports() {
  echo "export KUBECONFIG=$kubeconfig"
  echo "export PATH=$bin:\$PATH"
  if [ "$node" = 1 ]; then
    echo "export TESTENV_HOST_IP=$TESTENV_HOST_IP"
    # Cluster addresses are on this machine: never through a proxy.
    echo "export NO_PROXY=$TESTENV_POD_CIDR,$TESTENV_SERVICE_CIDR\${NO_PROXY:+,\$NO_PROXY}"
  fi
}

healthy() {
  [ "$(cat "$state/node-mode" 2>/dev/null)" = "$node" ] &&
    [ -f "$state/pids/kube-apiserver" ] && kill -0 "$(cat "$state/pids/kube-apiserver")" 2>/dev/null &&
    "$bin/kubectl" --kubeconfig "$kubeconfig" get --raw /readyz >/dev/null 2>&1 &&
    { [ "$node" = 0 ] || "$TESTENV_DIR/node/up.sh" --check; }
}

if healthy; then
  echo "control plane already running" >&2
  print_exports
  exit 0
fi
owner=$(testenv_node_owner)
if [ "$node" = 1 ] && [ -n "$owner" ] && [ "$owner" != "$REPO_ROOT" ]; then
  echo "the local node of another checkout ($owner) runs on this machine: one node per machine;" \
    "stop it there with make cluster-down" >&2
  exit 1
fi
# A half-dead plane from an earlier run: clear it before starting afresh.
"$TESTENV_DIR/down.sh" >/dev/null 2>&1 || true

started_ns=$(date +%s%N)
mkdir -p "$state/pids" "$state/pki" "$state/logs" "$state/cmdline"
echo "$node" >"$state/node-mode"
trap 'echo "control plane failed to start; logs in $state/logs" >&2; "$TESTENV_DIR/down.sh" --keep-logs >/dev/null 2>&1' ERR

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port)
# The bridge must exist before the apiserver binds its address.
[ "$node" = 0 ] || "$TESTENV_DIR/node/bridge.sh" up

# Fresh PKI for every start: certificates live 30 days and must never be reused.
pki=$state/pki
(
  cd "$pki"
  exec 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 -subj "/CN=testenv-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
  openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver"
  # Pods reach the apiserver as the `kubernetes` Service (first address of
  # the service range) and by its DNS names.
  sans="IP:127.0.0.1,IP:$address,IP:${TESTENV_SERVICE_CIDR%.*}.1,DNS:localhost,DNS:kubernetes"
  sans="$sans,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' "$sans" >srv.ext
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -out apiserver.crt -extfile srv.ext
  openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=testenv-admin"
  printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' >cli.ext
  openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -out admin.crt -extfile cli.ext
  openssl genrsa -out sa.key 2048
  openssl rsa -in sa.key -pubout -out sa.pub
)

start() { # name, then the command line; records the pid and the command line
  local name=$1; shift
  "$@" >"$state/logs/$name.log" 2>&1 &
  echo $! >"$state/pids/$name"
  # restart-apiserver.sh starts the same command line again (make chaos).
  printf '%q ' "$@" >"$state/cmdline/$name"
}

start etcd "$bin/etcd" --name=testenv --data-dir="$state/etcd" \
  --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
  --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
  --initial-cluster="testenv=http://127.0.0.1:$peer_port" --unsafe-no-fsync --log-level=warn
testenv_wait_for etcd 30 curl -fsS "http://127.0.0.1:$etcd_port/health"

if [ "$node" = 0 ]; then
  # No pods: no ServiceAccount tokens to mount, no endpoints to publish.
  mode_flags=(--authorization-mode=RBAC --disable-admission-plugins=ServiceAccount --endpoint-reconciler-type=none)
else
  # Pods get ServiceAccount tokens; the `kubernetes` Service points here.
  # logs/exec reach the kubelet by its InternalIP: resolving the node's name
  # would send a DNS query off this machine.
  mode_flags=(--authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction
    --endpoint-reconciler-type=lease
    --kubelet-client-certificate="$pki/admin.crt" --kubelet-client-key="$pki/admin.key"
    --kubelet-certificate-authority="$pki/ca.crt" --kubelet-preferred-address-types=InternalIP)
fi
start kube-apiserver "$bin/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$etcd_port" \
  --bind-address="$address" --advertise-address="$address" --secure-port="$api_port" \
  --cert-dir="$pki" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" \
  --service-account-issuer="https://$address:$api_port" \
  --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
  --allow-privileged=true --service-cluster-ip-range="$TESTENV_SERVICE_CIDR" "${mode_flags[@]}"
curl_admin() { curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$@"; }
testenv_wait_for kube-apiserver 120 curl_admin "https://$address:$api_port/readyz"
testenv_wait_for kube-apiserver 10 curl_admin "https://$address:$api_port/api/v1/namespaces/default"

b64() { base64 -w0 <"$1"; }
umask 077
cat >"$kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster:
    server: https://$address:$api_port
    certificate-authority-data: $(b64 "$pki/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(b64 "$pki/admin.crt")
    client-key-data: $(b64 "$pki/admin.key")
contexts:
- name: testenv
  context: {cluster: testenv, user: admin}
current-context: testenv
KUBECONFIG
umask 022

if [ "$node" = 0 ]; then
  controllers=(--controllers=garbage-collector-controller,namespace-controller,serviceaccount-controller)
else
  # Every default controller: Deployments, ReplicaSets, EndpointSlices, ...
  controllers=(--controllers='*' --use-service-account-credentials
    --service-account-private-key-file="$pki/sa.key"
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key")
fi
start kube-controller-manager "$bin/kube-controller-manager" --kubeconfig="$kubeconfig" \
  --leader-elect=false --secure-port=0 --root-ca-file="$pki/ca.crt" "${controllers[@]}"
testenv_wait_for kube-controller-manager 30 kill -0 "$(cat "$state/pids/kube-controller-manager")"
[ "$node" = 0 ] || "$TESTENV_DIR/node/up.sh"

trap - ERR
elapsed_ms=$((($(date +%s%N) - started_ns) / 1000000))
echo "control plane ready in ${elapsed_ms} ms (apiserver https://$address:$api_port)" >&2
print_exports
