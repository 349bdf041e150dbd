# Exit 0: running, 3: installed but stopped, 4: not installed. Prints version=.
if [ ! -x "$DIR/bin/buildkitd" ] || [ ! -f "$CONF" ]; then exit 4; fi
echo "version=$(cat "$DIR/VERSION" 2>/dev/null)"
if prov_pid_alive "$PID"; then exit 0; else exit 3; fi
