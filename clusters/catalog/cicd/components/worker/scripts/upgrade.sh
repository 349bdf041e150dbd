# Installs buildbot-worker of PROV_VERSION, then restarts the worker.
prov_apt_install buildbot-worker "$PROV_VERSION"
worker_start
