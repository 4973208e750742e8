#!/usr/bin/env bash
# bench/connections.sh: how much a held connection costs the gateway.
# Builds the Release gateway and coach-loadgen, starts a private PostgreSQL
# (tests/support/pg-fixture.sh, state under /tmp), makes a database from the
# migrated template, starts the gateway on a free loopback port, creates
# CONNS/2 rooms with `coach-loadgen --setup`, then holds CONNS connections
# with `coach-loadgen --mode idle` (connect, authenticate, join, hold) and
# reads the gateway's resident memory (VmRSS) before and while they are held.
# Prints the RSS per connection, the time to connect and to join (p50,
# p99, max) and the time until the gateways held every connection. Stops
# everything it started on exit.
#
#   bench/connections.sh [--conns N] [--ramp SEC] [--hold SEC] [--sources K]
#                        [--nodes N] [--procs P] [--build-dir DIR] [--keep]
#
# --conns N: connections (even, 2..100000; default 2000). Above ~28000 use
# --sources (source addresses 127.0.0.1..K). --ramp: connect them over SEC
# seconds (default 10). --hold: keep them this long after the ramp (default
# 10). --nodes N (default 1): N gateway nodes on the one database
# (docs/operations.md), rooms alternating between them, both members of a
# room on one node; RSS is reported per node. --procs P (default 1): the
# rooms split over P coach-loadgen processes (--first/--rooms), since one
# process holds at most its open-files limit of sockets. BUILD_DIR (or
# --build-dir): the Release build, default build/release.
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
NODES=1
PROCS=1
KEEP=0
BUILD_DIR=${BUILD_DIR:-$root/build/release}

usage() { bench_usage "${BASH_SOURCE[0]}"; }

while (($# > 0)); do
    case $1 in
    --conns) CONNS=${2:?}; shift 2 ;;
    --ramp) RAMP=${2:?}; shift 2 ;;
    --hold) HOLD=${2:?}; shift 2 ;;
    --sources) SOURCES=${2:?}; shift 2 ;;
    --nodes) NODES=${2:?}; shift 2 ;;
    --procs) PROCS=${2:?}; shift 2 ;;
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
in_range "$NODES" 1 8 || die "--nodes must be 1..8"
in_range "$PROCS" 1 8 || die "--procs must be 1..8"
((CONNS / 2 >= PROCS)) || die "--procs: at most one process per room"
command -v jq >/dev/null || die "jq is needed (apt-get install jq)"
command -v curl >/dev/null || die "curl is needed (apt-get install curl)"

STATE=""
SRV_PID=""
LG_PIDS=()
GW_PIDS=()
GW_PORTS=()
PG_STATE=""
DURABLE=0

cleanup() { bench_finish $? "${LG_PIDS[@]}" "${GW_PIDS[@]}"; }
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

# Every process holds one descriptor per connection it has.
bench_raise_nofile
PER_GW=$(((CONNS + NODES - 1) / NODES))
PER_LG=$(((CONNS + PROCS - 1) / PROCS))
((PER_GW + 200 <= $(ulimit -n) && PER_LG + 200 <= $(ulimit -n))) ||
    die "the open-files limit $(ulimit -n) is too low for $PER_GW connections per node and \
$PER_LG per coach-loadgen (try --nodes, --procs)"

start_gateway() {
    local node=()
    ((NODES > 1)) && node=(env "NODE_ID=node-$NODE_K")
    "${node[@]}" env DATABASE_URL="$DBURL" LISTEN="127.0.0.1:$PORT" LOG_LEVEL=warn \
        MIGRATE_ON_START=0 "$GATEWAY" serve 2>"$1" &
    SRV_PID=$!
}
for ((NODE_K = 0; NODE_K < NODES; NODE_K++)); do
    bench_serve "$STATE/gateway-$NODE_K.log" start_gateway
    GW_PIDS+=("$SRV_PID")
    GW_PORTS+=("$PORT")
    SRV_PID=""
done
URLS=()
for port in "${GW_PORTS[@]}"; do
    # connection i uses URL i mod n: twice each, so a room's two members
    # (connections 2r and 2r+1) are on one node and rooms alternate nodes
    URLS+=(--url "ws://127.0.0.1:$port/ws")
    ((NODES > 1)) && URLS+=(--url "ws://127.0.0.1:$port/ws")
done

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# open WebSocket connections on the node at port $1
gw_conns() {
    { curl -fsS --max-time 2 "http://127.0.0.1:$1/metrics" 2>/dev/null || true; } |
        awk '$1 == "coach_connections" { print $2; f = 1 } END { if (!f) print 0 }'
}

