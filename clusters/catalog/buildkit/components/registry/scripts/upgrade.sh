# Installs the docker-registry package of PROV_VERSION, then restarts the registry.
prov_apt_install docker-registry "$PROV_VERSION"
registry_start
