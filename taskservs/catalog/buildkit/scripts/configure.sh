# New configuration: restart buildkitd with it.
buildkit_start
