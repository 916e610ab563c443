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
    cat "$TESTENV_DIR"/{k8s,etcd,helm}/go.{mod,sum}
    go env GOVERSION
  } | sha256sum | cut -c1-12
}

testenv_bin_dir() {
  local root=${UPSTASH_ROTATOR_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/upstash-rotator/testenv}
  echo "$root/$KUBE_VERSION-$(testenv_cache_key)/bin"
}

# State of a running plane lives in the checkout's target/, like cargo's output.
TESTENV_STATE="$REPO_ROOT/target/testenv"
