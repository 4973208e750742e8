# bench/lib.sh: what the benchmark scripts share. Sourced after
# tools/lib.sh by bench/chat.sh, bench/connections.sh and bench/compare.sh;
# they set root (the checkout), STATE (their temporary directory) and KEEP
# before using these, and DURABLE before bench_start_pg.
# shellcheck shell=bash
# shellcheck disable=SC2154,SC2034 # root, STATE and KEEP come from the script; PG_* go back to it

# bench_usage FILE: print FILE's header comment (to its shellcheck line).
bench_usage() {
    sed -n '2,/^# shellcheck/p' "$1" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

# in_range VALUE LO HI: 0 when VALUE is an integer in LO..HI.
in_range() {
    [[ $1 =~ ^[0-9]+$ ]] || return 1
    (($1 >= $2 && $1 <= $3))
}

# stop_pid PID: SIGTERM and wait, when PID is set and alive.
stop_pid() {
    local pid=$1
    if [[ -n $pid ]] && proc_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}

# bench_finish RC PID...: the scripts' EXIT trap: stop PIDs, destroy the
# PostgreSQL of PG_STATE, remove STATE (or keep it with KEEP), exit RC.
bench_finish() {
    local rc=$1 pid
    shift
    for pid in "$@"; do
        stop_pid "$pid"
    done
    if [[ -n ${PG_STATE:-} ]]; then
        "$root/tests/support/pg-fixture.sh" destroy "$PG_STATE" >/dev/null 2>&1 ||
            say "could not destroy the PostgreSQL in $PG_STATE"
    fi
    if [[ -n ${STATE:-} ]]; then
        if ((KEEP)); then
            say "logs kept in $STATE"
        else
            rm -rf -- "$STATE"
        fi
    fi
    exit "$rc"
}

# bench_build DIR TARGET...: the Release build of TARGETs in DIR.
bench_build() {
    local dir=$1
    shift
    say "building Release in $dir"
    cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=Release >"$STATE/cmake.log" 2>&1 ||
        { tail -n 30 "$STATE/cmake.log" >&2; die "cmake configure failed"; }
    cmake --build "$dir" -j "$(nproc)" --target "$@" >>"$STATE/cmake.log" 2>&1 ||
        { tail -n 30 "$STATE/cmake.log" >&2; die "build failed"; }
}

# bench_start_pg [GATEWAY]: the tests' private PostgreSQL under
# $STATE/pg (with GATEWAY, also the migrated template database
# coach_template), restarted with fsync, synchronous_commit and
# full_page_writes on when DURABLE is 1. Sets PG_STATE, PG_DIR, PGBIN, PG
# (a conninfo for the maintenance database), PG_BASE (the same without
# dbname), PG_SETTINGS and PG_VERSION.
bench_start_pg() {
    PG_STATE=$STATE/pg
    "$root/tests/support/pg-fixture.sh" start "$PG_STATE" "$@" >"$STATE/pg-fixture.log" 2>&1 ||
        { cat "$STATE/pg-fixture.log" >&2; die "PostgreSQL did not start"; }
    PGBIN=$(pg_bindir) || die "no PostgreSQL in /usr/lib/postgresql/*/bin"
    PG_DIR=$(head -n 1 "$PG_STATE/pgdir")
    PG=$(head -n 1 "$PG_STATE/conninfo")
    PG_BASE=${PG% dbname=postgres}
    if ((DURABLE)); then
        # The fixture passes fsync=off on pg_ctl's command line, which no
        # configuration file can override: restart the same data directory
        # with durable settings instead.
        "$root/tests/support/pg-fixture.sh" stop "$PG_STATE" >>"$STATE/pg-fixture.log" 2>&1 ||
            die "could not stop the fixture's PostgreSQL"
        local user opts
        user=$(id -un)
        if is_root; then
            user=postgres
        fi
        opts="-c listen_addresses='' -k $PG_DIR -p 5432 -c fsync=on -c synchronous_commit=on"
        opts+=" -c full_page_writes=on -c max_connections=200"
        pg_start_retry "$PG_DIR/server.log" "$user" "$PGBIN/pg_ctl" -D "$PG_DIR/data" \
            -l "$PG_DIR/server.log" -w -t 60 -o "$opts" ||
            { pg_log_tail "$PG_DIR/server.log"; die "durable PostgreSQL did not start"; }
    fi
    PG_SETTINGS=$("$PGBIN/psql" -X -q -tA -F '=' "$PG" -c "SELECT name, setting FROM pg_settings
        WHERE name IN ('fsync','synchronous_commit','full_page_writes','wal_sync_method',
                       'shared_buffers','wal_level','max_connections')
        ORDER BY name" | tr '\n' ' ')
    PG_VERSION=$("$PGBIN/psql" -X -q -tA "$PG" -c 'SHOW server_version')
}

# bench_raise_nofile: the open-files limit as high as this process may set
# it (root may raise the hard limit too, up to fs.nr_open).
bench_raise_nofile() {
    if is_root; then
        ulimit -Hn 1048576 2>/dev/null || ulimit -Hn "$(cat /proc/sys/fs/nr_open)" 2>/dev/null ||
            true
    fi
    ulimit -n "$(ulimit -Hn)"
}

# port_free PORT: 0 when nothing listens on 127.0.0.1:PORT.
port_free() {
    # shellcheck disable=SC2016 # $1 belongs to the inner shell
    ! timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# bench_serve LOG START: run a server until its /healthz answers. START is
# a function that starts it in the background on 127.0.0.1:$PORT with its
# output in LOG and sets SRV_PID; ports come from below the ephemeral
# range, and a server that does not come up is tried again on another.
# Sets PORT and SRV_PID.
bench_serve() {
    local log=$1 start=$2 try i
    for ((try = 0; try < 5; try++)); do
        PORT=$((20000 + RANDOM % 12000))
        port_free "$PORT" || continue
        "$start" "$log"
        for ((i = 0; i < 100; i++)); do
            curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/healthz" 2>/dev/null &&
                return 0
            proc_alive "$SRV_PID" || break
            sleep 0.1
        done
        stop_pid "$SRV_PID"
        SRV_PID=""
    done
    tail -n 20 "$log" >&2
    die "the server did not start"
}

# bench_rounds: RUNS rounds of run_one TARGET RUN over the targets in
# the array `order`, each round starting with the next target, so that
# none always goes first on a noisy machine.
bench_rounds() {
    local run k t
    for ((run = 1; run <= RUNS; run++)); do
        for ((k = 0; k < ${#order[@]}; k++)); do
            t=${order[$(((k + run - 1) % ${#order[@]}))]}
            say "run $run: $t"
            run_one "$t" "$run"
        done
    done
}

# bench_rows COLS: the rows of $STATE/rows.jsonl as a Markdown table of
# the space-separated COLS.
bench_rows() {
    local cols=$1
    printf '\n| %s |\n' "${cols// / | }"
    # shellcheck disable=SC2086 # one dash cell per column
    printf '|%s\n' "$(printf -- '---|%.0s' $cols)"
    jq -r --arg cols "$cols" \
        '. as $row | [$cols | split(" ")[] | $row[.] | tostring] | "| " + join(" | ") + " |"' \
        "$STATE/rows.jsonl"
}

# bench_verdict: the machine line, then exit 1 (through die) when a run of
# $STATE/rows.jsonl failed its verification.
bench_verdict() {
    printf 'machine: %s, %s CPUs, %s; PostgreSQL: %s\n' "$(uname -m)" "$(nproc)" \
        "$(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo)" "$PG_SETTINGS"
    if jq -e 'select(.ok != true)' "$STATE/rows.jsonl" >/dev/null; then
        die "a run failed its verification (see the ok column)"
    fi
}
