rm -f "$PROV_ROOT/etc/motd"
