/*
 * ops_room.c: the store thread's room operations.
 *
 *  - store__op_room_load: an appointment by "roomId" with everything a
 *    room needs to start: the two members' names, the room clock (from the
 *    appointment's "Session" rows), the last seq (coach_room) and the
 *    warnings already sent. One read-only statement.
 *  - store__op_session_join: create or reactivate a participant's
 *    "Session" row, mark a scheduled appointment active and make sure the
 *    room's coach_room row exists, in one transaction sent as one pipeline
 *    (one round trip).
 *
 * The room clock, as both return it: started = the earliest "startedAt" of
 * the appointment's Session rows that are active or completed (0 if none);
 * ended = the latest "endedAt" of its completed rows (0 if none).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "ops_int.h"
#include "store_int.h"

#define DEFAULT_DURATION_MIN 20

/* The columns of STORE_Q_ROOM_LOAD (ops_queries.c). */
enum {
    RL_ID,
    RL_SCHEDULED,
    RL_DURATION,
    RL_STATUS,
    RL_COACH_ID,
    RL_COACH_NAME,
    RL_CLIENT_ID,
    RL_CLIENT_NAME,
    RL_LAST_SEQ,
    RL_STARTED,
    RL_ENDED,
    RL_WARNINGS,
    RL_COACH_SID,
    RL_CLIENT_SID,
    RL_COACH_MEDIA,
    RL_CLIENT_MEDIA,
    RL_END_REASON,
};

/* Copy the row of STORE_Q_ROOM_LOAD into r. -1 when an id does not fit. */
static int copy_room(struct store_room *r, const PGresult *res)
{
    if (store__ops_copy(r->appointment_id, sizeof r->appointment_id, res, 0, RL_ID) != 0 ||
        store__ops_copy(r->status, sizeof r->status, res, 0, RL_STATUS) != 0 ||
        store__ops_copy(r->coach_id, sizeof r->coach_id, res, 0, RL_COACH_ID) != 0 ||
        store__ops_copy(r->client_id, sizeof r->client_id, res, 0, RL_CLIENT_ID) != 0 ||
        store__ops_copy(r->coach_session_id, sizeof r->coach_session_id, res, 0, RL_COACH_SID) !=
            0 ||
        store__ops_copy(r->client_session_id, sizeof r->client_session_id, res, 0, RL_CLIENT_SID) !=
            0) {
        return -1;
    }
    store__ops_copy_text(r->coach_name, sizeof r->coach_name, res, 0, RL_COACH_NAME);
    store__ops_copy_text(r->client_name, sizeof r->client_name, res, 0, RL_CLIENT_NAME);
    r->scheduled_unix_ms = store__ops_i64(res, 0, RL_SCHEDULED);
    r->duration_min = (int)store__ops_i64(res, 0, RL_DURATION);
    r->duration_minutes = r->duration_min > 0 ? r->duration_min : DEFAULT_DURATION_MIN;
    r->last_seq = store__ops_i64(res, 0, RL_LAST_SEQ);
    r->started_unix_ms = store__ops_i64(res, 0, RL_STARTED);
    r->ended_unix_ms = store__ops_i64(res, 0, RL_ENDED);
    r->warnings_sent = (int)store__ops_i64(res, 0, RL_WARNINGS);
    r->coach_media = PQgetvalue(res, 0, RL_COACH_MEDIA)[0] == 't';
    r->client_media = PQgetvalue(res, 0, RL_CLIENT_MEDIA)[0] == 't';
    (void)store__ops_copy(r->end_reason, sizeof r->end_reason, res, 0, RL_END_REASON);
    return 0;
}

void store__op_room_load(PGconn *c, struct store_req *req)
{
    struct store_room *r = &req->u.room;
    r->room_id[sizeof r->room_id - 1] = '\0';
    req->rc = store__ops_ready(c, &req->err);
    if (req->rc != 0) {
        return;
    }
    const char *vals[] = {r->room_id};
    PGresult *res = store__ops_exec(c, STORE_Q_ROOM_LOAD, 1, vals);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        req->rc = store__ops_fail(c, res, "room load", &req->err);
    } else if (PQntuples(res) == 0) {
        req->rc = STORE_E_NOTFOUND;
        store__err_set(&req->err, req->rc, "no such room");
    } else if (copy_room(r, res) != 0) {
        req->rc = STORE_E_QUERY;
        store__err_set(&req->err, req->rc, "room load: an id or the status is too long");
    } else {
        req->rc = 0;
    }
    PQclear(res);
}

