# Exit 0: running, 3: deployed but stopped, 4: not deployed. Prints version=.
if ! command -v buildbot-worker >/dev/null 2>&1 || [ ! -f "$WORKER/buildbot.tac" ]; then exit 4; fi
echo "version=$(prov_pkg_version buildbot-worker)"
if prov_pid_alive "$PID"; then exit 0; else exit 3; fi
