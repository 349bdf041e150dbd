# Restarts prov's cluster.
pg_restart
