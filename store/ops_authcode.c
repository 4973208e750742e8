/*
 * ops_authcode.c: the store thread's Skool auth-code operations.
 *
 *  - store__op_auth_code_issue: count the request in "RateLimit" and
 *    insert the "AuthCode" row, in one statement (one implicit
 *    transaction). The upsert of the day's RateLimit row takes its row
 *    lock, so concurrent requests for one skoolUserId are counted one
 *    after the other and never issue more than the day's limit; at the
 *    limit the statement writes nothing and returns no row.
 *  - store__op_auth_code_redeem: one statement uses the code (an UPDATE
 *    whose WHERE demands unused, active, unexpired) and inserts the
 *    "UserSession". Of two concurrent redeems the second waits for the
 *    first's row lock, re-checks the WHERE on the committed row and matches
 *    nothing. Only when nothing matched, a second statement (a new
 *    snapshot, so it sees the winner's commit) tells an unknown code from a
 *    used or an expired one.
 *
 * Codes and tokens are only ever query parameters: they never appear in
 * an error message. Statements and their columns: ops_queries.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "ops_int.h"
#include "store_int.h"

#define DAY_MS ((int64_t)24 * 60 * 60 * 1000)

/* Columns of STORE_Q_AUTH_CODE_REDEEM and STORE_Q_AUTH_CODE_STATE. */
enum { AR_SKOOL_ID, AR_SKOOL_NAME, AR_SESSION_ID };
enum { AS_USED, AS_EXPIRED };

static void fail(struct store_req *req, int code, const char *msg)
{
    req->rc = code;
    store__err_set(&req->err, code, "%s", msg);
}

/* 1 when res failed because of the values sent (SQLSTATE class 22: bad
 * UTF-8, a value out of range). */
static int bad_value(const PGresult *res)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return state != NULL && strncmp(state, "22", 2) == 0;
}

static int is_true(const PGresult *res, int row, int col)
{
    return !PQgetisnull(res, row, col) && PQgetvalue(res, row, col)[0] == 't';
}

/* ---- issue -------------------------------------------------------------------------------- */

static int issue_valid(struct store_auth_code_issue *a)
{
    a->skool_user_id[sizeof a->skool_user_id - 1] = '\0';
    a->skool_username[sizeof a->skool_username - 1] = '\0';
    a->code[sizeof a->code - 1] = '\0';
    return a->skool_user_id[0] != '\0' && a->skool_username[0] != '\0' && a->code[0] != '\0' &&
           a->now_unix_ms > 0 && a->expires_unix_ms > a->now_unix_ms && a->max_per_day > 0;
}

void store__op_auth_code_issue(PGconn *c, struct store_req *req)
{
    struct store_auth_code_issue *a = &req->u.code_issue;
    a->limited = 0;
    a->request_count = 0;
    if (!issue_valid(a)) {
        fail(req, -EINVAL, "auth code: missing field or bad time");
        return;
    }
    req->rc = store__ops_ready(c, &req->err);
    if (req->rc != 0) {
        return;
    }
    char rl_id[STORE_CUID_LEN + 1], code_id[STORE_CUID_LEN + 1];
    char day[24], now[24], max[16], expires[24];
    store_cuid(rl_id);
    store_cuid(code_id);
    (void)snprintf(day, sizeof day, "%" PRId64, a->now_unix_ms - a->now_unix_ms % DAY_MS);
    (void)snprintf(now, sizeof now, "%" PRId64, a->now_unix_ms);
    (void)snprintf(max, sizeof max, "%d", a->max_per_day);
    (void)snprintf(expires, sizeof expires, "%" PRId64, a->expires_unix_ms);
    const char *vals[] = {rl_id,   a->skool_user_id,  day,    now, max, code_id,
                          a->code, a->skool_username, expires};
    PGresult *res = store__ops_exec(c, STORE_Q_AUTH_CODE_ISSUE, 9, vals);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        if (bad_value(res)) {
            fail(req, -EINVAL, "auth code: a value the database refuses");
        } else {
            req->rc = store__ops_fail(c, res, "auth code", &req->err);
        }
    } else if (PQntuples(res) == 0) {
        a->limited = 1;
        a->request_count = a->max_per_day;
        req->rc = 0;
    } else {
        a->request_count = (int)store__ops_i64(res, 0, 0);
        req->rc = 0;
    }
    PQclear(res);
}

