/*
 * ops_ai.c: the store thread's side of the durable AI summary queue
 * (coach_ai_job, migration 005).
 *
 *  - store__op_ai_claim: one statement claims up to max_jobs due jobs
 *    ('pending' or 'retry' whose next_at has come, or 'running' whose lease
 *    expired: the worker that held it died) with FOR UPDATE SKIP LOCKED, so
 *    two workers, on this node or another, never claim the same job; marks
 *    them 'running' with attempts + 1 and a lease; and returns each with
 *    its prompt inputs (names, the client's "Profile", the transcript).
 *    A second statement in the same pipeline and implicit transaction
 *    reports when the next of the remaining jobs falls due. The profile's
 *    TEXT[] columns arrive as JSON arrays (array_to_json) and are parsed
 *    with jansson: no hand parsing of PostgreSQL array literals.
 *  - store__op_ai_result: lock the job (FOR UPDATE); a job that is no
 *    longer 'running' (a stale worker: it was re-claimed and finished, or
 *    already recorded) is STORE_E_STATE and nothing changes. DONE writes
 *    the summary to every Session row's "aiSummary" and to the client's
 *    "Profile"."lastSummary" (creating the Profile row if the client has
 *    none) and marks the job 'done'; RETRY makes it due again at
 *    next_unix_ms; FAILED ends it. One transaction, two round trips.
 *
 * A claim whose rows cannot be returned (out of memory) leaves its jobs
 * 'running': they are claimed again when the lease expires.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "ops_int.h"
#include "store_int.h"

#define CLAIM_MAX 16

/* ---- claim ------------------------------------------------------------------------------- */

/* The columns of STORE_Q_AI_CLAIM. */
enum {
    AC_ID,
    AC_APPT,
    AC_ATTEMPTS,
    AC_ROOM,
    AC_COACH,
    AC_COACH_NAME,
    AC_CLIENT_NAME,
    AC_FACTS,
    AC_CHALLENGES,
    AC_GOALS,
    AC_SYMPTOMS,
    AC_LAST_SUMMARY,
    AC_TRANSCRIPT,
};

/* The strings of JSON array arr (other elements, e.g. null, are skipped)
 * into *out (n entries; NULL when none). 0 or -ENOMEM. */
static int strv_from_array(const json_t *arr, char ***out, size_t *n)
{
    size_t cap = json_array_size(arr);
    *out = NULL;
    *n = 0;
    if (cap == 0) {
        return 0;
    }
    char **v = calloc(cap, sizeof *v);
    if (v == NULL) {
        return -ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < cap; i++) {
        const json_t *s = json_array_get(arr, i);
        if (!json_is_string(s)) {
            continue;
        }
        size_t len = json_string_length(s);
        v[k] = malloc(len + 1);
        if (v[k] == NULL) {
            store__free_strv(v, k);
            return -ENOMEM;
        }
        memcpy(v[k], json_string_value(s), len);
        v[k][len] = '\0';
        k++;
    }
    *out = v;
    *n = k;
    return 0;
}

/* The JSON array of strings at (row, col) into *out / *n. 0, -1 when it
 * is not a JSON array, -ENOMEM. */
static int strv_from_json(char ***out, size_t *n, const PGresult *res, int row, int col)
{
    json_error_t jerr;
    json_t *arr =
        json_loadb(PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col), 0, &jerr);
    int rc = -1;
    if (json_is_array(arr)) {
        rc = strv_from_array(arr, out, n);
    } else {
        *out = NULL;
        *n = 0;
    }
    json_decref(arr);
    return rc;
}

/* Fill job j from row `row` of STORE_Q_AI_CLAIM. 0, -1 for an oversized
 * id or bad JSON, -ENOMEM; j may own strings either way (store__free_ai_jobs). */
