# Drops prov's cluster (its data included); the packages stay unless remove_package.
if pg_exists; then pg_dropcluster --stop "$(pg_major)" "$NAME" >&2 || true; fi
rm -rf "$PROV_CONF_DIR" "$PROV_STATE_DIR"
if [ "$PROV_SETTING_REMOVE_PACKAGE" = true ]; then
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -q 'postgresql*' >&2
fi
