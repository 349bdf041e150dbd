# Shared by the redis scripts (prepended by prov after its prelude).
CONF="$PROV_CONF_DIR/redis.conf"
PID="$PROV_STATE_DIR/redis.pid"
UNIT=prov-redis

redis_running() {
  if prov_has_systemd; then systemctl is-active --quiet "$UNIT"; else prov_pid_alive "$PID"; fi
}

# Starts (or restarts) prov's instance with the current configuration.
redis_start() {
  mkdir -p "$PROV_STATE_DIR/data"
  if prov_has_systemd; then
    chown -R redis:redis "$PROV_STATE_DIR" 2>/dev/null || true
    chgrp redis "$CONF" 2>/dev/null || true
    cat > /etc/systemd/system/$UNIT.service <<UNIT
[Unit]
Description=Redis (managed by prov, $PROV_ADDRESS)
After=network.target
[Service]
User=redis
Group=redis
ExecStart=/usr/bin/redis-server $CONF --daemonize no --supervised systemd
Type=notify
Restart=on-failure
[Install]
WantedBy=multi-user.target
UNIT
    systemctl daemon-reload
    systemctl enable "$UNIT" >/dev/null 2>&1
    systemctl restart "$UNIT"
  else
    prov_stop_pid "$PID"
    redis-server "$CONF" --daemonize yes
    for _ in $(seq 1 50); do prov_pid_alive "$PID" && break; sleep 0.1; done
    prov_pid_alive "$PID" || { tail -n 20 "$PROV_STATE_DIR/redis.log" >&2 2>/dev/null; echo "redis-server did not start" >&2; exit 1; }
  fi
}

redis_stop() {
  if prov_has_systemd; then
    systemctl disable --now "$UNIT" >/dev/null 2>&1 || true
    rm -f /etc/systemd/system/$UNIT.service
    systemctl daemon-reload
  else
    prov_stop_pid "$PID"
  fi
}
