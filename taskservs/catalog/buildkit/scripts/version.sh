# The installed BuildKit version.
cat "$DIR/VERSION" 2>/dev/null || true
