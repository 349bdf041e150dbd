# Exit 0: running, 3: deployed but stopped, 4: not deployed. Prints version=.
if ! command -v buildbot >/dev/null 2>&1 || [ ! -f "$MASTER/buildbot.tac" ]; then exit 4; fi
echo "version=$(prov_pkg_version buildbot)"
if prov_pid_alive "$PID"; then exit 0; else exit 3; fi
