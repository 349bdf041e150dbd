# buildbot's www "base" application without the web UI (Debian 12 packages no buildbot-www): the
# REST API at /api/v2 is the master's own; this only gives it a root to hang from.
from buildbot.www.plugin import Application

ep = Application(__name__, "prov: buildbot REST API without the web UI", ui=False)
