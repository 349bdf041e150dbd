# Shared by the cilium scripts (prepended by prov after its prelude).
export KUBECONFIG=/etc/kubernetes/admin.conf
VALUES="$PROV_CONF_DIR/values.yaml"

# The cilium CLI of settings.cli_version in /usr/local/bin.
cilium_cli() {
  local want="$PROV_SETTING_CLI_VERSION" arch
  if command -v cilium >/dev/null 2>&1 && cilium version --client 2>/dev/null | grep -q "cilium-cli: v$want "; then return 0; fi
  prov_apt_install curl
  arch=$(dpkg --print-architecture)
  curl -fsSL -o /tmp/cilium.tgz "https://github.com/cilium/cilium-cli/releases/download/v$want/cilium-linux-$arch.tar.gz"
  tar -xzf /tmp/cilium.tgz -C /usr/local/bin cilium
  rm -f /tmp/cilium.tgz
}

cilium_version() { [ -n "$PROV_VERSION" ] && [ "$PROV_VERSION" != latest ] && echo "$PROV_VERSION" || echo 1.16.3; }
