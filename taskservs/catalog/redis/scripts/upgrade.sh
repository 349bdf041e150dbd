# Installs the redis-server package of PROV_VERSION, then restarts prov's instance.
prov_apt_install redis-server "$PROV_VERSION"
redis_start
