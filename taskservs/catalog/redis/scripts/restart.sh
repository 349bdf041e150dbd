# Restarts prov's instance.
redis_start
prov_log "redis restarted with the new configuration"
