# Stops git daemon and removes the repositories and configuration; the packages stay.
prov_stop_pid "$PID"
rm -rf "$PROV_CONF_DIR" "$PROV_STATE_DIR"
