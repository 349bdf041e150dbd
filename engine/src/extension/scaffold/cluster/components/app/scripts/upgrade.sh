# Switches to $PROV_VERSION and restarts.
echo "$PROV_VERSION" > "$PROV_STATE_DIR/version"
app_start
prov_log "app upgraded to $PROV_VERSION"
