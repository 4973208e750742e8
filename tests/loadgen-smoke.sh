#!/usr/bin/env bash
# tests/loadgen-smoke.sh LOADGEN_BIN: the coach-loadgen smoke test (ctest
# "loadgen.smoke", tests/CMakeLists.txt). Against the `pg` fixture's server
# (COACH_TEST_PG_FILE) it makes a database from the migrated template,
# starts the real gateway (COACH_GATEWAY_BIN) on a free port, creates 4
# rooms with `coach-loadgen --setup 4`, replays the recordings of
# tools/sessions in 2 rooms at high speed with verification, runs the
# reconnect storm in the 2 others, then the unthrottled mode there, checks
# the JSON summaries (chats acked, no loss, no duplicates, rate_limited
# counted), exports one finished session back into a
# recording and parses it; then, when node and bench/peer-node's npm
# packages are there (tools/dev test installs them), replays 2 more rooms
# and storms 1 against the Socket.IO peer (bench/peer-node/server-sio.mjs)
# with --proto socketio; cleans up with --cleanup, and removes the
# gateway, the peer and the database. Finishes in well under 60 s.
set -euo pipefail

LOADGEN=${1:?usage: loadgen-smoke.sh LOADGEN_BIN}
: "${COACH_TEST_PG_FILE:?run through ctest (the pg fixture)}"
: "${COACH_GATEWAY_BIN:?run through ctest}"
SRC=${COACH_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}

say() { printf 'loadgen-smoke: %s\n' "$*" >&2; }
die() {
    say "FAILED: $*"
    exit 1
}

PG=$(head -n 1 "$COACH_TEST_PG_FILE")
DB=lgsmoke_$$_$RANDOM
DBURL="$PG dbname=$DB"
TMP=$(mktemp -d /tmp/loadgen-smoke.XXXXXX)
GW_PID=""
GW2_PID=""
SIO_PID=""

