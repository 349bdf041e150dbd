# Installs buildbot of PROV_VERSION, then restarts the master.
prov_apt_install buildbot "$PROV_VERSION"
buildbot_start
