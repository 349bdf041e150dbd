# New configuration: restart containerd with it.
containerd_start
