# The new configuration is in place: restart the member with it (the data directory stays).
etcd_start
