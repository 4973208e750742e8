#!/usr/bin/env bash
# tests/support/pg-fixture.sh: the ctest fixture that gives the integration
# tests a private, throw-away PostgreSQL server (tests/CMakeLists.txt).
#
#   pg-fixture.sh start   STATE_DIR [GATEWAY_BIN]
#   pg-fixture.sh stop    STATE_DIR
#   pg-fixture.sh destroy STATE_DIR
#
# start: create a server (or start again the one STATE_DIR names) and write
#   STATE_DIR/conninfo, one line "host=<socket dir> port=5432 user=<u>
#   dbname=postgres". With GATEWAY_BIN, also create the database
#   coach_template and migrate it with `GATEWAY_BIN migrate`.
# stop: fast shutdown, data kept (tests use stop + start to simulate an
#   outage). destroy: stop if running, then remove the data and the state.
#
# STATE_DIR may be anywhere, even where the postgres user cannot go (under
# /root): the data and the socket live in /tmp/coach-testpg.XXXXXX, whose
# path is kept in STATE_DIR/pgdir. As root the server runs as postgres.
# The server listens on a unix socket only and is tuned for speed, not
# durability (fsync off).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

here=$(cd -P "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LIB_PREFIX=pg-fixture
# shellcheck source=../../tools/lib.sh
. "$here/../../tools/lib.sh"

PGDIR_PATTERN='/tmp/coach-testpg.*'
PG_PORT=5432

usage() {
    cat >&2 <<'EOF'
usage: pg-fixture.sh start STATE_DIR [GATEWAY_BIN]
       pg-fixture.sh stop STATE_DIR
       pg-fixture.sh destroy STATE_DIR
EOF
    exit 2
}

# The OS user the server runs as, and the database superuser's name.
server_user() {
    if is_root; then
        echo postgres
    else
        id -un
    fi
}

# recorded_pgdir STATE_DIR: print the server directory STATE_DIR names, if
# it is one of ours; 1 otherwise.
recorded_pgdir() {
    local state=$1 dir
    [[ -r $state/pgdir ]] || return 1
    dir=$(head -n 1 "$state/pgdir")
    # shellcheck disable=SC2053 # the pattern is meant to glob
    [[ $dir == $PGDIR_PATTERN && $dir != *..* && -d $dir ]] || return 1
    printf '%s\n' "$dir"
}

# new_pgdir STATE_DIR USER: make and initdb a fresh server directory.
new_pgdir() {
    local state=$1 user=$2 dir
    dir=$(mktemp -d /tmp/coach-testpg.XXXXXX) || die "cannot create a directory in /tmp"
    chmod 755 "$dir"
    if is_root; then
        chown postgres:postgres "$dir"
    fi
    printf '%s\n' "$dir" >"$state/pgdir"
    if ! as_user "$user" "$BINDIR/initdb" -D "$dir/data" -U "$user" -A trust --no-sync \
        -E UTF8 --locale=C >"$dir/initdb.log" 2>&1; then
        pg_log_tail "$dir/initdb.log"
        die "initdb failed in $dir"
    fi
    printf '%s\n' "$dir"
}

start_server() {
    local dir=$1 user=$2
    pg_clear_stale_locks "$dir/data" "$dir"
    local opts="-c listen_addresses='' -k $dir -p $PG_PORT -c fsync=off"
    opts+=" -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    if ! pg_start_retry "$dir/server.log" "$user" "$BINDIR/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "$opts"; then
        pg_log_tail "$dir/server.log"
        die "PostgreSQL did not start (data in $dir/data)"
    fi
}

stop_server() {
    local dir=$1 user=$2
    pg_is_running "$dir/data" || return 0
    if ! as_user "$user" "$BINDIR/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null; then
        say "fast shutdown failed; trying immediate"
        as_user "$user" "$BINDIR/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null ||
            die "could not stop PostgreSQL in $dir/data"
    fi
}

psql_admin() {
    local dir=$1 user=$2
    shift 2
    "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$PG_PORT" -U "$user" -d postgres "$@"
}

# migrate_template DIR USER GATEWAY_BIN: coach_template, created when
# missing, brought up to date by the gateway's own migrate command.
migrate_template() {
    local dir=$1 user=$2 gw=$3 exists rc=0
    [[ -x $gw ]] || die "gateway binary $gw not found or not executable"
    exists=$(psql_admin "$dir" "$user" -tA \
        -c "SELECT 1 FROM pg_database WHERE datname = 'coach_template'") ||
        die "cannot query PostgreSQL at $dir"
    if [[ $exists != 1 ]]; then
        psql_admin "$dir" "$user" -c 'CREATE DATABASE coach_template' ||
            die "cannot create database coach_template"
    fi
    local url="host=$dir port=$PG_PORT user=$user dbname=coach_template"
    "$gw" migrate --database-url "$url" || rc=$?
    if ((rc != 0)); then
        die "'$gw migrate' failed (exit $rc) on coach_template; integration tests cannot run"
    fi
}

cmd_start() {
    local state=$1 gw=${2:-} user dir
    user=$(server_user)
    mkdir -p "$state" || die "cannot create $state"
    state=$(cd -P "$state" && pwd)

    if dir=$(recorded_pgdir "$state") && [[ -f $dir/data/PG_VERSION ]]; then
        :
    else
        # Nothing usable recorded (first run, /tmp cleaned, or a crash
        # during initdb): start over.
        if dir=$(recorded_pgdir "$state"); then
            rm -rf -- "$dir"
        fi
        rm -f "$state/pgdir" "$state/conninfo"
        dir=$(new_pgdir "$state" "$user")
    fi

    if pg_is_running "$dir/data"; then
        say "reusing the server already running in $dir"
    else
        start_server "$dir" "$user"
    fi

    printf 'host=%s port=%s user=%s dbname=postgres\n' "$dir" "$PG_PORT" "$user" \
        >"$state/conninfo.tmp"
    mv "$state/conninfo.tmp" "$state/conninfo"

    if [[ -n $gw ]]; then
        migrate_template "$dir" "$user" "$gw"
    fi
    say "PostgreSQL ready: socket in $dir"
}

cmd_stop() {
    local state=$1 dir
    dir=$(recorded_pgdir "$state") || die "no test server recorded in $state/pgdir"
    stop_server "$dir" "$(server_user)"
}

cmd_destroy() {
    local state=$1 dir
    if dir=$(recorded_pgdir "$state"); then
        stop_server "$dir" "$(server_user)"
        rm -rf -- "$dir"
    fi
    rm -f "$state/pgdir" "$state/conninfo" "$state/conninfo.tmp"
}

main() {
    (($# >= 2)) || usage
    local cmd=$1 state=$2
    [[ -n $state ]] || usage
    BINDIR=$(pg_bindir) ||
        die "no PostgreSQL server found in /usr/lib/postgresql/*/bin (apt-get install postgresql)"
    case $cmd in
    start)
        (($# <= 3)) || usage
        cmd_start "$state" "${3:-}"
        ;;
    stop)
        (($# == 2)) || usage
        cmd_stop "$state"
        ;;
    destroy)
        (($# == 2)) || usage
        cmd_destroy "$state"
        ;;
    *) usage ;;
    esac
}

main "$@"
