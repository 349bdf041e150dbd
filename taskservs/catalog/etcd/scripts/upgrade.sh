# Installs the etcd packages of PROV_VERSION, then restarts the member.
prov_apt_install etcd-server "$PROV_VERSION"
prov_apt_install etcd-client "$PROV_VERSION"
etcd_start