cleanup() {
    local pid
    for pid in $GW_PID $GW2_PID $SIO_PID; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    psql "$PG" -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT

# The template is busy while another test copies it: retry for up to 30 s.
for ((i = 0; ; i++)); do
    if psql "$PG" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $DB TEMPLATE coach_template" \
        >/dev/null 2>"$TMP/createdb.err"; then
        break
    fi
    ((i < 150)) || die "cannot create the database: $(cat "$TMP/createdb.err")"
    sleep 0.2
done

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# start_gateway LOG [NAME=VALUE...]: the gateway on a free port, with the
# extra settings given; sets STARTED_PID and STARTED_PORT.
start_gateway() {
    local log=$1 pid="" port i try
    shift
    for ((try = 0; try < 5; try++)); do
        [[ -z $pid ]] || break
        port=$((20000 + RANDOM % 12000)) # below the ephemeral range
        port_free "$port" || continue
        env DATABASE_URL="$DBURL" LISTEN="127.0.0.1:$port" LOG_LEVEL=warn MIGRATE_ON_START=0 \
            "$@" "$COACH_GATEWAY_BIN" serve 2>"$log" &
        pid=$!
        for ((i = 0; i < 100; i++)); do
            port_free "$port" || break
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if port_free "$port" || ! kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            pid=""
        fi
    done
    [[ -n $pid ]] || { tail -n 20 "$log" >&2; die "the gateway did not start"; }
    STARTED_PID=$pid
    STARTED_PORT=$port
}
start_gateway "$TMP/gateway.log"
GW_PID=$STARTED_PID
PORT=$STARTED_PORT
URL=ws://127.0.0.1:$PORT/ws
say "gateway on $URL, database $DB"

"$LOADGEN" --setup 4 --db "$DBURL" --fixtures "$TMP/fx.tsv" || die "--setup failed"
(($(wc -l <"$TMP/fx.tsv") == 4)) || die "--setup wrote $(wc -l <"$TMP/fx.tsv") rooms, not 4"

# json FILE EXPR: evaluate the SQL expression EXPR over the JSON document in
# FILE, named j (jsonb), with the fixture's psql (no jq needed); prints it.
json() {
    psql "$PG" -X -q -tA -v ON_ERROR_STOP=1 -v "doc=$(cat "$1")" \
        <<<"SELECT $2 FROM (SELECT :'doc'::jsonb AS j) AS d"
}

# holds FILE EXPR: EXPR is true for FILE.
holds() {
    [[ $(json "$1" "$2") == t ]]
}

# check_json FILE NAME: the run passed, chats were acked, nothing lost,
# duplicated, reordered or unanswered.
check_json() {
    holds "$1" "(j->>'ok')::bool AND (j#>>'{counts,acked}')::int > 0
        AND (j#>>'{verify,ok}')::bool AND (j#>>'{verify,lost}')::int = 0
        AND (j#>>'{verify,duplicated}')::int = 0 AND (j#>>'{verify,reordered}')::int = 0
        AND (j#>>'{verify,unanswered}')::int = 0" ||
        { cat "$1" >&2; die "$2: the summary does not show a clean run"; }
}

say "replay: 2 rooms, 3 recordings, speed 300"
rc=0
"$LOADGEN" --url "$URL" --fixtures "$TMP/fx.tsv" --rooms 2 --recording "$SRC/tools/sessions" \
    --speed 300 --duration 20 --drain 5 --json >"$TMP/replay.json" || rc=$?
((rc == 0)) || { cat "$TMP/replay.json" >&2; die "replay exited with $rc"; }
check_json "$TMP/replay.json" replay
holds "$TMP/replay.json" "(j#>>'{counts,ends_sent}')::int = 2 AND (j#>>'{counts,rated}')::int = 2" ||
    die "replay: the sessions were not ended and rated"

say "storm: 2 rooms, everyone dropped at 2 s"
rc=0
"$LOADGEN" --url "$URL" --fixtures "$TMP/fx.tsv" --first 2 --rooms 2 --mode storm \
    --recording "$SRC/tools/sessions/anxiety.jsonl" --speed 300 --storm-at 2 --duration 20 \
    --drain 5 --json >"$TMP/storm.json" || rc=$?
((rc == 0)) || { cat "$TMP/storm.json" >&2; die "storm exited with $rc"; }
check_json "$TMP/storm.json" storm
holds "$TMP/storm.json" "(j#>>'{counts,reconnects}')::int >= 4
    AND (j#>>'{latency_ms,reconnect,count}')::int >= 4" || die "storm: the connections did not all reconnect"

say "unthrottled: the same 2 rooms, 2 s"
rc=0
"$LOADGEN" --url "$URL" --fixtures "$TMP/fx.tsv" --first 2 --rooms 2 --mode unthrottled \
    --recording "$SRC/tools/sessions/breathing.jsonl" --duration 2 --drain 5 --json \
    >"$TMP/flood.json" || rc=$?
((rc == 0)) || { cat "$TMP/flood.json" >&2; die "unthrottled exited with $rc"; }
check_json "$TMP/flood.json" unthrottled
# The gateway's per-connection limit (10/s, bursts of 20) must show.
holds "$TMP/flood.json" "(j#>>'{errors,rate_limited}')::int > 0" ||
    die "unthrottled: no rate_limited errors counted"

say "unavailable: chats refused by a full store queue are sent again, and all arrive"
# A second gateway whose one store connection takes at most 4 requests
# waiting; the 2 rooms' coach_room rows are locked for 2 s, so their chats
# pile up behind the first batch and the rest are answered `unavailable`.
start_gateway "$TMP/gateway2.log" STORE_CONNECTIONS=1 STORE_QUEUE_MAX=4
GW2_PID=$STARTED_PID
URL2=ws://127.0.0.1:$STARTED_PORT/ws
ROOMS2=$(grep -v "^#" "$TMP/fx.tsv" | sed -n 3,4p | cut -f1 | paste -sd, -)
psql "$DBURL" -q -v ON_ERROR_STOP=1 -v rooms="$ROOMS2" >"$TMP/lock.log" 2>&1 <<'SQL' &
BEGIN;
SELECT 1 FROM coach_room r JOIN "Appointment" a ON a.id = r.appointment_id
 WHERE a."roomId" = ANY (string_to_array(:'rooms', ',')) FOR UPDATE OF r;
SELECT pg_sleep(3);
COMMIT;
SQL
LOCK_PID=$!
rc=0
"$LOADGEN" --url "$URL2" --fixtures "$TMP/fx.tsv" --first 2 --rooms 2 --mode unthrottled \
    --recording "$SRC/tools/sessions/breathing.jsonl" --rate 5 --duration 3 --drain 10 --json \
    >"$TMP/refused.json" || rc=$?
wait "$LOCK_PID" || { cat "$TMP/lock.log" >&2; die "the lock holder failed"; }
((rc == 0)) || { cat "$TMP/refused.json" "$TMP/gateway2.log" >&2; die "unavailable run exited with $rc"; }
check_json "$TMP/refused.json" unavailable
holds "$TMP/refused.json" "(j#>>'{counts,chat_retries}')::int > 0
    AND (j#>>'{counts,chats_resent}')::int >= (j#>>'{counts,chat_retries}')::int
    AND coalesce((j#>>'{errors,unavailable}')::int, 0) = 0" ||
    { cat "$TMP/refused.json" >&2; die "unavailable: no chat was refused and sent again"; }
say "unavailable: $(json "$TMP/refused.json" "format('refused then resent=%s acked=%s ack_p99_ms=%s lost=%s',
    j#>>'{counts,chat_retries}', j#>>'{counts,acked}', round((j#>>'{latency_ms,ack,p99}')::numeric, 1),
    j#>>'{verify,lost}')")"
kill -TERM "$GW2_PID" && wait "$GW2_PID" || true
GW2_PID=""

say "export: a finished session back into a recording"
SID=$(psql "$DBURL" -tA -c "SELECT s.\"id\" FROM \"Session\" s JOIN \"User\" u ON u.\"id\" = s.\"userId\" WHERE s.\"status\" = 'completed' AND u.\"role\" = 'client' ORDER BY s.\"id\" LIMIT 1")
[[ -n $SID ]] || die "no completed session to export"
"$LOADGEN" --export "$SID" --db "$DBURL" --out "$TMP/export.jsonl" || die "--export failed"
grep -q '"type": *"rate"' "$TMP/export.jsonl" || die "the export has no rating"
"$LOADGEN" --fixtures "$TMP/fx.tsv" --rooms 1 --recording "$TMP/export.jsonl" --mode idle \
    --duration 2 --drain 0 --url "$URL" >"$TMP/idle.txt" 2>&1 ||
    { cat "$TMP/idle.txt" >&2; die "the exported recording does not load"; }

# The Socket.IO path of coach-loadgen against the Node peer's Socket.IO
# variant, on the same database: its own rooms.
PEER_DIR=$SRC/bench/peer-node
if command -v node >/dev/null && [[ -d $PEER_DIR/node_modules/socket.io ]]; then
    "$LOADGEN" --setup 3 --db "$DBURL" --fixtures "$TMP/fx-sio.tsv" || die "--setup (socketio) failed"
    for ((try = 0; try < 5; try++)); do
        SIO_PORT=$((20000 + RANDOM % 12000))
        port_free "$SIO_PORT" || continue
        node "$PEER_DIR/server-sio.mjs" --listen "127.0.0.1:$SIO_PORT" --database-url "$DBURL" \
            2>"$TMP/peer-sio.log" &
        SIO_PID=$!
        for ((i = 0; i < 100; i++)); do
            port_free "$SIO_PORT" || break
            kill -0 "$SIO_PID" 2>/dev/null || break
            sleep 0.1
        done
        ! port_free "$SIO_PORT" && kill -0 "$SIO_PID" 2>/dev/null && break
        kill "$SIO_PID" 2>/dev/null || true
        wait "$SIO_PID" 2>/dev/null || true
        SIO_PID=""
    done
    [[ -n $SIO_PID ]] || { cat "$TMP/peer-sio.log" >&2; die "the Socket.IO peer did not start"; }
    SIO_URL=ws://127.0.0.1:$SIO_PORT/socket.io
    say "socketio: replay in 2 rooms, storm in 1, against $SIO_URL"
    rc=0
    "$LOADGEN" --proto socketio --url "$SIO_URL" --fixtures "$TMP/fx-sio.tsv" --rooms 2 \
        --recording "$SRC/tools/sessions" --speed 300 --duration 20 --drain 5 --json \
        >"$TMP/sio-replay.json" || rc=$?
    ((rc == 0)) || { cat "$TMP/sio-replay.json" "$TMP/peer-sio.log" >&2; die "socketio replay exited with $rc"; }
    check_json "$TMP/sio-replay.json" "socketio replay"
    holds "$TMP/sio-replay.json" "j->>'proto' = 'socketio' AND (j#>>'{counts,rated}')::int = 2" ||
        die "socketio replay: the sessions were not ended and rated"
    rc=0
    "$LOADGEN" --proto socketio --url "$SIO_URL" --fixtures "$TMP/fx-sio.tsv" --first 2 --rooms 1 \
        --mode storm --recording "$SRC/tools/sessions/anxiety.jsonl" --speed 300 --storm-at 2 \
        --duration 20 --drain 5 --json >"$TMP/sio-storm.json" || rc=$?
    ((rc == 0)) || { cat "$TMP/sio-storm.json" "$TMP/peer-sio.log" >&2; die "socketio storm exited with $rc"; }
    check_json "$TMP/sio-storm.json" "socketio storm"
    holds "$TMP/sio-storm.json" "(j#>>'{counts,reconnects}')::int >= 2" ||
        die "socketio storm: the connections did not reconnect"
else
    say "socketio: skipped (no node, or no $PEER_DIR/node_modules: tools/dev test installs them)"
fi

say "cleanup"
"$LOADGEN" --cleanup --db "$DBURL" || die "--cleanup failed"
left=$(psql "$DBURL" -tA -c "SELECT (SELECT count(*) FROM \"User\" WHERE \"id\" LIKE 'clg%') + (SELECT count(*) FROM \"Appointment\" WHERE \"id\" LIKE 'clg%') + (SELECT count(*) FROM \"Message\")")
[[ $left == 0 ]] || die "--cleanup left $left rows"
say "ok: replay $(json "$TMP/replay.json" "format('acked=%s acked_per_s=%s ack_p99_ms=%s delivery_p99_ms=%s lost=%s',
    j#>>'{counts,acked}', round((j->>'acked_per_s')::numeric, 1),
    round((j#>>'{latency_ms,ack,p99}')::numeric, 2),
    round((j#>>'{latency_ms,delivery,p99}')::numeric, 2), j#>>'{verify,lost}')")"
