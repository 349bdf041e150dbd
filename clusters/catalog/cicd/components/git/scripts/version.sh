# The installed upstream version of git daemon.
prov_pkg_version git-daemon-sysvinit || true
