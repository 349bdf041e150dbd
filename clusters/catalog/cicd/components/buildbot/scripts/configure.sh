# New master.cfg: restart the master with it.
buildbot_start
