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
# shellcheck source=lib.sh
. "$root/bench/lib.sh"

CONNS=2000
RAMP=10
HOLD=10
SOURCES=1
KEEP=0
BUILD_DIR=${BUILD_DIR:-$root/build/release}

usage() { bench_usage "${BASH_SOURCE[0]}"; }

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

if ! in_range "$CONNS" 2 100000 || ((CONNS % 2 != 0)); then
    die "--conns must be even, 2..100000"
fi
in_range "$RAMP" 0 600 || die "--ramp must be 0..600 seconds"
in_range "$HOLD" 1 600 || die "--hold must be 1..600 seconds"
in_range "$SOURCES" 1 65536 || die "--sources must be 1..65536"
command -v jq >/dev/null || die "jq is needed (apt-get install jq)"
command -v curl >/dev/null || die "curl is needed (apt-get install curl)"

STATE=""
SRV_PID=""
LG_PID=""
PG_STATE=""
DURABLE=0

cleanup() { bench_finish $? "$LG_PID" "$SRV_PID"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

STATE=$(mktemp -d /tmp/coach-connections.XXXXXX)

bench_build "$BUILD_DIR" coach-gateway coach-loadgen
GATEWAY=$BUILD_DIR/gateway/coach-gateway
LOADGEN=$BUILD_DIR/tools/loadgen/coach-loadgen
[[ -x $GATEWAY && -x $LOADGEN ]] || die "built, but $GATEWAY or $LOADGEN is missing"

bench_start_pg "$GATEWAY"
DB=connections
psql -X -q -v ON_ERROR_STOP=1 "$PG" -c "CREATE DATABASE $DB TEMPLATE coach_template" ||
    die "cannot create the database"
DBURL="$PG dbname=$DB"

# Both processes hold one descriptor per connection.
bench_raise_nofile
((CONNS + 200 <= $(ulimit -n))) || die "the open-files limit $(ulimit -n) is too low for $CONNS"

start_gateway() {
    DATABASE_URL=$DBURL LISTEN=127.0.0.1:$PORT LOG_LEVEL=warn MIGRATE_ON_START=0 \
        "$GATEWAY" serve 2>"$1" &
    SRV_PID=$!
}
bench_serve "$STATE/gateway.log" start_gateway
GW_PID=$SRV_PID

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
