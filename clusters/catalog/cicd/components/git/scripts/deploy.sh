# Installs git daemon (git-daemon-sysvinit; its init script stays disabled) and serves the
# repositories.
prov_apt_install git-daemon-sysvinit "$PROV_VERSION"
git_start
prov_log "git daemon on git://$PROV_SERVER_ADDRESS:$PROV_SETTING_PORT/ serving $(tr '\n' ' ' < "$PROV_CONF_DIR/repositories")"
