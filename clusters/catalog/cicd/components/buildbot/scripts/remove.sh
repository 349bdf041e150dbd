# Stops the master and removes its directory (database, logs) and configuration; the package stays.
if prov_pid_alive "$PID"; then buildbot stop "$MASTER" >&2 || true; fi
prov_stop_pid "$PID"
rm -rf "$PROV_CONF_DIR" "$PROV_STATE_DIR"
