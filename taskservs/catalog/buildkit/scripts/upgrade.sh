# Installs the release archive of PROV_VERSION, then restarts buildkitd.
buildkit_fetch
buildkit_start
