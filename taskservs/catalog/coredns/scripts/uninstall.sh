# Stops CoreDNS and removes its binary, configuration and state.
coredns_stop
rm -rf "$PROV_CONF_DIR" "$PROV_STATE_DIR" "$BIN"
