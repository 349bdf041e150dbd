# Removes Cilium from the cluster and the CLI.
if command -v cilium >/dev/null 2>&1 && [ -f "$KUBECONFIG" ]; then cilium uninstall >&2 || true; fi
rm -f /usr/local/bin/cilium
rm -rf "$PROV_CONF_DIR"
