/*
 * ops_livekit.c: the store thread's LiveKit operations (protocol.md
 * section 5; tables: migrations/006_livekit.sql).
 *
 *  - store__op_lk_event: one webhook event in one transaction. The event
 *    id goes into coach_livekit_event first; a conflict is a redelivery and
 *    nothing else happens. The appointment is then read and the event's
 *    effects follow: the room instance, the participant rows and,
 *    for a participant_joined, the user's Session row (with the statements
 *    of a WebSocket join). Any failure rolls everything back, the id
 *    included, so LiveKit's retry is applied as if it were the first.
 *  - store__op_lk_close_claim / store__op_lk_close_result: the durable
 *    room-close jobs (coach_livekit_close), claimed with FOR UPDATE SKIP
 *    LOCKED and a lease exactly like the AI jobs.
 *  - store__op_job_stats: how many AI and room-close jobs are in each
 *    state, for /metrics.
 *
 * Every statement is parameterized.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops_int.h"
#include "store_int.h"

/* ---- statements --------------------------------------------------------------------------- */

/* $1 event id, $2 event name, $3 roomId. One row unless seen before. */
static const char event_insert_sql[] =
    "INSERT INTO coach_livekit_event (id, event, room_id) VALUES ($1, $2, $3)"
    " ON CONFLICT (id) DO NOTHING RETURNING 1";

/* $1 roomId. -> id, coachId, clientId, status, scheduledFor (ms), durationMin.
 * Not locked: the Session upsert that follows takes its locks in the same
 * order as a WebSocket join (the Session row, then the appointment), and
 * it never reopens a completed row, so an ending racing with the event
 * wins either way. */
static const char appointment_sql[] =
    "SELECT id, \"coachId\", \"clientId\", status, " OPS_SQL_MS(
        "\"scheduledFor\"") ", \"durationMin\" FROM \"Appointment\" WHERE \"roomId\" = $1";

/* $1 roomId. -> the latest instance's sid and creation time (ms). */
static const char instance_get_sql[] =
    "SELECT room_sid, created_ms FROM coach_livekit_room WHERE room_id = $1";

/* $1 roomId, $2 room sid, $3 creation time (ms): the latest instance
 * unless a newer one is recorded. */
static const char instance_put_sql[] =
    "INSERT INTO coach_livekit_room (room_id, room_sid, created_ms) VALUES ($1, $2, $3::int8)"
    " ON CONFLICT (room_id) DO UPDATE SET room_sid = EXCLUDED.room_sid,"
    " created_ms = EXCLUDED.created_ms, updated_at = now()"
    " WHERE coach_livekit_room.created_ms <= EXCLUDED.created_ms";

/* $1 participant sid, $2 roomId, $3 room sid, $4 user id. One row when new. */
static const char participant_add_sql[] =
    "INSERT INTO coach_livekit_participant (participant_sid, room_id, room_sid, user_id)"
    " VALUES ($1, $2, $3, $4) ON CONFLICT (participant_sid) DO NOTHING RETURNING 1";

/* $1 participant sid, $2 roomId. -> the user id when it was there. */
static const char participant_del_sql[] =
    "DELETE FROM coach_livekit_participant WHERE participant_sid = $1 AND room_id = $2"
    " RETURNING user_id";

/* $1 roomId, $2 user id. -> how many participants the user has there. */
static const char participant_count_sql[] =
    "SELECT count(*) FROM coach_livekit_participant WHERE room_id = $1 AND user_id = $2";

/* $1 roomId. */
static const char participant_clear_sql[] =
    "DELETE FROM coach_livekit_participant WHERE room_id = $1";

