# Installs PostgreSQL (major PROV_VERSION when pinned), creates prov's cluster, starts it.
if [ -n "$PROV_VERSION" ] && [ "$PROV_VERSION" != latest ]; then
  prov_apt_install "postgresql-$PROV_VERSION"
else
  prov_apt_install postgresql
fi
# The package's default cluster is not prov's.
if [ -d "/etc/postgresql/$(pg_major)/main" ] && [ "$NAME" != main ]; then
  pg_dropcluster --stop "$(pg_major)" main >&2 || true
fi
pg_ensure_cluster
pg_restart
for _ in $(seq 1 50); do pg_running && break; sleep 0.2; done
pg_apply_sql
