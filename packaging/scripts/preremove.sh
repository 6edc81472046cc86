#!/bin/sh
# kubenode-agent pre-remove, for the deb (prerm remove | upgrade NEW-VERSION | …) and the rpm
# (%preun N, N = versions left after this transaction). Only a real removal stops and disables
# the service; on upgrade the new version's post-install restarts it.
set -e
unit=kubenode-agent.service
root=${DPKG_ROOT:-}

case "$1" in
  remove | 0) ;;
  *) exit 0 ;;
esac

command -v systemctl >/dev/null 2>&1 || exit 0

if [ -n "$root" ]; then
  systemctl --root="$root" disable "$unit"
elif [ -d /run/systemd/system ]; then
  systemctl disable --now "$unit"
else
  systemctl disable "$unit"
fi
exit 0