/* $1 lease (ms), $2 jobs wanted. -> appointment id, roomId, attempts. */
static const char close_claim_sql[] =
    "UPDATE coach_livekit_close SET status = 'running', attempts = attempts + 1,"
    " lease_until = now() + $1::int8 * INTERVAL '1 millisecond', updated_at = now(),"
    " claimed_by = nullif($3, '')"
    " WHERE appointment_id IN (SELECT appointment_id FROM coach_livekit_close"
    "  WHERE (status IN ('pending', 'retry') AND next_at <= now())"
    "   OR (status = 'running' AND (lease_until < now() OR (claimed_by IS NOT NULL AND NOT EXISTS ("
    "    SELECT 1 FROM coach_node n WHERE n.node_id = claimed_by AND n.expires_at > now()))))"
    "  ORDER BY next_at LIMIT $2::int4 FOR UPDATE SKIP LOCKED)"
    " RETURNING appointment_id, room_id, attempts";

static const char close_next_due_sql[] =
    "SELECT coalesce(ceil(extract(epoch FROM least("
    " min(next_at) FILTER (WHERE status IN ('pending', 'retry')),"
    " min(lease_until) FILTER (WHERE status = 'running'))) * 1000)::int8, 0)"
    " FROM coach_livekit_close WHERE status IN ('pending', 'retry', 'running')";

/* $1 appointment id, $2 attempt, $3 new status, $4 next attempt (ms), $5
 * error. One row when that attempt is still the current one. */
static const char close_result_sql[] =
    "UPDATE coach_livekit_close SET status = $3,"
    " next_at = CASE WHEN $3 = 'retry' THEN " OPS_SQL_TSTZ("$4") " ELSE next_at END,"
    " lease_until = NULL, last_error = nullif($5, ''), updated_at = now()"
    " WHERE appointment_id = $1 AND attempts = $2::int4 AND status = 'running' RETURNING 1";

/* ---- helpers ------------------------------------------------------------------------------- */

/* Run sql with n text parameters; the result when its status is the
 * expected one (tuples or command), else NULL with req failed. */
static PGresult *run(PGconn *c, struct store_req *req, const char *sql, int n,
                     const char *const *vals, const char *what)
{
    PGresult *res = PQexecParams(c, sql, n, NULL, vals, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        return res;
    }
    req->rc = store__ops_fail(c, res, what, &req->err);
    PQclear(res);
    return NULL;
}

/* Run and discard; 0 or -1 (req failed). */
static int run_cmd(PGconn *c, struct store_req *req, const char *sql, int n,
                   const char *const *vals, const char *what)
{
    PGresult *res = run(c, req, sql, n, vals, what);
    PQclear(res);
    return res != NULL ? 0 : -1;
}

/* Run and report how many rows came back (-1: failed). */
static int run_rows(PGconn *c, struct store_req *req, const char *sql, int n,
                    const char *const *vals, const char *what)
{
    PGresult *res = run(c, req, sql, n, vals, what);
    int rows = res != NULL ? PQntuples(res) : -1;
    PQclear(res);
    return rows;
}

/* One prepared statement of the WebSocket join (ops_queries.c). */
static int run_prepared(PGconn *c, struct store_req *req, enum store_q q, int n,
                        const char *const *vals, const char *what)
{
    PGresult *res = store__ops_exec(c, q, n, vals);
    ExecStatusType st = PQresultStatus(res);
    int rc = 0;
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        req->rc = store__ops_fail(c, res, what, &req->err);
        rc = -1;
    }
    PQclear(res);
    return rc;
}

/* The locked appointment of the event's room. */
struct lk_appt {
    char id[STORE_ID_MAX + 1];
    char coach_id[STORE_ID_MAX + 1];
    char client_id[STORE_ID_MAX + 1];
    char status[32];
    int64_t scheduled_ms;
    int duration_min;
};

/* 1 found, 0 none, -1 failed. */
static int lock_appointment(PGconn *c, struct store_req *req, struct lk_appt *a)
{
    const char *vals[] = {req->u.lk_event.room_id};
    PGresult *res = run(c, req, appointment_sql, 1, vals, "livekit: appointment");
    if (res == NULL) {
        return -1;
    }
    int found = PQntuples(res) == 1;
    if (found && (store__ops_copy(a->id, sizeof a->id, res, 0, 0) != 0 ||
                  store__ops_copy(a->coach_id, sizeof a->coach_id, res, 0, 1) != 0 ||
                  store__ops_copy(a->client_id, sizeof a->client_id, res, 0, 2) != 0 ||
                  store__ops_copy(a->status, sizeof a->status, res, 0, 3) != 0)) {
        found = 0; /* ids longer than ours: not a room the gateway serves */
    }
    if (found) {
        a->scheduled_ms = store__ops_i64(res, 0, 4);
        a->duration_min = (int)store__ops_i64(res, 0, 5);
    }
    PQclear(res);
    return found;
}

