#!/bin/sh
# kubenode-agent post-install, for the deb (postinst configure [OLD-VERSION]) and the rpm
# (%post N, N = versions installed after this transaction).
#
# First install: enable the agent, and start it only if /etc/kubenode/start-on-install exists
# (bootstrap writes it, with the node's agent.yaml, before installing). kubenode-controller.service
# is for control-plane hosts only and stays disabled until an operator enables it. Upgrade:
# restart whichever of the two is running (try-restart). Under `dpkg --root DIR
# --force-script-chrootless` (DPKG_ROOT=DIR) nothing outside DIR is touched: the unit is enabled
# offline with systemctl --root. In a chroot or image build (systemd not running) only the offline
# enable happens.
set -e
unit=kubenode-agent.service
controller=kubenode-controller.service
root=${DPKG_ROOT:-}

case "$1" in
  configure) if [ -z "$2" ]; then action=install; else action=upgrade; fi ;;
  1) action=install ;;
  [0-9]*) action=upgrade ;;
  *) exit 0 ;; # deb abort-*: nothing was stopped, nothing to undo
esac

command -v systemctl >/dev/null 2>&1 || exit 0

if [ -n "$root" ]; then
  [ "$action" = install ] && systemctl --root="$root" enable "$unit"
  exit 0
fi

# Inside a chroot or an image build systemd is not running: enable works offline, the rest waits.
if [ -d /run/systemd/system ]; then booted=yes; else booted=no; fi
[ "$booted" = yes ] && systemctl daemon-reload

if [ "$action" = install ]; then
  systemctl enable "$unit"
  if [ "$booted" = yes ] && [ -e /etc/kubenode/start-on-install ]; then
    systemctl start "$unit" || echo "kubenode-agent: start failed, see: journalctl -u $unit" >&2
  fi
elif [ "$booted" = yes ]; then
  for u in "$unit" "$controller"; do
    systemctl try-restart "$u" || echo "kubenode-agent: restart failed, see: journalctl -u $u" >&2
  done
fi
exit 0
