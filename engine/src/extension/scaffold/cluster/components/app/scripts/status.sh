# Exit 0: running, 3: stopped, 4: not deployed; prints version=.
[ -f "$PROV_STATE_DIR/version" ] || exit 4
echo "version=$(cat "$PROV_STATE_DIR/version")"
if prov_pid_alive "$PIDFILE"; then exit 0; else exit 3; fi
