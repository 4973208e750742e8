/*
 * ops_node.c: what several gateway nodes on one database share
 * (migrations/007_nodes.sql, docs/operations.md):
 *
 *  - store__op_node_beat: the node's heartbeat row, the removal of dead
 *    nodes (their presence and leases with them), and the room clock
 *    leases: renew, release, take over. One transaction.
 *  - store__op_node_leave: a stopping node removes what it published.
 *  - store__op_presence_set / _get: who is connected to a room on which
 *    node.
 *  - store__op_notify: a bare notification (typing).
 *
 * Every change of presence notifies "<roomId> p" on the room channel in
 * its own transaction, so the other nodes read it again (listen.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "ops_int.h"
#include "store_int.h"

/* ---- SQL -------------------------------------------------------------------------------- */

#define MS(p) "(" p " * interval '1 millisecond')"

static const char beat_upsert_sql[] =
    "INSERT INTO coach_node (node_id, expires_at) VALUES ($1, now() + " MS(
        "$2::int4") ")"
                    " ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = now(), expires_at = "
                    "EXCLUDED.expires_at"
                    " RETURNING (xmax = 0)";

/* Presence rows of nodes that are not alive, with the nodes' leases and
 * rows; one notification per room concerned. */
static const char beat_reap_sql[] =
    "WITH dead AS ("
    " DELETE FROM coach_node WHERE expires_at < now() RETURNING node_id),"
    " gone AS ("
    " DELETE FROM coach_presence p WHERE p.node_id <> $1 AND NOT EXISTS ("
    "  SELECT 1 FROM coach_node n WHERE n.node_id = p.node_id AND n.expires_at >= now())"
    " RETURNING p.appointment_id),"
    " dl AS (DELETE FROM coach_room_lease l USING dead WHERE l.node_id = dead.node_id)"
    " SELECT a.\"roomId\", pg_notify('" STORE_NOTIFY_CHANNEL "', a.\"roomId\" || ' p')"
    " FROM (SELECT DISTINCT appointment_id FROM gone) g"
    " JOIN \"Appointment\" a ON a.id = g.appointment_id";

/* Every statement that locks lease rows takes them in appointment order,
 * so two nodes' heartbeats never deadlock on each other's rows. */
static const char beat_renew_sql[] = "UPDATE coach_room_lease SET expires_at = now() + " MS(
    "$2::int4") " WHERE appointment_id IN ("
                " SELECT appointment_id FROM coach_room_lease WHERE node_id = $1"
                " ORDER BY appointment_id FOR UPDATE)";

static const char beat_release_sql[] =
    "DELETE FROM coach_room_lease WHERE appointment_id IN ("
    " SELECT appointment_id FROM coach_room_lease WHERE node_id = $1"
    " AND appointment_id = ANY($2::text[]) ORDER BY appointment_id FOR UPDATE)";

/* $3: how long a lease must have been expired before it is taken.
 * -> the appointments whose lease is this node's now. */
static const char beat_take_sql[] =
    "INSERT INTO coach_room_lease (appointment_id, node_id, expires_at)"
    " SELECT a.id, $1, now() + " MS(
        "$4::int4") " FROM \"Appointment\" a"
                    " WHERE a.id = ANY($2::text[]) AND a.status = 'active' ORDER BY a.id"
                    " ON CONFLICT (appointment_id) DO UPDATE SET node_id = EXCLUDED.node_id,"
                    " expires_at = EXCLUDED.expires_at"
                    " WHERE coach_room_lease.node_id = EXCLUDED.node_id"
                    " OR coach_room_lease.expires_at < now() - " MS(
                        "$3::int4") " RETURNING appointment_id";

static const char beat_held_sql[] = "SELECT l.appointment_id FROM coach_room_lease l"
                                    " WHERE l.node_id = $1 AND l.expires_at > now() ORDER BY 1";

static const char beat_peers_sql[] =
    "SELECT count(*) FROM coach_node WHERE node_id <> $1 AND expires_at > now()";

static const char leave_sql[] =
    "WITH gone AS (DELETE FROM coach_presence WHERE node_id = $1 RETURNING appointment_id),"
    " dl AS (DELETE FROM coach_room_lease WHERE node_id = $1),"
    " dn AS (DELETE FROM coach_node WHERE node_id = $1)"
    " SELECT pg_notify('" STORE_NOTIFY_CHANNEL "', a.\"roomId\" || ' p')"
    " FROM (SELECT DISTINCT appointment_id FROM gone) g"
    " JOIN \"Appointment\" a ON a.id = g.appointment_id";

