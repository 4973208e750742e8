/*
 * ops_queries.c: the statements of the store thread's operations,
 * prepared once per connection, and the two ways to run them (one
 * statement, or a pipeline of several).
 *
 * DESIGN
 * Prepared statements: an unprepared statement is parsed and planned on
 * every run, which for these short statements costs more than running them
 * (a one-chat transaction, fsync off: about 0.9 ms when every statement is
 * planned, 0.3 ms prepared with generic plans).
 * store__ops_ready() prepares them all the first time a connection is
 * used. Whether a connection has them is kept with the connection itself,
 * as libpq instance data of an event procedure: it is reset by PQreset()
 * and freed by PQfinish(), so a reconnect made by store.c (a new PGconn)
 * starts unprepared without store.c having to say so. Statement names are
 * "coach_ops_<n>". Each Parse has its own Sync, so one statement failing to
 * prepare does not stop the others; one that already exists (42P05, left
 * by an earlier attempt: same name, same text) counts as prepared.
 *
 * Generic plans: left to itself (plan_cache_mode = auto), PostgreSQL keeps
 * re-planning a statement whose array parameter makes the generic plan look
 * dearer than a custom one (unnest() of a parameter is guessed at 10 rows,
 * of a constant at its true length), so the chat statements would be planned
 * on every batch again. The store's session therefore sets plan_cache_mode
 * to force_generic_plan (it only affects prepared statements). Every
 * statement here is written so that its generic plan is an index scan
 * whatever the table sizes (= ANY on a key, lookups by unique keys),
 * checked with EXPLAIN on 20 000 rooms and 200 000 messages. A generic
 * plan is made once, at a statement's first run, and kept until the
 * table's statistics change (an ANALYZE, manual or automatic): made on a
 * new database whose chat tables are empty, it is a nested loop of
 * sequential scans (right for empty tables), and it stays while the tables
 * grow until autovacuum next analyzes them, a minute or more later, by
 * when every history read scans all messages (measured: 350 ms per read
 * at a few thousand messages, the store thread saturated). So the session
 * also sets enable_seqscan off: a sequential scan is then only chosen
 * where no index serves, and the plan made on empty tables is the index
 * plan. The same holds for the foreign-key checks' cached plans, which
 * run in this session. And it sets jit off: a sequential scan left where
 * no index serves (coach_node, a few rows) then costs over 10^10, far
 * above jit_above_cost, and PostgreSQL compiled those heartbeat statements
 * with LLVM on every run (measured: 4 % of the 2-core machine during the
 * durable benchmark). None of these short statements gains from JIT.
 *
 * Pipelines: a write transaction of the store is a handful of statements
 * whose parameters are known up front. Sending them in one libpq pipeline
 * with one Sync costs one network round trip. The server runs them in
 * order and skips the rest after a failure until the Sync; an explicit
 * BEGIN inside the pipeline keeps the transaction open across the Sync, so
 * the caller decides (COMMIT in a later pipeline, or store__ops_rollback).
 * The connection stays in blocking mode: the server's replies to these
 * statements are a few small rows, far below a socket buffer, so writing a
 * large pipeline cannot deadlock.
 *
 * Columns of each query are listed next to it; the operation that reads a
 * result names them in an enum in the same order.
 */
#include <errno.h>
#include <libpq-events.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "ops_int.h"
#include "store_int.h"

/* ---- the statements ----------------------------------------------------------------- */

/* $1 token. -> id, expires (ms), user id, displayName, role. Refreshes
 * "lastActive" when it is more than a minute old. */
static const char auth_session_sql[] =
    "WITH s AS ("
    " SELECT us.id, us.\"expiresAt\", u.id AS user_id, u.\"displayName\", u.role"
    " FROM \"UserSession\" us"
    " JOIN \"User\" u ON u.\"skoolUserId\" = us.\"skoolUserId\""
    " WHERE us.\"sessionId\" = $1 AND us.\"isActive\""
    "  AND us.\"expiresAt\" > " OPS_SQL_NOW "),"
    " touch AS ("
    " UPDATE \"UserSession\" t SET \"lastActive\" = " OPS_SQL_NOW " FROM s"
    " WHERE t.id = s.id AND t.\"lastActive\" < " OPS_SQL_NOW " - INTERVAL '1 minute')"
    " SELECT s.id, " OPS_SQL_MS("s.\"expiresAt\"") ", s.user_id, s.\"displayName\", s.role"
                                                   " FROM s";

/* The same for many tokens at once: $1 the tokens (text[]). -> the
 * 1-based index of each token that resolves, then the columns above. */
static const char auth_sessions_sql[] =
    "WITH s AS ("
    " SELECT k.i, us.id, us.\"expiresAt\", u.id AS user_id, u.\"displayName\", u.role"
    " FROM unnest($1::text[]) WITH ORDINALITY AS k(tok, i)"
    " JOIN \"UserSession\" us ON us.\"sessionId\" = k.tok"
    " JOIN \"User\" u ON u.\"skoolUserId\" = us.\"skoolUserId\""
    " WHERE us.\"isActive\" AND us.\"expiresAt\" > " OPS_SQL_NOW "),"
    " touch AS ("
    " UPDATE \"UserSession\" t SET \"lastActive\" = " OPS_SQL_NOW
    " FROM (SELECT DISTINCT id FROM s) d"
    " WHERE t.id = d.id AND t.\"lastActive\" < " OPS_SQL_NOW " - INTERVAL '1 minute')"
    " SELECT s.i, s.id, " OPS_SQL_MS("s.\"expiresAt\"") ", s.user_id, s.\"displayName\", s.role"
    " FROM s ORDER BY s.i";

