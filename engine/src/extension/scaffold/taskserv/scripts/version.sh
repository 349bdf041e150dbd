# Prints the installed version.
cat "$PROV_STATE_DIR/version"
