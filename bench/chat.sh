#!/usr/bin/env bash
# bench/chat.sh: the durable-chat benchmark. Builds the Release gateway and
# bench/chat_bench, starts a private PostgreSQL (tests/support/pg-fixture.sh,
# state under /tmp), and for each run: creates a fresh database, migrates it
# with `coach-gateway migrate`, seeds N rooms (a coach and a client each,
# with session tokens, an appointment starting now and, by default, 200
# earlier messages), runs ANALYZE, starts the gateway on a free loopback
# port, runs chat_bench against it, reads the gateway's /metrics, and stops
# the gateway. Prints one row per run, the median of the runs per mode with
# the spread, the machine and the PostgreSQL settings. Stops everything it
# started on exit. Exits 1 when a run failed its verification or saw an
# error frame.
#
#   bench/chat.sh [--rooms N] [--duration SEC] [--rate PER_SEC] [--runs N]
#                 [--history N] [--modes steady,burst] [--durable] [--wait-idle]
#                 [--build-dir DIR] [--keep]
#
# --history N: messages already stored per room (in an earlier appointment
# of the same pair) before the run, default 200; 0 measures a database
# whose chat tables are empty.
# --durable: PostgreSQL with fsync=on, synchronous_commit=on and
# full_page_writes=on instead of the fixture's fsync=off,
# synchronous_commit=off, full_page_writes=off.
# --wait-idle: before each run, wait (up to 15 min) until the machine's
# other work uses under a quarter of a core, since the bench, the gateway
# and PostgreSQL share its CPUs; repeat a run (at most twice) during which
# other work used more than a quarter of a core. The "other CPU %" column
# shows it.
# --keep: keep the logs (the state directory under /tmp).
# BUILD_DIR (or --build-dir): the Release build directory, default
# build/release.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

here=$(cd -P "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd -P "$here/.." && pwd)
# shellcheck disable=SC2034 # read by tools/lib.sh
LIB_PREFIX=chat-bench
# shellcheck source=../tools/lib.sh
. "$root/tools/lib.sh"
# shellcheck source=lib.sh
. "$root/bench/lib.sh"

ROOMS=100
DURATION=20
RATE=9.5
RUNS=3
MODES=steady,burst
HISTORY=200
DURABLE=0
WAIT_IDLE=0
KEEP=0
BUILD_DIR=${BUILD_DIR:-$root/build/release}

usage() { bench_usage "${BASH_SOURCE[0]}"; }

while (($# > 0)); do
    case $1 in
    --rooms) ROOMS=${2:?}; shift 2 ;;
    --duration) DURATION=${2:?}; shift 2 ;;
    --rate) RATE=${2:?}; shift 2 ;;
    --runs) RUNS=${2:?}; shift 2 ;;
    --history) HISTORY=${2:?}; shift 2 ;;
    --modes) MODES=${2:?}; shift 2 ;;
    --durable) DURABLE=1; shift ;;
    --wait-idle) WAIT_IDLE=1; shift ;;
    --build-dir) BUILD_DIR=${2:?}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage ;;
    *) say "unknown argument: $1"; usage ;;
    esac
