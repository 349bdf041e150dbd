# Stops prov's instance and removes its configuration and data; the package stays unless
# settings.remove_package (other instances on the host may use it).
redis_stop
rm -rf "$PROV_CONF_DIR" "$PROV_STATE_DIR"
if [ "$PROV_SETTING_REMOVE_PACKAGE" = true ]; then
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -q redis-server >&2
fi
