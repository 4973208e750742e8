/*
 * ops_life.c: the store thread's session lifecycle operations.
 *
 *  - store__op_warning: "warningsSent" = GREATEST("warningsSent", n) on the
 *    appointment's active Session rows. The count is absolute, so a warning
 *    recorded twice (a retry, a second node) counts once.
 *  - store__op_end: end a session, in one transaction of two round trips.
 *    First BEGIN, lock the "Appointment" row and the room's coach_room row
 *    (FOR UPDATE), then read the state with a new snapshot (it sees an end
 *    that committed while we waited for the lock). An appointment already
 *    completed is reported as such and nothing changes (ROLLBACK): ending
 *    is idempotent and the first endedAt stays. A cancelled one is
 *    STORE_E_STATE. Otherwise one statement builds the transcript from the
 *    room's messages, completes every Session row and the appointment and
 *    queues the AI job (only with messages; ON CONFLICT DO NOTHING on the
 *    job's unique appointment), then COMMIT. The coach_room lock orders the
 *    end after any chat batch of the room that got there first: every
 *    message committed before the end is in the transcript.
 *  - store__op_rate: the client's rating of the appointment's client
 *    Session row. The target is looked up first (to tell NOTFOUND,
 *    FORBIDDEN and STATE apart); the INSERT then checks the same conditions
 *    again itself, and the unique index on "SessionRating"."sessionId"
 *    decides between two concurrent ratings (23505: STORE_E_CONFLICT).
 *  - store__op_session_get: one Session row with its transcript, summary,
 *    AI job state and the client's rating, for a participant or an admin.
 *
 * Statements and their columns: ops_queries.c.
 */
#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "ops_int.h"
#include "store_int.h"

int store__ops_dup(char **out, const PGresult *res, int row, int col)
{
    *out = NULL;
    if (PQgetisnull(res, row, col)) {
        return 0;
    }
    size_t len = (size_t)PQgetlength(res, row, col);
    char *s = malloc(len + 1);
    if (s == NULL) {
        return -ENOMEM;
    }
    memcpy(s, PQgetvalue(res, row, col), len);
    s[len] = '\0';
    *out = s;
    return 0;
}

/* 1 when res failed with SQLSTATE class `cls` (two characters). */
static int failed_with_class(const PGresult *res, const char *cls)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return state != NULL && strncmp(state, cls, 2) == 0;
}

int store__ops_lookup_failed(PGconn *c, const PGresult *res, const char *what,
                             struct store_err *err)
{
    if (failed_with_class(res, "22")) {
        store__err_set(err, STORE_E_NOTFOUND, "%s: not found", what);
        return STORE_E_NOTFOUND;
    }
    return store__ops_fail(c, res, what, err);
}

static int is_true(const PGresult *res, int row, int col)
{
    return !PQgetisnull(res, row, col) && PQgetvalue(res, row, col)[0] == 't';
}

static void fail(struct store_req *req, int code, const char *msg)
{
    req->rc = code;
    store__err_set(&req->err, code, "%s", msg);
}

/* ---- warning ----------------------------------------------------------------------------- */

void store__op_warning(PGconn *c, struct store_req *req)
{
    struct store_warning *w = &req->u.warning;
    w->appointment_id[sizeof w->appointment_id - 1] = '\0';
    if (w->warnings_sent < 0) {
        fail(req, -EINVAL, "warning: negative count");
        return;
    }
    req->rc = store__ops_ready(c, &req->err);
    if (req->rc != 0) {
        return;
    }
    char n[16];
    (void)snprintf(n, sizeof n, "%d", w->warnings_sent);
    w->node_id[sizeof w->node_id - 1] = '\0';
    const char *vals[] = {w->appointment_id, n, w->node_id};
    PGresult *res = store__ops_exec(c, STORE_Q_WARNING, 3, vals);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        req->rc = store__ops_lookup_failed(c, res, "warning", &req->err);
    } else if (store__ops_i64(res, 0, 0) == 0) {
        fail(req, STORE_E_CONFLICT, "warning: recorded already, or the clock is another node's");
    } else {
        req->rc = 0;
    }
    PQclear(res);
}

/* ---- end --------------------------------------------------------------------------------- */

/* The first pipeline of an end, and the columns of STORE_Q_END_STATE. */
enum { E_BEGIN, E_LOCK, E_LOCK_ROOM, E_STATE, E_N };
enum { ES_ENDED, ES_N_MSGS, ES_RATED };
/* The columns of STORE_Q_END_WRITE. */
enum { EW_N_MSGS, EW_JOB, EW_SESSIONS, EW_APPOINTMENTS, EW_LIVEKIT_CLOSE };

/* The writes of an end, then COMMIT. 0, or a negative code with err set
 * (the caller rolls back). */
