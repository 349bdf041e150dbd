# The installed upstream version of buildbot.
prov_pkg_version buildbot || true
