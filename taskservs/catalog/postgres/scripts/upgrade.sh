# A new major version: installs it and moves the cluster with pg_upgradecluster.
old=$(pg_major)
prov_apt_install "postgresql-$PROV_VERSION"
if [ "$old" != "$PROV_VERSION" ] && [ -d "/etc/postgresql/$old/$NAME" ]; then
  pg_upgradecluster -v "$PROV_VERSION" "$old" "$NAME" >&2
  pg_dropcluster "$old" "$NAME" >&2
fi
pg_restart
