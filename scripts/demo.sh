#!/usr/bin/env bash
# The agent's main job on embedded defaults, without a cluster and without changing this machine:
# converge the example MachineComponents into a scratch root (plan, apply, plan again, status),
# then triage this machine read-only with `check`.
set -uo pipefail
cd "$(dirname "$0")/.."
agent=(node dist/kubenode-agent.cjs)
root=$(mktemp -d -t kubenode-demo-XXXXXX)
trap 'rm -rf "$root"' EXIT

echo "== plan (scratch root $root)"
"${agent[@]}" plan --manifests examples/manifests --root "$root" || exit
echo "== apply"
"${agent[@]}" apply --manifests examples/manifests --root "$root" || exit
echo "== plan again: nothing to do"
"${agent[@]}" plan --manifests examples/manifests --root "$root" || exit
echo "== status"
"${agent[@]}" status --root "$root" || exit
echo "== check (this machine, read-only)"
"${agent[@]}" check
code=$?
# check exits 2 when something cannot be checked here (a container without systemd or kubelet): not a failure of the demo.
[ "$code" -le 2 ] || exit "$code"
