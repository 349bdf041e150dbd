# Moves Cilium to PROV_VERSION.
cilium_cli
cilium upgrade --version "$PROV_VERSION" --values "$VALUES" >&2
