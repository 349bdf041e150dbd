# Installs etcd-server and etcd-client (at PROV_VERSION when pinned) and starts prov's member.
prov_apt_install etcd-server "$PROV_VERSION"
prov_apt_install etcd-client "$PROV_VERSION"
if prov_has_systemd; then systemctl disable --now etcd >/dev/null 2>&1 || true; fi
etcd_start
prov_log "etcd $(prov_pkg_version etcd-server) running with $CONF"
