# Shared by the buildbot scripts (prepended by prov after its prelude).
MASTER="$PROV_STATE_DIR/master"
PID="$MASTER/twistd.pid"

buildbot_start() {
  [ -f "$MASTER/buildbot.tac" ] || buildbot create-master -r "$MASTER" >&2
  cp "$PROV_CONF_DIR/master.cfg" "$MASTER/master.cfg"
  if prov_pid_alive "$PID"; then buildbot stop "$MASTER" >&2 || prov_stop_pid "$PID"; fi
  rm -f "$PID"
  buildbot upgrade-master "$MASTER" >/dev/null 2>&1 || true
  PYTHONPATH="$PROV_STATE_DIR/pylib" buildbot start "$MASTER" >&2 \
    || { tail -n 30 "$MASTER/twistd.log" >&2; echo "buildbot master did not start" >&2; exit 1; }
}
