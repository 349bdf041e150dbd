# Installs the buildah package of PROV_VERSION.
prov_apt_install buildah "$PROV_VERSION"
