# Stops the worker and removes its directory; the package stays.
if prov_pid_alive "$PID"; then buildbot-worker stop "$WORKER" >&2 || true; fi
prov_stop_pid "$PID"
rm -rf "$PROV_CONF_DIR" "$PROV_STATE_DIR"
