# Moves kubeadm/kubelet/kubectl to PROV_VERSION and upgrades the node with kubeadm.
k8s_need_systemd
k8s_packages "$PROV_VERSION"
if [ "$PROV_SETTING_ROLE" = worker ]; then
  kubeadm upgrade node >&2
else
  kubeadm upgrade apply -y "v$PROV_VERSION" >&2
fi
systemctl daemon-reload
systemctl restart kubelet
