# Exit 0: agents ready, 3: installed but not ready, 4: not installed. Prints version=.
[ -f "$KUBECONFIG" ] && command -v kubectl >/dev/null 2>&1 || exit 4
kubectl -n kube-system get ds cilium >/dev/null 2>&1 || exit 4
img=$(kubectl -n kube-system get ds cilium -o jsonpath='{.spec.template.spec.containers[0].image}')
v=${img##*:v}; echo "version=${v%%@*}"
ready=$(kubectl -n kube-system get ds cilium -o jsonpath='{.status.numberReady}')
[ "${ready:-0}" -gt 0 ] && exit 0 || exit 3
