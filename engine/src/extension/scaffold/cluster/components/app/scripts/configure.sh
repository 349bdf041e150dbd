# The new configuration file is in place: restart with it.
app_start
