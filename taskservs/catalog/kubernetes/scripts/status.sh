# Exit 0: kubelet running, 3: installed but stopped, 4: not installed. Prints version=.
command -v kubeadm >/dev/null 2>&1 || exit 4
echo "version=$(prov_pkg_version kubeadm)"
if prov_has_systemd && systemctl is-active --quiet kubelet; then exit 0; else exit 3; fi
