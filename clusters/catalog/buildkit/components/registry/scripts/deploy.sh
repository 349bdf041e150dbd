# Installs the distribution's registry (docker-registry, CNCF distribution) at PROV_VERSION when
# pinned and starts prov's instance with the rendered configuration.
prov_apt_install docker-registry "$PROV_VERSION"
registry_start
prov_log "registry $(prov_pkg_version docker-registry) on $PROV_SERVER_ADDRESS:$PROV_SETTING_PORT"