static int end_write(PGconn *c, struct store_end *e, struct store_err *err)
{
    char job_id[STORE_CUID_LEN + 1], ended[24];
    store_cuid(job_id);
    (void)snprintf(ended, sizeof ended, "%" PRId64, e->ended_unix_ms);
    bool close = e->livekit_close && strcmp(e->reason, "livekit") != 0;
    const char *vals[] = {e->appointment_id, ended,    job_id, e->ai_enabled ? "t" : "f",
                          e->reason,         close ? "t" : "f"};
    const struct store__ops_stmt stmts[2] = {
        {STORE_Q_END_WRITE, 6, vals, NULL, NULL},
        {STORE_Q_COMMIT, 0, NULL, NULL, NULL},
    };
    PGresult *res[2];
    size_t bad = store__ops_pipeline(c, stmts, 2, res);
    int rc = 0;
    if (bad < 2) {
        rc = store__ops_fail(c, res[bad], "end", err);
    } else if (strcmp(PQcmdStatus(res[1]), "COMMIT") != 0 || PQntuples(res[0]) != 1) {
        rc = store__ops_fail(c, res[1], "end: commit", err);
    } else {
        e->n_messages = (int)store__ops_i64(res[0], 0, EW_N_MSGS);
        (void)store__ops_copy(e->ai_job_id, sizeof e->ai_job_id, res[0], 0, EW_JOB);
        e->livekit_close_queued = store__ops_i64(res[0], 0, EW_LIVEKIT_CLOSE) > 0;
        e->stored_ended_unix_ms = e->ended_unix_ms;
    }
    store__ops_clear(res, 2);
    return rc;
}

/* With the locks held (res: the first pipeline's results): report an end
 * that happened already, refuse a cancelled appointment, or end it. 0 or
 * a negative code with err set; the transaction is closed either way. */
static int end_locked(PGconn *c, struct store_end *e, PGresult **res, struct store_err *err)
{
    const PGresult *st = res[E_STATE];
    if (PQntuples(res[E_LOCK]) != 1 || PQntuples(st) != 1) {
        store__ops_rollback(c);
        store__err_set(err, STORE_E_NOTFOUND, "end: no such appointment");
        return STORE_E_NOTFOUND;
    }
    const char *status = PQgetvalue(res[E_LOCK], 0, 0);
    e->client_has_rating = is_true(st, 0, ES_RATED);
    if (strcmp(status, "completed") == 0) {
        store__ops_rollback(c); /* read only: nothing to keep */
        e->already_ended = 1;
        e->stored_ended_unix_ms = store__ops_i64(st, 0, ES_ENDED);
        e->n_messages = (int)store__ops_i64(st, 0, ES_N_MSGS);
        return 0;
    }
    if (strcmp(status, "cancelled") == 0) {
        store__ops_rollback(c);
        store__err_set(err, STORE_E_STATE, "end: the appointment is cancelled");
        return STORE_E_STATE;
    }
    int rc = end_write(c, e, err);
    if (rc != 0) {
        store__ops_rollback(c);
    }
    return rc;
}

static void reset_end_outputs(struct store_end *e)
{
    e->already_ended = 0;
    e->stored_ended_unix_ms = 0;
    e->n_messages = 0;
    e->ai_job_id[0] = '\0';
    e->client_has_rating = 0;
}

void store__op_end(PGconn *c, struct store_req *req)
{
    struct store_end *e = &req->u.end;
    e->appointment_id[sizeof e->appointment_id - 1] = '\0';
    e->reason[sizeof e->reason - 1] = '\0';
    reset_end_outputs(e);
    if (e->appointment_id[0] == '\0' || e->ended_unix_ms <= 0) {
        fail(req, -EINVAL, "end: no appointment or end time");
        return;
    }
    req->rc = store__ops_ready(c, &req->err);
    if (req->rc != 0) {
        return;
    }
    const char *vals[] = {e->appointment_id};
    const struct store__ops_stmt stmts[E_N] = {
        [E_BEGIN] = {STORE_Q_BEGIN, 0, NULL, NULL, NULL},
        [E_LOCK] = {STORE_Q_END_LOCK, 1, vals, NULL, NULL},
        [E_LOCK_ROOM] = {STORE_Q_END_LOCK_ROOM, 1, vals, NULL, NULL},
        [E_STATE] = {STORE_Q_END_STATE, 1, vals, NULL, NULL},
    };
    PGresult *res[E_N];
    size_t bad = store__ops_pipeline(c, stmts, E_N, res);
    if (bad < E_N) {
        req->rc = store__ops_lookup_failed(c, res[bad], "end", &req->err);
        store__ops_rollback(c);
    } else {
        req->rc = end_locked(c, e, res, &req->err);
    }
    store__ops_clear(res, E_N);
    if (req->rc != 0) {
        reset_end_outputs(e);
    }
}

