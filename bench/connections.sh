#!/usr/bin/env bash
# bench/connections.sh: how much a held connection costs the gateway.
# Builds the Release gateway and coach-loadgen, starts a private PostgreSQL
# (tests/support/pg-fixture.sh, state under /tmp), makes a database from the
# migrated template, starts the gateway on a free loopback port, creates
# CONNS/2 rooms with `coach-loadgen --setup`, then holds CONNS connections
# with `coach-loadgen --mode idle` (connect, authenticate, join, hold) and
# reads the gateway's resident memory (VmRSS) before and while they are held.
# Prints the RSS per connection and the time to connect and to join (p50,
# p99, max). Stops everything it started on exit.
#
#   bench/connections.sh [--conns N] [--ramp SEC] [--hold SEC] [--sources K]
#                        [--build-dir DIR] [--keep]
#
# --conns N: connections (even, 2..100000; default 2000). Above ~28000 use
# --sources (source addresses 127.0.0.1..K). --ramp: connect them over SEC
# seconds (default 10). --hold: keep them this long after the ramp (default
# 10). BUILD_DIR (or --build-dir): the Release build, default build/release.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

here=$(cd -P "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd -P "$here/.." && pwd)
# shellcheck disable=SC2034 # read by tools/lib.sh
LIB_PREFIX=connections
# shellcheck source=../tools/lib.sh
. "$root/tools/lib.sh"

CONNS=2000
RAMP=10
HOLD=10
SOURCES=1
KEEP=0
BUILD_DIR=${BUILD_DIR:-$root/build/release}

usage() {
    sed -n '2,/^# shellcheck/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

while (($# > 0)); do
    case $1 in
    --conns) CONNS=${2:?}; shift 2 ;;
    --ramp) RAMP=${2:?}; shift 2 ;;
    --hold) HOLD=${2:?}; shift 2 ;;
    --sources) SOURCES=${2:?}; shift 2 ;;
    --build-dir) BUILD_DIR=${2:?}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage ;;
    *) say "unknown argument: $1"; usage ;;
    esac
done

in_range() {
    [[ $1 =~ ^[0-9]+$ ]] || return 1
    (($1 >= $2 && $1 <= $3))
}
if ! in_range "$CONNS" 2 100000 || ((CONNS % 2 != 0)); then
    die "--conns must be even, 2..100000"
fi
in_range "$RAMP" 0 600 || die "--ramp must be 0..600 seconds"
in_range "$HOLD" 1 600 || die "--hold must be 1..600 seconds"
in_range "$SOURCES" 1 65536 || die "--sources must be 1..65536"
command -v jq >/dev/null || die "jq is needed (apt-get install jq)"
command -v curl >/dev/null || die "curl is needed (apt-get install curl)"

STATE=""
GW_PID=""
LG_PID=""
PG_STATE=""

