/*
 * ops_int.h: what the store thread's operations (ops_*.c) share: their
 * statements (queries.c), prepared once per connection, a pipeline runner,
 * result checks and bounded copies out of a PGresult. Store thread only
 * (or, in tests, the one thread that owns the connection); never included
 * outside store/.
 *
 * Timestamps: the application's TIMESTAMP(3) columns hold UTC wall time
 * without a zone. Every statement reads them with OPS_SQL_MS(col) and
 * writes them with OPS_SQL_TS(param): both are exact integer arithmetic on
 * milliseconds and do not depend on the session's TimeZone.
 */
#ifndef COACH_STORE_OPS_INT_H
#define COACH_STORE_OPS_INT_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "store.h"

/* A TIMESTAMP column (UTC wall time) as int8 Unix milliseconds. */
#define OPS_SQL_MS(col) "(extract(epoch FROM " col ") * 1000)::int8"
/* An int8 Unix-milliseconds parameter as a TIMESTAMP (UTC wall time). */
#define OPS_SQL_TS(param) "(TIMESTAMP '1970-01-01' + " param "::int8 * INTERVAL '1 millisecond')"
/* now() as UTC wall time, for comparisons with TIMESTAMP columns. */
#define OPS_SQL_NOW "(now() AT TIME ZONE 'UTC')"

/* The operations' statements (their SQL and columns: queries.c). */
enum store_q {
    STORE_Q_BEGIN,
    STORE_Q_COMMIT,
    STORE_Q_ASYNC_COMMIT,
    STORE_Q_PRESENCE_SET,
    STORE_Q_AUTH_SESSION,
    STORE_Q_AUTH_SESSIONS,
    STORE_Q_AUTH_USER,
    STORE_Q_ROOM_LOAD,
    STORE_Q_JOIN_UPSERT,
    STORE_Q_JOIN_APPOINTMENT,
    STORE_Q_JOIN_ROOM,
    STORE_Q_JOIN_RESULT,
    STORE_Q_HISTORY_AFTER,
    STORE_Q_HISTORY_BEFORE,
    STORE_Q_CHAT_ROOMS,
    STORE_Q_CHAT_LOCK,
    STORE_Q_CHAT_NOW,
    STORE_Q_CHAT_DEDUPE,
    STORE_Q_CHAT_NO_SESSION,
    STORE_Q_CHAT_INSERT,
    STORE_Q_WARNING,
    STORE_Q_END_LOCK,
    STORE_Q_END_LOCK_ROOM,
    STORE_Q_END_STATE,
    STORE_Q_END_WRITE,
    STORE_Q_RATE_BY_ROOM,
    STORE_Q_RATE_BY_SESSION,
    STORE_Q_RATE_INSERT,
    STORE_Q_SESSION_GET,
    STORE_Q_AI_CLAIM,
    STORE_Q_AI_NEXT_DUE,
    STORE_Q_AI_LOCK,
    STORE_Q_AI_DONE,
    STORE_Q_AI_SUMMARY,
    STORE_Q_AI_PROFILE,
    STORE_Q_AI_RETRY,
    STORE_Q_AI_FAILED,
    STORE_Q_AUTH_CODE_ISSUE,
    STORE_Q_AUTH_CODE_REDEEM,
    STORE_Q_AUTH_CODE_STATE,
    STORE_Q_N
};

/* Prepare every statement on c unless that was done already (the state
 * lives with the connection, through a libpq event procedure, and is
 * dropped with it). One round trip the first time, none after. 0, or
 * STORE_E_QUERY / -ENOMEM with err filled. */
int store__ops_ready(PGconn *c, struct store_err *err);

/* Run prepared statement q with text parameters (PQexecPrepared). */
PGresult *store__ops_exec(PGconn *c, enum store_q q, int n_params, const char *const *vals);

