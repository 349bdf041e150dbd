# Shared by the kubernetes scripts (prepended by prov after its prelude).
CONF="$PROV_CONF_DIR/kubeadm.yaml"

k8s_need_systemd() {
  prov_has_systemd || { echo "kubernetes needs systemd: kubelet runs as a systemd service" >&2; exit 1; }
}

# Adds pkgs.k8s.io for the minor version of $1 (default: the newest of versions.txt) and
# installs kubeadm, kubelet and kubectl at that version.
k8s_packages() {
  local v="${1:-}" minor
  [ -n "$v" ] && [ "$v" != latest ] || v=1.31.2
  minor=$(echo "$v" | cut -d. -f1,2)
  prov_apt_install ca-certificates
  prov_apt_install curl
  prov_apt_install gpg
  install -d -m 0755 /etc/apt/keyrings
  curl -fsSL "https://pkgs.k8s.io/core:/stable:/v$minor/deb/Release.key" | gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg
  echo "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v$minor/deb/ /" > /etc/apt/sources.list.d/kubernetes.list
  apt-get update -q >&2
  apt-mark unhold kubelet kubeadm kubectl >/dev/null 2>&1 || true
  prov_apt_install kubelet "$v"
  prov_apt_install kubeadm "$v"
  prov_apt_install kubectl "$v"
  apt-mark hold kubelet kubeadm kubectl >/dev/null
}

k8s_kernel() {
  modprobe br_netfilter 2>/dev/null || true
  cat > /etc/sysctl.d/99-prov-kubernetes.conf <<SYSCTL
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
net.ipv4.ip_forward = 1
SYSCTL
  sysctl --system >/dev/null 2>&1 || true
  swapoff -a || true
}
