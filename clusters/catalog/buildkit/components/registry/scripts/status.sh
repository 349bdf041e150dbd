# Exit 0: running, 3: deployed but stopped, 4: not deployed. Prints version=.
if [ ! -x /usr/bin/docker-registry ] || [ ! -f "$CONF" ]; then exit 4; fi
echo "version=$(prov_pkg_version docker-registry)"
if prov_pid_alive "$PID"; then exit 0; else exit 3; fi
