# Shared by the git scripts (prepended by prov after its prelude).
BASE="$PROV_STATE_DIR/repositories"
PID="$PROV_STATE_DIR/git-daemon.pid"
LOG="$PROV_STATE_DIR/git-daemon.log"
# Debian's git (git-daemon-sysvinit brings it); /usr/local may hold another build without the daemon.
GIT=/usr/bin/git

git_start() {
  mkdir -p "$BASE"
  while read -r repo; do
    [ -n "$repo" ] || continue
    [ -d "$BASE/$repo.git" ] || "$GIT" init -q --bare -b "$PROV_SETTING_DEFAULT_BRANCH" "$BASE/$repo.git"
  done < "$PROV_CONF_DIR/repositories"
  prov_stop_pid "$PID"
  "$GIT" daemon --reuseaddr --base-path="$BASE" --export-all --enable=receive-pack \
    --listen="$PROV_SERVER_ADDRESS" --port="$PROV_SETTING_PORT" \
    --detach --pid-file="$PID" --log-destination=stderr 2>>"$LOG"
  for _ in $(seq 1 30); do prov_pid_alive "$PID" && break; sleep 0.1; done
  prov_pid_alive "$PID" || { tail -n 20 "$LOG" >&2; echo "git daemon did not start" >&2; exit 1; }
}
