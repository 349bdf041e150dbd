# Installs buildbot (the master) and starts it with the rendered master.cfg.
prov_apt_install buildbot "$PROV_VERSION"
prov_apt_install git
buildbot_start
prov_log "buildbot $(prov_pkg_version buildbot) master, REST API at http://$PROV_SERVER_ADDRESS:$PROV_SETTING_WWW_PORT/api/v2"
