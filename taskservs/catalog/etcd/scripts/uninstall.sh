# Stops the member and removes its configuration and data; packages stay unless remove_package.
etcd_stop
rm -rf "$PROV_CONF_DIR" "$PROV_STATE_DIR"
if [ "$PROV_SETTING_REMOVE_PACKAGE" = true ]; then
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -q etcd-server etcd-client >&2
fi
