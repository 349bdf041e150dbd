# Replaces the binary with release PROV_VERSION and restarts.
coredns_binary "$PROV_VERSION"
coredns_start
