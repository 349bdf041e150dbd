# Exit 0: running, 3: installed but stopped, 4: not installed. Prints version=.
if [ ! -x /usr/bin/containerd ] || [ ! -f "$CONF" ]; then exit 4; fi
echo "version=$(prov_pkg_version containerd)"
if containerd_running; then exit 0; else exit 3; fi
