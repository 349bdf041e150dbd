# Installs BuildKit PROV_VERSION from its release archive (checked against settings.sha256) and
# starts buildkitd with the containerd worker.
buildkit_fetch
buildkit_start
prov_log "buildkitd $(cat "$DIR/VERSION") listening on unix://$SOCK_DIR/buildkitd.sock"