/* $1 user id. -> id, displayName, role. */
static const char auth_user_sql[] = "SELECT id, \"displayName\", role FROM \"User\" WHERE id = $1";

/* The room clock of appointment `aid`, as two int8 columns (NULL if none):
 * the earliest "startedAt" of its active or completed Session rows and the
 * latest "endedAt" of its completed ones. */
#define ROOM_CLOCK_SQL(aid)                                                                        \
    "(SELECT " OPS_SQL_MS(                                                                         \
        "min(x.\"startedAt\")") " FROM \"Session\" x"                                              \
                                "  WHERE x.\"appointmentId\" = " aid                               \
                                " AND x.status IN ('active', 'completed')),"                       \
                                " (SELECT " OPS_SQL_MS(                                            \
                                    "max(x.\"endedAt\")") " FROM \"Session\" x"                    \
                                                          "  WHERE x.\"appointmentId\" = " aid     \
                                                          " AND x.status = 'completed')"

/* $1 roomId. -> appointment id, scheduledFor (ms), durationMin, status,
 * coach id, coach name, client id, client name, last_seq, started (ms),
 * ended (ms), warningsSent, coach's Session id, client's Session id. */
static const char room_load_sql[] = "SELECT a.id, " OPS_SQL_MS(
    "a.\"scheduledFor\"") ", a.\"durationMin\", a.status,"
                          " a.\"coachId\", co.\"displayName\", a.\"clientId\", cl.\"displayName\","
                          " coalesce(r.last_seq, 0), " ROOM_CLOCK_SQL(
                              "a.id") ","
                                      " (SELECT coalesce(max(x.\"warningsSent\"), 0) FROM "
                                      "\"Session\" x"
                                      "  WHERE x.\"appointmentId\" = a.id),"
                                      " (SELECT x.id FROM \"Session\" x WHERE x.\"appointmentId\" "
                                      "= a.id"
                                      "  AND x.\"userId\" = a.\"coachId\"),"
                                      " (SELECT x.id FROM \"Session\" x WHERE x.\"appointmentId\" "
                                      "= a.id"
                                      "  AND x.\"userId\" = a.\"clientId\"),"
                                      " EXISTS (SELECT 1 FROM coach_livekit_participant p"
                                      "  WHERE p.room_id = a.\"roomId\" AND p.user_id = a.\"coachId\"),"
                                      " EXISTS (SELECT 1 FROM coach_livekit_participant p"
                                      "  WHERE p.room_id = a.\"roomId\" AND p.user_id = a.\"clientId\"),"
                                      " coalesce(r.end_reason, '')"
                                      " FROM \"Appointment\" a"
                                      " JOIN \"User\" co ON co.id = a.\"coachId\""
                                      " JOIN \"User\" cl ON cl.id = a.\"clientId\""
                                      " LEFT JOIN coach_room r ON r.appointment_id = a.id"
                                      " WHERE a.\"roomId\" = $1";

/* $1 new id, $2 roomId, $3 appointmentId, $4 userId, $5 startedAt (ms),
 * $6 durationMinutes. An active row keeps its clock; a row in any other
 * state but completed is reactivated with the new one; a completed row is
 * left alone. */
static const char join_upsert_sql[] =
    "INSERT INTO \"Session\" AS s"
    " (id, \"roomId\", \"appointmentId\", \"userId\", \"startedAt\", \"durationMinutes\", status)"
    " VALUES ($1, $2, $3, $4, " OPS_SQL_TS(
        "$5") ", $6::int4, 'active')"
              " ON CONFLICT (\"appointmentId\", \"userId\") DO UPDATE SET"
              "  status = 'active',"
              "  \"roomId\" = EXCLUDED.\"roomId\","
              "  \"startedAt\" = CASE WHEN s.status = 'active' THEN s.\"startedAt\""
              "   ELSE EXCLUDED.\"startedAt\" END,"
              "  \"durationMinutes\" = CASE WHEN s.status = 'active' THEN s.\"durationMinutes\""
              "   ELSE EXCLUDED.\"durationMinutes\" END,"
              "  \"endedAt\" = CASE WHEN s.status = 'active' THEN s.\"endedAt\" END,"
              "  \"warningsSent\" = CASE WHEN s.status = 'active' THEN s.\"warningsSent\" ELSE 0 "
              "END"
              " WHERE s.status <> 'completed'";

/* $1 appointment id. */
static const char join_appointment_sql[] =
    "UPDATE \"Appointment\" SET status = 'active' WHERE id = $1 AND status = 'scheduled'";

/* $1 appointment id. */
static const char join_room_sql[] =
    "WITH r AS (INSERT INTO coach_room (appointment_id) VALUES ($1) ON CONFLICT DO NOTHING)"
    " SELECT pg_notify('" STORE_NOTIFY_CHANNEL "', a.\"roomId\" || ' s')"
    " FROM \"Appointment\" a WHERE a.id = $1";

/* $1 appointment id, $2 user id. -> Session id, status, started (ms),
 * ended (ms). */
static const char join_result_sql[] = "SELECT me.id, me.status, " ROOM_CLOCK_SQL(
    "$1::text") " FROM \"Session\" me"
                " WHERE me.\"appointmentId\" = $1 AND me.\"userId\" = $2";

/* -> seq, message id, clientMsgId, user id, displayName, content,
 * createdAt (ms). */
#define HISTORY_COLUMNS                                                                            \
    "SELECT cm.seq, cm.message_id, cm.client_msg_id, cm.user_id, u.\"displayName\","               \
    " m.content, " OPS_SQL_MS("m.\"createdAt\"") " FROM coach_message cm"                          \
                                                 " JOIN \"Message\" m ON m.id = cm.message_id"     \
                                                 " JOIN \"User\" u ON u.id = m.\"userId\""

