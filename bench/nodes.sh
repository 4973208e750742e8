#!/usr/bin/env bash
# bench/nodes.sh: one gateway node against two nodes on the same
# PostgreSQL, driven by the same coach-loadgen run, side by side. Targets:
#   one    one node; every connection on it;
#   same   two nodes; each room's coach and client on the same node (rooms
#          alternate between the nodes: URLs A A B B);
#   cross  two nodes; every coach on node A, every client on node B, so
#          each message crosses nodes (commit, NOTIFY, the other node
#          reads it back).
# Builds the Release gateway and coach-loadgen, starts a private
# PostgreSQL (tests/support/pg-fixture.sh, state under /tmp). For each run
# and target, in alternating order: a fresh database from the migrated
# template, `coach-loadgen --setup ROOMS`, the node(s) on free loopback
# ports, the load run (--json), the node(s) stopped. Prints one row per
# run, then per target the medians. Exits 1 when a run failed its
# verification.
#
#   bench/nodes.sh [--targets one,same,cross] [--mode replay|unthrottled]
#                  [--rooms N] [--duration SEC] [--speed X] [--rate R]
#                  [--ramp SEC] [--runs N] [--durable] [--build-dir DIR] [--keep]
#
# Defaults: all three targets, replay of tools/sessions at --speed 10,
# 100 rooms, --duration 30, --ramp 3, 3 runs. --rate (unthrottled): chats
# a second per connection. --durable: PostgreSQL with fsync,
# synchronous_commit and full_page_writes on.
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2034 # read by tools/lib.sh
set -euo pipefail

root=$(cd -P "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIB_PREFIX=nodes
# shellcheck source=../tools/lib.sh
. "$root/tools/lib.sh"
# shellcheck source=lib.sh
. "$root/bench/lib.sh"

TARGETS=one,same,cross
MODE=replay
ROOMS=100
DURATION=30
SPEED=10
RATE=9.5
RAMP=3
RUNS=3
DURABLE=0
KEEP=0
BUILD_DIR=${BUILD_DIR:-$root/build/release}

usage() { bench_usage "${BASH_SOURCE[0]}"; }

while (($# > 0)); do
    case $1 in
    --targets) TARGETS=${2:?}; shift 2 ;;
    --mode) MODE=${2:?}; shift 2 ;;
    --rooms) ROOMS=${2:?}; shift 2 ;;
    --duration) DURATION=${2:?}; shift 2 ;;
    --speed) SPEED=${2:?}; shift 2 ;;
    --rate) RATE=${2:?}; shift 2 ;;
    --ramp) RAMP=${2:?}; shift 2 ;;
    --runs) RUNS=${2:?}; shift 2 ;;
    --durable) DURABLE=1; shift ;;
    --build-dir) BUILD_DIR=${2:?}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage ;;
    *) say "unknown argument: $1"; usage ;;
    esac
done
in_range "$ROOMS" 1 5000 || die "--rooms: 1..5000"
in_range "$DURATION" 1 3600 || die "--duration: 1..3600 seconds"
in_range "$RAMP" 0 600 || die "--ramp: 0..600 seconds"
in_range "$RUNS" 1 20 || die "--runs: 1..20"
[[ $MODE == replay || $MODE == unthrottled ]] || die "--mode: replay or unthrottled"
IFS=, read -r -a order <<<"$TARGETS"
for t in "${order[@]}"; do
    [[ $t == one || $t == same || $t == cross ]] || die "--targets: one, same, cross"
done
for tool in jq curl; do
    command -v "$tool" >/dev/null || die "$tool is needed"
done

STATE=$(mktemp -d /tmp/coach-nodes.XXXXXX)
NODE_PIDS=()
trap 'bench_finish $? "${LG_PID:-}" "${NODE_PIDS[@]}"' EXIT
bench_build "$BUILD_DIR" coach-gateway coach-loadgen
GATEWAY=$BUILD_DIR/gateway/coach-gateway
LOADGEN=$BUILD_DIR/tools/loadgen/coach-loadgen
bench_start_pg "$GATEWAY"
bench_raise_nofile

# ---- one run ------------------------------------------------------------------------------------

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# For bench_serve: node NODE_NAME on NODE_DB.
start_node() {
    NODE_ID=$NODE_NAME DATABASE_URL=$NODE_DB LISTEN=127.0.0.1:$PORT LOG_LEVEL=warn \
        MIGRATE_ON_START=0 "$GATEWAY" serve 2>"$1" &
    SRV_PID=$!
}

# up NAME DBURL LOG: one more node; its port goes to NODE_PORTS.
up() {
    NODE_NAME=$1 NODE_DB=$2
    bench_serve "$3" start_node
    NODE_PIDS+=("$SRV_PID")
    NODE_PORTS+=("$PORT")
}

# The loadgen's --url list for target $1 over NODE_PORTS.
urls() {
    local a=ws://127.0.0.1:${NODE_PORTS[0]}/ws b=ws://127.0.0.1:${NODE_PORTS[1]:-0}/ws
    case $1 in
    one) printf '%s\n' --url "$a" ;;
    same) printf '%s\n' --url "$a" --url "$a" --url "$b" --url "$b" ;;
    cross) printf '%s\n' --url "$a" --url "$b" ;;
    esac
}

