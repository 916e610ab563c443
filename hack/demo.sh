#!/usr/bin/env bash
# `make demo`: a guided tour on a local cluster with a real node. The operator
# runs as a pod from the image the Dockerfile builds and speaks HTTPS to
# upstash-sim; an application pod reads the Secret and talks to the real
# redis-server behind the simulator. Everything it starts, it stops.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
started=$SECONDS

hack/deps.sh
say "Building upstash-sim and the upstash-rotator CLI"
cargo build --locked --quiet --workspace --bins
bin=$PWD/target/debug

work=$(mktemp -d)
pids=()
cluster_was_running=0
if [ "$(cat target/testenv/node-mode 2>/dev/null)" = 1 ] && hack/testenv/node/up.sh --check 2>/dev/null; then
  cluster_was_running=1
fi
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$cluster_was_running" = 1 ]; then
    kubectl delete namespace demo --wait=false >/dev/null 2>&1 || true
  else
    hack/testenv/down.sh >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

say "Starting a local Kubernetes cluster: control plane and one node (containerd, kubelet, kube-proxy)"
# Assigned first: a failed start (another checkout's node, say) stops here
# with its own message instead of running on without a cluster.
exports=$(NODE=1 hack/testenv/up.sh)
eval "$exports"
host=$TESTENV_HOST_IP

say "Building the operator image from the Dockerfile (the first build takes a few minutes)"
image=$(hack/image/build.sh | tail -n 1)
image=${image#IMAGE=}
echo "image: $image"

# A private CA for the simulator's HTTPS, as a company CA would be.
openssl() { command openssl "$@" 2>"$work/openssl.log" || { cat "$work/openssl.log" >&2; return 1; }; }
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/ca.key" -out "$work/ca.pem" -days 1 \
  -subj "/CN=demo-ca" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign"
openssl req -newkey rsa:2048 -nodes -keyout "$work/sim.key" -out "$work/sim.csr" -subj "/CN=upstash-sim"
printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\n' "$host" >"$work/sim.ext"
openssl x509 -req -in "$work/sim.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 1 \
  -out "$work/sim.pem" -extfile "$work/sim.ext"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("'"$host"'",0)); print(s.getsockname()[1])'; }
redis_port=$(free_port)
# Pods connect from the pod network: protected mode would refuse them until
# the simulator sets the password.
redis-server --port "$redis_port" --bind "$host" --protected-mode no --save "" --appendonly no --daemonize no \
  >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do redis-cli -h "$host" -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

say "Starting upstash-sim on the pod network over HTTPS, backed by a real redis-server ($host:$redis_port)"
account="demo@example.com:demo-api-key"
UPSTASH_SIM_ACCOUNTS=$account "$bin/upstash-sim" --listen "$host:0" --allow-remote \
  --tls-cert "$work/sim.pem" --tls-key "$work/sim.key" --redis "$host:$redis_port" >"$work/sim.out" 2>"$work/sim.log" &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/sim.out" ] && break; sleep 0.1; done
sim=$(sed -n 's/^upstash-sim listening on //p' "$work/sim.out")
[ -n "$sim" ] || { echo "upstash-sim did not start:" >&2; cat "$work/sim.log" >&2; exit 1; }
echo "upstash-sim at $sim"

say "Creating a Redis database in the simulator, as you would in the Upstash console"
database_id=$(curl -fsS --cacert "$work/ca.pem" -u "$account" -H 'Content-Type: application/json' \
  -d '{"database_name":"shop-cache","platform":"aws","primary_region":"us-east-1"}' \
  "$sim/v2/redis/database" | python3 -c 'import json,sys; print(json.load(sys.stdin)["database_id"])')
echo "database id: $database_id"

say "Installing the operator with its Helm chart (image ${image}, trusting the demo CA)"
kubectl delete namespace demo --ignore-not-found --timeout=60s >/dev/null # left over from an earlier demo
kubectl create namespace demo >/dev/null
kubectl label namespace demo pod-security.kubernetes.io/enforce=restricted >/dev/null
# A CRD left by the tests or an earlier demo on a reused cluster stays (the
# chart keeps it on uninstall); a fresh cluster gets it from the chart.
crds=true
kubectl get crd redispasswordrotations.upstash-rotator.io upstashaccounts.upstash-rotator.io \
  clusterupstashaccounts.upstash-rotator.io >/dev/null 2>&1 && crds=false
run helm install rotator charts/upstash-rotator -n demo --wait --timeout 120s --set crds.install=$crds \
  --set image.repository="${image%:*}" --set-string image.tag="${image##*:}" --set image.pullPolicy=Never \
  --set upstashApiUrl="$sim" --set-file upstash.caBundle="$work/ca.pem" --set "watchNamespaces={demo}" >/dev/null
run kubectl get pods -n demo -o wide

say "Applying the examples: the API credentials Secret and a RedisPasswordRotation"
sed -e 's/you@example.com/demo@example.com/' -e 's/REPLACE_WITH_YOUR_API_KEY/demo-api-key/' \
  examples/credentials-secret.yaml | kubectl apply -n demo -f -
sed -e "s/96ad0856-03b1-4ee7-9666-e81abd0349e1/$database_id/" examples/redispasswordrotation.yaml | kubectl apply -n demo -f -
kubectl wait -n demo --for=condition=Ready --timeout=60s rpr/cache >/dev/null
run kubectl get rpr -n demo

secret_value() { kubectl get secret cache -n demo -o "jsonpath={.data.$1}" | base64 -d; }
show_secret() {
  echo "Secret demo/cache now holds:"
  for key in UPSTASH_REDIS_HOST UPSTASH_REDIS_PORT UPSTASH_REDIS_REST_URL; do printf '  %-34s %s\n' "$key" "$(secret_value "$key")"; done
  printf '  %-34s %s…  (shortened here)\n' UPSTASH_REDIS_PASSWORD "$(secret_value UPSTASH_REDIS_PASSWORD | cut -c1-8)"
}
say "The operator wrote the database's current credentials, without resetting anything"
show_secret

say "An application pod mounts the Secret and pings Redis with the mounted password"
consumer=$(sed -n 's/^CONSUMER_IMAGE=//p' target/testenv/node/images.env)
kubectl apply -n demo -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: app}
spec:
  terminationGracePeriodSeconds: 1
  securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: app
    image: $consumer
    imagePullPolicy: Never
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
    volumeMounts: [{name: redis, mountPath: /etc/redis, readOnly: true}]
  volumes: [{name: redis, secret: {secretName: cache}}]