static int copy_job(struct store_ai_job *j, const PGresult *res, int row)
{
    if (store__ops_copy(j->job_id, sizeof j->job_id, res, row, AC_ID) != 0 ||
        store__ops_copy(j->appointment_id, sizeof j->appointment_id, res, row, AC_APPT) != 0 ||
        store__ops_copy(j->room_id, sizeof j->room_id, res, row, AC_ROOM) != 0 ||
        store__ops_copy(j->coach_id, sizeof j->coach_id, res, row, AC_COACH) != 0) {
        return -1;
    }
    store__ops_copy_text(j->coach_name, sizeof j->coach_name, res, row, AC_COACH_NAME);
    store__ops_copy_text(j->client_name, sizeof j->client_name, res, row, AC_CLIENT_NAME);
    j->attempt = (int)store__ops_i64(res, row, AC_ATTEMPTS);
    int rc = strv_from_json(&j->client_facts, &j->n_client_facts, res, row, AC_FACTS);
    if (rc == 0) {
        rc = strv_from_json(&j->challenges, &j->n_challenges, res, row, AC_CHALLENGES);
    }
    if (rc == 0 && (store__ops_dup(&j->goals, res, row, AC_GOALS) != 0 ||
                    store__ops_dup(&j->symptoms, res, row, AC_SYMPTOMS) != 0 ||
                    store__ops_dup(&j->last_summary, res, row, AC_LAST_SUMMARY) != 0 ||
                    store__ops_dup(&j->transcript, res, row, AC_TRANSCRIPT) != 0)) {
        rc = -ENOMEM;
    }
    return rc;
}

/* Turn the claimed rows into cl->jobs. 0 or a negative code with err. */
static int fill_jobs(struct store_ai_claim *cl, const PGresult *res, struct store_err *err)
{
    size_t n = (size_t)PQntuples(res);
    if (n == 0) {
        return 0;
    }
    struct store_ai_job *jobs = calloc(n, sizeof *jobs);
    int rc = jobs == NULL ? -ENOMEM : 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = copy_job(&jobs[i], res, (int)i);
    }
    if (rc != 0) {
        store__free_ai_jobs(jobs, n);
        rc = rc == -ENOMEM ? -ENOMEM : STORE_E_QUERY;
        store__err_set(err, rc, "ai claim: %s",
                       rc == -ENOMEM ? "out of memory" : "an id or a profile list is malformed");
        return rc;
    }
    cl->jobs = jobs;
    cl->n_jobs = n;
    return 0;
}

void store__op_ai_claim(PGconn *c, struct store_req *req)
{
    struct store_ai_claim *cl = &req->u.ai_claim;
    cl->jobs = NULL;
    cl->n_jobs = 0;
    cl->next_due_unix_ms = 0;
    if (cl->max_jobs < 1 || cl->max_jobs > CLAIM_MAX || cl->lease_ms <= 0) {
        req->rc = -EINVAL;
        store__err_set(&req->err, req->rc, "ai claim: max_jobs outside 1..%d or no lease",
                       CLAIM_MAX);
        return;
    }
    req->rc = store__ops_ready(c, &req->err);
    if (req->rc != 0) {
        return;
    }
    char lease[24], n[16];
    (void)snprintf(lease, sizeof lease, "%" PRId64, cl->lease_ms);
    (void)snprintf(n, sizeof n, "%d", cl->max_jobs);
    cl->node_id[sizeof cl->node_id - 1] = '\0';
    const char *vals[] = {lease, n, cl->node_id};
    /* No BEGIN: one implicit transaction up to the pipeline's Sync. */
    const struct store__ops_stmt stmts[2] = {
        {STORE_Q_AI_CLAIM, 3, vals, NULL, NULL},
        {STORE_Q_AI_NEXT_DUE, 0, NULL, NULL, NULL},
    };
    PGresult *res[2];
    size_t bad = store__ops_pipeline(c, stmts, 2, res);
    if (bad < 2) {
        req->rc = store__ops_fail(c, res[bad], "ai claim", &req->err);
    } else {
        req->rc = fill_jobs(cl, res[0], &req->err);
        cl->next_due_unix_ms = PQntuples(res[1]) == 1 ? store__ops_i64(res[1], 0, 0) : 0;
    }
    if (req->rc != 0) {
        cl->next_due_unix_ms = 0;
    }
    store__ops_clear(res, 2);
}

/* ---- result ------------------------------------------------------------------------------ */

