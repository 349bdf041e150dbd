# Removes the images, storage, configuration and wrapper; the package stays unless remove_package.
if [ -x "$WRAPPER" ]; then "$WRAPPER" rmi --all --force >/dev/null 2>&1 || true; fi
rm -rf "$STORE" "$PROV_ROOT/run/prov/buildah" "$PROV_CONF_DIR" "$PROV_STATE_DIR" "$WRAPPER"
if [ "$PROV_SETTING_REMOVE_PACKAGE" = true ]; then
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -q buildah >&2
fi