/* $1 appointment id, $2 seq bound, $3 rows wanted. */
static const char history_after_sql[] = HISTORY_COLUMNS
    " WHERE cm.appointment_id = $1 AND cm.seq > $2::int8 ORDER BY cm.seq LIMIT $3::int4";
static const char history_before_sql[] = HISTORY_COLUMNS
    " WHERE cm.appointment_id = $1 AND cm.seq < $2::int8 ORDER BY cm.seq DESC LIMIT $3::int4";

/* $1 the batch's distinct appointment ids (text[]). */
static const char chat_rooms_sql[] =
    "INSERT INTO coach_room (appointment_id)"
    " SELECT k.a FROM unnest($1::text[]) AS k(a) ORDER BY k.a ON CONFLICT DO NOTHING";

/* $1 as above. -> appointment id, last_seq; the rows locked, in a fixed
 * order. = ANY keeps it an index scan however many rooms exist. */
static const char chat_lock_sql[] = "SELECT r.appointment_id, r.last_seq FROM coach_room r"
                                    " WHERE r.appointment_id = ANY($1::text[])"
                                    " ORDER BY r.appointment_id FOR UPDATE";

/* -> the clock, in Unix ms (truncated). */
static const char chat_now_sql[] =
    "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::int8";

/* $1, $2, $3 appointment, user and clientMsgId of each request (text[]).
 * -> 1-based request index, seq, message id, createdAt (ms) of those
 * already stored. */
static const char chat_dedupe_sql[] = "SELECT k.i, cm.seq, cm.message_id, " OPS_SQL_MS(
    "m.\"createdAt\"") " FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS k(a, "
                       "u, c, i)"
                       " JOIN coach_message cm"
                       "  ON cm.appointment_id = k.a AND cm.user_id = k.u AND cm.client_msg_id = "
                       "k.c"
                       " JOIN \"Message\" m ON m.id = cm.message_id";

/* $1, $2, $3 appointment, user and sessionId of each request (text[]).
 * -> 1-based index of each request without a sessionId whose sender has
 * no Session row of the appointment: it cannot be stored, and must not
 * fail its whole batch (the sessionId is NOT NULL). */
static const char chat_no_session_sql[] =
    "SELECT k.i FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS k(a, u, s, i)"
    " WHERE k.s = '' AND NOT EXISTS (SELECT 1 FROM \"Session\" s"
    "  WHERE s.\"appointmentId\" = k.a AND s.\"userId\" = k.u)";

/* One array element per new message: $1 id, $2 sessionId ("": the
 * sender's Session row of that appointment, looked up here: a chat may be
 * queued right behind the request that creates that row), $3 userId,
 * $4 sender, $5 content, $6 appointment, $7 clientMsgId (text[]), $8 seq
 * (int8[]); $9 createdAt (ms). Inserts the "Message" rows and their
 * coach_message rows and moves each room's last_seq (= ANY: an index scan
 * of coach_room whatever its size), and tells every node listening on
 * STORE_NOTIFY_CHANNEL "<roomId> <last seq>" for each room when the
 * transaction commits (store.h: store_listen). */
static const char chat_insert_sql[] =
    "WITH b AS ("
    " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
    "  $6::text[], $7::text[], $8::int8[]) AS b(id, sid, uid, sender, content, aid, cmid, seq)),"
    " m AS ("
    " INSERT INTO \"Message\" (id, \"sessionId\", \"userId\", sender, content, \"createdAt\")"
    " SELECT id, coalesce(nullif(sid, ''), (SELECT s.id FROM \"Session\" s"
    "  WHERE s.\"appointmentId\" = aid AND s.\"userId\" = uid)),"
    " uid, sender, content, " OPS_SQL_TS(
        "$9") " FROM b),"
              " c AS ("
              " INSERT INTO coach_message (message_id, appointment_id, seq, user_id, client_msg_id)"
              " SELECT id, aid, seq, uid, cmid FROM b)"
              ", u AS ("
              " UPDATE coach_room r SET last_seq = v.last"
              " FROM (SELECT aid, max(seq) AS last FROM b GROUP BY aid) v"
              " WHERE r.appointment_id = v.aid AND r.appointment_id = ANY($6::text[])"
              " RETURNING r.appointment_id, r.last_seq)"
              " SELECT pg_notify('" STORE_NOTIFY_CHANNEL "', a.\"roomId\" || ' ' || u.last_seq)"
              " FROM u JOIN \"Appointment\" a ON a.id = u.appointment_id";

/* ---- session lifecycle (ops_life.c) and AI jobs (ops_ai.c) -------------------------------- */

/* $1 appointment id, $2 the absolute warning count, $3 the node that must
 * hold the room's lease ('' for none). -> rows updated, the notification. */
static const char warning_sql[] =
    "WITH ok AS ("
    " SELECT 1 WHERE (SELECT coalesce(max(x.\"warningsSent\"), 0) FROM \"Session\" x"
    "  WHERE x.\"appointmentId\" = $1) < $2::int4"
    " AND ($3 = '' OR EXISTS (SELECT 1 FROM coach_room_lease l WHERE l.appointment_id = $1"
    "  AND l.node_id = $3 AND l.expires_at > now()))),"
    " up AS ("
    " UPDATE \"Session\" SET \"warningsSent\" = GREATEST(\"warningsSent\", $2::int4)"
    " WHERE \"appointmentId\" = $1 AND status = 'active' AND EXISTS (SELECT 1 FROM ok)"
    " RETURNING 1)"
    " SELECT (SELECT count(*) FROM up),"
    " CASE WHEN EXISTS (SELECT 1 FROM up) THEN pg_notify('" STORE_NOTIFY_CHANNEL "',"
    "  (SELECT a.\"roomId\" FROM \"Appointment\" a WHERE a.id = $1) || ' s') END";

