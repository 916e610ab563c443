#!/usr/bin/env bash
# Regenerates the Go wrapper modules that build the test control plane.
# Run only when changing versions (hack/testenv/versions.env); commit the
# resulting go.mod/go.sum files. Builds never run this script.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
export GOWORK=off GOTOOLCHAIN=local GOFLAGS=-mod=mod
# Any Go 1.26.x builds the modules; `go mod init` would demand the local patch.
GO_LINE=1.26.0

gen_k8s() {
  cd "$here/k8s"
  rm -f go.mod go.sum
  go mod init upstash-rotator/hack/testenv/k8s
  go mod edit -go="$GO_LINE"
  local staging="v0.${KUBE_VERSION#v1.}"
  local gomod
  # The published go.mod of k8s.io/kubernetes requires its staging modules at
  # v0.0.0; replace each with its published tag (k8s.io/foo v0.<minor>.<patch>).
  gomod=$(cd "$(mktemp -d)" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" \
    | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  for m in $(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$gomod"); do
    go mod edit -replace="$m=$m@$staging"
  done
  go mod edit -require="k8s.io/kubernetes@$KUBE_VERSION"
  # The control plane, then the node's kubelet, scheduler and kube-proxy.
  for t in kube-apiserver kube-controller-manager kubectl kubelet kube-scheduler kube-proxy; do
    go mod edit -tool="k8s.io/kubernetes/cmd/$t"
  done
  go mod tidy
}

# A wrapper module of one Go tool: module path, version, tool package.
gen_tool() {
  cd "$here/$1"
  rm -f go.mod go.sum
  go mod init "upstash-rotator/hack/testenv/$1"
  go mod edit -go="$GO_LINE"
  go mod edit -require="$2@$3" -tool="$4"
  go mod tidy
}

gen_etcd() { gen_tool etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3; }
gen_helm() { gen_tool helm helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm; }

# promtool checks the chart's alert rules. Its version is kept here, not in
# versions.env, so a change rebuilds only promtool (hack/testenv/promtool.sh).
PROMETHEUS_VERSION=v0.316.0
gen_promtool() {
  gen_tool promtool github.com/prometheus/prometheus "$PROMETHEUS_VERSION" github.com/prometheus/prometheus/cmd/promtool
}

# External Secrets Operator, for `make bench-peers` only. Its own go.mod
# replaces sprig with a fork; a replace is not inherited, so it is copied.
ESO_VERSION=v0.16.2
gen_eso() {
  cd "$here/eso"
  rm -f go.mod go.sum
  go mod init upstash-rotator/hack/testenv/eso
  go mod edit -go="$GO_LINE"
  go mod edit -replace=github.com/Masterminds/sprig/v3=github.com/external-secrets/sprig/v3@v3.3.0
  go mod edit -require="github.com/external-secrets/external-secrets@$ESO_VERSION" \
    -tool=github.com/external-secrets/external-secrets
  go mod tidy
}

# containerd, its ctr client and the runc shim: three tools of one module.
gen_containerd() {
  gen_tool containerd github.com/containerd/containerd/v2 "$CONTAINERD_VERSION" \
    github.com/containerd/containerd/v2/cmd/containerd
  go mod edit -tool=github.com/containerd/containerd/v2/cmd/ctr \
    -tool=github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
  go mod tidy
}

for part in "${@:-k8s etcd helm containerd promtool}"; do
  for p in $part; do "gen_$p"; done
done
