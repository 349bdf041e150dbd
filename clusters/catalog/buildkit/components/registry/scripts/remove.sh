# Stops the registry and removes its configuration, state and blobs; the package stays.
prov_stop_pid "$PID"
rm -rf "$PROV_CONF_DIR" "$PROV_STATE_DIR"
if [ "$PROV_SETTING_STORAGE_DRIVER" = filesystem ]; then rm -rf "$PROV_ROOT$PROV_SETTING_STORAGE_PATH"; fi
