# The new redis.conf is in place: restart prov's instance with it.
redis_start
prov_log "redis restarted with the new configuration"
