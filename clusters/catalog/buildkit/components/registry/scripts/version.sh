# The installed upstream version of the registry.
prov_pkg_version docker-registry || true
