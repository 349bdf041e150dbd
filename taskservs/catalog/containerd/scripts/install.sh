# Installs containerd (at PROV_VERSION when pinned), loads the kernel bits Kubernetes needs
# where it can, and starts prov's instance.
prov_apt_install containerd "$PROV_VERSION"
if prov_has_systemd; then
  systemctl disable --now containerd >/dev/null 2>&1 || true
  modprobe overlay 2>/dev/null || true
  modprobe br_netfilter 2>/dev/null || true
fi
containerd_start
prov_log "containerd $(prov_pkg_version containerd) running with $CONF"
