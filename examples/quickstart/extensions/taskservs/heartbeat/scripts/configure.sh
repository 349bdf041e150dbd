# The new heartbeat.conf is in place: restart with it.
hb_start
prov_log "heartbeat started (pid $(cat "$PIDFILE"))"
