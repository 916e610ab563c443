#!/usr/bin/env bash
# Checks that images run and hold what the tests rely on, each in a container
# without network. build.sh and test-images.sh run it on what they build.
# Usage: hack/image/check.sh NAME=REF... with NAME one of upstash-rotator,
# pause, consumer, node-consumer. The pause image's reaping is checked with a
# consumer image when CHECK_CONSUMER_IMAGE names one.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

fail() { echo "check of $1 failed: $2" >&2; exit 1; }

# Runs a container and compares its output with a pattern (grep -E).
expect() { # image, pattern, then podman run arguments
  local ref=$1 pattern=$2 out
  shift 2
  out=$(podman_run "$@" 2>&1) || fail "$ref" "podman run $* exited non-zero: $out"
  grep -Eq "$pattern" <<<"$out" || fail "$ref" "podman run $*: expected /$pattern/, got: $out"
}

# Files of an image's root, read through a read-only mount of it.
has_files() { # image, path...
  local ref=$1 root path
  shift
  root=$(podman image mount "$ref")
  for path; do
    [ -e "$root/$path" ] || { podman image unmount "$ref" >/dev/null; fail "$ref" "/$path missing"; }
  done
  podman image unmount "$ref" >/dev/null
}

check_operator() { # ref
  local ref=$1 config root
  config=$(podman image inspect --format '{{.Config.User}} {{json .Config.Entrypoint}} {{json .Config.Cmd}}' "$ref")
  [ "$config" = '65532:65532 ["/upstash-rotator"] ["run"]' ] || fail "$ref" "user, entrypoint and command are: $config"
  # As the chart runs it: non-root, read-only root filesystem.
  expect "$ref" '^upstash-rotator [0-9]' --read-only --entrypoint /upstash-rotator "$ref" --version
  has_files "$ref" etc/ssl/certs/ca-certificates.crt usr/share/zoneinfo/UTC etc/passwd tmp home/nonroot
  root=$(podman image mount "$ref")
  grep -q '^nonroot:x:65532:65532:' "$root/etc/passwd" || { podman image unmount "$ref" >/dev/null; fail "$ref" "no nonroot user"; }
  # distroless: no shell to exec into.
  [ ! -e "$root/bin/sh" ] || { podman image unmount "$ref" >/dev/null; fail "$ref" "has a shell"; }
  podman image unmount "$ref" >/dev/null
}

pause_container=''
check_pause() { # ref
  local ref=$1 name=upstash-rotator-check-pause-$$ code started
  # shellcheck disable=SC2046
  podman run -d --name "$name" --network=none --pull=never $(podman_limits) "$ref" >/dev/null
  pause_container=$name
  # As PID 1 of a shared PID namespace it inherits orphans and must reap
  # them: a sleep orphaned in a second container must not stay a zombie.
  local consumer=${CHECK_CONSUMER_IMAGE:-}
  if [ -n "$consumer" ]; then
    expect "$ref" '^no zombies$' --pid="container:$name" "$consumer" \
      sh -c 'sh -c "sleep 0.2 &"; sleep 1; ps -o stat | grep -q "^Z" && echo zombies || echo no zombies'
  fi
  started=$SECONDS
  # SIGTERM must end it at once with status 0 (podman stop waits 5 s, then kills).
  podman stop -t 5 "$name" >/dev/null
  code=$(podman inspect --format '{{.State.ExitCode}}' "$name")
  podman rm "$name" >/dev/null
  pause_container=''
  [ "$code" = 0 ] && [ $((SECONDS - started)) -lt 5 ] || fail "$ref" "SIGTERM: exit code $code after $((SECONDS - started)) s"
}

redis_pid='' redis_dir=''
stop_redis() {
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  fi
  [ -z "$redis_dir" ] || rm -rf "$redis_dir"
  redis_pid='' redis_dir=''
}
# Whatever check fails, nothing it started stays behind.
cleanup() {
  stop_redis
  [ -z "$pause_container" ] || podman rm -f "$pause_container" >/dev/null 2>&1 || true
}
trap cleanup EXIT

check_consumer() { # ref
  local ref=$1
  expect "$ref" '^ok 65532$' "$ref" sh -c 'echo ok $(id -u)'
  expect "$ref" '^applets ok$' "$ref" sh -c 'ls /bin/cat /bin/sleep /usr/bin/nc >/dev/null && echo applets ok'
  expect "$ref" '^redis-cli [0-9]' "$ref" redis-cli --version
  # A real AUTH + PING through a redis-server of this machine, on a unix
  # socket shared with the container (it has no network).
  redis_dir=$(mktemp -d)
  chmod 755 "$redis_dir"
  redis-server --port 0 --unixsocket "$redis_dir/redis.sock" --unixsocketperm 777 \
    --requirepass check-password --save '' --appendonly no >"$redis_dir/log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 50); do [ -S "$redis_dir/redis.sock" ] && break; sleep 0.1; done
  expect "$ref" '^PONG$' -v "$redis_dir:/sock" "$ref" \
    redis-cli -s /sock/redis.sock -a check-password --no-auth-warning ping
  expect "$ref" 'WRONGPASS' -v "$redis_dir:/sock" "$ref" \
    redis-cli -s /sock/redis.sock -a wrong-password --no-auth-warning ping
  stop_redis
}

check_node_consumer() { # ref
  local ref=$1
  expect "$ref" '^function$' "$ref" node -e 'console.log(typeof require("@upstash/redis").Redis.fromEnv)'
  # ping.mjs against a stand-in of Upstash's REST API inside the container:
  # Redis.fromEnv() must read the URL and token and send them.
  expect "$ref" '^PONG$' "$ref" node --input-type=module -e '
    import http from "node:http";
    import { execFile } from "node:child_process";
    const server = http.createServer((req, res) => {
      let body = "";
      req.on("data", (chunk) => (body += chunk));
      req.on("end", () => {
        const ok = req.headers.authorization === "Bearer check-token";
        // The client may pipeline (/pipeline takes a list of commands) and
        // asks for base64-encoded results.
        const pong = req.headers["upstash-encoding"] === "base64" ? btoa("PONG") : "PONG";
        const answer = req.url.startsWith("/pipeline")
          ? JSON.parse(body).map(() => ({ result: pong }))
          : { result: pong };
        res.writeHead(ok ? 200 : 401, { "content-type": "application/json" });
        res.end(JSON.stringify(ok ? answer : { error: "Unauthorized" }));
      });
    });
    server.listen(0, "127.0.0.1", () => {
      const env = { ...process.env, UPSTASH_REDIS_REST_URL: `http://127.0.0.1:${server.address().port}`,
        UPSTASH_REDIS_REST_TOKEN: "check-token" };
      execFile(process.execPath, ["/app/ping.mjs"], { env }, (err, stdout, stderr) => {
        process.stdout.write(stdout + stderr);
        server.close();
        process.exitCode = err ? 1 : 0;
      });
    });'
}

[ $# -ge 1 ] || { echo "usage: $0 NAME=REF..." >&2; exit 2; }
for arg; do
  name=${arg%%=*} ref=${arg#*=}
  case $name in
    upstash-rotator) check_operator "$ref" ;;
    pause) check_pause "$ref" ;;
    consumer) check_consumer "$ref" ;;
    node-consumer) check_node_consumer "$ref" ;;
    *) echo "unknown image name: $name" >&2; exit 2 ;;
  esac
  echo "checked $ref" >&2
done