/* The first pipeline of a result, and the columns of STORE_Q_AI_LOCK. */
enum { R_BEGIN, R_LOCK, R_N };
enum { AL_STATUS, AL_APPT, AL_ROOM, AL_CLIENT, AL_COACH_SID, AL_ATTEMPTS };

/* What the locked job row says (copied out of its result). */
struct locked_job {
    char appointment_id[STORE_ID_MAX + 1];
    char room_id[STORE_ROOM_MAX + 1];
    char client_id[STORE_ID_MAX + 1];
    char coach_sid[STORE_ID_MAX + 1];
};

/* The job's row after the lock: 0 when it is 'running' (lj filled), else
 * a negative code with err set. */
static int check_locked(const PGresult *res, int attempt, struct locked_job *lj,
                        struct store_err *err)
{
    if (PQntuples(res) != 1) {
        store__err_set(err, STORE_E_NOTFOUND, "ai result: no such job");
        return STORE_E_NOTFOUND;
    }
    if (strcmp(PQgetvalue(res, 0, AL_STATUS), "running") != 0) {
        store__err_set(err, STORE_E_STATE, "ai result: the job is %.16s, not running",
                       PQgetvalue(res, 0, AL_STATUS));
        return STORE_E_STATE;
    }
    if (attempt > 0 && strtol(PQgetvalue(res, 0, AL_ATTEMPTS), NULL, 10) != attempt) {
        /* the lease expired and another worker took the job: this result is stale */
        store__err_set(err, STORE_E_STATE, "ai result: attempt %d is no longer current", attempt);
        return STORE_E_STATE;
    }
    if (store__ops_copy(lj->appointment_id, sizeof lj->appointment_id, res, 0, AL_APPT) != 0 ||
        store__ops_copy(lj->room_id, sizeof lj->room_id, res, 0, AL_ROOM) != 0 ||
        store__ops_copy(lj->client_id, sizeof lj->client_id, res, 0, AL_CLIENT) != 0 ||
        store__ops_copy(lj->coach_sid, sizeof lj->coach_sid, res, 0, AL_COACH_SID) != 0) {
        store__err_set(err, STORE_E_QUERY, "ai result: an id is too long");
        return STORE_E_QUERY;
    }
    return 0;
}

/* BEGIN and lock the job. 0 with lj filled and the transaction open, or a
 * negative code with err set and the transaction closed. */
static int lock_job(PGconn *c, const char *job_id, int attempt, struct locked_job *lj,
                    struct store_err *err)
{
    const char *vals[] = {job_id};
    const struct store__ops_stmt stmts[R_N] = {
        [R_BEGIN] = {STORE_Q_BEGIN, 0, NULL, NULL, NULL},
        [R_LOCK] = {STORE_Q_AI_LOCK, 1, vals, NULL, NULL},
    };
    PGresult *res[R_N];
    size_t bad = store__ops_pipeline(c, stmts, R_N, res);
    int rc;
    if (bad < R_N) {
        rc = store__ops_lookup_failed(c, res[bad], "ai result", err);
    } else {
        rc = check_locked(res[R_LOCK], attempt, lj, err);
    }
    store__ops_clear(res, R_N);
    if (rc != 0) {
        store__ops_rollback(c);
    }
    return rc;
}

/* The writes of outcome r->outcome, then COMMIT. 0 or a negative code
 * with err set (the caller rolls back). */
