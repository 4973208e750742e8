/*
 * ops_auth.c: the store thread's authentication look-ups.
 *
 *  - store__op_auth_session: a "UserSession" token (its "sessionId") to
 *    the "User" it belongs to (joined on "skoolUserId"). The same statement
 *    refreshes "lastActive", but only when it is more than a minute old, so
 *    a busy token costs one write a minute at most: one round trip, one
 *    implicit transaction.
 *  - store__op_auth_user: a "User" by id (a JWT's sub).
 * Unknown, inactive or expired tokens and unknown users are
 * STORE_E_NOTFOUND. The token is only ever a query parameter; it never
 * appears in an error message.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "ops_int.h"
#include "store_int.h"

/* A token or id the server cannot even compare (bad UTF-8, a NUL byte:
 * SQLSTATE class 22, data exception) matches nothing: STORE_E_NOTFOUND,
 * not a failed statement. */
static int lookup_failed(PGconn *c, const PGresult *res, const char *what, struct store_req *req)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (state != NULL && strncmp(state, "22", 2) == 0) {
        store__err_set(&req->err, STORE_E_NOTFOUND, "%s: no match", what);
        return STORE_E_NOTFOUND;
    }
    return store__ops_fail(c, res, what, &req->err);
}

/* Fill u from columns col, col+1, col+2 (id, displayName, role; see
 * ops_queries.c for both statements' columns). */
static int copy_user(struct store_user *u, const PGresult *res, int col)
{
    if (store__ops_copy(u->id, sizeof u->id, res, 0, col) != 0 ||
        store__ops_copy(u->role, sizeof u->role, res, 0, col + 2) != 0) {
        return -1;
    }
    store__ops_copy_text(u->display_name, sizeof u->display_name, res, 0, col + 1);
    return 0;
}

void store__op_auth_session(PGconn *c, struct store_req *req)
{
    struct store_auth_session *a = &req->u.auth_session;
    a->token[sizeof a->token - 1] = '\0';
    if (a->token[0] == '\0') {
        req->rc = STORE_E_NOTFOUND;
        store__err_set(&req->err, req->rc, "no such session token");
        return;
    }
    req->rc = store__ops_ready(c, &req->err);
    if (req->rc != 0) {
        return;
    }
    const char *vals[] = {a->token};
    PGresult *res = store__ops_exec(c, STORE_Q_AUTH_SESSION, 1, vals);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        req->rc = lookup_failed(c, res, "auth session", req);
    } else if (PQntuples(res) == 0) {
        req->rc = STORE_E_NOTFOUND;
        store__err_set(&req->err, req->rc, "no such session token");
    } else if (store__ops_copy(a->user_session_id, sizeof a->user_session_id, res, 0, 0) != 0 ||
               copy_user(&a->user, res, 2) != 0) {
        req->rc = STORE_E_QUERY;
        store__err_set(&req->err, req->rc, "auth session: id or role too long");
    } else {
        a->expires_unix_ms = store__ops_i64(res, 0, 1);
        req->rc = 0;
    }
    PQclear(res);
}

void store__op_auth_user(PGconn *c, struct store_req *req)
{
    struct store_user *u = &req->u.auth_user.user;
    u->id[sizeof u->id - 1] = '\0';
    req->rc = store__ops_ready(c, &req->err);
    if (req->rc != 0) {
        return;
    }
    const char *vals[] = {u->id};
    PGresult *res = store__ops_exec(c, STORE_Q_AUTH_USER, 1, vals);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        req->rc = lookup_failed(c, res, "auth user", req);
    } else if (PQntuples(res) == 0) {
        req->rc = STORE_E_NOTFOUND;
        store__err_set(&req->err, req->rc, "no such user");
    } else if (copy_user(u, res, 0) != 0) {
        req->rc = STORE_E_QUERY;
        store__err_set(&req->err, req->rc, "auth user: id or role too long");
    } else {
        req->rc = 0;
    }
    PQclear(res);
}

/* Fill request req from row `row` of a STORE_Q_AUTH_SESSIONS result. */
static void signin_from_row(struct store_req *req, const PGresult *res, int row)
{
    struct store_auth_session *a = &req->u.auth_session;
    struct store_user *u = &a->user;
    if (store__ops_copy(a->user_session_id, sizeof a->user_session_id, res, row, 1) != 0 ||
        store__ops_copy(u->id, sizeof u->id, res, row, 3) != 0 ||
        store__ops_copy(u->role, sizeof u->role, res, row, 5) != 0) {
        req->rc = STORE_E_QUERY;
        store__err_set(&req->err, req->rc, "auth session: id or role too long");
        return;
    }
    store__ops_copy_text(u->display_name, sizeof u->display_name, res, row, 4);
    a->expires_unix_ms = store__ops_i64(res, row, 2);
    req->rc = 0;
}

/* The tokens of reqs[0..n) in one statement: 0 with every request
 * completed, or -1 (nothing completed) when the statement failed. */
static int signin_batch(PGconn *c, struct store_req **reqs, size_t n)
{
    const char *toks[STORE__SIGNIN_BATCH_MAX];
    for (size_t i = 0; i < n; i++) {
        toks[i] = reqs[i]->u.auth_session.token;
    }
    struct store__param arr = {0};
    if (store__text_array(&arr, toks, NULL, n) != 0) {
        return -1;
    }
    static const int fmts[] = {1};
    const char *vals[] = {arr.data};
    const int lens[] = {arr.len};
    const struct store__ops_stmt stmt = {STORE_Q_AUTH_SESSIONS, 1, vals, lens, fmts};
    PGresult *res = NULL;
    size_t bad = store__ops_pipeline(c, &stmt, 1, &res);
    sodium_memzero(arr.data, (size_t)arr.len);
    free(arr.data);
    if (bad == 0) {
        PQclear(res);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        reqs[i]->rc = STORE_E_NOTFOUND;
        store__err_set(&reqs[i]->err, STORE_E_NOTFOUND, "no such session token");
    }
    for (int row = 0; row < PQntuples(res); row++) {
        int64_t i = store__ops_i64(res, row, 0);
        if (i >= 1 && (size_t)i <= n && reqs[i - 1]->rc == STORE_E_NOTFOUND) {
            signin_from_row(reqs[i - 1], res, row); /* the first row of a token wins */
        }
    }
    PQclear(res);
    return 0;
}

/* A reconnect storm brings thousands of sign-ins, queued together ahead of
 * the room work (store.c): one statement for all of them instead of one
 * round trip each. When it fails (a token the server cannot even compare,
 * a lost connection), each request runs alone, so only a bad token fails. */
static void signin_chunk(PGconn *c, struct store_req **reqs, size_t n)
{
    struct store_req *ok[STORE__SIGNIN_BATCH_MAX];
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        struct store_auth_session *a = &reqs[i]->u.auth_session;
        a->token[sizeof a->token - 1] = '\0';
        if (a->token[0] == '\0') {
            store__op_auth_session(c, reqs[i]); /* refused there, without a query */
        } else {
            ok[m++] = reqs[i];
        }
    }
    if (m == 0) {
        return;
    }
    int rc = store__ops_ready(c, &ok[0]->err);
    if (rc == 0 && signin_batch(c, ok, m) == 0) {
        return;
    }
    for (size_t i = 0; i < m; i++) {
        store__op_auth_session(c, ok[i]);
    }
}

void store__op_auth_session_batch(PGconn *c, struct store_req **reqs, size_t n)
{
    store__ops_chunks(c, reqs, n, STORE__SIGNIN_BATCH_MAX, signin_chunk);
}
