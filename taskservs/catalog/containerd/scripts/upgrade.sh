# Installs the containerd package of PROV_VERSION, then restarts it.
prov_apt_install containerd "$PROV_VERSION"
containerd_start
