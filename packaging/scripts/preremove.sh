#!/bin/sh
# kubenode-agent pre-remove, for the deb (prerm remove | upgrade NEW-VERSION | …) and the rpm
# (%preun N, N = versions left after this transaction). Only a real removal stops and disables
# both services; on upgrade the new version's post-install restarts whichever runs.
set -e
units="kubenode-agent.service kubenode-controller.service"
root=${DPKG_ROOT:-}

case "$1" in
  remove | 0) ;;
  *) exit 0 ;;
esac

command -v systemctl >/dev/null 2>&1 || exit 0

# $units unquoted on purpose: two unit names.
if [ -n "$root" ]; then
  systemctl --root="$root" disable $units
elif [ -d /run/systemd/system ]; then
  systemctl disable --now $units
else
  systemctl disable $units
fi
exit 0
