#!/usr/bin/env bash
# The test command (README quick start, and what .ci/run runs): installs what the tests
# need on a fresh machine of this kind, then runs every test once.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use for real: journalctl and a journal writer, systemctl --root and
# systemd-analyze, dpkg/rpm tooling for packages built in tests, openssl for certificates,
# qemu-user and an arm64 sysroot to run the arm64 binary, GNU time for the benchmarks, Prometheus
# (and its promtool) for the rollout gates and the metrics checks, lintian, rpmlint and man-db
# for the packages' checks, skopeo and umoci to read the container image, OpenIPMI's ipmi_sim
# (a real BMC on 127.0.0.1) and ipmitool for the central remedies.
packages=(systemd systemd-journal-remote dpkg dpkg-dev rpm openssl time binutils binutils-aarch64-linux-gnu qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross libatomic1-arm64-cross prometheus lintian rpmlint man-db skopeo umoci openipmi ipmitool)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

npm ci --no-audit --no-fund
# The tests' real kube-apiserver and etcd, kube-controller-manager and kubectl, built from Go
# modules (cached by source hash; cold, about 4-6 minutes for the apiserver and 2 more for the
# other two here). Building them up front keeps it out of the tests' time.
bash test/apiserver/build.sh all >/dev/null
npm run lint
npm test