/* $1 appointment id. -> status. Locks the appointment: ends serialize. */
static const char end_lock_sql[] = "SELECT status FROM \"Appointment\" WHERE id = $1 FOR UPDATE";

/* $1 appointment id. Locks the room's seq row (if any): a chat batch of
 * the room commits before the end reads the messages, or after it. */
static const char end_lock_room_sql[] =
    "SELECT last_seq FROM coach_room WHERE appointment_id = $1 FOR UPDATE";

/* $1 appointment id. -> endedAt (ms) of its completed Session rows (NULL
 * if none), its message count, whether the client's Session row has a
 * rating. Run after the locks: a new snapshot sees an earlier end. (The
 * status test sits inside the aggregate so that the only index the plan
 * can use is the one on "appointmentId".) */
#define END_ENDED_MS OPS_SQL_MS("max(CASE WHEN x.status = 'completed' THEN x.\"endedAt\" END)")
static const char end_state_sql[] =
    "SELECT (SELECT " END_ENDED_MS " FROM \"Session\" x WHERE x.\"appointmentId\" = a.id),"
    " (SELECT count(*) FROM coach_message cm WHERE cm.appointment_id = a.id),"
    " EXISTS (SELECT 1 FROM \"Session\" x JOIN \"SessionRating\" r ON r.\"sessionId\" = x.id"
    "  WHERE x.\"appointmentId\" = a.id AND x.\"userId\" = a.\"clientId\")"
    " FROM \"Appointment\" a WHERE a.id = $1";

/* $1 appointment id, $2 endedAt (ms), $3 new job id, $4 AI enabled
 * (bool), $5 reason, $6 close the LiveKit room (bool). Builds the transcript (one line per message in seq
 * order, "[HH:MM:SS] <displayName> (<role>): <text>", the time being
 * "createdAt" as stored: UTC; '' without messages), completes every Session
 * row and the appointment, queues the AI job when there are messages and
 * the LiveKit close job when $6.
 * -> message count, the job id when a 'pending' job was created (else ''),
 * Session rows completed, appointments completed, close jobs queued. */
#define END_AT_TS OPS_SQL_TS("$2")
static const char end_write_sql[] =
    "WITH t AS ("
    " SELECT count(*) AS n, coalesce(string_agg("
    "  '[' || to_char(m.\"createdAt\", 'HH24:MI:SS') || '] ' || u.\"displayName\""
    "  || ' (' || CASE WHEN m.\"userId\" = a.\"coachId\" THEN 'coach' ELSE 'client' END"
    "  || '): ' || m.content, E'\\n' ORDER BY cm.seq), '') AS text"
    " FROM coach_message cm"
    " JOIN \"Message\" m ON m.id = cm.message_id"
    " JOIN \"User\" u ON u.id = m.\"userId\""
    " JOIN \"Appointment\" a ON a.id = cm.appointment_id"
    " WHERE cm.appointment_id = $1),"
    " s AS ("
    " UPDATE \"Session\" x SET status = 'completed', \"endedAt\" = " END_AT_TS ","
    "  transcript = t.text FROM t WHERE x.\"appointmentId\" = $1 RETURNING x.id),"
    " ap AS ("
    " UPDATE \"Appointment\" SET status = 'completed' WHERE id = $1 RETURNING id),"
    " j AS ("
    " INSERT INTO coach_ai_job (id, appointment_id, status, reason)"
    " SELECT $3, $1, CASE WHEN $4::bool THEN 'pending' ELSE 'skipped' END, nullif($5, '')"
    " FROM t WHERE t.n > 0 ON CONFLICT (appointment_id) DO NOTHING RETURNING id, status),"
    " lk AS ("
    " INSERT INTO coach_livekit_close (appointment_id, room_id, status)"
    " SELECT a.id, a.\"roomId\", 'pending' FROM \"Appointment\" a WHERE a.id = $1 AND $6::bool"
    " ON CONFLICT (appointment_id) DO NOTHING RETURNING 1),"
    " rr AS ("
    " INSERT INTO coach_room (appointment_id, end_reason) VALUES ($1, nullif($5, ''))"
    " ON CONFLICT (appointment_id) DO UPDATE SET end_reason = EXCLUDED.end_reason)"
    " SELECT t.n, coalesce((SELECT id FROM j WHERE status = 'pending'), ''),"
    " (SELECT count(*) FROM s), (SELECT count(*) FROM ap), (SELECT count(*) FROM lk),"
    " pg_notify('" STORE_NOTIFY_CHANNEL "',"
    "  (SELECT a.\"roomId\" FROM \"Appointment\" a WHERE a.id = $1) || ' s') FROM t";

/* -> the appointment's client id and status, the client's Session id and
 * status (NULL when the client has none). */
#define RATE_TARGET_COLUMNS "SELECT a.\"clientId\", a.status, cs.id, cs.status"
#define RATE_CLIENT_SESSION                                                                        \
    " LEFT JOIN \"Session\" cs ON cs.\"appointmentId\" = a.id AND cs.\"userId\" = a.\"clientId\""

/* $1 roomId. */
static const char rate_by_room_sql[] =
    RATE_TARGET_COLUMNS " FROM \"Appointment\" a" RATE_CLIENT_SESSION " WHERE a.\"roomId\" = $1";

/* $1 any Session id of the appointment. */
static const char rate_by_session_sql[] = RATE_TARGET_COLUMNS
    " FROM \"Session\" s JOIN \"Appointment\" a ON a.id = s.\"appointmentId\"" RATE_CLIENT_SESSION
    " WHERE s.id = $1";

