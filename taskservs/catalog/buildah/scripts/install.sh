# Installs buildah (at PROV_VERSION when pinned); prov has rendered its storage and registries
# configuration and the prov-buildah wrapper that uses them.
prov_apt_install buildah "$PROV_VERSION"
mkdir -p "$STORE" "$PROV_ROOT/run/prov/buildah"
prov_log "buildah $(prov_pkg_version buildah) with storage in $STORE"
