# The installed upstream version of buildah.
prov_pkg_version buildah || true
