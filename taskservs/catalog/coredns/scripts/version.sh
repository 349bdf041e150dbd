# The installed CoreDNS version.
[ -x "$BIN" ] && "$BIN" -version 2>/dev/null | sed -n "s/^CoreDNS-//p" | head -n1 || true