done
in_range "$ROOMS" 1 1000 || die "--rooms must be 1..1000"
in_range "$RUNS" 1 20 || die "--runs must be 1..20"
in_range "$HISTORY" 0 100000 || die "--history must be 0..100000"
in_range "$DURATION" 1 600 || die "--duration must be 1..600 seconds"
[[ $MODES =~ ^(steady|burst)(,(steady|burst))*$ ]] || die "--modes: steady, burst or both"
[[ $RATE =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--rate must be a number (chats a second per connection)"

STATE=""
GW_PID=""
PG_STATE=""

cleanup() { bench_finish $? "$GW_PID"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- build ---------------------------------------------------------------------------------

build() {
    grep -q '^add_subdirectory(bench)' "$root/CMakeLists.txt" ||
        die "CMakeLists.txt does not build bench/ (add_subdirectory(bench) is missing)"
    bench_build "$BUILD_DIR" coach-gateway chat_bench
    GATEWAY=$BUILD_DIR/gateway/coach-gateway
    BENCH=$BUILD_DIR/bench/chat_bench
    [[ -x $GATEWAY && -x $BENCH ]] || die "built, but $GATEWAY or $BENCH is missing"
}

# ---- PostgreSQL ----------------------------------------------------------------------------

psql_db() {
    local db=$1
    shift
    "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$PG_BASE dbname=$db" "$@"
}


# seed DB FIXTURE: ROOMS rooms, each a coach, a client, their session
# tokens and an appointment starting now, plus (HISTORY > 0) an earlier
# appointment of the pair holding HISTORY messages; then ANALYZE. FIXTURE
# gets one line per room: room id, coach token, client token (tab-separated).
seed() {
    local db=$1 fixture=$2
    psql_db "$db" -v rooms="$ROOMS" -v history="$HISTORY" -tA -F $'\t' -o "$fixture" <<'SQL'
SET TIME ZONE 'UTC';
INSERT INTO "AuthCode" ("id", "code", "skoolUserId", "skoolUsername", "expiresAt", "isActive")
VALUES ('cbenchauthcode00000000000', 'BENCH-CODE', 'bench', 'bench', now() + interval '1 day', false);
INSERT INTO "User" ("id", "email", "displayName", "role", "skoolUserId", "updatedAt")
SELECT 'cbc' || lpad(i::text, 22, '0'), 'coach' || i || '@bench.local', 'Coach ' || i, 'coach',
       'bench-coach-' || i, now()
FROM generate_series(1, :rooms) AS i
UNION ALL
SELECT 'cbk' || lpad(i::text, 22, '0'), 'client' || i || '@bench.local', 'Client ' || i, 'client',
       'bench-client-' || i, now()
FROM generate_series(1, :rooms) AS i;
INSERT INTO "UserSession" ("id", "sessionId", "skoolUserId", "skoolUsername", "authCodeUsed",
                           "expiresAt", "ipAddress", "userAgent", "deviceFingerprint", "isActive")
SELECT 'cbs' || substr(u."id", 3), 'bench-' || replace(gen_random_uuid()::text, '-', ''),
       u."skoolUserId", u."skoolUserId", 'BENCH-CODE', now() + interval '1 day', '127.0.0.1',
       'chat_bench', 'bench', true
FROM "User" u WHERE u."skoolUserId" LIKE 'bench-%';
INSERT INTO "Appointment" ("id", "scheduledFor", "durationMin", "clientId", "coachId", "roomId",
                           "status")
SELECT 'cba' || lpad(i::text, 22, '0'), now(), 60, 'cbk' || lpad(i::text, 22, '0'),
       'cbc' || lpad(i::text, 22, '0'), 'bench-room-' || lpad(i::text, 4, '0'), 'scheduled'
FROM generate_series(1, :rooms) AS i;
-- History: an earlier, completed appointment of each pair with :history
-- messages, as the gateway stores them ("Message" + coach_message rows).
INSERT INTO "Appointment" ("id", "scheduledFor", "durationMin", "clientId", "coachId", "roomId",
                           "status")
SELECT 'cbo' || lpad(i::text, 22, '0'), now() - interval '1 day', 60,
       'cbk' || lpad(i::text, 22, '0'), 'cbc' || lpad(i::text, 22, '0'),
       'bench-old-' || lpad(i::text, 4, '0'), 'completed'
FROM generate_series(1, :rooms) AS i WHERE :history > 0;
INSERT INTO "Session" ("id", "roomId", "appointmentId", "userId", "startedAt", "endedAt", "status")
SELECT 'cbq' || r || lpad(i::text, 21, '0'), 'bench-old-' || lpad(i::text, 4, '0'),
       'cbo' || lpad(i::text, 22, '0'), 'cb' || r || lpad(i::text, 22, '0'),
       now() - interval '1 day', now() - interval '23 hours', 'completed'
FROM generate_series(1, :rooms) AS i, (VALUES ('c'), ('k')) AS v(r) WHERE :history > 0;
INSERT INTO coach_room (appointment_id, last_seq)
SELECT 'cbo' || lpad(i::text, 22, '0'), :history FROM generate_series(1, :rooms) AS i
WHERE :history > 0;
CREATE TEMP TABLE old_msg AS
SELECT 'cbm' || lpad(i::text, 6, '0') || lpad(s::text, 16, '0') AS id,
       'cbo' || lpad(i::text, 22, '0') AS aid, s AS seq,
       CASE s % 2 WHEN 1 THEN 'c' ELSE 'k' END AS r, i
FROM generate_series(1, :rooms) AS i, generate_series(1, :history) AS s;
INSERT INTO "Message" ("id", "sessionId", "userId", "sender", "content", "createdAt")
SELECT id, 'cbq' || r || lpad(i::text, 21, '0'), 'cb' || r || lpad(i::text, 22, '0'),
       CASE r WHEN 'c' THEN 'coach' ELSE 'client' END, 'an earlier message number ' || seq,
       now() - interval '1 day' + seq * interval '1 second'
FROM old_msg;
INSERT INTO coach_message (message_id, appointment_id, seq, user_id, client_msg_id)
SELECT id, aid, seq, 'cb' || r || lpad(i::text, 22, '0'), 'old-' || seq FROM old_msg;
SELECT a."roomId", cs."sessionId", ks."sessionId"
FROM "Appointment" a
JOIN "User" co ON co."id" = a."coachId"
JOIN "User" cl ON cl."id" = a."clientId"
JOIN "UserSession" cs ON cs."skoolUserId" = co."skoolUserId"
JOIN "UserSession" ks ON ks."skoolUserId" = cl."skoolUserId"
WHERE a."roomId" LIKE 'bench-room-%'
ORDER BY a."roomId";
SQL
    local n
    n=$(wc -l <"$fixture")
    ((n == ROOMS)) || die "seeding made $n rooms, not $ROOMS"
    # Statistics as a database in use has them (autovacuum would take up
    # to a minute to gather them).
    psql_db "$db" -c 'ANALYZE' >/dev/null
}

# ---- the gateway ---------------------------------------------------------------------------

# The gateway on GW_DB, for bench_serve.
start_server() {
    DATABASE_URL="$PG_BASE dbname=$GW_DB" LISTEN=127.0.0.1:$PORT LOG_LEVEL=warn \
        MIGRATE_ON_START=0 "$GATEWAY" serve 2>"$1" &
    SRV_PID=$!
}

# start_gateway DB LOG: serve DB on a free port; sets GW_PID and GW_PORT.
start_gateway() {
    GW_DB=$1
    bench_serve "$2" start_server
    GW_PID=$SRV_PID
    GW_PORT=$PORT
}

# stop_gateway: SIGTERM (drain) and wait; returns the gateway's exit status.
stop_gateway() {
    local rc=0
    [[ -n $GW_PID ]] || return 0
    kill -TERM "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" || rc=$?
    GW_PID=""
    return "$rc"
}

# xact_commit DB: transactions committed in DB so far (pg_stat_database).
xact_commit() {
    psql_db postgres -tA -c "SELECT xact_commit FROM pg_stat_database WHERE datname = '$1'"
}

# metric TEXT NAME: the value of an unlabelled metric in Prometheus text.
metric() {
    awk -v n="$2" '$1 == n { print $2 }' <<<"$1"
}

# machine_busy SECONDS: the busy CPU time of the whole machine over the next
# SECONDS, in percent of one core (/proc/stat: all but idle and iowait).
machine_busy() {
    local -a a b
    read -r -a a </proc/stat
    sleep "$1"
    read -r -a b </proc/stat
    local busy=$(((b[1] + b[2] + b[3] + b[6] + b[7] + b[8]) - (a[1] + a[2] + a[3] + a[6] + a[7] + a[8])))
    printf '%s\n' $((100 * busy / $(getconf CLK_TCK) / $1))
}

# wait_idle: with --wait-idle, wait until the machine is nearly idle.
wait_idle() {
    ((WAIT_IDLE)) || return 0
    local deadline=$((SECONDS + 900)) busy
    while :; do
        busy=$(machine_busy 3)
        ((busy >= 25)) || return 0
        if ((SECONDS >= deadline)); then
            say "the machine stayed busy (${busy}% of one core); running anyway"
            return 0
        fi
        say "other work uses ${busy}% of one core; waiting for the machine to be idle"
        sleep 7
    done
}

# ---- one run -------------------------------------------------------------------------------

ROWS=()
FAILED=0
LAST_ROW=""
LAST_OTHER=0

# run_once MODE RUN ATTEMPT: one run; sets LAST_ROW (a table row, "" when
# the bench printed no result) and LAST_OTHER (the CPU, in % of one core,
# that neither the gateway, PostgreSQL nor the bench used meanwhile).
run_once() {
    local mode=$1 i=$2 attempt=$3 db fixture log out rc=0 x0 x1 metrics
    db=bench_${mode}_${i}_$attempt
    fixture=$STATE/fixture-$db.tsv
    log=$STATE/gateway-$db.log
    out=$STATE/bench-$db.txt
    LAST_ROW=""
    LAST_OTHER=0
    psql_db postgres -c "CREATE DATABASE $db" >/dev/null
    "$GATEWAY" migrate --database-url "$PG_BASE dbname=$db" >"$STATE/migrate-$db.log" 2>&1 ||
        { cat "$STATE/migrate-$db.log" >&2; die "migrate failed"; }
    seed "$db" "$fixture"
    start_gateway "$db" "$log"

    local -a args=(--port "$GW_PORT" --fixture "$fixture" --duration "$DURATION"
        --gateway-pid "$GW_PID" --postgres-pid "$(head -n 1 "$PG_DIR/data/postmaster.pid")")
    if [[ $mode == burst ]]; then
        args+=(--burst)
    else
        args+=(--rate "$RATE")
    fi
    wait_idle
    say "run $i ($mode): $ROOMS rooms, $((2 * ROOMS)) connections, ${DURATION} s"
    x0=$(xact_commit "$db")
    timeout $((DURATION + 180)) "$BENCH" "${args[@]}" >"$out" 2>&1 || rc=$?
    metrics=$(curl -fsS --max-time 5 "http://127.0.0.1:$GW_PORT/metrics" 2>/dev/null || true)
    sed 's/^/    /' "$out" >&2

    local gw_rc=0
    stop_gateway || gw_rc=$?
    # The gateway's backends report their statistics as they exit.
    sleep 1
    x1=$(xact_commit "$db")
    if ((gw_rc != 0)); then
        say "the gateway exited with status $gw_rc"
        tail -n 20 "$log" >&2
        FAILED=1
    fi
    if ((rc != 0)); then
        say "chat_bench exited with status $rc"
        FAILED=1
    fi
    local result
    result=$(grep '^RESULT ' "$out" | tail -n 1 || true)
    [[ -n $result ]] || { FAILED=1; return 0; }
    LAST_OTHER=$(awk -v r="$result" 'BEGIN {
        n = split(r, kv, " ")
        for (k = 2; k <= n; k++) { split(kv[k], f, "="); v[f[1]] = f[2] }
        o = v["cpu_machine_pct"] - v["cpu_gateway_pct"] - v["cpu_postgres_pct"] - v["cpu_client_pct"]
        printf "%d\n", (o > 0) ? o : 0
    }')
    [[ $result == *verify=ok* ]] || FAILED=1

    local count sum
    count=$(metric "$metrics" coach_persist_seconds_count)
    sum=$(metric "$metrics" coach_persist_seconds_sum)
    LAST_ROW=$(awk -v r="$result" -v x=$((x1 - x0)) -v c="${count:-0}" -v cs="${sum:-0}" \
        -v run="$i" -v other="$LAST_OTHER" 'BEGIN {
            n = split(r, kv, " ")
            for (k = 2; k <= n; k++) { split(kv[k], f, "="); v[f[1]] = f[2] }
            # Every transaction of the run (setup included) against the acked
            # chats: a lower bound of the chats per group commit.
            per = (x > 0) ? v["acked"] / x : 0
            ms = (c > 0) ? 1000 * cs / c : 0
            printf "%s %s %s %s %s %s %s %s %s %s %s %s %s %s %s %s %s %.1f %.2f %s\n",
                v["mode"], run, v["rooms"], v["conns"], v["duration_s"], v["acked_per_s"],
                v["ack_p50_ms"], v["ack_p90_ms"], v["ack_p99_ms"], v["ack_max_ms"],
                v["dlv_p50_ms"], v["dlv_p99_ms"], v["errors"], v["cpu_gateway_pct"],
                v["cpu_postgres_pct"], v["cpu_client_pct"], other, per, ms, v["verify"]
        }')
}

# ---- report --------------------------------------------------------------------------------

HEADER="| mode | run | rooms | conns | duration s | acked msg/s | ack p50 ms | ack p90 ms | ack p99 ms | ack max ms | delivery p50 ms | delivery p99 ms | errors | gateway CPU % | PostgreSQL CPU % | client CPU % | other CPU % | chats per transaction | batch commit ms | verify |"

RULE="|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"

print_rows() {
    local row
    printf '%s\n' "$HEADER"
    printf '%s\n' "$RULE"
    for row in "${ROWS[@]}"; do
        printf '| %s |\n' "${row// / | }"
    done
}

# The median of each numeric column per mode, with the min-max spread (errors:
# the total).
print_medians() {
    local mode
    printf '%s\n' "${HEADER/| run |/| runs |}"
    printf '%s\n' "$RULE"
    for mode in ${MODES//,/ }; do
        printf '%s\n' "${ROWS[@]}" | awk -v mode="$mode" '
            $1 == mode { n++; for (k = 1; k <= NF; k++) col[k, n] = $k; nf = NF }
            function med(k,   i, j, t, a) {
                for (i = 1; i <= n; i++) a[i] = col[k, i] + 0
                for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
                    t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
                lo = a[1]; hi = a[n]
                return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
            }
            END {
                if (n == 0) exit
                ok = "ok"
                for (i = 1; i <= n; i++) if (col[nf, i] != "ok") ok = "FAILED"
                line = "| " mode " | " n " | " col[3, 1] " | " col[4, 1] " | " col[5, 1]
                # decimals per column: msg/s, latencies, errors, CPU, chats, ms
                split("1 2 2 2 2 2 2 0 0 0 0 0 1 2", dec, " ")
                for (k = 6; k < nf; k++) {
                    m = med(k)
                    d = dec[k - 5]
                    if (k == 13) {
                        # errors: the total of the runs, not a median
                        t = 0
                        for (i = 1; i <= n; i++) t += col[k, i]
                        line = line " | " t
                        continue
                    }
                    spread = (n > 1 && lo != hi) ? sprintf(" (%.*f–%.*f)", d, lo, d, hi) : ""
                    line = line " | " sprintf("%.*f", d, m) spread
                }
                print line " | " ok " |"
            }'
    done
}

machine() {
    local model mem fs
    model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    fs=$(findmnt -n -o FSTYPE,SOURCE -T "$PG_DIR" 2>/dev/null || stat -f -c %T "$PG_DIR")
    printf 'machine: %s cores (nproc), %s, %s RAM, kernel %s; PostgreSQL data on %s\n' \
        "$(nproc)" "$model" "$mem" "$(uname -r)" "$fs"
    printf 'PostgreSQL %s: %s\n' "$PG_VERSION" "$PG_SETTINGS"
    printf 'gateway: %s (git %s%s)\n' "$("$GATEWAY" --version 2>&1 | head -n 1)" \
        "$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')" \
        "$(git -C "$root" diff --quiet HEAD -- 2>/dev/null || echo ', with uncommitted changes')"
}

main() {
    command -v curl >/dev/null || die "curl is needed (apt-get install curl)"
    command -v cmake >/dev/null || die "cmake is needed (apt-get install cmake)"
    STATE=$(mktemp -d /tmp/coach-bench.XXXXXX)
    build
    bench_start_pg # no template: chat.sh migrates its own databases
    local mode i attempt
    for mode in ${MODES//,/ }; do
        for ((i = 1; i <= RUNS; i++)); do
            attempt=1
            while :; do
                run_once "$mode" "$i" "$attempt"
                # Other work on the machine during the run skews it: with
                # --wait-idle, run it again (at most twice). The three
                # processes' own kernel work leaves up to ~15% here.
                if ((WAIT_IDLE && LAST_OTHER > 25 && attempt < 3)); then
                    say "other work used ${LAST_OTHER}% of one core during run $i; repeating it"
                    attempt=$((attempt + 1))
                    continue
                fi
                break
            done
            if [[ -n $LAST_ROW ]]; then
                ROWS+=("$LAST_ROW")
            fi
        done
    done
    printf '\n'
    machine
    local extra_flags=""
    if ((DURABLE)); then
        extra_flags=" --durable"
    fi
    if ((WAIT_IDLE)); then
        extra_flags+=" --wait-idle"
    fi
    printf 'command: bench/chat.sh --rooms %s --duration %s --rate %s --runs %s --history %s' \
        "$ROOMS" "$DURATION" "$RATE" "$RUNS" "$HISTORY"
    printf ' --modes %s%s\n' "$MODES" "$extra_flags"
    printf '\nper run:\n\n'
    print_rows
    printf '\nmedian of %s run(s) per mode (min–max in brackets):\n\n' "$RUNS"
    print_medians
    if ((FAILED)); then
        say "FAILED: a run failed its verification, saw error frames, or a process failed"
        exit 1
    fi
}

main
