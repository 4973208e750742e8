/*
 * test_maint.c: the periodic cleanup of expired user sessions and spent
 * auth codes (STORE_OP_MAINTENANCE, gateway/maint.c) against a real
 * PostgreSQL: which rows go and which stay, the real gateway running it on
 * its timer, the advisory lock that lets one node at a time run it, and
 * the per-statement row limit.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "gwproc.h"
#include "pgtest.h"
#include "store.h"
#include "store_int.h"

#define NOW "(now() AT TIME ZONE 'UTC')"

/*
 * Codes: c_chain (used, expired; only its deleted session names it),
 * c_used (used, expired, unreferenced), c_deact (deactivated unused,
 * expired), c_old (used, expired 40 days ago), c_unused_old (unused,
 * expired 2 days ago) all go; c_kept_ref (used, expired, named by a kept
 * session), c_valid (unused, valid) and c_unused_new (unused, expired an
 * hour ago: not a day yet) stay.
 * Sessions: s_exp_inactive (expired, inactive) and s_old_active (expired
 * 40 days ago, active) go; s_exp_active (expired an hour ago, active) and
 * s_valid_inactive (inactive, not expired) stay.
 */
static const char seed_sql[] =
    "INSERT INTO \"AuthCode\"(id,code,\"skoolUserId\",\"skoolUsername\",\"expiresAt\","
    "\"usedAt\",\"isActive\") VALUES"
    " ('c_chain','vgs-chain','sk1','u'," NOW " - interval '1 hour'," NOW
    " - interval '2 hours',false),"
    " ('c_used','vgs-used','sk1','u'," NOW " - interval '1 hour'," NOW
    " - interval '2 hours',false),"
    " ('c_deact','vgs-deact','sk1','u'," NOW " - interval '1 hour',NULL,false),"
    " ('c_old','vgs-old','sk1','u'," NOW " - interval '40 days'," NOW
    " - interval '41 days',false),"
    " ('c_unused_old','vgs-unused-old','sk1','u'," NOW " - interval '2 days',NULL,true),"
    " ('c_kept_ref','vgs-kept-ref','sk1','u'," NOW " - interval '1 hour'," NOW
    " - interval '2 hours',false),"
    " ('c_valid','vgs-valid','sk1','u'," NOW " + interval '1 hour',NULL,true),"
    " ('c_unused_new','vgs-unused-new','sk1','u'," NOW " - interval '1 hour',NULL,true);"
    "INSERT INTO \"UserSession\"(id,\"sessionId\",\"skoolUserId\",\"skoolUsername\","
    "\"authCodeUsed\",\"expiresAt\",\"ipAddress\",\"userAgent\",\"deviceFingerprint\","
    "\"isActive\") VALUES"
    " ('s_exp_inactive','tok-1','sk1','u','vgs-chain'," NOW
    " - interval '1 hour','::1','t','f',false),"
    " ('s_old_active','tok-2','sk1','u','vgs-old'," NOW " - interval '40 days','::1','t','f',true),"
    " ('s_exp_active','tok-3','sk1','u','vgs-kept-ref'," NOW
    " - interval '1 hour','::1','t','f',true),"
    " ('s_valid_inactive','tok-4','sk1','u','vgs-kept-ref'," NOW
    " + interval '1 day','::1','t','f',false);"
    "INSERT INTO coach_livekit_event(id,event,received_at) VALUES"
    " ('EV_old','room_started',now() - interval '8 days'),"
    " ('EV_recent','room_started',now() - interval '6 days')";

static const char gone_sessions[] = "('s_exp_inactive','s_old_active')";
static const char gone_codes[] = "('c_chain','c_used','c_deact','c_old','c_unused_old')";
static const char kept_sessions[] = "('s_exp_active','s_valid_inactive')";
static const char kept_codes[] = "('c_kept_ref','c_valid','c_unused_new')";

static char dbname[64], conninfo[512];
static struct gwproc gp;

static void setup(void)
{
    cr_assert_eq(pgtest_db_create(1, dbname, sizeof(dbname), conninfo, sizeof(conninfo)), 0,
                 "cannot create a test database (is the pg fixture running?)");
    cr_assert_eq(pgtest_exec(conninfo, seed_sql), 0);
}

static void teardown(void)
{
    if (gp.pid > 0) {
        cr_expect_eq(gwproc_stop(&gp, SIGTERM), 0, "clean exit");
        unlink(gp.log_path);
    }
    pgtest_db_drop(dbname);
}

TestSuite(maint, .init = setup, .fini = teardown);

/* How many rows of table have an id in the list. */
static long count_in(const char *table, const char *ids)
{
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM \"%s\" WHERE id IN %s", table, ids);
    char *v = pgtest_query_value(conninfo, sql);
    cr_assert_not_null(v, "%s", sql);
    long n = strtol(v, NULL, 10);
    free(v);
    return n;
}

static void assert_kept(void)
{
    cr_assert_eq(count_in("UserSession", kept_sessions), 2, "kept sessions remain");
    cr_assert_eq(count_in("AuthCode", kept_codes), 3, "kept codes remain");
}

static PGconn *connect_db(void)
{
    PGconn *c = PQconnectdb(conninfo);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    return c;
}