static const char presence_get_sql[] =
    "SELECT p.user_id, min(p.display_name), min(p.role), count(*)::int4"
    " FROM coach_presence p JOIN coach_node n ON n.node_id = p.node_id"
    " WHERE p.appointment_id = $1 AND p.node_id <> $2 AND n.expires_at > now()"
    " GROUP BY p.user_id ORDER BY min(p.since), p.user_id LIMIT " /* STORE_PRESENCE_MAX */ "32";

/* ---- helpers ------------------------------------------------------------------------------ */

/* Run sql; NULL (err set, the transaction to be rolled back) unless it
 * returned rows or completed. */
static PGresult *run_params(PGconn *c, const char *sql, int n, const char *const *vals,
                            const int *lens, const int *fmts, const char *what,
                            struct store_err *err)
{
    PGresult *res = PQexecParams(c, sql, n, NULL, vals, lens, fmts, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        return res;
    }
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    store__err_set(err, PQstatus(c) == CONNECTION_OK ? STORE_E_QUERY : STORE_E_UNAVAILABLE,
                   "%s: %s", what, state != NULL ? state : "no connection");
    PQclear(res);
    return NULL;
}

static PGresult *run(PGconn *c, const char *sql, int n, const char *const *vals, const char *what,
                     struct store_err *err)
{
    return run_params(c, sql, n, vals, NULL, NULL, what, err);
}

/* Run sql with vals[0] as $1 and the n_ids ids as the text[] $2 (then
 * vals[1..n) as $3...). NULL (err set) as run(). */
static PGresult *run_ids(PGconn *c, const char *sql, int n, const char *const *vals,
                         char *const *ids, size_t n_ids, const char *what, struct store_err *err)
{
    struct store__param arr = {0};
    if (n > 4 || store__text_array(&arr, (const char *const *)ids, NULL, n_ids) != 0) {
        store__err_set(err, -ENOMEM, "%s: out of memory", what);
        return NULL;
    }
    const char *all[4] = {vals[0], arr.data};
    int lens[4] = {0, arr.len}, fmts[4] = {0, 1};
    for (int i = 2; i < n; i++) {
        all[i] = vals[i - 1];
    }
    PGresult *res = run_params(c, sql, n, all, lens, fmts, what, err);
    free(arr.data);
    return res;
}

/* Append column 0 of every row to *v (owned strings, *n of them). 0 or
 * -ENOMEM. */
static int append_column(const PGresult *res, char ***v, size_t *n)
{
    size_t rows = (size_t)PQntuples(res);
    if (rows == 0) {
        return 0;
    }
    char **grown = realloc(*v, (*n + rows) * sizeof(char *));
    if (grown == NULL) {
        return -ENOMEM;
    }
    *v = grown;
    for (size_t i = 0; i < rows; i++) {
        if ((grown[*n] = strdup(PQgetvalue(res, (int)i, 0))) == NULL) {
            return -ENOMEM;
        }
        (*n)++;
    }
    return 0;
}

/* Run sql for its effect only. 0 or the error code. */
static int run_only(PGconn *c, const char *sql, int n, const char *const *vals, const char *what,
                    struct store_err *err)
{
    PGresult *res = run(c, sql, n, vals, what, err);
    PQclear(res);
    return res != NULL ? 0 : err->code;
}

/* ---- heartbeat ------------------------------------------------------------------------------- */

static int beat_node(PGconn *c, struct store_node_beat *b, const char *ttl, struct store_err *err)
{
    const char *vals[] = {b->node_id, ttl};
    PGresult *res = run(c, beat_upsert_sql, 2, vals, "node beat", err);
    if (res == NULL) {
        return err->code;
    }
    b->created = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    const char *me[] = {b->node_id};
    res = run(c, beat_reap_sql, 1, me, "node reap", err);
    if (res == NULL) {
        return err->code;
    }
    int rc = append_column(res, &b->changed_rooms, &b->n_changed_rooms);
    PQclear(res);
    return rc;
}

