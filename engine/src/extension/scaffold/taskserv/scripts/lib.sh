# Shared by every @NAME@ script (prov prepends it after its prelude: prov_log, prov_pid_alive,
# prov_stop_pid, ...).
PIDFILE="$PROV_STATE_DIR/@NAME@.pid"
CONF="$PROV_CONF_DIR/@NAME@.conf"

# (Re)starts the service with the current configuration.
svc_start() {
    prov_stop_pid "$PIDFILE" || true
    mkdir -p "$PROV_STATE_DIR"
    rm -f "$PROV_STATE_DIR/beat"
    # shellcheck disable=SC1090
    . "$CONF"
    nohup bash -c 'while :; do echo "$(date +%s) $1" > "$2.tmp" && mv "$2.tmp" "$2"; sleep "$3"; done' \
        @NAME@ "$MESSAGE" "$PROV_STATE_DIR/beat" "$INTERVAL" >/dev/null 2>&1 &
    echo $! > "$PIDFILE"
}
