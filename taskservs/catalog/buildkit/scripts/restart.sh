# Restarts prov's buildkitd.
buildkit_start
