# Restarts the kubelet (static control-plane pods come back with it).
k8s_need_systemd
systemctl restart kubelet
