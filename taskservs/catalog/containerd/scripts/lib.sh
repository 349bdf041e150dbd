# Shared by the containerd scripts (prepended by prov after its prelude).
CONF="$PROV_CONF_DIR/config.toml"
PID="$PROV_STATE_DIR/containerd.pid"
LOG="$PROV_STATE_DIR/containerd.log"
UNIT=prov-containerd

containerd_running() {
  if prov_has_systemd; then systemctl is-active --quiet "$UNIT"; else prov_pid_alive "$PID"; fi
}

containerd_start() {
  mkdir -p "$PROV_STATE_DIR" "$PROV_ROOT/run/prov/containerd"
  if prov_has_systemd; then
    cat > /etc/systemd/system/$UNIT.service <<UNIT
[Unit]
Description=containerd (managed by prov, $PROV_ADDRESS)
After=network.target local-fs.target
[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/bin/containerd --config $CONF
Type=notify
Delegate=yes
KillMode=process
Restart=always
LimitNOFILE=infinity
[Install]
WantedBy=multi-user.target
UNIT
    systemctl daemon-reload
    systemctl enable "$UNIT" >/dev/null 2>&1
    systemctl restart "$UNIT"
  else
    prov_stop_pid "$PID"
    nohup setsid /usr/bin/containerd --config "$CONF" >>"$LOG" 2>&1 </dev/null &
    echo $! > "$PID"
    sleep 0.5
    prov_pid_alive "$PID" || { tail -n 20 "$LOG" >&2; echo "containerd did not start" >&2; exit 1; }
  fi
}

containerd_stop() {
  if prov_has_systemd; then
    systemctl disable --now "$UNIT" >/dev/null 2>&1 || true
    rm -f /etc/systemd/system/$UNIT.service
    systemctl daemon-reload
  else
    prov_stop_pid "$PID"
  fi
}
