# Deploys (records the version) and starts this replica; safe to run again.
mkdir -p "$PROV_STATE_DIR"
echo "${PROV_VERSION:-1.0.0}" > "$PROV_STATE_DIR/version"
app_start
prov_log "app ${PROV_VERSION:-1.0.0} started (pid $(cat "$PIDFILE"))"
