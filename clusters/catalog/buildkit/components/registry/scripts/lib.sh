# Shared by the registry scripts (prepended by prov after its prelude).
CONF="$PROV_CONF_DIR/config.yml"
PID="$PROV_STATE_DIR/registry.pid"
LOG="$PROV_STATE_DIR/registry.log"

registry_start() {
  mkdir -p "$PROV_STATE_DIR"
  if [ "$PROV_SETTING_STORAGE_DRIVER" = filesystem ]; then mkdir -p "$PROV_ROOT$PROV_SETTING_STORAGE_PATH"; fi
  prov_stop_pid "$PID"
  nohup setsid /usr/bin/docker-registry serve "$CONF" >>"$LOG" 2>&1 </dev/null &
  echo $! > "$PID"
  sleep 0.3
  prov_pid_alive "$PID" || { tail -n 20 "$LOG" >&2; echo "docker-registry did not start" >&2; exit 1; }
}