/* ---- redeem ------------------------------------------------------------------------------- */

/* Nothing was redeemed: tell why (a new statement, a new snapshot). */
static void redeem_refused(PGconn *c, struct store_req *req, const char *now)
{
    struct store_auth_code_redeem *r = &req->u.code_redeem;
    const char *vals[] = {r->code, now};
    PGresult *res = store__ops_exec(c, STORE_Q_AUTH_CODE_STATE, 2, vals);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        req->rc = store__ops_lookup_failed(c, res, "auth code state", &req->err);
    } else if (PQntuples(res) == 0) {
        fail(req, STORE_E_NOTFOUND, "no such auth code");
    } else if (is_true(res, 0, AS_USED)) {
        fail(req, STORE_E_CONFLICT, "auth code already used");
    } else if (is_true(res, 0, AS_EXPIRED)) {
        fail(req, STORE_E_STATE, "auth code expired");
    } else {
        /* Usable now but not a moment ago: a concurrent redeem that rolled
         * back. Report it as taken; the client may try again. */
        fail(req, STORE_E_CONFLICT, "auth code in use by another request");
    }
    PQclear(res);
}

static int redeem_valid(struct store_auth_code_redeem *r)
{
    r->code[sizeof r->code - 1] = '\0';
    r->session_token[sizeof r->session_token - 1] = '\0';
    r->ip[sizeof r->ip - 1] = '\0';
    r->user_agent[sizeof r->user_agent - 1] = '\0';
    r->fingerprint[sizeof r->fingerprint - 1] = '\0';
    return r->session_token[0] != '\0' && r->now_unix_ms > 0 &&
           r->session_expires_unix_ms > r->now_unix_ms;
}

void store__op_auth_code_redeem(PGconn *c, struct store_req *req)
{
    struct store_auth_code_redeem *r = &req->u.code_redeem;
    r->skool_user_id[0] = r->skool_username[0] = r->user_session_id[0] = '\0';
    if (!redeem_valid(r)) {
        fail(req, -EINVAL, "redeem: no token or bad time");
        return;
    }
    if (r->code[0] == '\0') {
        fail(req, STORE_E_NOTFOUND, "no such auth code");
        return;
    }
    req->rc = store__ops_ready(c, &req->err);
    if (req->rc != 0) {
        return;
    }
    char session_id[STORE_CUID_LEN + 1], now[24], expires[24];
    store_cuid(session_id);
    (void)snprintf(now, sizeof now, "%" PRId64, r->now_unix_ms);
    (void)snprintf(expires, sizeof expires, "%" PRId64, r->session_expires_unix_ms);
    const char *vals[] = {
        r->code, now, r->ip, r->user_agent, r->fingerprint, session_id, r->session_token, expires};
    PGresult *res = store__ops_exec(c, STORE_Q_AUTH_CODE_REDEEM, 8, vals);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        req->rc = store__ops_lookup_failed(c, res, "redeem", &req->err);
    } else if (PQntuples(res) == 0) {
        redeem_refused(c, req, now);
    } else {
        /* Cut, not refused: the session is committed (a code the application
         * made may carry a longer id than this gateway issues). */
        store__ops_copy_text(r->skool_user_id, sizeof r->skool_user_id, res, 0, AR_SKOOL_ID);
        store__ops_copy_text(r->skool_username, sizeof r->skool_username, res, 0, AR_SKOOL_NAME);
        (void)store__ops_copy(r->user_session_id, sizeof r->user_session_id, res, 0, AR_SESSION_ID);
        req->rc = 0;
    }
    PQclear(res);
}
