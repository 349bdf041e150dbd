# Exit 0: present ("running"), 4: not installed.
if [ -s "$PROV_ROOT/etc/motd" ]; then echo "version=${PROV_VERSION:-1.0.0}"; exit 0; fi
exit 4
