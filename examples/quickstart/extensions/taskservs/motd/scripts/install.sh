# The rendered /etc/motd is already uploaded; installing is checking it landed.
test -s "$PROV_ROOT/etc/motd"
prov_log "motd installed: $(head -n1 "$PROV_ROOT/etc/motd")"