/* ---- event effects ---------------------------------------------------------------------------- */

/* The event's room instance becomes the latest unless a newer one is known. */
static int put_instance(PGconn *c, struct store_req *req)
{
    struct store_lk_event *e = &req->u.lk_event;
    if (e->room_sid[0] == '\0') {
        return 0;
    }
    char created[24];
    (void)snprintf(created, sizeof created, "%" PRId64, e->room_created_ms);
    const char *vals[] = {e->room_id, e->room_sid, created};
    return run_cmd(c, req, instance_put_sql, 3, vals, "livekit: room instance");
}

/* The Session row of a participant who joined, as a WebSocket join makes it. */
static int session_join(PGconn *c, struct store_req *req, const struct lk_appt *a)
{
    struct store_lk_event *e = &req->u.lk_event;
    bool open = strcmp(a->status, "scheduled") == 0 || strcmp(a->status, "active") == 0;
    if (!open || e->at_unix_ms < a->scheduled_ms - e->early_join_ms) {
        return 0; /* not open (yet): media presence only */
    }
    char id[STORE_CUID_LEN + 1], at[24], dur[16];
    store_cuid(id);
    (void)snprintf(at, sizeof at, "%" PRId64, e->at_unix_ms);
    (void)snprintf(dur, sizeof dur, "%d", a->duration_min > 0 ? a->duration_min : 20);
    const char *upsert[] = {id, e->room_id, a->id, e->user_id, at, dur};
    const char *appt[] = {a->id};
    if (run_prepared(c, req, STORE_Q_JOIN_UPSERT, 6, upsert, "livekit: session") != 0 ||
        run_prepared(c, req, STORE_Q_JOIN_APPOINTMENT, 1, appt, "livekit: appointment") != 0 ||
        run_prepared(c, req, STORE_Q_JOIN_ROOM, 1, appt, "livekit: room") != 0) {
        return -1;
    }
    return 0;
}

/* How many participants user has in the room, or -1. */
static int64_t count_participants(PGconn *c, struct store_req *req, const char *user_id)
{
    const char *vals[] = {req->u.lk_event.room_id, user_id};
    PGresult *res = run(c, req, participant_count_sql, 2, vals, "livekit: participants");
    if (res == NULL) {
        return -1;
    }
    int64_t n = store__ops_i64(res, 0, 0);
    PQclear(res);
    return n;
}

static int on_joined(PGconn *c, struct store_req *req, const struct lk_appt *a)
{
    struct store_lk_event *e = &req->u.lk_event;
    if (put_instance(c, req) != 0) {
        return -1;
    }
    const char *vals[] = {e->participant_sid, e->room_id, e->room_sid, e->user_id};
    int added = run_rows(c, req, participant_add_sql, 4, vals, "livekit: participant");
    if (added < 0 || session_join(c, req, a) != 0) {
        return -1;
    }
    int64_t n = count_participants(c, req, e->user_id);
    if (n < 0) {
        return -1;
    }
    e->media_changed = added == 1 && n == 1;
    return 0;
}

static int on_left(PGconn *c, struct store_req *req)
{
    struct store_lk_event *e = &req->u.lk_event;
    if (put_instance(c, req) != 0) {
        return -1;
    }
    const char *vals[] = {e->participant_sid, e->room_id};
    PGresult *res = run(c, req, participant_del_sql, 2, vals, "livekit: participant left");
    if (res == NULL) {
        return -1;
    }
    char user[STORE_ID_MAX + 1] = "";
    bool was_there = PQntuples(res) == 1 && store__ops_copy(user, sizeof user, res, 0, 0) == 0;
    PQclear(res);
    if (!was_there) {
        return 0;
    }
    int64_t n = count_participants(c, req, user);
    if (n < 0) {
        return -1;
    }
    e->media_changed = n == 0;
    return 0;
}

