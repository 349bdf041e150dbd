# The installed upstream version of buildbot-worker.
prov_pkg_version buildbot-worker || true
