hb_start
prov_log "heartbeat started (pid $(cat "$PIDFILE"))"
