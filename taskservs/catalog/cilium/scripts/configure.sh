# New values: apply them to the release.
cilium_cli
cilium upgrade --version "$(cilium_version)" --values "$VALUES" --reuse-values=false >&2
