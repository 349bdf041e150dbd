# Shared by the buildkit scripts (prepended by prov after its prelude).
CONF="$PROV_CONF_DIR/buildkitd.toml"
DIR="$PROV_ROOT/opt/prov/buildkit"
PID="$PROV_STATE_DIR/buildkitd.pid"
LOG="$PROV_STATE_DIR/buildkitd.log"
SOCK_DIR="$PROV_ROOT/run/prov/buildkit"

# Downloads the release archive of PROV_VERSION, checks its SHA-256 and unpacks it into DIR.
buildkit_fetch() {
  local v="${PROV_VERSION#v}" url sum tmp
  [ -n "$v" ] && [ "$v" != latest ] || { echo "buildkit needs a version (one of schemas/version.ncl's)" >&2; return 1; }
  [ -n "$PROV_SETTING_SHA256" ] || { echo "settings.sha256 is empty: set it to the SHA-256 of the release archive (nothing unverified is installed)" >&2; return 1; }
  url="${PROV_SETTING_URL//\{version\}/$v}"
  tmp="$(mktemp -d)"
  prov_log "downloading $url"
  if ! curl -fsSL --retry 2 -o "$tmp/buildkit.tar.gz" "$url"; then
    rm -rf "$tmp"
    echo "cannot download $url (BuildKit is not in the distribution's archive; set settings.url to a mirror this server can reach)" >&2
    return 1
  fi
  sum="$(sha256sum "$tmp/buildkit.tar.gz" | cut -d' ' -f1)"
  if [ "$sum" != "$PROV_SETTING_SHA256" ]; then
    rm -rf "$tmp"
    echo "checksum mismatch for $url: got sha256 $sum, settings.sha256 is $PROV_SETTING_SHA256; nothing installed" >&2
    return 1
  fi
  mkdir -p "$tmp/x"
  tar -xzf "$tmp/buildkit.tar.gz" -C "$tmp/x"
  rm -rf "$DIR.new" && mkdir -p "$DIR.new" && cp -a "$tmp/x/bin" "$DIR.new/bin"
  echo "$v" > "$DIR.new/VERSION"
  rm -rf "$DIR" "$tmp" && mv "$DIR.new" "$DIR"
}

buildkit_start() {
  mkdir -p "$PROV_STATE_DIR" "$SOCK_DIR"
  prov_stop_pid "$PID"
  nohup setsid "$DIR/bin/buildkitd" --config "$CONF" >>"$LOG" 2>&1 </dev/null &
  echo $! > "$PID"
  sleep 0.5
  prov_pid_alive "$PID" || { tail -n 20 "$LOG" >&2; echo "buildkitd did not start" >&2; exit 1; }
}
