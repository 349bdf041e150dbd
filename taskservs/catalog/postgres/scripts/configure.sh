# New configuration: restart the cluster with it, then apply roles and databases.
pg_ensure_cluster
pg_restart
for _ in $(seq 1 50); do pg_running && break; sleep 0.2; done
pg_apply_sql
