# Shared by the buildah scripts (prepended by prov after its prelude).
WRAPPER="$PROV_ROOT/usr/local/bin/prov-buildah"
STORE="$PROV_STATE_DIR/storage"