static int record(PGconn *c, const struct store_ai_result *r, const struct locked_job *lj,
                  const char *error, struct store_err *err)
{
    char profile_id[STORE_CUID_LEN + 1], next[24];
    store_cuid(profile_id);
    (void)snprintf(next, sizeof next, "%" PRId64, r->next_unix_ms);
    const char *job[] = {r->job_id};
    const char *summary[] = {lj->appointment_id, r->summary};
    const char *profile[] = {profile_id, lj->client_id, r->summary};
    const char *why = error[0] != '\0' ? error : NULL;
    const char *retry[] = {r->job_id, next, why};
    const char *failed[] = {r->job_id, why};
    struct store__ops_stmt stmts[4];
    size_t n = 0;
    if (r->outcome == STORE_AI_DONE) {
        stmts[n++] = (struct store__ops_stmt){STORE_Q_AI_DONE, 1, job, NULL, NULL};
        stmts[n++] = (struct store__ops_stmt){STORE_Q_AI_SUMMARY, 2, summary, NULL, NULL};
        stmts[n++] = (struct store__ops_stmt){STORE_Q_AI_PROFILE, 3, profile, NULL, NULL};
    } else if (r->outcome == STORE_AI_RETRY) {
        stmts[n++] = (struct store__ops_stmt){STORE_Q_AI_RETRY, 3, retry, NULL, NULL};
    } else {
        stmts[n++] = (struct store__ops_stmt){STORE_Q_AI_FAILED, 2, failed, NULL, NULL};
    }
    stmts[n++] = (struct store__ops_stmt){STORE_Q_COMMIT, 0, NULL, NULL, NULL};
    PGresult *res[4];
    size_t bad = store__ops_pipeline(c, stmts, n, res);
    int rc = 0;
    if (bad < n) {
        const char *state = PQresultErrorField(res[bad], PG_DIAG_SQLSTATE);
        if (state != NULL && strncmp(state, "22", 2) == 0) {
            rc = -EINVAL;
            store__err_set(err, rc, "ai result: the summary is not valid text");
        } else {
            rc = store__ops_fail(c, res[bad], "ai result", err);
        }
    } else if (strcmp(PQcmdStatus(res[n - 1]), "COMMIT") != 0) {
        rc = store__ops_fail(c, res[n - 1], "ai result: commit", err);
    }
    store__ops_clear(res, n);
    return rc;
}

/* A copy of the error text fit for a TEXT column and for logs: control
 * characters become spaces, bytes outside ASCII '?'. */
static void clean_error(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    for (; i + 1 < cap && src[i] != '\0'; i++) {
        unsigned char ch = (unsigned char)src[i];
        if (ch < 0x20 || ch == 0x7f) {
            dst[i] = ' ';
        } else if (ch >= 0x80) {
            dst[i] = '?';
        } else {
            dst[i] = src[i];
        }
    }
    dst[i] = '\0';
}

/* -EINVAL with err set when r cannot be recorded, else 0. */
static int result_validate(struct store_ai_result *r, struct store_err *err)
{
    r->job_id[sizeof r->job_id - 1] = '\0';
    r->error[sizeof r->error - 1] = '\0';
    const char *why = NULL;
    if (r->job_id[0] == '\0') {
        why = "no job id";
    } else if (r->outcome != STORE_AI_DONE && r->outcome != STORE_AI_RETRY &&
               r->outcome != STORE_AI_FAILED) {
        why = "unknown outcome";
    } else if (r->outcome == STORE_AI_DONE && r->summary == NULL) {
        why = "done without a summary";
    } else if (r->outcome == STORE_AI_RETRY && r->next_unix_ms <= 0) {
        why = "retry without a time";
    }
    if (why != NULL) {
        store__err_set(err, -EINVAL, "ai result: %s", why);
        return -EINVAL;
    }
    return 0;
}

void store__op_ai_result(PGconn *c, struct store_req *req)
{
    struct store_ai_result *r = &req->u.ai_result;
    r->appointment_id[0] = r->room_id[0] = r->session_id[0] = '\0';
    req->rc = result_validate(r, &req->err);
    if (req->rc == 0) {
        req->rc = store__ops_ready(c, &req->err);
    }
    if (req->rc != 0) {
        return;
    }
    char error[sizeof r->error];
    clean_error(error, sizeof error, r->error);
    struct locked_job lj;
    req->rc = lock_job(c, r->job_id, r->attempt, &lj, &req->err);
    if (req->rc != 0) {
        return;
    }
    req->rc = record(c, r, &lj, error, &req->err);
    if (req->rc != 0) {
        store__ops_rollback(c);
        return;
    }
    memcpy(r->appointment_id, lj.appointment_id, sizeof r->appointment_id);
    memcpy(r->room_id, lj.room_id, sizeof r->room_id);
    memcpy(r->session_id, lj.coach_sid, sizeof r->session_id);
}