/* Run STORE_OP_MAINTENANCE on c the way the store thread does. */
static struct store_maintenance run_op(PGconn *c, int max_rows)
{
    struct store_req *req = store_req_new(STORE_OP_MAINTENANCE, NULL, NULL);
    cr_assert_not_null(req);
    req->u.maint.max_rows = max_rows;
    store__op_maintenance(c, req);
    cr_assert_eq(req->rc, 0, "%s", req->err.msg);
    cr_assert_eq(PQtransactionStatus(c), PQTRANS_IDLE, "no transaction left open");
    struct store_maintenance m = req->u.maint;
    store_req_free(req);
    return m;
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(res);
    cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    PQclear(res);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

Test(maint, gateway_deletes_on_its_timer)
{
    static char env_db[600];
    snprintf(env_db, sizeof(env_db), "DATABASE_URL=%s", conninfo);
    const char *env[] = {env_db, "LOG_LEVEL=info", "MAINTENANCE_INTERVAL_SEC=1", NULL};
    cr_assert_eq(gwproc_start(&gp, env, NULL), 0, "gateway starts");
    long left = -1;
    for (int i = 0; i < 150; i++) { /* 15 s deadline */
        left = count_in("UserSession", gone_sessions) + count_in("AuthCode", gone_codes);
        if (left == 0) {
            break;
        }
        sleep_ms(100);
    }
    cr_assert_eq(left, 0, "expired sessions and spent codes deleted in time");
    assert_kept();
    char *log = NULL;
    for (int i = 0; i < 50; i++) {
        free(log);
        log = gwproc_log(&gp);
        if (log != NULL && strstr(log, "maint.deleted") != NULL) {
            break;
        }
        sleep_ms(100);
    }
    cr_assert_not_null(log);
    cr_expect(strstr(log, "maint.deleted sessions=2 auth_codes=5 livekit_events=1") != NULL, "%s",
              log);
    free(log);
    char *v = pgtest_query_value(conninfo, "SELECT string_agg(id, ',') FROM coach_livekit_event");
    cr_expect_str_eq(v != NULL ? v : "", "EV_recent", "webhook ids older than 7 days go");
    free(v);
    static char metrics[8192];
    long status = 0;
    cr_assert_eq(http_get(gp.port, "/metrics", &status, metrics, sizeof(metrics)), 0);
    cr_expect(strstr(metrics, "coach_maintenance_deleted_total{kind=\"user_sessions\"} 2") != NULL,
              "%s", metrics);
    cr_expect(strstr(metrics, "coach_maintenance_deleted_total{kind=\"auth_codes\"} 5") != NULL);
    cr_expect(strstr(metrics, "coach_maintenance_deleted_total{kind=\"livekit_events\"} 1") != NULL);
    cr_expect(strstr(metrics, "coach_maintenance_runs_total{outcome=\"done\"} ") != NULL);
}

Test(maint, one_node_at_a_time)
{
    PGconn *holder = connect_db();
    PGconn *c = connect_db();
    char sql[128];
    snprintf(sql, sizeof(sql), "BEGIN; SELECT pg_advisory_xact_lock(%" PRId64 ")",
             STORE_MAINT_LOCK_KEY);
    exec_ok(holder, sql);
    struct store_maintenance m = run_op(c, 0);
    cr_assert_eq(m.skipped_locked, 1);
    cr_assert_eq(m.sessions_deleted, 0);
    cr_assert_eq(m.codes_deleted, 0);
    cr_assert_eq(count_in("UserSession", gone_sessions), 2, "nothing deleted while locked");
    cr_assert_eq(count_in("AuthCode", gone_codes), 5);
    exec_ok(holder, "ROLLBACK");

    m = run_op(c, 0);
    cr_assert_eq(m.skipped_locked, 0);
    cr_assert_eq(m.sessions_deleted, 2);
    cr_assert_eq(m.codes_deleted, 5);
    cr_assert_eq(count_in("UserSession", gone_sessions), 0);
    cr_assert_eq(count_in("AuthCode", gone_codes), 0);
    assert_kept();

    /* The lock ended with the transaction; a second run finds nothing. */
    snprintf(sql, sizeof(sql), "SELECT pg_try_advisory_lock(%" PRId64 ")", STORE_MAINT_LOCK_KEY);
    char *v = pgtest_query_value(conninfo, sql);
    cr_assert_str_eq(v, "t", "lock released");
    free(v);
    m = run_op(c, 0);
    cr_assert_eq(m.sessions_deleted + m.codes_deleted, 0);
    assert_kept();
    PQfinish(holder);
    PQfinish(c);
}

Test(maint, bounded_per_statement)
{
    PGconn *c = connect_db();
    int64_t sessions = 0, codes = 0;
    int runs = 0;
    for (; runs < 20; runs++) {
        struct store_maintenance m = run_op(c, 1);
        cr_assert_leq(m.sessions_deleted, 1);
        cr_assert_leq(m.codes_deleted, 1);
        if (m.sessions_deleted + m.codes_deleted == 0) {
            break;
        }
        sessions += m.sessions_deleted;
        codes += m.codes_deleted;
    }
    cr_assert_eq(sessions, 2);
    cr_assert_eq(codes, 5);
    cr_assert_eq(runs, 5, "one code per run: five runs, then an empty one");
    assert_kept();
    PQfinish(c);
}
