#!/usr/bin/env bash
# `make demo`: a guided tour on a local control plane with upstash-sim and a
# real redis-server. Everything it starts, it stops.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

hack/deps.sh
say "Building upstash-rotator and upstash-sim"
cargo build --locked --quiet --workspace --bins
bin=$PWD/target/debug

work=$(mktemp -d)
pids=()
plane_was_running=0
[ -f target/testenv/pids/kube-apiserver ] && kill -0 "$(cat target/testenv/pids/kube-apiserver)" 2>/dev/null && plane_was_running=1
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "$plane_was_running" = 1 ] || hack/testenv/down.sh >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

say "Starting a local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager)"
eval "$(hack/testenv/up.sh)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

say "Starting upstash-sim, a local stand-in for Upstash, backed by a real redis-server on port $redis_port"
account="demo@example.com:demo-api-key"
"$bin/upstash-sim" --listen 127.0.0.1:0 --account "$account" --redis "127.0.0.1:$redis_port" >"$work/sim.out" 2>"$work/sim.log" &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/sim.out" ] && break; sleep 0.1; done
sim=$(sed -n 's/^upstash-sim listening on //p' "$work/sim.out")
[ -n "$sim" ] || { echo "upstash-sim did not start:" >&2; cat "$work/sim.log" >&2; exit 1; }
echo "upstash-sim at $sim"

say "Creating a Redis database in the simulator, as you would in the Upstash console"
database_id=$(curl -fsS -u "$account" -H 'Content-Type: application/json' \
  -d '{"database_name":"shop-cache","platform":"aws","primary_region":"us-east-1"}' \
  "$sim/v2/redis/database" | python3 -c 'import json,sys; print(json.load(sys.stdin)["database_id"])')
echo "database id: $database_id"

say "Installing the CRD and running the operator (it talks to the simulator, not to Upstash)"
run kubectl apply --server-side -f crds/
kubectl wait --for=condition=Established --timeout=60s crd/redispasswordrotations.upstash-rotator.io >/dev/null
"$bin/upstash-rotator" run --upstash-api-url "$sim" --allow-insecure-upstash-url --namespace demo >"$work/operator.log" 2>&1 &
pids+=($!)

say "Applying the examples: the API credentials Secret and a RedisPasswordRotation"
kubectl delete namespace demo --ignore-not-found --timeout=60s >/dev/null # left over from an earlier demo
kubectl create namespace demo >/dev/null
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
  printf '  %-34s %s…\n' REDIS_URL "$(secret_value REDIS_URL | cut -c1-24)"
}
say "The operator wrote the database's current credentials, without resetting anything"
show_secret
old_password=$(secret_value UPSTASH_REDIS_PASSWORD)
echo "\$ redis-cli -p $redis_port --user default --pass <password from the Secret> ping"
REDISCLI_AUTH=$old_password redis-cli -p "$redis_port" --user default ping

say "Rotating: raise spec.rotation by one and wait for the operator"
run "$bin/upstash-rotator" rotate cache -n demo --wait --timeout 60
run kubectl get rpr -n demo
show_secret
new_password=$(secret_value UPSTASH_REDIS_PASSWORD)

say "The new password works, the old one is refused"
echo "\$ redis-cli ... --pass <new password> ping"
REDISCLI_AUTH=$new_password redis-cli -p "$redis_port" --user default ping
echo "\$ redis-cli ... --pass <old password> ping"
REDISCLI_AUTH=$old_password redis-cli -p "$redis_port" --user default ping 2>&1 || true
[ "$old_password" != "$new_password" ]

say "What happened, as events on the resource"
kubectl get events -n demo --field-selector involvedObject.kind=RedisPasswordRotation \
  -o custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message

say "Done. Everything started for the demo is being stopped."
