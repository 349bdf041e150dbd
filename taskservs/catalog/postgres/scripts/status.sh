# Exit 0: running, 3: installed but stopped, 4: not installed. Prints version= (major).
command -v pg_lsclusters >/dev/null 2>&1 && pg_exists || exit 4
echo "version=$(pg_major)"
if pg_running; then exit 0; else exit 3; fi
