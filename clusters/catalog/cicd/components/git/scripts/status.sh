# Exit 0: serving, 3: deployed but stopped, 4: not deployed. Prints version=.
if [ ! -x "$GIT" ] || [ ! -f "$PROV_CONF_DIR/repositories" ]; then exit 4; fi
echo "version=$(prov_pkg_version git-daemon-sysvinit)"
if prov_pid_alive "$PID"; then exit 0; else exit 3; fi
