# Installs redis-server (at PROV_VERSION when pinned) and starts prov's instance.
prov_apt_install redis-server "$PROV_VERSION"
# The distribution's own instance is not ours (the package may have enabled it).
if prov_has_systemd; then systemctl disable --now redis-server >/dev/null 2>&1 || true; fi
redis_start
prov_log "redis $(prov_pkg_version redis-server) running with $CONF"
