# Resets the node and removes the packages and the repository.
if command -v kubeadm >/dev/null 2>&1; then kubeadm reset -f --cri-socket "$PROV_SETTING_CRI_SOCKET" >&2 || true; fi
apt-mark unhold kubelet kubeadm kubectl >/dev/null 2>&1 || true
DEBIAN_FRONTEND=noninteractive apt-get purge -y -q kubelet kubeadm kubectl >&2 || true
rm -f /etc/apt/sources.list.d/kubernetes.list /etc/sysctl.d/99-prov-kubernetes.conf
rm -rf "$PROV_CONF_DIR" /etc/kubernetes
