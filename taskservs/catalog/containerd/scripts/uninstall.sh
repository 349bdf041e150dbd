# Stops containerd and removes its configuration and state; the package stays unless remove_package.
containerd_stop
rm -rf "$PROV_CONF_DIR" "$PROV_STATE_DIR" "$PROV_ROOT/run/prov/containerd"
if [ "$PROV_SETTING_REMOVE_PACKAGE" = true ]; then
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -q containerd >&2
fi
