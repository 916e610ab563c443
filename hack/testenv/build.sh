#!/usr/bin/env bash
# Builds the local cluster's binaries from the wrapper modules into a keyed
# cache directory outside the checkout and prints that directory: the control
# plane (kube-apiserver, kube-controller-manager, kubectl, etcd, helm) and the
# node (kubelet, kube-scheduler, kube-proxy, containerd, ctr, the runc shim).
# Does nothing when the cache already holds them.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

bin=$(testenv_bin_dir)
want=(kube-apiserver kube-controller-manager kubectl etcd helm
  kubelet kube-scheduler kube-proxy containerd ctr containerd-shim-runc-v2)
complete=1
for b in "${want[@]}"; do [ -x "$bin/$b" ] || complete=0; done
if [ "$complete" = 1 ] && "$bin/kube-apiserver" --version 2>/dev/null | grep -qx "Kubernetes $KUBE_VERSION"; then
  echo "$bin"
  exit 0
fi

export CGO_ENABLED=0 GOWORK=off GOTOOLCHAIN=local GOFLAGS="-trimpath -mod=readonly"
tmp="$bin.partial.$$"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
x="-X k8s.io/component-base/version"
c="-X k8s.io/client-go/pkg/version"
kube_ldflags="-s -w $x.gitVersion=$KUBE_VERSION $x.gitMajor=1 $x.gitMinor=$minor $x.gitTreeState=clean \
  $c.gitVersion=$KUBE_VERSION $c.gitMajor=1 $c.gitMinor=$minor $c.gitTreeState=clean"

echo "building the local cluster ($KUBE_VERSION, etcd $ETCD_VERSION, helm $HELM_VERSION, containerd $CONTAINERD_VERSION) into $bin" >&2
echo "a cold build takes a while on 2 cores; later runs reuse the cache" >&2
(cd "$TESTENV_DIR/etcd" && go build -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
(cd "$TESTENV_DIR/helm" && go build \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
  -o "$tmp/helm" helm.sh/helm/v3/cmd/helm)
(cd "$TESTENV_DIR/k8s" && go build -ldflags "$kube_ldflags" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kubectl \
  k8s.io/kubernetes/cmd/kubelet \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kube-proxy)
# Storage drivers this node never uses need cgo or kernel headers: left out.
(cd "$TESTENV_DIR/containerd" && go build -tags "no_btrfs no_devmapper no_zfs no_aufs" \
  -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" -o "$tmp/" \
  github.com/containerd/containerd/v2/cmd/containerd \
  github.com/containerd/containerd/v2/cmd/ctr \
  github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2)
mkdir -p "$bin"
for b in "${want[@]}"; do mv "$tmp/$b" "$bin/$b"; done
echo "$bin"
