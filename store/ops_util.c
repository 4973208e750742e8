/*
 * ops_util.c: small helpers shared by the store thread's operations (see
 * ops_int.h): error values from failed results, bounded copies out of a
 * PGresult, and rollback.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops_int.h"
#include "store_int.h"

/* Length of the first line of s, at most 200. */
static int first_line_len(const char *s)
{
    size_t n = strcspn(s, "\r\n");
    return n > 200 ? 200 : (int)n;
}

int store__ops_fail(PGconn *c, const PGresult *res, const char *what, struct store_err *err)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (primary == NULL) {
        primary = PQerrorMessage(c);
    }
    if (primary == NULL || primary[0] == '\0') {
        primary = "unexpected result";
    }
    if (state != NULL && strcmp(state, "26000") == 0) {
        store__ops_forget(c); /* our prepared statements are gone: prepare again */
    }
    store__err_set(err, STORE_E_QUERY, "%s: %s %.*s", what, state != NULL ? state : "-----",
                   first_line_len(primary), primary);
    return STORE_E_QUERY;
}

int store__ops_copy(char *dst, size_t cap, const PGresult *res, int row, int col)
{
    size_t len = (size_t)PQgetlength(res, row, col);
    if (len >= cap) {
        dst[0] = '\0';
        return -1;
    }
    memcpy(dst, PQgetvalue(res, row, col), len);
    dst[len] = '\0';
    return 0;
}

void store__ops_copy_text(char *dst, size_t cap, const PGresult *res, int row, int col)
{
    const char *v = PQgetvalue(res, row, col);
    size_t len = (size_t)PQgetlength(res, row, col);
    if (len >= cap) {
        len = cap - 1;
        /* Back off continuation bytes (10xxxxxx) to a character start. */
        while (len > 0 && ((unsigned char)v[len] & 0xC0) == 0x80) {
            len--;
        }
    }
    memcpy(dst, v, len);
    dst[len] = '\0';
}

int64_t store__ops_i64(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col)) {
        return 0;
    }
    const char *v = PQgetvalue(res, row, col);
    char *end = NULL;
    long long x = strtoll(v, &end, 10);
    if (end == v || *end != '\0') {
        return 0;
    }
    return (int64_t)x;
}

void store__ops_rollback(PGconn *c)
{
    if (PQstatus(c) != CONNECTION_OK) {
        return;
    }
    PGTransactionStatusType ts = PQtransactionStatus(c);
    if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR) {
        PQclear(PQexecParams(c, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0));
    }
}

/* The chat path's tables whose statistics lag behind their contents. */
static const char stale_sql[] =
    "SELECT c.relname FROM pg_catalog.pg_class c"
    " JOIN pg_catalog.pg_stat_user_tables s ON s.relid = c.oid"
    " WHERE c.relnamespace = pg_catalog.to_regnamespace(pg_catalog.current_schema())"
    " AND c.relname IN ('coach_message', 'Message', 'coach_room', 'Session')"
    " AND s.n_live_tup > 2 * greatest(c.reltuples, 0) + 500";

int store__ops_refresh_stats(PGconn *c)
{
    PGresult *res = PQexecParams(c, stale_sql, 0, NULL, NULL, NULL, NULL, 0);
    int analyzed = 0;
    for (int i = 0; PQresultStatus(res) == PGRES_TUPLES_OK && i < PQntuples(res); i++) {
        /* The name is one of the four above: quoting it is enough. */
        char sql[64];
        (void)snprintf(sql, sizeof(sql), "ANALYZE \"%s\"", PQgetvalue(res, i, 0));
        PGresult *a = PQexec(c, sql);
        analyzed += PQresultStatus(a) == PGRES_COMMAND_OK;
        PQclear(a);
    }
    PQclear(res);
    return analyzed;
}

void store__ops_chunks(PGconn *c, struct store_req **reqs, size_t n, size_t max,
                       void (*run)(PGconn *c, struct store_req **reqs, size_t n))
{
    while (n > 0) {
        size_t k = n < max ? n : max;
        run(c, reqs, k);
        reqs += k;
        n -= k;
    }
}
