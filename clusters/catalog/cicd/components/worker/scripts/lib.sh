# Shared by the worker scripts (prepended by prov after its prelude).
WORKER="$PROV_STATE_DIR/worker"
PID="$WORKER/twistd.pid"
NAME="worker-$(printf '%s' "$PROV_SETTING_COMPONENT" | sed -n 's/.*"replica":\([0-9]*\).*/\1/p')"
MASTER_HOST="$PROV_SETTING_MASTER"
if [ -z "$MASTER_HOST" ]; then
  MASTER_HOST="$(printf '%s' "$PROV_SETTING_CLUSTER" | sed -n 's/.*"hosts":\["\([^"]*\)".*/\1/p')"
fi

worker_start() {
  if prov_pid_alive "$PID"; then buildbot-worker stop "$WORKER" >&2 || prov_stop_pid "$PID"; fi
  rm -rf "$WORKER/buildbot.tac"
  mkdir -p "$WORKER"
  buildbot-worker create-worker -r "$WORKER" "$MASTER_HOST:$PROV_SETTING_PB_PORT" "$NAME" "$PROV_SETTING_PASSWORD" >&2
  : > "$WORKER/twistd.log"
  buildbot-worker start "$WORKER" >&2 || { tail -n 30 "$WORKER/twistd.log" >&2; echo "buildbot worker did not start" >&2; exit 1; }
}

# The worker reached its master (the health check).
worker_connected() {
  grep -q "worker is ready" "$WORKER/twistd.log" 2>/dev/null || { echo "$NAME has not connected to $MASTER_HOST:$PROV_SETTING_PB_PORT yet" >&2; return 1; }
}
