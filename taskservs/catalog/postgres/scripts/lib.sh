# Shared by the postgres scripts (prepended by prov after its prelude).
NAME="$PROV_SETTING_CLUSTER"
INCLUDE="$PROV_CONF_DIR/prov.conf"

pg_major() { ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n1; }
pg_exists() { [ -n "$(pg_major)" ] && [ -d "/etc/postgresql/$(pg_major)/$NAME" ]; }
pg_running() { pg_lsclusters -h 2>/dev/null | awk -v n="$NAME" '$2 == n && $4 == "online" {f=1} END {exit !f}'; }

# Creates the cluster once (data under PROV_STATE_DIR) and includes prov's configuration.
pg_ensure_cluster() {
  local v; v=$(pg_major)
  if ! pg_exists; then
    mkdir -p "$PROV_STATE_DIR"
    chown postgres:postgres "$PROV_STATE_DIR"
    pg_createcluster "$v" "$NAME" -d "$PROV_STATE_DIR/data" -p "$PROV_SETTING_PORT" >&2
  fi
  chgrp postgres "$PROV_CONF_DIR"/*.conf
  chmod 0640 "$PROV_CONF_DIR"/*.conf
  chmod 0755 "$PROV_CONF_DIR"
  grep -qF "include '$INCLUDE'" "/etc/postgresql/$v/$NAME/postgresql.conf" \
    || echo "include '$INCLUDE'" >> "/etc/postgresql/$v/$NAME/postgresql.conf"
}

pg_restart() {
  local v; v=$(pg_major)
  if prov_has_systemd; then
    systemctl restart "postgresql@$v-$NAME"
  else
    pg_ctlcluster "$v" "$NAME" restart -m fast >&2 || pg_ctlcluster "$v" "$NAME" start >&2
  fi
}

# The postgres role's password and the listed databases (passwords travel on stdin only).
pg_apply_sql() {
  if [ -n "$PROV_SETTING_PASSWORD" ]; then
    printf "ALTER ROLE postgres PASSWORD %s;\n" "$(printf '%s' "$PROV_SETTING_PASSWORD" | sed "s/'/''/g; s/^/'/; s/\$/'/")" \
      | su postgres -c "psql -q -p $PROV_SETTING_PORT -v ON_ERROR_STOP=1" >/dev/null
  fi
  echo "$PROV_SETTINGS" | python3 -c 'import json,sys; [print(d) for d in json.load(sys.stdin).get("databases", [])]' 2>/dev/null | while read -r db; do
    [ -n "$db" ] || continue
    su postgres -c "psql -p $PROV_SETTING_PORT -tAc \"SELECT 1 FROM pg_database WHERE datname = '$db'\"" | grep -q 1 \
      || su postgres -c "createdb -p $PROV_SETTING_PORT '$db'"
  done
}
