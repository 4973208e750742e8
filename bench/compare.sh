#!/usr/bin/env bash
# bench/compare.sh: coach-gateway and the Node.js reference peer
# (bench/peer-node: npm ws + pg, one transaction per message) side by side,
# driven by the same coach-loadgen run; and, as target `pglimit`, the
# database's own ceiling: bench/pg_limit writing the same rows in batches of
# --batch per transaction for --duration, with no WebSocket at all (its
# "ack" columns are its commit latencies); and, as target `nodeio`, the
# peer's Socket.IO variant (bench/peer-node/server-sio.mjs, the same SQL),
# driven by coach-loadgen --proto socketio. Builds the Release gateway and
# coach-loadgen, installs the peer's npm packages (npm ci) when missing,
# starts a private PostgreSQL (tests/support/pg-fixture.sh, state under
# /tmp). For each run and each target, in alternating order so that neither
# always goes first on a noisy machine: a fresh database from the migrated
# template, `coach-loadgen --setup ROOMS`, the target on a free loopback
# port, the load run (--json), the target stopped. Samples the target's
# resident memory (peak) and CPU time. Prints one row per run, then per
# target the medians, and the gateway/peer ratios. Exits 1 when a run
# failed its verification.
#
#   bench/compare.sh [--targets gateway,gateway2,node,nodeio,pglimit] [--gateway2 PATH]
#                    [--mode replay|unthrottled|idle|storm]
#                    [--rooms N] [--duration SEC] [--speed X] [--ramp SEC]
#                    [--window N] [--rate R] [--batch N] [--runs N] [--sources K]
#                    [--durable]
#                    [--build-dir DIR] [--keep]
#
# Defaults: both targets, replay of tools/sessions at --speed 10, 100 rooms,
# --duration 60, --ramp 5, 3 runs. --rate (unthrottled): chats a second per
# connection, paced (9.5: the gateway's 10/s limit, the fair peak). --durable: PostgreSQL with fsync,
# synchronous_commit and full_page_writes on (the fixture's are off).
# BUILD_DIR (or --build-dir): the Release build, default build/release.
# Target gateway2: a second coach-gateway binary (--gateway2 PATH, or
# GATEWAY2), e.g. another commit's Release build, run exactly as `gateway`
# is, to compare two versions side by side in one sitting.
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2034 # read by tools/lib.sh
set -euo pipefail

root=$(cd -P "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIB_PREFIX=compare
# shellcheck source=../tools/lib.sh
. "$root/tools/lib.sh"
# shellcheck source=lib.sh
. "$root/bench/lib.sh"

TARGETS=gateway,node
MODE=replay
ROOMS=100
DURATION=60
SPEED=10
RAMP=5
WINDOW=8
RATE=0
BATCH=256
RUNS=3
SOURCES=1
DURABLE=0
KEEP=0
BUILD_DIR=${BUILD_DIR:-$root/build/release}
GATEWAY2=${GATEWAY2:-}

usage() { bench_usage "${BASH_SOURCE[0]}"; }

while (($# > 0)); do
    case $1 in
    --targets) TARGETS=${2:?}; shift 2 ;;
    --mode) MODE=${2:?}; shift 2 ;;
    --rooms) ROOMS=${2:?}; shift 2 ;;
    --duration) DURATION=${2:?}; shift 2 ;;
    --speed) SPEED=${2:?}; shift 2 ;;
    --ramp) RAMP=${2:?}; shift 2 ;;
    --window) WINDOW=${2:?}; shift 2 ;;
    --batch) BATCH=${2:?}; shift 2 ;;
    --rate) RATE=${2:?}; shift 2 ;;
    --runs) RUNS=${2:?}; shift 2 ;;
    --sources) SOURCES=${2:?}; shift 2 ;;
    --durable) DURABLE=1; shift ;;
    --build-dir) BUILD_DIR=${2:?}; shift 2 ;;
    --gateway2) GATEWAY2=${2:?}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage ;;
    *) say "unknown argument: $1"; usage ;;
    esac
done

[[ $TARGETS =~ ^(gateway|gateway2|node|nodeio|pglimit)(,(gateway|gateway2|node|nodeio|pglimit))*$ ]] ||
    die "--targets: a comma list of gateway, gateway2, node, nodeio, pglimit"
if [[ ,$TARGETS, == *,gateway2,* ]]; then
    [[ -x $GATEWAY2 ]] || die "target gateway2 needs --gateway2 PATH (an executable coach-gateway)"