/* ---- session join --------------------------------------------------------------- */

/* The statements of a join, in one pipeline (ops_queries.c). */
enum { J_BEGIN, J_UPSERT, J_APPOINTMENT, J_ROOM, J_RESULT, J_COMMIT, J_N };

/* Fill the outputs of j from the J_RESULT row. 0, or -1 with err set. */
static int join_outputs(struct store_session_join *j, const PGresult *res, struct store_err *err)
{
    if (PQntuples(res) != 1) {
        store__err_set(err, STORE_E_QUERY, "session join: the Session row vanished");
        return -1;
    }
    if (store__ops_copy(j->session_id, sizeof j->session_id, res, 0, 0) != 0 ||
        store__ops_copy(j->status, sizeof j->status, res, 0, 1) != 0) {
        store__err_set(err, STORE_E_QUERY, "session join: id or status too long");
        return -1;
    }
    j->started_unix_ms = store__ops_i64(res, 0, 2);
    j->ended_unix_ms = store__ops_i64(res, 0, 3);
    return 0;
}

/* A failed join statement: a missing appointment or user (foreign key,
 * 23503) is STORE_E_NOTFOUND, anything else STORE_E_QUERY. */
static int join_failed(PGconn *c, const PGresult *res, struct store_err *err)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state != NULL && strcmp(state, "23503") == 0) {
        store__err_set(err, STORE_E_NOTFOUND, "session join: no such appointment or user");
        return STORE_E_NOTFOUND;
    }
    return store__ops_fail(c, res, "session join", err);
}

void store__op_session_join(PGconn *c, struct store_req *req)
{
    struct store_session_join *j = &req->u.join;
    j->appointment_id[sizeof j->appointment_id - 1] = '\0';
    j->room_id[sizeof j->room_id - 1] = '\0';
    j->user_id[sizeof j->user_id - 1] = '\0';
    if (j->duration_minutes <= 0 || j->at_unix_ms <= 0) {
        req->rc = -EINVAL;
        store__err_set(&req->err, req->rc, "session join: bad start time or duration");
        return;
    }
    req->rc = store__ops_ready(c, &req->err);
    if (req->rc != 0) {
        return;
    }
    char id[STORE_CUID_LEN + 1], at[24], dur[16];
    store_cuid(id);
    (void)snprintf(at, sizeof at, "%" PRId64, j->at_unix_ms);
    (void)snprintf(dur, sizeof dur, "%d", j->duration_minutes);
    const char *upsert[] = {id, j->room_id, j->appointment_id, j->user_id, at, dur};
    const char *appt[] = {j->appointment_id};
    const char *result[] = {j->appointment_id, j->user_id};
    const struct store__ops_stmt stmts[J_N] = {
        [J_BEGIN] = {STORE_Q_BEGIN, 0, NULL, NULL, NULL},
        [J_UPSERT] = {STORE_Q_JOIN_UPSERT, 6, upsert, NULL, NULL},
        [J_APPOINTMENT] = {STORE_Q_JOIN_APPOINTMENT, 1, appt, NULL, NULL},
        [J_ROOM] = {STORE_Q_JOIN_ROOM, 1, appt, NULL, NULL},
        [J_RESULT] = {STORE_Q_JOIN_RESULT, 2, result, NULL, NULL},
        [J_COMMIT] = {STORE_Q_COMMIT, 0, NULL, NULL, NULL},
    };
    PGresult *res[J_N];
    size_t bad = store__ops_pipeline(c, stmts, J_N, res);
    if (bad < J_N) {
        req->rc = join_failed(c, res[bad], &req->err);
        store__ops_rollback(c);
    } else if (join_outputs(j, res[J_RESULT], &req->err) != 0) {
        req->rc = STORE_E_QUERY; /* committed, but unreadable: the caller retries */
    } else {
        req->rc = 0;
    }
    store__ops_clear(res, J_N);
}
