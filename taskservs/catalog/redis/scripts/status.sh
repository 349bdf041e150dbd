# Exit 0: running, 3: installed but stopped, 4: not installed. Prints version=.
if ! command -v redis-server >/dev/null 2>&1 || [ ! -f "$CONF" ]; then exit 4; fi
echo "version=$(prov_pkg_version redis-server)"
if redis_running; then exit 0; else exit 3; fi
