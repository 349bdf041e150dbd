# Restarts the buildbot master.
buildbot_start