/* One statement of a pipeline; vals/lens/fmts as for PQsendQueryPrepared. */
/* A binary-format parameter (PostgreSQL's wire format), owned. */
/* run(c, reqs + k, m) over reqs[0..n) in chunks of at most max. */
void store__ops_chunks(PGconn *c, struct store_req **reqs, size_t n, size_t max,
                       void (*run)(PGconn *c, struct store_req **reqs, size_t n));

struct store__param {
    char *data;
    int len;
};

/* A binary text[] of the n strings v[i] (lens[i] bytes; lens NULL: NUL-
 * terminated) into out (free out->data). 0 or -ENOMEM. ops_chat.c. */
int store__text_array(struct store__param *out, const char *const *v, const size_t *lens, size_t n);

struct store__ops_stmt {
    enum store_q q;
    int n_params;
    const char *const *vals;
    const int *lens;
    const int *fmts;
};

/* Send n prepared statements in one libpq pipeline with a single Sync (one
 * round trip), and collect their results into res[0..n) (the caller
 * PQclears each, see store__ops_clear; entries never reached are NULL).
 * Statements after a failed one are not run. Returns the index of the
 * first statement whose result is not COMMAND_OK/TUPLES_OK, or n when all
 * succeeded. */
size_t store__ops_pipeline(PGconn *c, const struct store__ops_stmt *stmts, size_t n,
                           PGresult **res);

/* PQclear res[0..n) and set them to NULL. */
void store__ops_clear(PGresult **res, size_t n);

/* Fill err from a failed (or NULL) result: "<what>: <SQLSTATE> <primary
 * message>" (never the DETAIL, which may quote values). A statement the
 * server no longer knows (26000, e.g. after DISCARD ALL) makes the next
 * store__ops_ready prepare them again. Returns STORE_E_QUERY. */
int store__ops_fail(PGconn *c, const PGresult *res, const char *what, struct store_err *err);

/* Forget that c's statements are prepared (queries.c). */
void store__ops_forget(PGconn *c);

/* Copy the value at (row, col) into dst (cap bytes, NUL-terminated).
 * SQL NULL copies "". -1 when it does not fit (dst is then ""), else 0. */
int store__ops_copy(char *dst, size_t cap, const PGresult *res, int row, int col);

/* As store__ops_copy, but a value too long is cut at a UTF-8 character
 * boundary instead (for display names). */
void store__ops_copy_text(char *dst, size_t cap, const PGresult *res, int row, int col);

/* The int8/int4 value at (row, col); 0 for SQL NULL or garbage. */
int64_t store__ops_i64(const PGresult *res, int row, int col);

/* Roll back the open transaction, if there is one (and the connection is
 * still up). Never fails: a failure here is the connection's. */
void store__ops_rollback(PGconn *c);

/* ---- session lifecycle (ops_life.c, ops_ai.c) ------------------------------------------ */

/* An int8 Unix-milliseconds parameter as a TIMESTAMPTZ (the gateway's own
 * TIMESTAMPTZ columns, e.g. coach_ai_job.next_at). OPS_SQL_MS reads those
 * too: the epoch of a TIMESTAMPTZ is absolute. */
#define OPS_SQL_TSTZ(param) "(TIMESTAMPTZ 'epoch' + " param "::int8 * INTERVAL '1 millisecond')"

/* A copy of the value at (row, col) into *out (malloc'd, NUL-terminated;
 * NULL for SQL NULL). 0 or -ENOMEM (*out is then NULL). */
int store__ops_dup(char **out, const PGresult *res, int row, int col);

/* A failed look-up by a caller's id (res, possibly NULL): an id the server
 * cannot even compare (bad UTF-8, a NUL byte: SQLSTATE class 22) matches
 * nothing, so STORE_E_NOTFOUND; anything else as store__ops_fail. Returns
 * the code, with err filled. */
int store__ops_lookup_failed(PGconn *c, const PGresult *res, const char *what,
                             struct store_err *err);

#endif