/* ---- rate -------------------------------------------------------------------------------- */

/* The columns of STORE_Q_RATE_BY_ROOM and STORE_Q_RATE_BY_SESSION. */
enum { RT_CLIENT, RT_APPT_STATUS, RT_SID, RT_SID_STATUS };

/* Check the rating's target (res: a RATE_BY_* result) and copy the
 * client's Session id into sid. 0 or a negative code with err set. */
static int rate_target(const struct store_rate *r, const PGresult *res, char *sid, size_t cap,
                       struct store_err *err)
{
    if (PQntuples(res) != 1) {
        store__err_set(err, STORE_E_NOTFOUND, "rate: no such room or session");
        return STORE_E_NOTFOUND;
    }
    if (strcmp(PQgetvalue(res, 0, RT_CLIENT), r->user_id) != 0) {
        store__err_set(err, STORE_E_FORBIDDEN, "rate: only the client rates");
        return STORE_E_FORBIDDEN;
    }
    if (PQgetisnull(res, 0, RT_SID) || store__ops_copy(sid, cap, res, 0, RT_SID) != 0) {
        store__err_set(err, STORE_E_NOTFOUND, "rate: the client has no Session row");
        return STORE_E_NOTFOUND;
    }
    if (strcmp(PQgetvalue(res, 0, RT_APPT_STATUS), "completed") != 0 &&
        strcmp(PQgetvalue(res, 0, RT_SID_STATUS), "completed") != 0) {
        store__err_set(err, STORE_E_STATE, "rate: the session has not ended");
        return STORE_E_STATE;
    }
    return 0;
}

/* Insert the rating of Session row sid. 0 or a negative code with err. */
static int rate_insert(PGconn *c, struct store_rate *r, const char *sid, struct store_err *err)
{
    char id[STORE_CUID_LEN + 1], rating[16], tip[16];
    store_cuid(id);
    (void)snprintf(rating, sizeof rating, "%d", r->rating);
    (void)snprintf(tip, sizeof tip, "%d", r->tip);
    const char *vals[] = {id, sid, r->user_id, rating, r->comment, r->tip != 0 ? tip : NULL};
    PGresult *res = store__ops_exec(c, STORE_Q_RATE_INSERT, 6, vals);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state != NULL && strcmp(state, "23505") == 0) {
            rc = STORE_E_CONFLICT;
            store__err_set(err, rc, "rate: already rated");
        } else if (failed_with_class(res, "22")) {
            rc = -EINVAL;
            store__err_set(err, rc, "rate: the comment is not valid text");
        } else {
            rc = store__ops_fail(c, res, "rate", err);
        }
    } else if (PQntuples(res) != 1) {
        rc = STORE_E_STATE; /* changed since the look-up */
        store__err_set(err, rc, "rate: the session is no longer rateable");
    } else {
        (void)snprintf(r->rating_id, sizeof r->rating_id, "%s", id);
        r->created_unix_ms = store__ops_i64(res, 0, 0);
    }
    PQclear(res);
    return rc;
}

/* -EINVAL with err set when the request cannot be a rating, else 0. */
static int rate_validate(struct store_rate *r, struct store_err *err)
{
    r->room_id[sizeof r->room_id - 1] = '\0';
    r->session_id[sizeof r->session_id - 1] = '\0';
    r->user_id[sizeof r->user_id - 1] = '\0';
    const char *why = NULL;
    if (r->rating < 1 || r->rating > 5) {
        why = "rating outside 1..5";
    } else if (r->tip != 0 && r->tip != 1 && r->tip != 3 && r->tip != 5) {
        why = "tip other than 1, 3 or 5";
    } else if (r->user_id[0] == '\0' || (r->room_id[0] == '\0' && r->session_id[0] == '\0')) {
        why = "no user, room or session";
    }
    if (why != NULL) {
        store__err_set(err, -EINVAL, "rate: %s", why);
        return -EINVAL;
    }
    return 0;
}

void store__op_rate(PGconn *c, struct store_req *req)
{
    struct store_rate *r = &req->u.rate;
    r->rating_id[0] = '\0';
    r->created_unix_ms = 0;
    req->rc = rate_validate(r, &req->err);
    if (req->rc == 0) {
        req->rc = store__ops_ready(c, &req->err);
    }
    if (req->rc != 0) {
        return;
    }
    int by_room = r->room_id[0] != '\0';
    const char *vals[] = {by_room ? r->room_id : r->session_id};
    PGresult *res =
        store__ops_exec(c, by_room ? STORE_Q_RATE_BY_ROOM : STORE_Q_RATE_BY_SESSION, 1, vals);
    char sid[STORE_ID_MAX + 1];
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        req->rc = store__ops_lookup_failed(c, res, "rate", &req->err);
    } else {
        req->rc = rate_target(r, res, sid, sizeof sid, &req->err);
    }
    PQclear(res);
    if (req->rc == 0) {
        req->rc = rate_insert(c, r, sid, &req->err);
    }
    if (req->rc == 0) {
        memcpy(r->session_id, sid, sizeof sid);
    }
}

