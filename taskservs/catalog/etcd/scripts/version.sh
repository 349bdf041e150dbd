# The installed upstream version of etcd-server (nothing when not installed).
prov_pkg_version etcd-server || true
