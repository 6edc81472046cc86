#!/usr/bin/env bash
# Builds kubenode-testcluster (kube-apiserver + embedded etcd) once per source
# hash and prints the binary's path as the last line of stdout. Everything
# else goes to stderr so callers can take the last stdout line.
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

# The toolchain version is part of the key: a different go builds a
# different binary from the same sources.
hash="$( { "$GO" version; cat go.mod go.sum build.sh; cat ./*.go; } | sha256sum | cut -c1-16)"
cache="${KUBENODE_CACHE:-$HOME/.cache/kubenode-agent}/testcluster-$hash"
bin="$cache/kubenode-testcluster"

if [[ ! -x "$bin" ]]; then
  mkdir -p "$cache"
  # Serialise concurrent test processes: a cold build takes many minutes on
  # a small machine and two of them at once would take twice as long.
  exec 9>"$cache/.lock"
  if command -v flock >/dev/null 2>&1; then flock 9; fi
  if [[ ! -x "$bin" ]]; then
    k8s_version="$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' go.mod)"
    if [[ ! "$k8s_version" =~ ^v([0-9]+)\.([0-9]+)\. ]]; then
      echo "build.sh: cannot find k8s.io/kubernetes version in go.mod" >&2
      exit 1
    fi
    major="${BASH_REMATCH[1]}" minor="${BASH_REMATCH[2]}"
    ldflags="-s -w"
    # Same variables hack/lib/version.sh sets, so /version reports the release.
    # gitCommit/gitTreeState stay unset: the module proxy does not tell us
    # the tag's commit, and upstream leaves them unset too in that case.
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=" -X $pkg.gitVersion=$k8s_version"
      ldflags+=" -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
      ldflags+=" -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    done
    echo "build.sh: building kubenode-testcluster ($k8s_version) into $cache; a cold build takes many minutes" >&2
    start=$SECONDS
    "$GO" build -trimpath -ldflags "$ldflags" -o "$bin.tmp.$$" . >&2
    mv -f "$bin.tmp.$$" "$bin"
    echo "build.sh: built in $((SECONDS - start))s" >&2
  fi
fi

echo "$bin"
