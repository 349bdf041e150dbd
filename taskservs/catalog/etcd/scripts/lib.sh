# Shared by the etcd scripts (prepended by prov after its prelude).
CONF="$PROV_CONF_DIR/etcd.conf.yml"
PID="$PROV_STATE_DIR/etcd.pid"
LOG="$PROV_STATE_DIR/etcd.log"
UNIT=prov-etcd

etcd_running() {
  if prov_has_systemd; then systemctl is-active --quiet "$UNIT"; else prov_pid_alive "$PID"; fi
}

etcd_start() {
  mkdir -p "$PROV_STATE_DIR/data"
  chmod 700 "$PROV_STATE_DIR/data"
  if prov_has_systemd; then
    cat > /etc/systemd/system/$UNIT.service <<UNIT
[Unit]
Description=etcd (managed by prov, $PROV_ADDRESS)
After=network-online.target
[Service]
Type=notify
ExecStart=/usr/bin/etcd --config-file $CONF
Restart=on-failure
LimitNOFILE=65536
[Install]
WantedBy=multi-user.target
UNIT
    systemctl daemon-reload
    systemctl enable "$UNIT" >/dev/null 2>&1
    systemctl restart "$UNIT"
  else
    prov_stop_pid "$PID"
    # Its own session, output to a log: the daemon outlives this script and holds no pipe.
    nohup setsid /usr/bin/etcd --config-file "$CONF" >>"$LOG" 2>&1 </dev/null &
    echo $! > "$PID"
    sleep 0.5
    prov_pid_alive "$PID" || { tail -n 20 "$LOG" >&2; echo "etcd did not start" >&2; exit 1; }
  fi
}

etcd_stop() {
  if prov_has_systemd; then
    systemctl disable --now "$UNIT" >/dev/null 2>&1 || true
    rm -f /etc/systemd/system/$UNIT.service
    systemctl daemon-reload
  else
    prov_stop_pid "$PID"
  fi
}
