# The installed upstream version of redis-server (nothing when not installed).
prov_pkg_version redis-server || true
