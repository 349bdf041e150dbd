# Installs git-daemon-sysvinit of PROV_VERSION, then restarts git daemon.
prov_apt_install git-daemon-sysvinit "$PROV_VERSION"
git_start
