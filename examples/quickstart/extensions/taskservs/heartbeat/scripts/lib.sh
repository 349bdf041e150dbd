# Shared by every heartbeat script (prov prepends it).
PIDFILE="$PROV_STATE_DIR/heartbeat.pid"
CONF="$PROV_CONF_DIR/heartbeat.conf"
hb_start() {
    prov_stop_pid "$PIDFILE" || true
    mkdir -p "$PROV_STATE_DIR"
    rm -f "$PROV_STATE_DIR/beat"
    # shellcheck disable=SC1090
    . "$CONF"
    nohup bash -c 'while :; do echo "$(date +%s) $1" > "$2.tmp" && mv "$2.tmp" "$2"; sleep "$3"; done' \
        heartbeat "$PROV_SETTING_LABEL" "$PROV_STATE_DIR/beat" "$INTERVAL" >/dev/null 2>&1 &
    echo $! > "$PIDFILE"
}
