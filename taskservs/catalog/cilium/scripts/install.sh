# Installs the cilium CLI and Cilium into the cluster (idempotent: upgrade when present).
[ -f "$KUBECONFIG" ] || { echo "cilium needs a Kubernetes control plane on this server ($KUBECONFIG)" >&2; exit 1; }
cilium_cli
if cilium status >/dev/null 2>&1 && kubectl -n kube-system get ds cilium >/dev/null 2>&1; then
  cilium upgrade --version "$(cilium_version)" --values "$VALUES" >&2
else
  cilium install --version "$(cilium_version)" --values "$VALUES" >&2
fi