ROOMS=$((CONNS / 2))
"$LOADGEN" --setup "$ROOMS" --db "$DBURL" --fixtures "$STATE/fx.tsv" 2>>"$STATE/loadgen.log" ||
    die "coach-loadgen --setup failed"
RSS0=()
for pid in "${GW_PIDS[@]}"; do
    RSS0+=("$(rss_kib "$pid")")
done

say "holding $CONNS connections ($ROOMS rooms) on $NODES node(s) from $PROCS coach-loadgen" \
    "process(es): ramp ${RAMP}s, hold ${HOLD}s"
T0=$(date +%s.%N)
for ((p = 0; p < PROCS; p++)); do
    first=$((ROOMS * p / PROCS))
    count=$((ROOMS * (p + 1) / PROCS - first))
    "$LOADGEN" --mode idle "${URLS[@]}" --fixtures "$STATE/fx.tsv" --first "$first" \
        --rooms "$count" --ramp "$RAMP" --duration $((RAMP + HOLD)) --drain 0 \
        --sources "$SOURCES" --json --no-progress >"$STATE/idle-$p.json" \
        2>>"$STATE/loadgen-$p.log" &
    LG_PIDS+=($!)
done
# Until the middle of the hold: when did the nodes first hold every connection?
ALL_S=""
T_RSS=$(echo "$T0 + $RAMP + $HOLD / 2" | bc)
while (($(echo "$(date +%s.%N) < $T_RSS" | bc))); do
    if [[ -z $ALL_S ]]; then
        held=0
        for port in "${GW_PORTS[@]}"; do
            held=$((held + $(gw_conns "$port")))
        done
        ((held >= CONNS)) && ALL_S=$(echo "scale=1; ($(date +%s.%N) - $T0) / 1" | bc)
    fi
    sleep 0.5
done
RSS1=() HELD=()
for ((k = 0; k < NODES; k++)); do
    RSS1+=("$(rss_kib "${GW_PIDS[$k]}")")
    HELD+=("$(gw_conns "${GW_PORTS[$k]}")")
done
LG_RSS=()
for pid in "${LG_PIDS[@]}"; do
    LG_RSS+=("$(rss_kib "$pid" || echo 0)")
done
rc=0
for pid in "${LG_PIDS[@]}"; do
    wait "$pid" || rc=$?
done
LG_PIDS=()
for ((p = 0; p < PROCS; p++)); do
    [[ -s $STATE/idle-$p.json ]] ||
        { tail -n 20 "$STATE/loadgen-$p.log" >&2; die "coach-loadgen $p failed"; }
done

jq -s -r --argjson conns "$CONNS" '
    "connections: \(map(.counts.joined_peak) | add) of \($conns) joined (\(map(.counts.connect_failed) | add) failed connects)"
' "$STATE"/idle-*.json
for ((k = 0; k < NODES; k++)); do
    name="gateway RSS"
    ((NODES > 1)) && name="node $k RSS"
    awk -v name="$name" -v r0="${RSS0[$k]}" -v r1="${RSS1[$k]}" -v n="${HELD[$k]}" 'BEGIN {
        printf "%s: %d KiB before, %d KiB while %d connections were held: %s KiB per connection\n",
            name, r0, r1, n, (n > 0 ? sprintf("%.2f", (r1 - r0) / n) : "-") }'
done
printf 'coach-loadgen RSS while held: %s KiB\n' "${LG_RSS[*]}"
printf 'every connection held after: %s\n' "${ALL_S:-never (by the middle of the hold)} s"
for ((p = 0; p < PROCS; p++)); do
    pre=""
    ((PROCS > 1)) && pre="coach-loadgen $p: "
    jq -r --arg pre "$pre" '
        "\($pre)connect ms: p50 \(.latency_ms.connect.p50) p99 \(.latency_ms.connect.p99) max \(.latency_ms.connect.max)",
        "\($pre)join ms (connect + hello + join): p50 \(.latency_ms.join.p50) p99 \(.latency_ms.join.p99) max \(.latency_ms.join.max)"
    ' "$STATE/idle-$p.json"
done
printf 'command: bench/connections.sh --conns %s --ramp %s --hold %s --sources %s%s%s\n' \
    "$CONNS" "$RAMP" "$HOLD" "$SOURCES" "$( ((NODES > 1)) && echo " --nodes $NODES")" \
    "$( ((PROCS > 1)) && echo " --procs $PROCS")"
((rc == 0)) || die "coach-loadgen reported a failure (exit $rc)"
