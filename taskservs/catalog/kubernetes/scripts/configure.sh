# Applies changed settings: the control plane's kubeadm phases that read the configuration.
k8s_need_systemd
if [ "$PROV_SETTING_ROLE" != worker ]; then
  kubeadm init phase control-plane all --config "$CONF" >&2
  kubeadm init phase upload-config kubeadm --config "$CONF" >&2
fi
systemctl restart kubelet
