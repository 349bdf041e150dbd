# Stops this replica and removes everything it left.
prov_stop_pid "$PIDFILE" || true
rm -rf "$PROV_STATE_DIR" "$PROV_CONF_DIR"