/* $1 new id, $2 the client's Session id, $3 the client's user id, $4
 * rating, $5 comment (NULL), $6 tipAmount (NULL). Inserts nothing unless
 * that row is still the client's and the session is completed. ->
 * createdAt (ms). A second rating: unique violation (23505). */
#define RATE_CREATED_MS OPS_SQL_MS("\"createdAt\"")
static const char rate_insert_sql[] =
    "INSERT INTO \"SessionRating\" (id, \"sessionId\", rating, comment, \"tipAmount\", "
    "\"createdAt\")"
    " SELECT $1, s.id, $4::int4, $5::text, $6::float8, " OPS_SQL_NOW
    " FROM \"Session\" s JOIN \"Appointment\" a ON a.id = s.\"appointmentId\""
    " WHERE s.id = $2 AND s.\"userId\" = $3 AND a.\"clientId\" = $3"
    "  AND (s.status = 'completed' OR a.status = 'completed')"
    " RETURNING " RATE_CREATED_MS;

/* $1 Session id, $2 the caller's user id. -> appointment id, roomId,
 * userId, status, startedAt (ms), endedAt (ms), durationMinutes,
 * warningsSent, transcript, aiSummary, the AI job's status ('retry' reads
 * 'pending'; NULL: no job), whether the client rated, rating, tip,
 * comment, rated at (ms), whether the caller may read it (coach, client or
 * admin). */
#define SG_STARTED_MS  OPS_SQL_MS("s.\"startedAt\"")
#define SG_ENDED_MS    OPS_SQL_MS("s.\"endedAt\"")
#define SG_RATED_AT_MS OPS_SQL_MS("r.\"createdAt\"")
static const char session_get_sql[] =
    "SELECT s.\"appointmentId\", s.\"roomId\", s.\"userId\", s.status,"
    " " SG_STARTED_MS ", " SG_ENDED_MS ","
    " s.\"durationMinutes\", s.\"warningsSent\", s.transcript, s.\"aiSummary\","
    " CASE j.status WHEN 'retry' THEN 'pending' ELSE j.status END,"
    " r.id IS NOT NULL, r.rating, round(r.\"tipAmount\")::int4, r.comment,"
    " " SG_RATED_AT_MS ","
    " $2::text IN (a.\"coachId\", a.\"clientId\")"
    "  OR EXISTS (SELECT 1 FROM \"User\" u WHERE u.id = $2::text AND u.role = 'admin')"
    " FROM \"Session\" s JOIN \"Appointment\" a ON a.id = s.\"appointmentId\""
    " LEFT JOIN coach_ai_job j ON j.appointment_id = a.id"
    " LEFT JOIN \"Session\" cs ON cs.\"appointmentId\" = a.id AND cs.\"userId\" = a.\"clientId\""
    " LEFT JOIN \"SessionRating\" r ON r.\"sessionId\" = cs.id"
    " WHERE s.id = $1";

/* $1 lease (ms), $2 jobs wanted. Claims due jobs ('pending'/'retry' whose
 * next_at has come, 'running' whose lease expired) that no other worker
 * holds, oldest first. -> job id, appointment id, attempts (after this
 * claim), roomId, coach id, coach name, client name, clientFacts and
 * challenges (JSON arrays of strings), intakeCoachingGoals,
 * intakeSymptoms, lastSummary, transcript (the client's Session row's,
 * else any row's). */
static const char ai_claim_sql[] =
    "WITH c AS ("
    " UPDATE coach_ai_job SET status = 'running', attempts = attempts + 1,"
    "  lease_until = now() + $1::int8 * INTERVAL '1 millisecond', updated_at = now(),"
    "  claimed_by = nullif($3, '')"
    " WHERE id IN (SELECT id FROM coach_ai_job"
    "  WHERE (status IN ('pending', 'retry') AND next_at <= now())"
    "   OR (status = 'running' AND (lease_until < now() OR (claimed_by IS NOT NULL AND NOT EXISTS ("
    "    SELECT 1 FROM coach_node n WHERE n.node_id = claimed_by AND n.expires_at > now()))))"
    "  ORDER BY next_at LIMIT $2::int4 FOR UPDATE SKIP LOCKED)"
    " RETURNING id, appointment_id, attempts, next_at)"
    " SELECT c.id, c.appointment_id, c.attempts, a.\"roomId\", a.\"coachId\","
    " co.\"displayName\", cl.\"displayName\","
    " coalesce(array_to_json(p.\"clientFacts\"), '[]')::text,"
    " coalesce(array_to_json(p.challenges), '[]')::text,"
    " p.\"intakeCoachingGoals\", p.\"intakeSymptoms\", p.\"lastSummary\","
    " (SELECT x.transcript FROM \"Session\" x WHERE x.\"appointmentId\" = c.appointment_id"
    "  AND x.transcript IS NOT NULL ORDER BY x.\"userId\" = a.\"clientId\" DESC, x.id LIMIT 1)"
    " FROM c LEFT JOIN \"Appointment\" a ON a.id = c.appointment_id"
    " LEFT JOIN \"User\" co ON co.id = a.\"coachId\""
    " LEFT JOIN \"User\" cl ON cl.id = a.\"clientId\""
    " LEFT JOIN \"Profile\" p ON p.\"userId\" = a.\"clientId\""
    " ORDER BY c.next_at, c.id";

/* -> when the next job falls due (Unix ms, rounded up; NULL if none): the
 * earliest next_at of the waiting jobs or lease end of the running ones. */
static const char ai_next_due_sql[] =
    "SELECT ceil(extract(epoch FROM least("
    " min(next_at) FILTER (WHERE status IN ('pending', 'retry')),"
    " min(lease_until) FILTER (WHERE status = 'running'))) * 1000)::int8"
    " FROM coach_ai_job WHERE status IN ('pending', 'retry', 'running')";

