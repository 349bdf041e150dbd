# Restarts prov's containerd.
containerd_start