cleanup() {
    local rc=$?
    for pid in $LG_PID $GW_PID; do
        if proc_alive "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if [[ -n $PG_STATE ]]; then
        "$root/tests/support/pg-fixture.sh" destroy "$PG_STATE" >/dev/null 2>&1 ||
            say "could not destroy the PostgreSQL in $PG_STATE"
    fi
    if [[ -n $STATE ]]; then
        if ((KEEP)); then
            say "logs kept in $STATE"
        else
            rm -rf -- "$STATE"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

STATE=$(mktemp -d /tmp/coach-connections.XXXXXX)

say "building Release in $BUILD_DIR"
cmake -S "$root" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >"$STATE/cmake.log" 2>&1 ||
    { tail -n 30 "$STATE/cmake.log" >&2; die "cmake configure failed"; }
cmake --build "$BUILD_DIR" -j 2 --target coach-gateway coach-loadgen >>"$STATE/cmake.log" 2>&1 ||
    { tail -n 30 "$STATE/cmake.log" >&2; die "build failed"; }
GATEWAY=$BUILD_DIR/gateway/coach-gateway
LOADGEN=$BUILD_DIR/tools/loadgen/coach-loadgen
[[ -x $GATEWAY && -x $LOADGEN ]] || die "built, but $GATEWAY or $LOADGEN is missing"

PG_STATE=$STATE/pg
"$root/tests/support/pg-fixture.sh" start "$PG_STATE" "$GATEWAY" >"$STATE/pg-fixture.log" 2>&1 ||
    { cat "$STATE/pg-fixture.log" >&2; die "PostgreSQL did not start"; }
PG=$(head -n 1 "$PG_STATE/conninfo")
DB=connections
psql -X -q -v ON_ERROR_STOP=1 "$PG" -c "CREATE DATABASE $DB TEMPLATE coach_template" ||
    die "cannot create the database"
DBURL="$PG dbname=$DB"

# Both processes hold one descriptor per connection.
# Root may raise the hard limit too (up to fs.nr_open).
if is_root; then
    ulimit -Hn 1048576 2>/dev/null || ulimit -Hn "$(cat /proc/sys/fs/nr_open)" 2>/dev/null || true
fi
ulimit -n "$(ulimit -Hn)"
((CONNS + 200 <= $(ulimit -n))) || die "the open-files limit $(ulimit -n) is too low for $CONNS"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for ((try = 0; try < 5; try++)); do
    PORT=$((20000 + RANDOM % 40000))
    port_free "$PORT" || continue
    DATABASE_URL=$DBURL LISTEN=127.0.0.1:$PORT LOG_LEVEL=warn MIGRATE_ON_START=0 \
        "$GATEWAY" serve 2>"$STATE/gateway.log" &
    GW_PID=$!
    for ((i = 0; i < 100; i++)); do
        curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/healthz" 2>/dev/null && break 2
        proc_alive "$GW_PID" || break
        sleep 0.1
    done
    kill "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
    GW_PID=""
done
[[ -n $GW_PID ]] || { tail -n 20 "$STATE/gateway.log" >&2; die "the gateway did not start"; }

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

ROOMS=$((CONNS / 2))
"$LOADGEN" --setup "$ROOMS" --db "$DBURL" --fixtures "$STATE/fx.tsv" 2>>"$STATE/loadgen.log" ||
    die "coach-loadgen --setup failed"
RSS0=$(rss_kib "$GW_PID")

say "holding $CONNS connections ($ROOMS rooms): ramp ${RAMP}s, hold ${HOLD}s"
"$LOADGEN" --mode idle --url "ws://127.0.0.1:$PORT/ws" --fixtures "$STATE/fx.tsv" \
    --ramp "$RAMP" --duration $((RAMP + HOLD)) --drain 0 --sources "$SOURCES" --json \
    --no-progress >"$STATE/idle.json" 2>>"$STATE/loadgen.log" &
LG_PID=$!
sleep $((RAMP + HOLD / 2))
RSS1=$(rss_kib "$GW_PID")
LG_RSS=$(rss_kib "$LG_PID" || echo 0)
rc=0
wait "$LG_PID" || rc=$?
LG_PID=""
[[ -s $STATE/idle.json ]] || { tail -n 20 "$STATE/loadgen.log" >&2; die "coach-loadgen failed"; }

jq -r --argjson conns "$CONNS" --argjson rss0 "$RSS0" --argjson rss1 "$RSS1" \
    --argjson lgrss "$LG_RSS" '
    "connections: \(.counts.joined_peak) of \($conns) joined (\(.counts.connect_failed) failed connects)",
    "gateway RSS: \($rss0) KiB before, \($rss1) KiB while held: \((($rss1 - $rss0) / $conns * 100 | floor) / 100) KiB per connection",
    "coach-loadgen RSS while held: \($lgrss) KiB",
    "connect ms: p50 \(.latency_ms.connect.p50) p99 \(.latency_ms.connect.p99) max \(.latency_ms.connect.max)",
    "join ms (connect + hello + join): p50 \(.latency_ms.join.p50) p99 \(.latency_ms.join.p99) max \(.latency_ms.join.max)"
' "$STATE/idle.json"
printf 'command: bench/connections.sh --conns %s --ramp %s --hold %s --sources %s\n' \
    "$CONNS" "$RAMP" "$HOLD" "$SOURCES"
((rc == 0)) || die "coach-loadgen reported a failure (exit $rc)"
