# Restarts prov's etcd member.
etcd_start
