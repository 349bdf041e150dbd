# Exit 0: running, 3: installed but stopped, 4: not installed.
[ -f "$CONF" ] || exit 4
echo "version=${PROV_VERSION:-1.0.0}"
if prov_pid_alive "$PIDFILE"; then exit 0; else exit 3; fi
