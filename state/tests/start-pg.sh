#!/usr/bin/env bash
# Starts (or stops) a throwaway PostgreSQL cluster for prov's tests: a fresh initdb in a temp
# dir, listening on 127.0.0.1 at a free port, password (SCRAM) authentication over TCP, a random
# superuser password. Used by .ci/run and by developers:
#
#   eval "$(state/tests/start-pg.sh start)"     # exports PROV_TEST_PG, PROV_PG_CONN, PROV_PG_DIR
#   cargo test -p prov-state
#   state/tests/start-pg.sh stop "$PROV_PG_DIR"
#
# Only the export lines go to stdout; progress and errors go to stderr. PostgreSQL refuses to run
# as root, so as root the cluster belongs to the `postgres` system user (or `prov-pg`, created
# when neither exists). Needs initdb and pg_ctl on PATH or in /usr/lib/postgresql/*/bin
# (.ci/run installs them with apt-get).
set -euo pipefail

say() { echo "start-pg: $*" >&2; }

pg_bin() {
    if command -v "$1" >/dev/null 2>&1; then
        command -v "$1"
        return
    fi
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -z "$found" ]; then
        say "$1 not found (install PostgreSQL: apt-get install postgresql)"
        exit 1
    fi
    echo "$found"
}

# Runs a command as the cluster's owner.
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u "$owner" -- "$@"
    else
        "$@"
    fi
}

pick_owner() {
    owner=$(id -un)
    if [ "$(id -u)" = 0 ]; then
        if id -u postgres >/dev/null 2>&1; then
            owner=postgres
        else
            owner=prov-pg
            id -u "$owner" >/dev/null 2>&1 ||
                useradd --system --no-create-home --home-dir /nonexistent \
                    --shell /usr/sbin/nologin "$owner"
        fi
    fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
    local initdb pg_ctl dir password port tries
    initdb=$(pg_bin initdb)
    pg_ctl=$(pg_bin pg_ctl)
    pick_owner
    dir=$(mktemp -d "${TMPDIR:-/tmp}/prov-pg.XXXXXX")
    chmod 0700 "$dir"
    password=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
    printf '%s\n' "$password" >"$dir/pwfile"
    if [ "$(id -u)" = 0 ]; then chown -R "$owner" "$dir"; fi

    # Local socket: trust (only the owner can reach the socket dir); TCP: SCRAM passwords, so
    # tests of wrong passwords mean something.
    as_owner "$initdb" -D "$dir/data" -U postgres --pwfile="$dir/pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale --no-sync \
        >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        say "initdb failed"
        exit 1
    }
    rm -f "$dir/pwfile"

    for tries in 1 2 3 4 5 6 7 8 9 10; do
        port=$((20000 + RANDOM % 30000))
        port_in_use "$port" && continue
        if as_owner "$pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" \
            start >/dev/null 2>&1; then
            say "PostgreSQL running on 127.0.0.1:$port (data in $dir, owner $owner)"
            echo "export PROV_PG_DIR='$dir'"
            echo "export PROV_TEST_PG='postgresql://postgres:$password@127.0.0.1:$port/postgres'"
            echo "export PROV_PG_CONN=\"\$PROV_TEST_PG\""
            return 0
        fi
        # Lost a race for the port? Try another; anything else is fatal.
        if ! grep -q "could not bind\|Address already in use" "$dir/server.log" 2>/dev/null; then
            cat "$dir/server.log" >&2 || true
            say "pg_ctl start failed"
            exit 1
        fi
        : >"$dir/server.log"
        say "port $port taken (try $tries), picking another"
    done
    say "no free port found"
    exit 1
}

stop() {
    local dir=$1 pg_ctl
    [ -n "$dir" ] && [ -d "$dir/data" ] || {
        say "no cluster at '$dir'"
        return 0
    }
    pg_ctl=$(pg_bin pg_ctl)
    owner=$(stat -c %U "$dir/data")
    as_owner "$pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
        say "pg_ctl stop failed (already stopped?)"
    rm -rf "$dir"
    say "stopped and removed $dir"
}

case "${1:-}" in
start) start ;;
stop) stop "${2:-${PROV_PG_DIR:-}}" ;;
*)
    echo "usage: $0 start | stop DIR" >&2
    exit 2
    ;;
esac
