#!/bin/sh
# kubenode-agent post-remove, for the deb (postrm remove | purge | upgrade …) and the rpm
# (%postun N). Removal keeps /etc/kubenode and the state in /var/lib/kubenode, so a reinstall
# carries on where the agent left off; only a deb purge deletes them.
set -e
root=${DPKG_ROOT:-}

case "$1" in
  purge)
    rm -rf "$root/var/lib/kubenode"
    rm -f "$root/etc/kubenode/start-on-install"
    rmdir "$root/etc/kubenode" 2>/dev/null || true
    ;;
esac

case "$1" in
  remove | purge | 0)
    if [ -z "$root" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
      systemctl daemon-reload
    fi
    ;;
esac
exit 0