/* $1 job id. -> status, appointment id, roomId, client id, the coach's
 * Session id, attempts. Locks the job. */
static const char ai_lock_sql[] =
    "SELECT j.status, j.appointment_id, a.\"roomId\", a.\"clientId\","
    " (SELECT x.id FROM \"Session\" x WHERE x.\"appointmentId\" = a.id"
    "  AND x.\"userId\" = a.\"coachId\"), j.attempts"
    " FROM coach_ai_job j JOIN \"Appointment\" a ON a.id = j.appointment_id"
    " WHERE j.id = $1 FOR UPDATE OF j";

/* $1 job id. */
static const char ai_done_sql[] =
    "UPDATE coach_ai_job SET status = 'done', lease_until = NULL, last_error = NULL,"
    " updated_at = now() WHERE id = $1";

/* $1 appointment id, $2 summary. */
static const char ai_summary_sql[] =
    "UPDATE \"Session\" SET \"aiSummary\" = $2 WHERE \"appointmentId\" = $1";

/* $1 new Profile id, $2 the client's user id, $3 summary. */
static const char ai_profile_sql[] =
    "INSERT INTO \"Profile\" (id, \"userId\", \"lastSummary\") VALUES ($1, $2, $3)"
    " ON CONFLICT (\"userId\") DO UPDATE SET \"lastSummary\" = EXCLUDED.\"lastSummary\"";

/* $1 job id, $2 next attempt at (Unix ms), $3 error text. */
#define AI_NEXT_AT_TSTZ OPS_SQL_TSTZ("$2")
static const char ai_retry_sql[] =
    "UPDATE coach_ai_job SET status = 'retry', next_at = " AI_NEXT_AT_TSTZ ","
    " lease_until = NULL, last_error = $3, updated_at = now() WHERE id = $1";

/* $1 job id, $2 error text. */
static const char ai_failed_sql[] =
    "UPDATE coach_ai_job SET status = 'failed', lease_until = NULL, last_error = $2,"
    " updated_at = now() WHERE id = $1";

/* $1 new RateLimit id, $2 skoolUserId, $3 the UTC day (ms, 00:00), $4 now
 * (ms), $5 codes allowed per day, $6 new AuthCode id, $7 code,
 * $8 skoolUsername, $9 expiresAt (ms). Counts the request unless the day is
 * at the limit (then no row comes back and nothing is written); the upsert
 * locks the day's row, so concurrent requests are counted one after the
 * other. -> requestCount after this request. */
#define AC_DAY_TS     OPS_SQL_TS("$3")
#define AC_NOW_TS     OPS_SQL_TS("$4")
#define AC_EXPIRES_TS OPS_SQL_TS("$9")
static const char auth_code_issue_sql[] =
    "WITH rl AS ("
    " INSERT INTO \"RateLimit\" AS r"
    "  (id, \"skoolUserId\", \"requestDate\", \"requestCount\", \"lastRequestAt\")"
    " VALUES ($1, $2, " AC_DAY_TS ", 1, " AC_NOW_TS ")"
    " ON CONFLICT (\"skoolUserId\", \"requestDate\") DO UPDATE SET"
    "  \"requestCount\" = r.\"requestCount\" + 1, \"lastRequestAt\" = EXCLUDED.\"lastRequestAt\""
    " WHERE r.\"requestCount\" < $5::int4"
    " RETURNING r.\"requestCount\"),"
    " ins AS ("
    " INSERT INTO \"AuthCode\""
    "  (id, code, \"skoolUserId\", \"skoolUsername\", \"generatedAt\", \"expiresAt\", \"isActive\")"
    " SELECT $6, $7, $2, $8, " AC_NOW_TS ", " AC_EXPIRES_TS ", true FROM rl"
    " RETURNING 1)"
    " SELECT rl.\"requestCount\" FROM rl"; /* ins runs regardless (a data-modifying WITH) */

/* $1 code, $2 now (ms), $3 IP, $4 User-Agent, $5 fingerprint, $6 new
 * UserSession id, $7 sessionId (the token), $8 its expiresAt (ms). Uses
 * the code if it is unused, active and not expired (the UPDATE's WHERE is
 * evaluated again on the newest row version after a concurrent redeem, so
 * only one can win) and creates the session. -> skoolUserId, skoolUsername,
 * UserSession id; no row when the code could not be used. */
#define AR_NOW_TS     OPS_SQL_TS("$2")
#define AR_EXPIRES_TS OPS_SQL_TS("$8")
static const char auth_code_redeem_sql[] =
    "WITH u AS ("
    " UPDATE \"AuthCode\" SET \"usedAt\" = " AR_NOW_TS ", \"isActive\" = false,"
    "  \"usedIpAddress\" = $3, \"userAgent\" = $4, \"deviceFingerprint\" = $5"
    " WHERE code = $1 AND \"usedAt\" IS NULL AND \"isActive\" AND \"expiresAt\" > " AR_NOW_TS
    " RETURNING code, \"skoolUserId\", \"skoolUsername\"),"
    " s AS ("
    " INSERT INTO \"UserSession\" (id, \"sessionId\", \"skoolUserId\", \"skoolUsername\","
    "  \"authCodeUsed\", \"createdAt\", \"expiresAt\", \"lastActive\", \"ipAddress\","
    "  \"userAgent\", \"deviceFingerprint\", \"isActive\")"
    " SELECT $6, $7, u.\"skoolUserId\", u.\"skoolUsername\", u.code, " AR_NOW_TS ","
    "  " AR_EXPIRES_TS ", " AR_NOW_TS ", $3, $4, $5, true FROM u"
    " RETURNING id)"
    " SELECT u.\"skoolUserId\", u.\"skoolUsername\", s.id FROM u, s";

