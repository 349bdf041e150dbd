# New configuration: buildah reads it on its next run (it is no daemon).
mkdir -p "$STORE" "$PROV_ROOT/run/prov/buildah"