static int take(PGconn *c, struct store_node_beat *b, char *const *ids, size_t n,
                const char *wait_ms, const char *lease, struct store_err *err)
{
    if (n == 0) {
        return 0;
    }
    const char *vals[] = {b->node_id, wait_ms, lease};
    PGresult *res = run_ids(c, beat_take_sql, 4, vals, ids, n, "lease take", err);
    if (res == NULL) {
        return err->code;
    }
    /* a quick beat reports what it took; a full one reads all it holds */
    int rc = b->quick ? append_column(res, &b->held, &b->n_held) : 0;
    PQclear(res);
    return rc;
}

static int beat_leases(PGconn *c, struct store_node_beat *b, const char *lease,
                       struct store_err *err)
{
    const char *renew[] = {b->node_id, lease};
    int rc = run_only(c, beat_renew_sql, 2, renew, "lease renew", err);
    if (rc == 0 && b->n_release > 0) {
        const char *vals[] = {b->node_id};
        PGresult *res =
            run_ids(c, beat_release_sql, 2, vals, b->release, b->n_release, "lease release", err);
        PQclear(res);
        rc = res != NULL ? 0 : err->code;
    }
    if (rc == 0) {
        rc = take(c, b, b->acquire, b->n_acquire, "0", lease, err);
    }
    if (rc == 0) {
        rc = take(c, b, b->adopt, b->n_adopt, lease, lease, err);
    }
    return rc;
}