/* $1 code, $2 now (ms): why a code could not be redeemed. -> used
 * ("usedAt" set or not active), expired. No row: no such code. */
#define AS_NOW_TS OPS_SQL_TS("$2")
static const char auth_code_state_sql[] =
    "SELECT \"usedAt\" IS NOT NULL OR NOT \"isActive\", \"expiresAt\" <= " AS_NOW_TS
    " FROM \"AuthCode\" WHERE code = $1";

/* In a transaction: its COMMIT does not wait for the WAL flush (for
 * momentary state only). */
static const char async_commit_sql[] = "SELECT set_config('synchronous_commit', 'off', true)";

/* $1 appointment, $2 node, $3 user, $4 display name, $5 role, $6 online
 * (bool), $7 roomId: the user's presence row on this node written
 * (online) or deleted, and "<roomId> p" notified (ops_node.c). */
static const char presence_set_sql[] =
    "WITH up AS ("
    " INSERT INTO coach_presence (appointment_id, node_id, user_id, display_name, role)"
    " SELECT $1, $2, $3, $4, $5 WHERE $6::bool"
    " ON CONFLICT (appointment_id, node_id, user_id) DO UPDATE"
    " SET display_name = EXCLUDED.display_name, role = EXCLUDED.role RETURNING 1),"
    " del AS ("
    " DELETE FROM coach_presence WHERE NOT $6::bool"
    " AND appointment_id = $1 AND node_id = $2 AND user_id = $3 RETURNING 1)"
    " SELECT pg_notify('" STORE_NOTIFY_CHANNEL "', $7 || ' p')";

static const char *const queries[STORE_Q_N] = {
    [STORE_Q_BEGIN] = "BEGIN",
    [STORE_Q_COMMIT] = "COMMIT",
    [STORE_Q_ASYNC_COMMIT] = async_commit_sql,
    [STORE_Q_PRESENCE_SET] = presence_set_sql,
    [STORE_Q_AUTH_SESSION] = auth_session_sql,
    [STORE_Q_AUTH_SESSIONS] = auth_sessions_sql,
    [STORE_Q_AUTH_USER] = auth_user_sql,
    [STORE_Q_ROOM_LOAD] = room_load_sql,
    [STORE_Q_JOIN_UPSERT] = join_upsert_sql,
    [STORE_Q_JOIN_APPOINTMENT] = join_appointment_sql,
    [STORE_Q_JOIN_ROOM] = join_room_sql,
    [STORE_Q_JOIN_RESULT] = join_result_sql,
    [STORE_Q_HISTORY_AFTER] = history_after_sql,
    [STORE_Q_HISTORY_BEFORE] = history_before_sql,
    [STORE_Q_CHAT_ROOMS] = chat_rooms_sql,
    [STORE_Q_CHAT_LOCK] = chat_lock_sql,
    [STORE_Q_CHAT_NOW] = chat_now_sql,
    [STORE_Q_CHAT_DEDUPE] = chat_dedupe_sql,
    [STORE_Q_CHAT_NO_SESSION] = chat_no_session_sql,
    [STORE_Q_CHAT_INSERT] = chat_insert_sql,
    [STORE_Q_WARNING] = warning_sql,
    [STORE_Q_END_LOCK] = end_lock_sql,
    [STORE_Q_END_LOCK_ROOM] = end_lock_room_sql,
    [STORE_Q_END_STATE] = end_state_sql,
    [STORE_Q_END_WRITE] = end_write_sql,
    [STORE_Q_RATE_BY_ROOM] = rate_by_room_sql,
    [STORE_Q_RATE_BY_SESSION] = rate_by_session_sql,
    [STORE_Q_RATE_INSERT] = rate_insert_sql,
    [STORE_Q_SESSION_GET] = session_get_sql,
    [STORE_Q_AI_CLAIM] = ai_claim_sql,
    [STORE_Q_AI_NEXT_DUE] = ai_next_due_sql,
    [STORE_Q_AI_LOCK] = ai_lock_sql,
    [STORE_Q_AI_DONE] = ai_done_sql,
    [STORE_Q_AI_SUMMARY] = ai_summary_sql,
    [STORE_Q_AI_PROFILE] = ai_profile_sql,
    [STORE_Q_AI_RETRY] = ai_retry_sql,
    [STORE_Q_AI_FAILED] = ai_failed_sql,
    [STORE_Q_AUTH_CODE_ISSUE] = auth_code_issue_sql,
    [STORE_Q_AUTH_CODE_REDEEM] = auth_code_redeem_sql,
    [STORE_Q_AUTH_CODE_STATE] = auth_code_state_sql,
};

/* Plan each statement once, with index scans whatever the table sizes
 * (see DESIGN). */
static const char plan_mode_sql[] =
    "SELECT set_config('plan_cache_mode', 'force_generic_plan', false),"
    " set_config('enable_seqscan', 'off', false), set_config('jit', 'off', false)";

#define NAME_MAX_LEN 32

static void query_name(enum store_q q, char name[NAME_MAX_LEN])
{
    (void)snprintf(name, NAME_MAX_LEN, "coach_ops_%d", (int)q);
}

/* ---- per-connection state --------------------------------------------------------------- */

struct ops_conn {
    int prepared; /* every statement exists in the server session */
};

static int ops_event(PGEventId id, void *info, void *pass)
{
    (void)pass;
    if (id == PGEVT_CONNRESET) {
        const PGEventConnReset *e = info;
        struct ops_conn *oc = PQinstanceData(e->conn, ops_event);
        if (oc != NULL) {
            oc->prepared = 0; /* a new server session */
        }
    } else if (id == PGEVT_CONNDESTROY) {
        const PGEventConnDestroy *e = info;
        free(PQinstanceData(e->conn, ops_event));
    }
    return 1;
}

