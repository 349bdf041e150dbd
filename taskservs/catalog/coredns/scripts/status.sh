# Exit 0: running, 3: installed but stopped, 4: not installed. Prints version=.
[ -x "$BIN" ] && [ -f "$CONF" ] || exit 4
echo "version=$("$BIN" -version 2>/dev/null | sed -n 's/^CoreDNS-//p' | head -n1)"
if coredns_running; then exit 0; else exit 3; fi
