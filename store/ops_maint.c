/*
 * ops_maint.c: STORE_OP_MAINTENANCE, the periodic cleanup of expired user
 * sessions and spent auth codes (protocol.md section 7; the database
 * status report's "Maintenance Tasks").
 *
 * DESIGN: one transaction. pg_try_advisory_xact_lock(STORE_MAINT_LOCK_KEY)
 * lets one node at a time do the work; a node that does not get it skips
 * this run rather than waiting, and the lock ends with the transaction.
 * Sessions go first, so that a code whose only sessions were just deleted
 * can go in the same run. Each DELETE takes at most max_rows rows chosen
 * by an id subselect with FOR UPDATE SKIP LOCKED: a large backlog is worked
 * off over several runs without holding many row locks for long, and a row
 * another transaction is using (a redeem, an authentication) is left for
 * the next run instead of being waited for.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "ops_int.h"
#include "store_int.h"

static const char lock_sql[] = "SELECT pg_catalog.pg_try_advisory_xact_lock($1::int8)";

/* Expired and inactive (the status report's rule), or expired for more
 * than 30 days whatever "isActive" says: nothing authenticates with an
 * expired session, so an old one is dead even if nobody logged it out. */
static const char sessions_sql[] =
    "DELETE FROM \"UserSession\" WHERE id IN ("
    " SELECT id FROM \"UserSession\""
    " WHERE \"expiresAt\" < " OPS_SQL_NOW "   AND (NOT \"isActive\" OR \"expiresAt\" < " OPS_SQL_NOW
    " - INTERVAL '30 days')"
    " LIMIT $1::int4 FOR UPDATE SKIP LOCKED)";

/* Expired and spent (used or deactivated), or expired unused for more than
 * a day; never one a remaining session still names (ON DELETE RESTRICT). */
static const char codes_sql[] =
    "DELETE FROM \"AuthCode\" WHERE id IN ("
    " SELECT a.id FROM \"AuthCode\" a"
    " WHERE a.\"expiresAt\" < " OPS_SQL_NOW "   AND (a.\"usedAt\" IS NOT NULL OR NOT a.\"isActive\""
    "        OR a.\"expiresAt\" < " OPS_SQL_NOW " - INTERVAL '1 day')"
    "   AND NOT EXISTS (SELECT 1 FROM \"UserSession\" s WHERE s.\"authCodeUsed\" = a.code)"
    " LIMIT $1::int4 FOR UPDATE OF a SKIP LOCKED)";

/* LiveKit webhook ids older than 7 days: LiveKit retries a delivery for
 * minutes, so an id that old cannot come again. */
static const char events_sql[] =
    "DELETE FROM coach_livekit_event WHERE id IN ("
    " SELECT id FROM coach_livekit_event WHERE received_at < now() - INTERVAL '7 days'"
    " LIMIT $1::int4 FOR UPDATE SKIP LOCKED)";

/* Record a failed step in req (SQLSTATE only: no values), clear res and
 * roll back. */
static void fail(PGconn *c, struct store_req *req, PGresult *res, const char *what)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    req->rc = STORE_E_QUERY;
    store__err_set(&req->err, req->rc, "maintenance %s: %s", what, state != NULL ? state : "?");
    PQclear(res);
    PQclear(PQexec(c, "ROLLBACK"));
}

/* Run one parameterized command; 0 and its row count, or -1 after fail(). */
static int run(PGconn *c, struct store_req *req, const char *sql, const char *param,
               ExecStatusType want, const char *what, PGresult **out)
{
    const char *params[] = {param};
    PGresult *res = PQexecParams(c, sql, param != NULL ? 1 : 0, NULL, param != NULL ? params : NULL,
                                 NULL, NULL, 0);
    if (PQresultStatus(res) != want) {
        fail(c, req, res, what);
        return -1;
    }
    *out = res;
    return 0;
}

/* DELETE with the row limit; the number of rows deleted, or -1. */
static int64_t delete_some(PGconn *c, struct store_req *req, const char *sql, const char *limit,
                           const char *what)
{
    PGresult *res = NULL;
    if (run(c, req, sql, limit, PGRES_COMMAND_OK, what, &res) != 0) {
        return -1;
    }
    int64_t n = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return n;
}

void store__op_maintenance(PGconn *c, struct store_req *req)
{
    struct store_maintenance *m = &req->u.maint;
    PGresult *res = NULL;
    if (run(c, req, "BEGIN", NULL, PGRES_COMMAND_OK, "begin", &res) != 0) {
        return;
    }
    PQclear(res);
    char key[24];
    snprintf(key, sizeof(key), "%" PRId64, STORE_MAINT_LOCK_KEY);
    if (run(c, req, lock_sql, key, PGRES_TUPLES_OK, "lock", &res) != 0) {
        return;
    }
    int locked = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (!locked) {
        PQclear(PQexec(c, "ROLLBACK"));
        m->skipped_locked = 1;
        req->rc = 0;
        return;
    }
    char limit[16];
    snprintf(limit, sizeof(limit), "%d", m->max_rows > 0 ? m->max_rows : STORE_MAINT_BATCH_DEFAULT);
    int64_t sessions = delete_some(c, req, sessions_sql, limit, "sessions");
    if (sessions < 0) {
        return;
    }
    int64_t codes = delete_some(c, req, codes_sql, limit, "auth codes");
    if (codes < 0) {
        return;
    }
    int64_t events = delete_some(c, req, events_sql, limit, "livekit events");
    if (events < 0) {
        return;
    }
    if (run(c, req, "COMMIT", NULL, PGRES_COMMAND_OK, "commit", &res) != 0) {
        return;
    }
    PQclear(res);
    m->sessions_deleted = sessions;
    m->codes_deleted = codes;
    m->events_deleted = events;
    req->rc = 0;
}
