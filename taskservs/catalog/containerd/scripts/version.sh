# The installed upstream version of containerd.
prov_pkg_version containerd || true
