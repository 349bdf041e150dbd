# The installed kubeadm version.
prov_pkg_version kubeadm || true