static int beat_read(PGconn *c, struct store_node_beat *b, struct store_err *err)
{
    const char *me[] = {b->node_id};
    PGresult *res = run(c, beat_held_sql, 1, me, "lease read", err);
    if (res == NULL) {
        return err->code;
    }
    int rc = append_column(res, &b->held, &b->n_held);
    PQclear(res);
    if (rc != 0) {
        return rc;
    }
    res = run(c, beat_peers_sql, 1, me, "node peers", err);
    if (res == NULL) {
        return err->code;
    }
    b->peers = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

/* A quick beat: take what is asked for, say which of it is ours. */
static int beat_quick(PGconn *c, struct store_node_beat *b, const char *lease,
                      struct store_err *err)
{
    int rc = take(c, b, b->acquire, b->n_acquire, "0", lease, err);
    if (rc == 0) {
        rc = take(c, b, b->adopt, b->n_adopt, lease, lease, err);
    }
    return rc;
}

void store__op_node_beat(PGconn *c, struct store_req *req)
{
    struct store_node_beat *b = &req->u.beat;
    b->node_id[sizeof b->node_id - 1] = '\0';
    if (b->node_id[0] == '\0' || b->ttl_ms <= 0 || b->lease_ms <= 0) {
        req->rc = -EINVAL;
        store__err_set(&req->err, req->rc, "node beat: no node id, ttl or lease");
        return;
    }
    req->rc = store__ops_ready(c, &req->err);
    if (req->rc != 0) {
        return;
    }
    char ttl[16], lease[16];
    (void)snprintf(ttl, sizeof ttl, "%d", b->ttl_ms);
    (void)snprintf(lease, sizeof lease, "%d", b->lease_ms);
    int rc = run_only(c, "BEGIN", 0, NULL, "node beat", &req->err);
    if (rc == 0) {
        /* A heartbeat never waits long for a row lock: it fails and the
         * next one tries again. */
        rc = run_only(c, "SET LOCAL lock_timeout = '2s'", 0, NULL, "node beat", &req->err);
    }
    if (rc == 0 && b->quick) {
        rc = beat_quick(c, b, lease, &req->err);
    } else {
        if (rc == 0) {
            rc = beat_node(c, b, ttl, &req->err);
        }
        if (rc == 0) {
            rc = beat_leases(c, b, lease, &req->err);
        }
        if (rc == 0) {
            rc = beat_read(c, b, &req->err);
        }
    }
    if (rc == 0) {
        rc = run_only(c, "COMMIT", 0, NULL, "node beat: commit", &req->err);
    } else {
        store__ops_rollback(c);
    }
    req->rc = rc;
}

void store__op_node_leave(PGconn *c, struct store_req *req)
{
    struct store_node_leave *l = &req->u.leave;
    l->node_id[sizeof l->node_id - 1] = '\0';
    req->rc = store__ops_ready(c, &req->err);
    if (req->rc == 0) {
        const char *vals[] = {l->node_id};
        req->rc = run_only(c, leave_sql, 1, vals, "node leave", &req->err);
    }
}

/* ---- presence ------------------------------------------------------------------------------ */

/* The presence row written (or deleted) with its notification, committed
 * without waiting for the WAL flush: presence is momentary state, written
 * on every join and leave (a reconnect storm is thousands of them), and a
 * flush each would hold the room's store connection for a disk write. A
 * database crash may lose the last fraction of a second of them; the
 * next join or leave of those users writes their rows again. */
static int presence_write(PGconn *c, const char *const *vals, struct store_err *err)
{
    enum { P_BEGIN, P_ASYNC, P_SET, P_COMMIT, P_N };
    const struct store__ops_stmt stmts[P_N] = {
        [P_BEGIN] = {STORE_Q_BEGIN, 0, NULL, NULL, NULL},
        [P_ASYNC] = {STORE_Q_ASYNC_COMMIT, 0, NULL, NULL, NULL},
        [P_SET] = {STORE_Q_PRESENCE_SET, 7, vals, NULL, NULL},
        [P_COMMIT] = {STORE_Q_COMMIT, 0, NULL, NULL, NULL},
    };
    PGresult *res[P_N];
    size_t bad = store__ops_pipeline(c, stmts, P_N, res);
    int rc = 0;
    if (bad < P_N) {
        rc = store__ops_fail(c, res[bad], "presence", err);
        store__ops_rollback(c);
    }
    store__ops_clear(res, P_N);
    return rc;
}

void store__op_presence_set(PGconn *c, struct store_req *req)
{
    struct store_presence_set *p = &req->u.presence_set;
    p->appointment_id[sizeof p->appointment_id - 1] = '\0';
    p->room_id[sizeof p->room_id - 1] = '\0';
    p->node_id[sizeof p->node_id - 1] = '\0';
    p->user_id[sizeof p->user_id - 1] = '\0';
    p->display_name[sizeof p->display_name - 1] = '\0';
    p->role[sizeof p->role - 1] = '\0';
    req->rc = store__ops_ready(c, &req->err);
    if (req->rc == 0) {
        const char *vals[] = {p->appointment_id, p->node_id, p->user_id,
                              p->display_name,   p->role,    p->online ? "t" : "f",
                              p->room_id};
        req->rc = presence_write(c, vals, &req->err);
    }
}

void store__op_presence_get(PGconn *c, struct store_req *req)
{
    struct store_presence_get *g = &req->u.presence_get;
    g->appointment_id[sizeof g->appointment_id - 1] = '\0';
    g->node_id[sizeof g->node_id - 1] = '\0';
    g->n_users = 0;
    g->users = NULL;
    req->rc = store__ops_ready(c, &req->err);
    if (req->rc != 0) {
        return;
    }
    const char *vals[] = {g->appointment_id, g->node_id};
    PGresult *res = run(c, presence_get_sql, 2, vals, "presence read", &req->err);
    if (res == NULL) {
        req->rc = req->err.code;
        return;
    }
    if (PQntuples(res) > 0 &&
        (g->users = calloc((size_t)PQntuples(res), sizeof(g->users[0]))) == NULL) {
        PQclear(res);
        req->rc = -ENOMEM;
        return;
    }
    for (int i = 0; i < PQntuples(res) && g->n_users < STORE_PRESENCE_MAX; i++) {
        if (store__ops_copy(g->users[g->n_users].user_id, sizeof g->users[0].user_id, res, i, 0) !=
                0 ||
            store__ops_copy(g->users[g->n_users].role, sizeof g->users[0].role, res, i, 2) != 0) {
            continue; /* cannot be a member here */
        }
        (void)store__ops_copy(g->users[g->n_users].display_name, sizeof g->users[0].display_name,
                              res, i, 1);
        g->users[g->n_users].nodes = atoi(PQgetvalue(res, i, 3));
        g->n_users++;
    }
    PQclear(res);
    req->rc = 0;
}

void store__op_notify(PGconn *c, struct store_req *req)
{
    struct store_notify *n = &req->u.notify;
    n->channel[sizeof n->channel - 1] = '\0';
    n->payload[sizeof n->payload - 1] = '\0';
    req->rc = store__ops_ready(c, &req->err);
    if (req->rc == 0) {
        const char *vals[] = {n->channel, n->payload};
        req->rc = run_only(c, "SELECT pg_notify($1, $2)", 2, vals, "notify", &req->err);
    }
}
