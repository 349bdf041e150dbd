# Exit 0: installed and configured (buildah has no daemon), 4: not installed. Prints version=.
if [ ! -x /usr/bin/buildah ] || [ ! -x "$WRAPPER" ]; then exit 4; fi
echo "version=$(prov_pkg_version buildah)"
exit 0
