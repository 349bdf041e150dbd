# Installs buildbot-worker (and git for checkouts) and starts the worker.
prov_apt_install buildbot-worker "$PROV_VERSION"
prov_apt_install git
worker_start
prov_log "$NAME connecting to $MASTER_HOST:$PROV_SETTING_PB_PORT"
