cat "$PROV_STATE_DIR/version"
