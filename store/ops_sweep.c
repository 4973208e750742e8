/*
 * ops_sweep.c: STORE_OP_LIVE_ROOMS, the rooms whose session is running, so
 * that a (re)started gateway resumes their clocks without waiting for
 * someone to join: a restarted gateway neither repeats a warning nor misses
 * an end.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

/* $2: this node; rooms whose clock another live node drives are left to
 * it (it loads them; this node loads them when a member joins here). */
static const char live_rooms_sql[] =
    "SELECT a.\"roomId\" FROM \"Appointment\" a WHERE a.status = 'active'"
    " AND NOT EXISTS (SELECT 1 FROM coach_room_lease l WHERE l.appointment_id = a.id"
    "  AND l.node_id <> $2 AND l.expires_at > now())"
    " ORDER BY a.\"scheduledFor\" LIMIT $1";

void store__op_live_rooms(PGconn *c, struct store_req *req)
{
    struct store_live_rooms *lr = &req->u.live_rooms;
    char limit[16];
    snprintf(limit, sizeof(limit), "%d", lr->max_rooms > 0 ? lr->max_rooms : 1);
    lr->node_id[sizeof lr->node_id - 1] = '\0';
    const char *params[] = {limit, lr->node_id};
    PGresult *res = PQexecParams(c, live_rooms_sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        req->rc = STORE_E_QUERY;
        store__err_set(&req->err, req->rc, "live rooms: %s",
                       PQresultErrorField(res, PG_DIAG_SQLSTATE) != NULL
                           ? PQresultErrorField(res, PG_DIAG_SQLSTATE)
                           : "?");
        PQclear(res);
        return;
    }
    int n = PQntuples(res);
    lr->room_ids = n > 0 ? calloc((size_t)n, sizeof(char *)) : NULL;
    for (int i = 0; i < n && lr->room_ids != NULL; i++) {
        lr->room_ids[i] = strdup(PQgetvalue(res, i, 0));
        if (lr->room_ids[i] == NULL) {
            break;
        }
        lr->n_rooms++;
    }
    PQclear(res);
    req->rc = n > 0 && lr->n_rooms != (size_t)n ? -ENOMEM : 0;
}
