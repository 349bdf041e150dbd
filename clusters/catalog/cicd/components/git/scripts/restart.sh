# Restarts git daemon.
git_start
