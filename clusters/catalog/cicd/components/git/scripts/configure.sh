# New configuration (repositories): create them and restart git daemon.
git_start
