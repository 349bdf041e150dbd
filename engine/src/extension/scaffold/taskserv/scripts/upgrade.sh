# Switches to $PROV_VERSION and restarts.
echo "$PROV_VERSION" > "$PROV_STATE_DIR/version"
svc_start
prov_log "@NAME@ upgraded to $PROV_VERSION"