/* ---- session get ------------------------------------------------------------------------- */

/* The columns of STORE_Q_SESSION_GET. */
enum {
    SG_APPT,
    SG_ROOM,
    SG_OWNER,
    SG_STATUS,
    SG_STARTED,
    SG_ENDED,
    SG_DURATION,
    SG_WARNINGS,
    SG_TRANSCRIPT,
    SG_SUMMARY,
    SG_AI_STATUS,
    SG_RATED,
    SG_RATING,
    SG_TIP,
    SG_COMMENT,
    SG_RATED_AT,
    SG_ALLOWED,
};

static void free_session_strings(struct store_session_get *g)
{
    free(g->transcript);
    free(g->ai_summary);
    free(g->rating_comment);
    g->transcript = g->ai_summary = g->rating_comment = NULL;
}

/* Fill g from the row of STORE_Q_SESSION_GET. 0, -1 for an oversized id
 * or status, -ENOMEM; on error g owns no strings. */
static int copy_session(struct store_session_get *g, const PGresult *res)
{
    if (store__ops_copy(g->appointment_id, sizeof g->appointment_id, res, 0, SG_APPT) != 0 ||
        store__ops_copy(g->room_id, sizeof g->room_id, res, 0, SG_ROOM) != 0 ||
        store__ops_copy(g->owner_id, sizeof g->owner_id, res, 0, SG_OWNER) != 0 ||
        store__ops_copy(g->status, sizeof g->status, res, 0, SG_STATUS) != 0 ||
        store__ops_copy(g->ai_status, sizeof g->ai_status, res, 0, SG_AI_STATUS) != 0) {
        return -1;
    }
    if (store__ops_dup(&g->transcript, res, 0, SG_TRANSCRIPT) != 0 ||
        store__ops_dup(&g->ai_summary, res, 0, SG_SUMMARY) != 0 ||
        store__ops_dup(&g->rating_comment, res, 0, SG_COMMENT) != 0) {
        free_session_strings(g);
        return -ENOMEM;
    }
    g->started_unix_ms = store__ops_i64(res, 0, SG_STARTED);
    g->ended_unix_ms = store__ops_i64(res, 0, SG_ENDED);
    g->duration_minutes = (int)store__ops_i64(res, 0, SG_DURATION);
    g->warnings_sent = (int)store__ops_i64(res, 0, SG_WARNINGS);
    g->has_rating = is_true(res, 0, SG_RATED);
    g->rating = (int)store__ops_i64(res, 0, SG_RATING);
    g->tip = (int)store__ops_i64(res, 0, SG_TIP);
    g->rated_unix_ms = store__ops_i64(res, 0, SG_RATED_AT);
    return 0;
}

/* Check the caller's access and fill g. 0 or a negative code with err. */
static int session_result(struct store_session_get *g, const PGresult *res, struct store_err *err)
{
    if (PQntuples(res) != 1) {
        store__err_set(err, STORE_E_NOTFOUND, "session: no such session");
        return STORE_E_NOTFOUND;
    }
    if (!is_true(res, 0, SG_ALLOWED)) {
        store__err_set(err, STORE_E_FORBIDDEN, "session: not a participant");
        return STORE_E_FORBIDDEN;
    }
    int rc = copy_session(g, res);
    if (rc == -ENOMEM) {
        store__err_set(err, rc, "session: out of memory");
        return rc;
    }
    if (rc != 0) {
        store__err_set(err, STORE_E_QUERY, "session: an id or a status is too long");
        return STORE_E_QUERY;
    }
    return 0;
}

void store__op_session_get(PGconn *c, struct store_req *req)
{
    struct store_session_get *g = &req->u.session_get;
    g->session_id[sizeof g->session_id - 1] = '\0';
    g->user_id[sizeof g->user_id - 1] = '\0';
    g->transcript = g->ai_summary = g->rating_comment = NULL;
    req->rc = store__ops_ready(c, &req->err);
    if (req->rc != 0) {
        return;
    }
    const char *vals[] = {g->session_id, g->user_id};
    PGresult *res = store__ops_exec(c, STORE_Q_SESSION_GET, 2, vals);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        req->rc = store__ops_lookup_failed(c, res, "session", &req->err);
    } else {
        req->rc = session_result(g, res, &req->err);
    }
    PQclear(res);
}
