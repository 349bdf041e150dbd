# The new configuration file is in place: restart with it.
svc_start
prov_log "@NAME@ restarted (pid $(cat "$PIDFILE"))"