/* c's state, attached on first use; NULL when out of memory. */
static struct ops_conn *conn_state(PGconn *c)
{
    struct ops_conn *oc = PQinstanceData(c, ops_event);
    if (oc != NULL) {
        return oc;
    }
    oc = calloc(1, sizeof *oc);
    if (oc == NULL) {
        return NULL;
    }
    if (PQregisterEventProc(c, ops_event, "coach-store-ops", NULL) != 1 ||
        PQsetInstanceData(c, ops_event, oc) != 1) {
        free(oc);
        return NULL;
    }
    return oc;
}

void store__ops_forget(PGconn *c)
{
    struct ops_conn *oc = PQinstanceData(c, ops_event);
    if (oc != NULL) {
        oc->prepared = 0;
    }
}

/* Read the results of `sent` statements and the Sync that follows them.
 * Each statement's result is followed by a NULL; the Sync's result is not. */
static void collect(PGconn *c, size_t sent, PGresult **res)
{
    for (size_t i = 0; i < sent; i++) {
        res[i] = PQgetResult(c);
        if (res[i] == NULL) {
            return; /* the connection broke: nothing more will come */
        }
        PGresult *extra;
        while ((extra = PQgetResult(c)) != NULL) {
            PQclear(extra);
        }
    }
    PQclear(PQgetResult(c)); /* the Sync */
}

/* Read one prepare's reply (and its Sync). 1 when the statement is (now)
 * prepared; 0 with err filled. */
static int prepare_result(PGconn *c, enum store_q q, struct store_err *err)
{
    PGresult *res = NULL;
    collect(c, 1, &res);
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK ||
             (state != NULL && strcmp(state, "42P05") == 0); /* ours, from an earlier try */
    if (!ok) {
        char what[48];
        (void)snprintf(what, sizeof what, "prepare statement %d", (int)q);
        store__ops_fail(c, res, what, err);
    }
    PQclear(res);
    return ok;
}

int store__ops_ready(PGconn *c, struct store_err *err)
{
    struct ops_conn *oc = conn_state(c);
    if (oc == NULL) {
        store__err_set(err, -ENOMEM, "store: out of memory");
        return -ENOMEM;
    }
    if (oc->prepared) {
        return 0;
    }
    PGresult *set = PQexecParams(c, plan_mode_sql, 0, NULL, NULL, NULL, NULL, 0);
    int set_ok = PQresultStatus(set) == PGRES_TUPLES_OK;
    if (!set_ok) {
        store__ops_fail(c, set, "prepare", err);
    }
    PQclear(set);
    if (!set_ok) {
        return STORE_E_QUERY;
    }
    if (PQenterPipelineMode(c) != 1) {
        return store__ops_fail(c, NULL, "prepare", err);
    }
    int sent = 0;
    char name[NAME_MAX_LEN];
    while (sent < STORE_Q_N) {
        query_name((enum store_q)sent, name);
        if (PQsendPrepare(c, name, queries[sent], 0, NULL) != 1 || PQpipelineSync(c) != 1) {
            break;
        }
        sent++;
    }
    int ok = 1;
    for (int q = 0; q < sent; q++) {
        /* Read every reply, even after a failure, to leave pipeline mode;
         * the first failure names the error. */
        ok = prepare_result(c, (enum store_q)q, ok ? err : NULL) && ok;
    }
    (void)PQexitPipelineMode(c);
    if (ok && sent < STORE_Q_N) {
        ok = 0;
        store__ops_fail(c, NULL, "prepare", err); /* could not even send */
    }
    if (!ok) {
        return STORE_E_QUERY;
    }
    oc->prepared = 1;
    return 0;
}

/* ---- running them ------------------------------------------------------------------------ */

/* 1 when res failed because its prepared statement is gone (26000). */
static int statement_gone(const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    return state != NULL && strcmp(state, "26000") == 0;
}

PGresult *store__ops_exec(PGconn *c, enum store_q q, int n_params, const char *const *vals)
{
    char name[NAME_MAX_LEN];
    query_name(q, name);
    PGresult *res = PQexecPrepared(c, name, n_params, vals, NULL, NULL, 0);
    if (statement_gone(res) && PQtransactionStatus(c) == PQTRANS_IDLE) {
        /* Someone ran DEALLOCATE or DISCARD on the session: prepare again, once. */
        store__ops_forget(c);
        if (store__ops_ready(c, NULL) == 0) {
            PQclear(res);
            res = PQexecPrepared(c, name, n_params, vals, NULL, NULL, 0);
        }
    }
    return res;
}

void store__ops_clear(PGresult **res, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        PQclear(res[i]);
        res[i] = NULL;
    }
}

static int result_ok(const PGresult *r)
{
    ExecStatusType s = PQresultStatus(r);
    return r != NULL && (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK);
}

size_t store__ops_pipeline(PGconn *c, const struct store__ops_stmt *stmts, size_t n, PGresult **res)
{
    for (size_t i = 0; i < n; i++) {
        res[i] = NULL;
    }
    if (PQenterPipelineMode(c) != 1) {
        return 0;
    }
    size_t sent = 0;
    char name[NAME_MAX_LEN];
    while (sent < n) {
        const struct store__ops_stmt *s = &stmts[sent];
        query_name(s->q, name);
        if (PQsendQueryPrepared(c, name, s->n_params, s->vals, s->lens, s->fmts, 0) != 1) {
            break;
        }
        sent++;
    }
    if (PQpipelineSync(c) == 1) {
        collect(c, sent, res);
    }
    (void)PQexitPipelineMode(c);
    size_t first_bad = 0;
    while (first_bad < n && result_ok(res[first_bad])) {
        first_bad++;
    }
    return first_bad;
}