/* 1 when the event's instance is older than the latest one recorded. */
static int is_stale(PGconn *c, struct store_req *req)
{
    struct store_lk_event *e = &req->u.lk_event;
    const char *vals[] = {e->room_id};
    PGresult *res = run(c, req, instance_get_sql, 1, vals, "livekit: room instance");
    if (res == NULL) {
        return -1;
    }
    int stale = 0;
    if (PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), e->room_sid) != 0) {
        stale = e->room_created_ms <= store__ops_i64(res, 0, 1);
    }
    PQclear(res);
    return stale;
}

static int on_finished(PGconn *c, struct store_req *req)
{
    struct store_lk_event *e = &req->u.lk_event;
    int stale = is_stale(c, req);
    if (stale != 0) {
        e->result = STORE_LK_STALE;
        return stale < 0 ? -1 : 0;
    }
    if (put_instance(c, req) != 0) {
        return -1;
    }
    const char *vals[] = {e->room_id};
    return run_cmd(c, req, participant_clear_sql, 1, vals, "livekit: room finished");
}

/* The effects after the id was recorded; 0 or -1 (req failed). */
static int apply(PGconn *c, struct store_req *req)
{
    struct store_lk_event *e = &req->u.lk_event;
    struct lk_appt a = {0};
    int found = e->room_id[0] != '\0' ? lock_appointment(c, req, &a) : 0;
    if (found <= 0) {
        e->result = STORE_LK_NO_ROOM;
        return found;
    }
    snprintf(e->appointment_id, sizeof e->appointment_id, "%s", a.id);
    e->session_running = strcmp(a.status, "active") == 0;
    switch (e->kind) {
    case STORE_LK_JOINED:
    case STORE_LK_LEFT:
        if (strcmp(e->user_id, a.coach_id) != 0 && strcmp(e->user_id, a.client_id) != 0) {
            e->result = STORE_LK_NOT_MEMBER;
            return 0;
        }
        return e->kind == STORE_LK_JOINED ? on_joined(c, req, &a) : on_left(c, req);
    case STORE_LK_FINISHED:
        return on_finished(c, req);
    case STORE_LK_OTHER:
    default:
        return put_instance(c, req);
    }
}

void store__op_lk_event(PGconn *c, struct store_req *req)
{
    struct store_lk_event *e = &req->u.lk_event;
    e->result = STORE_LK_APPLIED;
    e->media_changed = e->session_running = 0;
    e->appointment_id[0] = '\0';
    if (e->event_id[0] == '\0') {
        req->rc = -EINVAL;
        store__err_set(&req->err, req->rc, "livekit: an event id is required");
        return;
    }
    req->rc = store__ops_ready(c, &req->err);
    if (req->rc != 0 || run_cmd(c, req, "BEGIN", 0, NULL, "livekit: begin") != 0) {
        return;
    }
    const char *vals[] = {e->event_id, e->event, e->room_id};
    int fresh = run_rows(c, req, event_insert_sql, 3, vals, "livekit: event id");
    if (fresh == 0) {
        e->result = STORE_LK_DUPLICATE; /* applied before: change nothing */
        store__ops_rollback(c);
        req->rc = 0;
        return;
    }
    if (fresh != 1 || apply(c, req) != 0 ||
        run_cmd(c, req, "COMMIT", 0, NULL, "livekit: commit") != 0) {
        store__ops_rollback(c);
        return;
    }
    req->rc = 0;
}

/* ---- room-close jobs ------------------------------------------------------------------------- */