YAML
kubectl wait -n demo --for=condition=Ready --timeout=60s pod/app >/dev/null
# The password goes through REDISCLI_AUTH: a command line is visible in `ps`.
ping_cmd='REDISCLI_AUTH="$(cat /etc/redis/UPSTASH_REDIS_PASSWORD)" redis-cli -h "$(cat /etc/redis/UPSTASH_REDIS_HOST)" -p "$(cat /etc/redis/UPSTASH_REDIS_PORT)" ping 2>&1'
app_ping() { kubectl exec -n demo app -- sh -c "$ping_cmd"; }
echo '$ kubectl exec app -- sh -c '\''REDISCLI_AUTH="$(cat /etc/redis/UPSTASH_REDIS_PASSWORD)" redis-cli -h … ping'\'''
app_ping

say "Rotating: raise spec.rotation by one and wait for the operator"
run "$bin/upstash-rotator" rotate cache -n demo --wait --timeout 60
rotated=$SECONDS
run kubectl get rpr -n demo
show_secret

say "Upstash revoked the old password at once; the kubelet refreshes the mounted file within its sync period"
last=""
for _ in $(seq 1 120); do
  reply=$(app_ping | head -n 1 || true)
  if [ "$reply" != "$last" ]; then
    printf '  t+%3ss  app pings: %s\n' "$((SECONDS - rotated))" "$reply"
    last=$reply
  fi
  [ "$reply" = PONG ] && break
  sleep 1
done
[ "$last" = PONG ] || { echo "the pod never saw the new password" >&2; exit 1; }

say "What happened, as events on the resource"
kubectl get events -n demo --field-selector involvedObject.kind=RedisPasswordRotation \
  -o custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message

say "Done in $((SECONDS - started)) s. Everything started for the demo is being stopped."
