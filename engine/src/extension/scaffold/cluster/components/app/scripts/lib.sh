# Shared by every app script (prov prepends it after its prelude).
PIDFILE="$PROV_STATE_DIR/app.pid"
CONF="$PROV_CONF_DIR/app.conf"

# (Re)starts this replica with the current configuration.
app_start() {
    prov_stop_pid "$PIDFILE" || true
    mkdir -p "$PROV_STATE_DIR"
    rm -f "$PROV_STATE_DIR/beat"
    # shellcheck disable=SC1090
    . "$CONF"
    nohup bash -c 'while :; do echo "$(date +%s) $1" > "$2.tmp" && mv "$2.tmp" "$2"; sleep "$3"; done' \
        app "$MESSAGE" "$PROV_STATE_DIR/beat" "$INTERVAL" >/dev/null 2>&1 &
    echo $! > "$PIDFILE"
}