void store__op_lk_close_claim(PGconn *c, struct store_req *req)
{
    struct store_lk_close_claim *cl = &req->u.lk_claim;
    cl->n_jobs = 0;
    cl->next_due_unix_ms = 0;
    if (cl->max_jobs < 1 || cl->max_jobs > 16 || cl->lease_ms <= 0) {
        req->rc = -EINVAL;
        store__err_set(&req->err, req->rc, "livekit claim: max_jobs 1..16 and a lease needed");
        return;
    }
    char lease[24], max[8];
    (void)snprintf(lease, sizeof lease, "%" PRId64, cl->lease_ms);
    (void)snprintf(max, sizeof max, "%d", cl->max_jobs);
    cl->node_id[sizeof cl->node_id - 1] = '\0';
    const char *vals[] = {lease, max, cl->node_id};
    PGresult *res = run(c, req, close_claim_sql, 3, vals, "livekit claim");
    if (res == NULL) {
        return;
    }
    for (int i = 0; i < PQntuples(res) && cl->n_jobs < 16; i++) {
        struct store_lk_close_job *j = &cl->jobs[cl->n_jobs];
        if (store__ops_copy(j->appointment_id, sizeof j->appointment_id, res, i, 0) == 0 &&
            store__ops_copy(j->room_id, sizeof j->room_id, res, i, 1) == 0) {
            j->attempt = (int)store__ops_i64(res, i, 2);
            cl->n_jobs++;
        }
    }
    PQclear(res);
    res = run(c, req, close_next_due_sql, 0, NULL, "livekit next due");
    if (res != NULL) {
        cl->next_due_unix_ms = store__ops_i64(res, 0, 0);
        PQclear(res);
    }
    /* The claim is committed either way: its jobs must run (without the
     * next due time the caller polls again at its idle interval). */
    req->rc = 0;
}

void store__op_lk_close_result(PGconn *c, struct store_req *req)
{
    struct store_lk_close_result *r = &req->u.lk_result;
    static const char *const status[] = {
        [STORE_LK_CLOSE_DONE] = "done",
        [STORE_LK_CLOSE_RETRY] = "retry",
        [STORE_LK_CLOSE_FAILED] = "failed",
    };
    if ((unsigned)r->outcome > STORE_LK_CLOSE_FAILED) {
        req->rc = -EINVAL;
        store__err_set(&req->err, req->rc, "livekit result: unknown outcome");
        return;
    }
    r->error[sizeof r->error - 1] = '\0';
    char attempt[16], next[24];
    (void)snprintf(attempt, sizeof attempt, "%d", r->attempt);
    (void)snprintf(next, sizeof next, "%" PRId64, r->next_unix_ms);
    const char *vals[] = {r->appointment_id, attempt, status[r->outcome], next, r->error};
    int rows = run_rows(c, req, close_result_sql, 5, vals, "livekit result");
    if (rows < 0) {
        return;
    }
    if (rows == 0) {
        req->rc = STORE_E_STATE;
        store__err_set(&req->err, req->rc, "livekit result: attempt %d is no longer current",
                       r->attempt);
        return;
    }
    req->rc = 0;
}

/* ---- job counts ------------------------------------------------------------------------------- */

const char *const store_job_states[STORE_JOB_STATES] = {"pending", "running", "retry",
                                                         "done",    "failed",  "skipped"};

static const char job_stats_sql[] =
    "SELECT 'ai', status, count(*) FROM coach_ai_job GROUP BY status"
    " UNION ALL SELECT 'livekit', status, count(*) FROM coach_livekit_close GROUP BY status";

void store__op_job_stats(PGconn *c, struct store_req *req)
{
    struct store_job_stats *js = &req->u.job_stats;
    memset(js, 0, sizeof(*js));
    PGresult *res = run(c, req, job_stats_sql, 0, NULL, "job stats");
    if (res == NULL) {
        return;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        int64_t *row = strcmp(PQgetvalue(res, i, 0), "ai") == 0 ? js->ai : js->livekit;
        for (int k = 0; k < STORE_JOB_STATES; k++) {
            if (strcmp(PQgetvalue(res, i, 1), store_job_states[k]) == 0) {
                row[k] = store__ops_i64(res, i, 2);
            }
        }
    }
    PQclear(res);
    req->rc = 0;
}