loadgen_args() {
    printf '%s\n' --mode "$MODE" --ramp "$RAMP" --duration "$DURATION" --json --no-progress \
        --recording "$root/tools/sessions"
    case $MODE in
    replay) printf '%s\n' --speed "$SPEED" ;;
    unthrottled) printf '%s\n' --rate "$RATE" ;;
    esac
}

# run_one TARGET RUN: one load run; appends a JSON line to $STATE/rows.jsonl.
run_one() {
    local name=$1 run=$2 db dburl dir rc=0 args pid cpu0=0 cpu1=0 n
    db="nodes_${name}_${run}"
    dir=$STATE/$db
    mkdir -p "$dir"
    "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$PG" -c "CREATE DATABASE $db TEMPLATE coach_template" ||
        die "cannot create $db"
    dburl="$PG dbname=$db"
    "$LOADGEN" --setup "$ROOMS" --db "$dburl" --fixtures "$dir/fx.tsv" 2>>"$dir/loadgen.log" ||
        die "coach-loadgen --setup failed ($dir/loadgen.log)"
    "$PGBIN/psql" -X -q "$dburl" -c ANALYZE
    NODE_PIDS=() NODE_PORTS=()
    n=2
    [[ $name == one ]] && n=1
    up node-a "$dburl" "$dir/node-a.log"
    ((n == 2)) && up node-b "$dburl" "$dir/node-b.log"
    sleep 3 # the nodes see each other (heartbeats)
    for pid in "${NODE_PIDS[@]}"; do
        cpu0=$((cpu0 + $(cpu_ticks "$pid")))
    done
    mapfile -t args < <(urls "$name"; loadgen_args)
    "$LOADGEN" --fixtures "$dir/fx.tsv" "${args[@]}" >"$dir/run.json" 2>>"$dir/loadgen.log" &
    LG_PID=$!
    wait "$LG_PID" || rc=$?
    LG_PID=""
    for pid in "${NODE_PIDS[@]}"; do
        cpu1=$((cpu1 + $(cpu_ticks "$pid")))
        stop_pid "$pid"
    done
    NODE_PIDS=()
    "$PGBIN/psql" -X -q "$PG" -c "DROP DATABASE $db WITH (FORCE)" || true
    [[ -s $dir/run.json ]] || { tail -n 20 "$dir/loadgen.log" >&2; die "coach-loadgen failed"; }
    jq -c --arg t "$name" --argjson run "$run" --argjson rc "$rc" --argjson cpu "$((cpu1 - cpu0))" \
        --argjson hz "$(getconf CLK_TCK)" '
        {target: $t, run: $run, rc: $rc, ok: .ok,
         conns: .counts.joined_peak, acked: .counts.acked,
         acked_per_s: ((.acked_per_s * 10 | round) / 10),
         ack_p50: .latency_ms.ack.p50, ack_p99: .latency_ms.ack.p99,
         dl_p50: .latency_ms.delivery.p50, dl_p99: .latency_ms.delivery.p99,
         dl_max: .latency_ms.delivery.max,
         lost: .verify.lost, dup: .verify.duplicated, reordered: .verify.reordered,
         errors: ([.errors.by_code[]?] | add // 0),
         cpu_ms_per_1k: (if (.verify.deliveries // 0) > 0
                         then ($cpu / $hz * 1000 / (.verify.deliveries / 1000) * 10 | floor) / 10
                         else null end)}' "$dir/run.json" >>"$STATE/rows.jsonl"
}

# ---- the runs ---------------------------------------------------------------------------------

say "mode $MODE, $ROOMS rooms, $RUNS runs, targets ${order[*]} (PostgreSQL: $PG_SETTINGS)"
bench_rounds

COLS='target run conns acked acked_per_s ack_p50 ack_p99 dl_p50 dl_p99 dl_max lost dup reordered errors cpu_ms_per_1k ok'
bench_rows "$COLS"
printf '\nmedians:\n'
jq -s -r '
    def med: map(select(. != null)) | sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
    group_by(.target)[] | {t: .[0].target,
      a: (map(.acked_per_s) | med), a99: (map(.ack_p99) | med),
      d50: (map(.dl_p50) | med), d99: (map(.dl_p99) | med), dmax: (map(.dl_max) | med),
      cpu: (map(.cpu_ms_per_1k) | med)}
    | "\(.t): acked/s \(.a), ack p99 \(.a99) ms, delivery p50 \(.d50) p99 \(.d99) max \(.dmax) ms, node CPU \(.cpu) ms per 1000 deliveries"
' "$STATE/rows.jsonl"
printf 'command: bench/nodes.sh --targets %s --mode %s --rooms %s --duration %s --speed %s --rate %s --ramp %s --runs %s%s\n' \
    "$TARGETS" "$MODE" "$ROOMS" "$DURATION" "$SPEED" "$RATE" "$RAMP" "$RUNS" \
    "$( ((DURABLE)) && echo ' --durable')"
bench_verdict
