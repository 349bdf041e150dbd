# Installs kubeadm/kubelet/kubectl and initialises a control plane (or joins a worker).
k8s_need_systemd
k8s_kernel
k8s_packages "$PROV_VERSION"
systemctl enable --now kubelet >/dev/null 2>&1 || true
if [ "$PROV_SETTING_ROLE" = worker ]; then
  [ -f /etc/kubernetes/kubelet.conf ] && exit 0
  [ -n "$PROV_SETTING_JOIN_COMMAND" ] || { echo "a worker needs settings.join_command" >&2; exit 1; }
  bash -c "$PROV_SETTING_JOIN_COMMAND --cri-socket $PROV_SETTING_CRI_SOCKET" >&2
else
  [ -f /etc/kubernetes/admin.conf ] && exit 0
  kubeadm init --config "$CONF" --upload-certs >&2
fi
