# Restarts the Cilium agents and operator.
kubectl -n kube-system rollout restart ds/cilium deploy/cilium-operator >&2
