# Shared by the coredns scripts (prepended by prov after its prelude).
CONF="$PROV_CONF_DIR/Corefile"
PID="$PROV_STATE_DIR/coredns.pid"
LOG="$PROV_STATE_DIR/coredns.log"
BIN=/usr/local/bin/coredns
UNIT=prov-coredns

coredns_want() { [ -n "$PROV_VERSION" ] && [ "$PROV_VERSION" != latest ] && echo "$PROV_VERSION" || echo 1.11.3; }

coredns_binary() {
  local v="$1" arch
  if [ -x "$BIN" ] && "$BIN" -version 2>/dev/null | grep -q "CoreDNS-$v\$"; then return 0; fi
  prov_apt_install curl
  arch=$(dpkg --print-architecture)
  curl -fsSL -o /tmp/coredns.tgz "https://github.com/coredns/coredns/releases/download/v$v/coredns_${v}_linux_$arch.tgz"
  tar -xzf /tmp/coredns.tgz -C /usr/local/bin coredns
  rm -f /tmp/coredns.tgz
}

coredns_running() {
  if prov_has_systemd; then systemctl is-active --quiet "$UNIT"; else prov_pid_alive "$PID"; fi
}

coredns_start() {
  mkdir -p "$PROV_STATE_DIR"
  if prov_has_systemd; then
    cat > /etc/systemd/system/$UNIT.service <<UNIT
[Unit]
Description=CoreDNS (managed by prov, $PROV_ADDRESS)
After=network.target
[Service]
ExecStart=$BIN -conf $CONF
Restart=on-failure
AmbientCapabilities=CAP_NET_BIND_SERVICE
[Install]
WantedBy=multi-user.target
UNIT
    systemctl daemon-reload
    systemctl enable "$UNIT" >/dev/null 2>&1
    systemctl restart "$UNIT"
  else
    prov_stop_pid "$PID"
    nohup setsid "$BIN" -conf "$CONF" >>"$LOG" 2>&1 </dev/null &
    echo $! > "$PID"
    sleep 0.5
    prov_pid_alive "$PID" || { tail -n 20 "$LOG" >&2; echo "coredns did not start" >&2; exit 1; }
  fi
}

coredns_stop() {
  if prov_has_systemd; then
    systemctl disable --now "$UNIT" >/dev/null 2>&1 || true
    rm -f /etc/systemd/system/$UNIT.service
    systemctl daemon-reload
  else
    prov_stop_pid "$PID"
  fi
}