fi
in_range "$BATCH" 1 4096 || die "--batch must be 1..4096"
[[ $MODE =~ ^(replay|unthrottled|idle|storm)$ ]] || die "--mode: replay, unthrottled, idle or storm"
in_range "$ROOMS" 1 50000 || die "--rooms must be 1..50000"
in_range "$DURATION" 1 3600 || die "--duration must be 1..3600 seconds"
in_range "$RAMP" 0 600 || die "--ramp must be 0..600 seconds"
in_range "$WINDOW" 1 256 || die "--window must be 1..256"
in_range "$RUNS" 1 20 || die "--runs must be 1..20"
in_range "$SOURCES" 1 65536 || die "--sources must be 1..65536"
[[ $SPEED =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--speed must be a number"
[[ $RATE =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--rate must be a number"
for tool in jq curl node npm; do
    command -v "$tool" >/dev/null || die "$tool is needed (apt-get install $tool)"
done

STATE=""
SRV_PID=""
LG_PID=""
PG_STATE=""

cleanup() { bench_finish $? "$LG_PID" "$SRV_PID"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

STATE=$(mktemp -d /tmp/coach-compare.XXXXXX)

# ---- build ------------------------------------------------------------------------------------

bench_build "$BUILD_DIR" coach-gateway coach-loadgen pg_limit
GATEWAY=$BUILD_DIR/gateway/coach-gateway
LOADGEN=$BUILD_DIR/tools/loadgen/coach-loadgen
PEER=$root/bench/peer-node/server.mjs
PEER_SIO=$root/bench/peer-node/server-sio.mjs
PGLIMIT=$BUILD_DIR/bench/pg_limit
[[ -x $GATEWAY && -x $LOADGEN ]] || die "built, but $GATEWAY or $LOADGEN is missing"
if [[ $TARGETS == *node* && ! -d $root/bench/peer-node/node_modules/ws ]] ||
    [[ $TARGETS == *nodeio* && ! -d $root/bench/peer-node/node_modules/socket.io ]]; then
    say "installing the peer's npm packages (bench/peer-node/package-lock.json)"
    (cd "$root/bench/peer-node" && npm ci --no-audit --no-fund --loglevel=error) ||
        die "npm ci in bench/peer-node failed"
fi

# ---- PostgreSQL ---------------------------------------------------------------------------------

bench_start_pg "$GATEWAY"
bench_raise_nofile

# ---- one run ------------------------------------------------------------------------------------

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# The server under test, for bench_serve: TARGET on TARGET_DB.
start_server() {
    if [[ $TARGET == gateway || $TARGET == gateway2 ]]; then
        local bin=$GATEWAY
        if [[ $TARGET == gateway2 ]]; then
            bin=$GATEWAY2
        fi
        DATABASE_URL=$TARGET_DB LISTEN=127.0.0.1:$PORT LOG_LEVEL=warn MIGRATE_ON_START=0 \
            "$bin" serve 2>"$1" &
    elif [[ $TARGET == nodeio ]]; then
        node "$PEER_SIO" --listen "127.0.0.1:$PORT" --database-url "$TARGET_DB" 2>"$1" &
    else
        node "$PEER" --listen "127.0.0.1:$PORT" --database-url "$TARGET_DB" 2>"$1" &
    fi
    SRV_PID=$!
}

# start_target NAME DBURL LOG: SRV_PID and PORT, once /healthz answers.
start_target() {
    TARGET=$1 TARGET_DB=$2
    bench_serve "$3" start_server
}

loadgen_args() {
    printf '%s\n' --mode "$MODE" --ramp "$RAMP" --duration "$DURATION" --sources "$SOURCES" \
        --json --no-progress
    case $MODE in
    replay | storm) printf '%s\n' --recording "$root/tools/sessions" --speed "$SPEED" ;;
    unthrottled) printf '%s\n' --recording "$root/tools/sessions" --window "$WINDOW" --rate "$RATE" ;;
    esac
}

# run_pglimit RUN DBURL DIR: the database's ceiling, as a row.
run_pglimit() {
    local run=$1 dburl=$2 dir=$3 line
    line=$("$PGLIMIT" "$dburl" "$ROOMS" "$BATCH" "$DURATION" 2>>"$dir/pg_limit.log") ||
        { cat "$dir/pg_limit.log" >&2; die "pg_limit failed"; }
    printf '%s\n' "$line" >"$dir/pg_limit.out"
    jq -n -c --arg line "$line" --argjson run "$run" '
        ($line | split(" ") | map(split("=") | {(.[0]): (.[1] | tonumber)}) | add) as $v
        | {target: "pglimit", run: $run, rc: 0, ok: true, conns: 0, acked: $v.messages,
           acked_per_s: $v.per_s, ack_p50: $v.commit_p50_ms, ack_p99: $v.commit_p99_ms,
           dl_p50: null, dl_p99: null, dl_max: null, lost: 0, dup: 0, errors: 0,
           rss_kib_per_conn: null, cpu_ms_per_1k: null}' >>"$STATE/rows.jsonl"
}

# run_one TARGET RUN: one load run; appends a JSON line to $STATE/rows.jsonl.
run_one() {
    local name=$1 run=$2 db dburl dir rss0 rss_peak=0 cpu0 cpu1 r rc=0 args
    db="cmp_${name}_${run}"
    dir=$STATE/$db
    mkdir -p "$dir"
    "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$PG" -c "CREATE DATABASE $db TEMPLATE coach_template" ||
        die "cannot create $db"
    dburl="$PG dbname=$db"
    "$LOADGEN" --setup "$ROOMS" --db "$dburl" --fixtures "$dir/fx.tsv" 2>>"$dir/loadgen.log" ||
        die "coach-loadgen --setup failed ($dir/loadgen.log)"
    "$PGBIN/psql" -X -q "$dburl" -c ANALYZE
    if [[ $name == pglimit ]]; then
        run_pglimit "$run" "$dburl" "$dir"
        "$PGBIN/psql" -X -q "$PG" -c "DROP DATABASE $db WITH (FORCE)" || true
        return 0
    fi
    start_target "$name" "$dburl" "$dir/server.log"
    sleep 0.5
    rss0=$(rss_kib "$SRV_PID")
    cpu0=$(cpu_ticks "$SRV_PID")
    mapfile -t args < <(loadgen_args)
    if [[ $name == nodeio ]]; then
        args+=(--proto socketio --url "ws://127.0.0.1:$PORT/socket.io")
    else
        args+=(--url "ws://127.0.0.1:$PORT/ws")
    fi
    "$LOADGEN" --fixtures "$dir/fx.tsv" "${args[@]}" \
        >"$dir/run.json" 2>>"$dir/loadgen.log" &
    LG_PID=$!
    while proc_alive "$LG_PID"; do
        r=$(rss_kib "$SRV_PID")
        ((r > rss_peak)) && rss_peak=$r
        sleep 0.5
    done
    wait "$LG_PID" || rc=$?
    LG_PID=""
    cpu1=$(cpu_ticks "$SRV_PID")
    stop_pid "$SRV_PID"
    SRV_PID=""
    "$PGBIN/psql" -X -q "$PG" -c "DROP DATABASE $db WITH (FORCE)" || true
    [[ -s $dir/run.json ]] || { tail -n 20 "$dir/loadgen.log" >&2; die "coach-loadgen failed"; }
    jq -c --arg t "$name" --argjson run "$run" --argjson rc "$rc" --argjson rss0 "$rss0" \
        --argjson peak "$rss_peak" --argjson cpu "$((cpu1 - cpu0))" \
        --argjson hz "$(getconf CLK_TCK)" '
        {target: $t, run: $run, rc: $rc, ok: .ok,
         conns: .counts.joined_peak, acked: .counts.acked, acked_per_s: ((.acked_per_s * 10 | round) / 10),
         ack_p50: .latency_ms.ack.p50, ack_p99: .latency_ms.ack.p99,
         dl_p50: .latency_ms.delivery.p50, dl_p99: .latency_ms.delivery.p99,
         dl_max: .latency_ms.delivery.max, join_p99: .latency_ms.join.p99,
         reconnect_p99: .latency_ms.reconnect.p99,
         lost: .verify.lost, dup: .verify.duplicated, reordered: .verify.reordered,
         errors: ([.errors.by_code[]?] | add // 0),
         retried: ((.counts.chat_retries // 0) + (.counts.signin_retries // 0)),
         back: (if .mode == "storm" then "\(.counts.storm_back)/\(.counts.storm_dropped)" else null end),
         recovery_s: (if .mode == "storm" then ((.storm_recovery_s // 0) * 100 | round) / 100 else null end),
         rss_kib_per_conn: (if (.counts.joined_peak // 0) > 0
                            then (($peak - $rss0) / .counts.joined_peak * 100 | floor) / 100
                            else null end),
         cpu_s: ($cpu / $hz),
         cpu_ms_per_1k: (if (.verify.deliveries // 0) > 0
                         then ($cpu / $hz * 1000 / (.verify.deliveries / 1000) * 10 | floor) / 10
                         else null end)}' "$dir/run.json" >>"$STATE/rows.jsonl"
}

# ---- the runs ---------------------------------------------------------------------------------

IFS=, read -r -a order <<<"$TARGETS"
say "mode $MODE, $ROOMS rooms, $RUNS runs, targets ${order[*]} (PostgreSQL: $PG_SETTINGS)"
bench_rounds

# retried: chats, hellos and joins answered `unavailable` and sent again
COLS='target run conns acked acked_per_s ack_p50 ack_p99 dl_p50 dl_p99 dl_max lost dup reordered errors retried rss_kib_per_conn cpu_s cpu_ms_per_1k ok'
if [[ $MODE == storm ]]; then
    COLS+=' back recovery_s' # storm: dropped connections back, the last one's time after the drop
fi
bench_rows "$COLS"
printf '\nmedians:\n'
jq -s -r '
    def med: map(select(. != null)) | sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
    def r2: if . == null then null else (. * 100 | round) / 100 end;
    def div(a; b): if a == null or b == null or b == 0 then null else (a / b | r2) end;
    [group_by(.target)[] | {t: .[0].target,
      acked_per_s: (map(.acked_per_s) | med), ack_p50: (map(.ack_p50) | med),
      ack_p99: (map(.ack_p99) | med), cpu_s: (map(.cpu_s) | med),
      dl_p50: (map(.dl_p50) | med), dl_p99: (map(.dl_p99) | med), dl_max: (map(.dl_max) | med),
      rss: (map(.rss_kib_per_conn) | med), cpu: (map(.cpu_ms_per_1k) | med)}]
    | (INDEX(.t)) as $m
    | (.[] | "\(.t): acked/s \(.acked_per_s) ack p50 \(.ack_p50) p99 \(.ack_p99) ms, delivery p50 \(.dl_p50) p99 \(.dl_p99) max \(.dl_max) ms, RSS/conn \(.rss) KiB, CPU \(.cpu_s) s, \(.cpu) ms per 1000 deliveries"),
      (if $m.gateway and $m.node then
         "gateway/node: throughput x\(div($m.gateway.acked_per_s; $m.node.acked_per_s)), delivery p99 x\(div($m.node.dl_p99; $m.gateway.dl_p99)) lower, memory per connection 1/\(div($m.node.rss; $m.gateway.rss)), CPU per message 1/\(div($m.node.cpu; $m.gateway.cpu))"
       else empty end),
      (if $m.gateway and $m.nodeio then
         "gateway/nodeio: throughput x\(div($m.gateway.acked_per_s; $m.nodeio.acked_per_s)), delivery p99 x\(div($m.nodeio.dl_p99; $m.gateway.dl_p99)) lower, memory per connection 1/\(div($m.nodeio.rss; $m.gateway.rss)), CPU per message 1/\(div($m.nodeio.cpu; $m.gateway.cpu))"
       else empty end),
      (if $m.node and $m.nodeio then
         "nodeio/node: throughput x\(div($m.nodeio.acked_per_s; $m.node.acked_per_s)), delivery p99 x\(div($m.nodeio.dl_p99; $m.node.dl_p99)), memory per connection x\(div($m.nodeio.rss; $m.node.rss)), CPU per message x\(div($m.nodeio.cpu; $m.node.cpu))"
       else empty end),
      (if $m.gateway and $m.pglimit then
         "gateway/pglimit: \(div($m.gateway.acked_per_s * 100; $m.pglimit.acked_per_s))% of the database ceiling"
       else empty end)
' "$STATE/rows.jsonl"
[[ -n $GATEWAY2 ]] && printf 'gateway2: %s\n' "$GATEWAY2"
printf 'command: bench/compare.sh --targets %s --mode %s --rooms %s --duration %s --speed %s --ramp %s --window %s --rate %s --batch %s --runs %s --sources %s%s\n' \
    "$TARGETS" "$MODE" "$ROOMS" "$DURATION" "$SPEED" "$RAMP" "$WINDOW" "$RATE" "$BATCH" "$RUNS" "$SOURCES" \
    "$( ((DURABLE)) && echo ' --durable')"
bench_verdict
