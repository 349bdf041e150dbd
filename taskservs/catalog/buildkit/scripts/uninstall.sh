# Stops buildkitd and removes its binaries, configuration, cache and socket.
prov_stop_pid "$PID"
rm -rf "$DIR" "$DIR.new" "$PROV_CONF_DIR" "$PROV_STATE_DIR" "$SOCK_DIR"
