# Installs (records the version) and starts the service; safe to run again.
mkdir -p "$PROV_STATE_DIR"
echo "${PROV_VERSION:-1.1.0}" > "$PROV_STATE_DIR/version"
svc_start
prov_log "@NAME@ ${PROV_VERSION:-1.1.0} started (pid $(cat "$PIDFILE"))"
