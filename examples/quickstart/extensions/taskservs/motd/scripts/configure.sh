# The new /etc/motd is uploaded before this runs; nothing to restart.
prov_log "motd now: $(head -n1 "$PROV_ROOT/etc/motd")"
