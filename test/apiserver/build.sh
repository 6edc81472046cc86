#!/usr/bin/env bash
# Builds the test cluster's binaries from this Go module, once per source hash, and prints each
# one's path on its own stdout line, in the order asked (so the last line is the last binary).
# Everything else goes to stderr.
#
#   build.sh [kubenode-testcluster] [kube-controller-manager] [kubectl] [all]
#
# No argument means kubenode-testcluster (kube-apiserver + embedded etcd, main.go here). The
# other two are upstream's own main packages (k8s.io/kubernetes/cmd/...), go.mod's `tool` block,
# so they come from exactly the apiserver's module graph and release.
#
#   KUBENODE_CACHE  cache root (default $HOME/.cache/kubenode-agent)
#   GO              go binary (default: go on PATH, else /usr/local/go/bin/go)
#   GOPROXY, GOPATH, GOCACHE, ... are taken from the environment / go env.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

if [[ -z "${GO:-}" ]]; then
  if command -v go >/dev/null 2>&1; then GO=go; else GO=/usr/local/go/bin/go; fi
fi
# go.mod says go 1.24; without this a newer-toolchain line would make go try
# to download a toolchain instead of using the installed one.
export GOTOOLCHAIN=local
export CGO_ENABLED=0
# -mod=mod lets a fresh checkout resolve modules from go.sum without a
# vendor directory even if the caller exports GOFLAGS=-mod=vendor.
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod"

names=("$@")
((${#names[@]} > 0)) || names=(kubenode-testcluster)
if [[ " ${names[*]} " == *" all "* ]]; then names=(kubenode-testcluster kube-controller-manager kubectl); fi

# The toolchain version is part of the key: a different go builds a different binary from the
# same sources. Only kubenode-testcluster is built from our own .go files.
common="$( { "$GO" version; cat go.mod go.sum build.sh; } | sha256sum | cut -c1-16)"
own="$( { echo "$common"; cat ./*.go; } | sha256sum | cut -c1-16)"

k8s_version="$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' go.mod)"
if [[ ! "$k8s_version" =~ ^v([0-9]+)\.([0-9]+)\. ]]; then
  echo "build.sh: cannot find k8s.io/kubernetes version in go.mod" >&2
  exit 1
fi
major="${BASH_REMATCH[1]}" minor="${BASH_REMATCH[2]}"

build() {
  local name="$1" pkg hash
  case "$name" in
    kubenode-testcluster) pkg=. hash=$own ;;
    kube-controller-manager | kubectl) pkg="k8s.io/kubernetes/cmd/$name" hash=$common ;;
    *)
      echo "build.sh: unknown binary '$name' (expected kubenode-testcluster, kube-controller-manager, kubectl or all)" >&2
      exit 2
      ;;
  esac
  local cache="${KUBENODE_CACHE:-$HOME/.cache/kubenode-agent}/$name-$hash"
  # The apiserver's cache directory keeps its historical name.
  [[ "$name" == kubenode-testcluster ]] && cache="${KUBENODE_CACHE:-$HOME/.cache/kubenode-agent}/testcluster-$hash"
  local bin="$cache/$name"
  if [[ ! -x "$bin" ]]; then
    mkdir -p "$cache"
    # Serialise concurrent test processes: a cold build takes many minutes on
    # a small machine and two of them at once would take twice as long.
    exec 9>"$cache/.lock"
    if command -v flock >/dev/null 2>&1; then flock 9; fi
    if [[ ! -x "$bin" ]]; then
      local ldflags="-s -w" pkgv
      # Same variables hack/lib/version.sh sets, so /version and `kubectl version` report the
      # release. gitCommit/gitTreeState stay unset: the module proxy does not tell us the tag's
      # commit, and upstream leaves them unset too in that case.
      for pkgv in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $pkgv.gitVersion=$k8s_version"
        ldflags+=" -X $pkgv.gitMajor=$major -X $pkgv.gitMinor=$minor"
        ldflags+=" -X $pkgv.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
      done
      echo "build.sh: building $name ($k8s_version) into $cache; a cold build takes minutes" >&2
      local start=$SECONDS
      "$GO" build -trimpath -ldflags "$ldflags" -o "$bin.tmp.$$" "$pkg" >&2
      mv -f "$bin.tmp.$$" "$bin"
      echo "build.sh: built $name in $((SECONDS - start))s" >&2
    fi
    exec 9>&-
  fi
  echo "$bin"
}

for name in "${names[@]}"; do build "$name"; done
