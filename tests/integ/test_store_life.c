/*
 * test_store_life.c: the session lifecycle operations of the store thread
 * (store/ops_life.c, store/ops_ai.c) against a real PostgreSQL with the
 * real migrations: timer warnings, the ending transaction and its
 * transcript, ratings, session reads, and the durable AI job queue.
 *
 * Each test gets its own database cloned from the migrated template,
 * seeded with a coach, two clients (one with a "Profile"), an admin and a
 * stranger, and three appointments (setup), and calls the operations
 * directly on a connection of its own, as the store thread does. That
 * connection runs in a far-off time zone: nothing may depend on it.
 * Races use a second (and third) connection on threads of their own,
 * released together by a barrier; results are asserted on the test's
 * main thread.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "pgtest.h"
#include "store.h"
#include "store_int.h"
#include "storetest.h"

#define T0    INT64_C(1767225600123) /* 2026-01-01 00:00:00.123 UTC */
#define T_END INT64_C(1767227400456) /* 2026-01-01 00:30:00.456 UTC */

static char db[64], conninfo[512];
static PGconn *conn;

static const char seed_sql[] =
    "INSERT INTO \"User\" (id, email, \"displayName\", role, \"updatedAt\") VALUES"
    " ('ucoach', 'coach@example.com', 'Coach Carla', 'coach', now()),"
    " ('uclient', 'client@example.com', 'Client Chloé', 'client', now()),"
    " ('uclient2', 'client2@example.com', 'Client Zoë', 'client', now()),"
    " ('uadmin', 'admin@example.com', 'Admin Ada', 'admin', now()),"
    " ('ustranger', 'stranger@example.com', 'Stranger Sam', 'client', now());"
    "INSERT INTO \"Appointment\" (id, \"scheduledFor\", \"durationMin\", \"clientId\","
    " \"coachId\", \"roomId\") VALUES"
    " ('appt1', '2026-01-01 00:00:00', 30, 'uclient', 'ucoach', 'room-1'),"
    " ('appt2', '2026-01-02 00:00:00', 30, 'uclient2', 'ucoach', 'room-2'),"
    " ('appt3', '2026-01-03 00:00:00', 30, 'uclient', 'ucoach', 'room-3');"
    "INSERT INTO \"Profile\" (id, \"userId\", \"clientFacts\", challenges,"
    " \"intakeCoachingGoals\", \"intakeSymptoms\", \"lastSummary\") VALUES"
    " ('prof1', 'uclient', ARRAY['likes \"quotes\"', 'comma, inside', NULL, 'brace {x}',"
    "  'back\\slash', 'ünïcödé'], '{}', 'sleep better', 'tired', 'old summary')";

static PGconn *connect_quietly(void)
{
    PGconn *c = storetest_connect(conninfo);
    if (PQstatus(c) == CONNECTION_OK) {
        /* UTC+13:45: a wall clock no test would match by accident. */
        PQclear(PQexec(c, "SET TimeZone = 'Pacific/Chatham'"));
    }
    return c;
}

static void setup(void)
{
    cr_assert(sodium_init() >= 0);
    cr_assert_eq(pgtest_db_create(1, db, sizeof db, conninfo, sizeof conninfo), 0,
                 "cannot create a test database (is the pg fixture running?)");
    cr_assert_eq(pgtest_exec(conninfo, seed_sql), 0);
    conn = connect_quietly();
    cr_assert_eq(PQstatus(conn), CONNECTION_OK);
}

static void teardown(void)
{
    PQfinish(conn);
    conn = NULL;
    pgtest_db_drop(db);
}

TestSuite(store_life, .init = setup, .fini = teardown, .timeout = 120);

/* ---- helpers -------------------------------------------------------------------------- */

static void sql(const char *s)
{
    storetest_sql(conninfo, s);
}

/* The first value of query q, as text ("NULL" for no row or SQL NULL). */
static void expect_value(const char *q, const char *want)
{
    storetest_expect_value(conninfo, q, want);
}

/* Compare a string that may be NULL (a NULL never equals want). */
static void expect_text(const char *got, const char *want)
{
    cr_expect_str_eq(got != NULL ? got : "(NULL)", want);
}

static int64_t query_i64(const char *q)
{
    return storetest_query_i64(conninfo, q);
}

static struct store_req *new_req(enum store_op op)
{
    return storetest_req(op);
}

static char *dup_str(const char *s)
{
    char *d = strdup(s);
    cr_assert_not_null(d);
    return d;
}

/* Join user to appt (room) at `at`; its Session id goes to sid. */
static void join_ok(const char *appt, const char *room, const char *user, int64_t at, char *sid)
{
    struct store_req *r = new_req(STORE_OP_SESSION_JOIN);
    struct store_session_join *j = &r->u.join;
    (void)snprintf(j->appointment_id, sizeof j->appointment_id, "%s", appt);
    (void)snprintf(j->room_id, sizeof j->room_id, "%s", room);
    (void)snprintf(j->user_id, sizeof j->user_id, "%s", user);
    j->at_unix_ms = at;
    j->duration_minutes = 30;
    store__op_session_join(conn, r);
    cr_assert_eq(r->rc, 0, "join: %s", r->err.msg);
    memcpy(sid, j->session_id, STORE_ID_MAX + 1);
    store_req_free(r);
}

/* Store one chat message and set its "createdAt" to `created` (a
 * TIMESTAMP literal: UTC wall time). */
static void chat_at(const char *appt, const char *sid, const char *user, const char *cmid,
                    const char *text, const char *created)
{
    struct store_req *r = new_req(STORE_OP_CHAT);
    struct store_chat *c = &r->u.chat;
    (void)snprintf(c->appointment_id, sizeof c->appointment_id, "%s", appt);
    (void)snprintf(c->session_id, sizeof c->session_id, "%s", sid);
    (void)snprintf(c->user_id, sizeof c->user_id, "%s", user);
    (void)snprintf(c->client_msg_id, sizeof c->client_msg_id, "%s", cmid);
    c->role = strcmp(user, "ucoach") == 0 ? STORE_ROLE_COACH : STORE_ROLE_CLIENT;
    c->text = dup_str(text);
    c->text_len = strlen(text);
    store__op_chat_batch(conn, &r, 1);
    cr_assert_eq(r->rc, 0, "chat: %s", r->err.msg);
    char q[512];
    (void)snprintf(q, sizeof q, "UPDATE \"Message\" SET \"createdAt\" = '%s' WHERE id = '%s'",
                   created, c->message_id);
    sql(q);
    store_req_free(r);
}

struct room_sids {
    char coach[STORE_ID_MAX + 1], client[STORE_ID_MAX + 1];
};

/* Coach and client join appt1 and exchange the three messages whose
 * transcript is THREE_LINES. */
static void three_messages(struct room_sids *s)
{
    join_ok("appt1", "room-1", "ucoach", T0, s->coach);
    join_ok("appt1", "room-1", "uclient", T0 + 1000, s->client);
    chat_at("appt1", s->coach, "ucoach", "m1", "Hello Chloé, how was your week?",
            "2026-01-01 09:05:03.999");
    chat_at("appt1", s->client, "uclient", "m2", "Better: I slept.\nMostly!",
            "2026-01-01 09:06:00");
    chat_at("appt1", s->coach, "ucoach", "m3", "Great \xe2\x80\x94 see you",
            "2026-01-01 23:59:59.999");
}

#define THREE_LINES                                                                                \
    "[09:05:03] Coach Carla (coach): Hello Chloé, how was your week?\n"                           \
    "[09:06:00] Client Chloé (client): Better: I slept.\nMostly!\n"                               \
    "[23:59:59] Coach Carla (coach): Great \xe2\x80\x94 see you"

static struct store_req *end_session(const char *appt, int64_t at, int ai_enabled)
{
    struct store_req *r = new_req(STORE_OP_END);
    struct store_end *e = &r->u.end;
    (void)snprintf(e->appointment_id, sizeof e->appointment_id, "%s", appt);
    (void)snprintf(e->reason, sizeof e->reason, "%s", "coach");
    e->ended_unix_ms = at;
    e->ai_enabled = ai_enabled;
    store__op_end(conn, r);
    return r;
}

static void end_ok(const char *appt, int64_t at, int ai_enabled)
{
    struct store_req *r = end_session(appt, at, ai_enabled);
    cr_assert_eq(r->rc, 0, "end: %s", r->err.msg);
    store_req_free(r);
}

static struct store_req *rate_on(PGconn *c, const char *room, const char *sid, const char *user,
                                 int rating, int tip, const char *comment)
{
    struct store_req *r = store_req_new(STORE_OP_RATE, NULL, NULL);
    if (r == NULL) {
        return NULL;
    }
    struct store_rate *rt = &r->u.rate;
    (void)snprintf(rt->room_id, sizeof rt->room_id, "%s", room);
    (void)snprintf(rt->session_id, sizeof rt->session_id, "%s", sid);
    (void)snprintf(rt->user_id, sizeof rt->user_id, "%s", user);
    rt->rating = rating;
    rt->tip = tip;
    rt->comment = comment != NULL ? strdup(comment) : NULL;
    store__op_rate(c, r);
    return r;
}

/* Rate and return the result code (the request is freed). */
static int rate_rc(const char *room, const char *sid, const char *user, int rating, int tip)
{
    struct store_req *r = rate_on(conn, room, sid, user, rating, tip, NULL);
    cr_assert_not_null(r);
    int rc = r != NULL ? r->rc : 0;
    store_req_free(r);
    return rc;
}

static struct store_req *session_get(const char *sid, const char *user)
{
    struct store_req *r = new_req(STORE_OP_SESSION_GET);
    (void)snprintf(r->u.session_get.session_id, sizeof r->u.session_get.session_id, "%s", sid);
    (void)snprintf(r->u.session_get.user_id, sizeof r->u.session_get.user_id, "%s", user);
    store__op_session_get(conn, r);
    return r;
}

static struct store_req *claim_on(PGconn *c, int max_jobs, int64_t lease_ms)
{
    struct store_req *r = store_req_new(STORE_OP_AI_CLAIM, NULL, NULL);
    if (r == NULL) {
        return NULL;
    }
    r->u.ai_claim.max_jobs = max_jobs;
    r->u.ai_claim.lease_ms = lease_ms;
    store__op_ai_claim(c, r);
    return r;
}

static struct store_req *claim(int max_jobs)
{
    struct store_req *r = claim_on(conn, max_jobs, 600000);
    cr_assert_not_null(r);
    if (r == NULL) {
        abort();
    }
    cr_assert_eq(r->rc, 0, "claim: %s", r->err.msg);
    return r;
}

/* The claimed job ids as "a,b,c" (sorted by the claim). */
static void expect_claimed(const struct store_req *r, const char *want)
{
    char got[512] = "";
    size_t len = 0;
    for (size_t i = 0; i < r->u.ai_claim.n_jobs && len < sizeof got; i++) {
        len += (size_t)snprintf(got + len, sizeof got - len, "%s%s", i > 0 ? "," : "",
                                r->u.ai_claim.jobs[i].job_id);
    }
    cr_expect_str_eq(got, want);
}

static struct store_req *ai_result(const char *job, enum store_ai_outcome outcome,
                                   const char *summary, int64_t next_ms, const char *error)
{
    struct store_req *r = new_req(STORE_OP_AI_RESULT);
    struct store_ai_result *a = &r->u.ai_result;
    (void)snprintf(a->job_id, sizeof a->job_id, "%s", job);
    a->outcome = outcome;
    a->summary = summary != NULL ? dup_str(summary) : NULL;
    a->next_unix_ms = next_ms;
    (void)snprintf(a->error, sizeof a->error, "%s", error);
    store__op_ai_result(conn, r);
    return r;
}

/* Appointments ap1..apN (rooms rm1..rmN) with one job each, jobN, in
 * status st, due `due` (an SQL expression of now()). */
static void jobs(int from, int to, const char *st, const char *due)
{
    char q[1024];
    (void)snprintf(q, sizeof q,
                   "INSERT INTO \"Appointment\" (id, \"scheduledFor\", \"clientId\", \"coachId\","
                   " \"roomId\") SELECT 'ap' || g, now(), 'uclient', 'ucoach', 'rm' || g"
                   " FROM generate_series(%d, %d) g;"
                   "INSERT INTO coach_ai_job (id, appointment_id, status, next_at)"
                   " SELECT 'job' || g, 'ap' || g, '%s', %s FROM generate_series(%d, %d) g",
                   from, to, st, due, from, to);
    sql(q);
}

/* ---- warning ---------------------------------------------------------------------------- */

static int warn_as(int n, const char *node)
{
    struct store_req *r = new_req(STORE_OP_WARNING);
    (void)snprintf(r->u.warning.appointment_id, sizeof r->u.warning.appointment_id, "appt1");
    (void)snprintf(r->u.warning.node_id, sizeof r->u.warning.node_id, "%s", node);
    r->u.warning.warnings_sent = n;
    store__op_warning(conn, r);
    int rc = r->rc;
    store_req_free(r);
    return rc;
}

static void warn(int n)
{
    cr_expect_eq(warn_as(n, ""), 0, "warning %d recorded", n);
}

Test(store_life, warning_keeps_the_greatest_count_on_active_rows)
{
    struct room_sids s;
    join_ok("appt1", "room-1", "ucoach", T0, s.coach);
    join_ok("appt1", "room-1", "uclient", T0, s.client);
    static const char q[] = "SELECT string_agg(\"userId\" || ':' || \"warningsSent\", ','"
                            " ORDER BY \"userId\") FROM \"Session\"";
    warn(1);
    expect_value(q, "uclient:1,ucoach:1");
    warn(2);
    expect_value(q, "uclient:2,ucoach:2");
    /* a late or repeated warning is refused (never sent) and lowers nothing */
    cr_expect_eq(warn_as(1, ""), STORE_E_CONFLICT);
    cr_expect_eq(warn_as(2, ""), STORE_E_CONFLICT);
    expect_value(q, "uclient:2,ucoach:2");
    sql("UPDATE \"Session\" SET status = 'cancelled' WHERE \"userId\" = 'uclient'");
    warn(3);
    expect_value(q, "uclient:2,ucoach:3");

    /* with a node: only the holder of the room's clock lease records */
    cr_expect_eq(warn_as(4, "node-a"), STORE_E_CONFLICT, "no lease");
    sql("INSERT INTO coach_room_lease (appointment_id, node_id, expires_at)"
        " VALUES ('appt1', 'node-b', now() + interval '1 minute')");
    cr_expect_eq(warn_as(4, "node-a"), STORE_E_CONFLICT, "another node's lease");
    sql("UPDATE coach_room_lease SET node_id = 'node-a', expires_at = now() - interval '1 s'");
    cr_expect_eq(warn_as(4, "node-a"), STORE_E_CONFLICT, "an expired lease");
    sql("UPDATE coach_room_lease SET expires_at = now() + interval '1 minute'");
    cr_expect_eq(warn_as(4, "node-a"), 0, "the holder");
    expect_value(q, "uclient:2,ucoach:4");

    struct store_req *r = new_req(STORE_OP_WARNING);
    (void)snprintf(r->u.warning.appointment_id, sizeof r->u.warning.appointment_id, "appt1");
    r->u.warning.warnings_sent = -1;
    store__op_warning(conn, r);
    cr_expect_eq(r->rc, -EINVAL);
    store_req_free(r);
}

/* ---- end ---------------------------------------------------------------------------------- */

Test(store_life, end_writes_the_transcript_and_completes_everything)
{
    struct room_sids s;
    three_messages(&s);
    struct store_req *r = end_session("appt1", T_END, 1);
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    const struct store_end *e = &r->u.end;
    cr_expect_eq(e->already_ended, 0);
    cr_expect_eq(e->stored_ended_unix_ms, T_END);
    cr_expect_eq(e->n_messages, 3);
    cr_expect_eq(strlen(e->ai_job_id), (size_t)STORE_CUID_LEN);
    cr_expect_eq(e->client_has_rating, 0);

    /* Every Session row: completed, the same endedAt and transcript, byte for byte. */
    char *t = pgtest_query_value(conninfo, "SELECT transcript FROM \"Session\""
                                           " WHERE \"userId\" = 'ucoach'");
    expect_text(t, THREE_LINES);
    free(t);
    expect_value(
        "SELECT count(*) FROM \"Session\" WHERE status = 'completed'"
        " AND \"endedAt\" = '2026-01-01 00:30:00.456'"
        " AND transcript = (SELECT transcript FROM \"Session\" WHERE \"userId\" = 'ucoach')",
        "2");
    expect_value("SELECT status FROM \"Appointment\" WHERE id = 'appt1'", "completed");
    char q[256];
    (void)snprintf(q, sizeof q,
                   "SELECT concat_ws('|', appointment_id, status, attempts, reason,"
                   " next_at <= now(), lease_until IS NULL) FROM coach_ai_job WHERE id = '%s'",
                   e->ai_job_id);
    expect_value(q, "appt1|pending|0|coach|t|t");
    store_req_free(r);
    cr_expect_eq(PQtransactionStatus(conn), PQTRANS_IDLE);
}

Test(store_life, a_second_end_changes_nothing)
{
    struct room_sids s;
    three_messages(&s);
    end_ok("appt1", T_END, 1);
    /* A message stored after the end (behind the gateway's back) must not
     * reach the transcript through a second end. */
    chat_at("appt1", s.client, "uclient", "late", "too late", "2026-01-01 10:00:00");
    struct store_req *r = end_session("appt1", T_END + 60000, 0);
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    cr_expect_eq(r->u.end.already_ended, 1);
    cr_expect_eq(r->u.end.stored_ended_unix_ms, T_END);
    cr_expect_str_eq(r->u.end.ai_job_id, "");
    store_req_free(r);
    expect_value("SELECT count(*) FROM \"Session\" WHERE \"endedAt\" = '2026-01-01 00:30:00.456'",
                 "2");
    char *t = pgtest_query_value(conninfo, "SELECT transcript FROM \"Session\""
                                           " WHERE \"userId\" = 'uclient'");
    expect_text(t, THREE_LINES);
    free(t);
    expect_value("SELECT string_agg(status, ',') FROM coach_ai_job", "pending");
}

static void *end_in_thread(void *arg)
{
    struct store_req *r = arg;
    store__op_end(conn, r);
    return NULL;
}

/* Wait (up to 20 s) until a session of the test database waits for a lock. */
static int wait_for_lock_waiter(void)
{
    for (int i = 0; i < 2000; i++) {
        char *v = pgtest_query_value(conninfo, "SELECT count(*) FROM pg_stat_activity"
                                               " WHERE datname = current_database()"
                                               " AND wait_event_type = 'Lock'");
        int waiting = v != NULL && strcmp(v, "0") != 0;
        free(v);
        if (waiting) {
            return 0;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

Test(store_life, end_waits_for_a_chat_batch_of_the_room_in_flight)
{
    struct room_sids s;
    three_messages(&s);
    /* Another node's chat batch holds the room's lock ... */
    PGconn *other = connect_quietly();
    cr_assert_eq(PQstatus(other), CONNECTION_OK);
    PQclear(PQexec(other, "BEGIN"));
    PQclear(PQexec(other, "SELECT last_seq FROM coach_room WHERE appointment_id = 'appt1'"
                          " FOR UPDATE"));
    /* ... while the end starts: it must wait, then see the batch's message. */
    struct store_req *r = new_req(STORE_OP_END);
    (void)snprintf(r->u.end.appointment_id, sizeof r->u.end.appointment_id, "appt1");
    r->u.end.ended_unix_ms = T_END;
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, end_in_thread, r), 0);
    cr_expect_eq(wait_for_lock_waiter(), 0, "the end does not wait for the room lock");
    char q[768];
    (void)snprintf(q, sizeof q,
                   "INSERT INTO \"Message\" (id, \"sessionId\", \"userId\", sender, content,"
                   " \"createdAt\") VALUES ('late1', '%s', 'uclient', 'client', 'just in time',"
                   " '2026-01-01 23:59:59.999');"
                   "INSERT INTO coach_message (message_id, appointment_id, seq, user_id,"
                   " client_msg_id) VALUES ('late1', 'appt1', 4, 'uclient', 'late1');"
                   "UPDATE coach_room SET last_seq = 4 WHERE appointment_id = 'appt1';"
                   "COMMIT",
                   s.client);
    PGresult *res = PQexec(other, q);
    cr_expect_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(other));
    PQclear(res);
    pthread_join(t, NULL);
    PQfinish(other);
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    cr_expect_eq(r->u.end.n_messages, 4);
    store_req_free(r);
    char *tr = pgtest_query_value(conninfo, "SELECT transcript FROM \"Session\""
                                            " WHERE \"userId\" = 'uclient'");
    expect_text(tr, THREE_LINES "\n[23:59:59] Client Chloé (client): just in time");
    free(tr);
}

Test(store_life, end_without_messages_queues_no_job_and_without_ai_skips_it)
{
    char sid[STORE_ID_MAX + 1];
    join_ok("appt1", "room-1", "ucoach", T0, sid);
    struct store_req *r = end_session("appt1", T_END, 1);
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    cr_expect_eq(r->u.end.n_messages, 0);
    cr_expect_str_eq(r->u.end.ai_job_id, "");
    store_req_free(r);
    expect_value("SELECT concat_ws('|', status, transcript = '') FROM \"Session\"", "completed|t");
    expect_value("SELECT count(*) FROM coach_ai_job", "0");

    join_ok("appt2", "room-2", "ucoach", T0, sid);
    chat_at("appt2", sid, "ucoach", "x", "alone", "2026-01-02 00:00:01");
    r = end_session("appt2", T_END, 0);
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    cr_expect_eq(r->u.end.n_messages, 1);
    cr_expect_str_eq(r->u.end.ai_job_id, "", "a skipped job is not due");
    store_req_free(r);
    expect_value("SELECT concat_ws('|', appointment_id, status) FROM coach_ai_job",
                 "appt2|skipped");
    expect_value("SELECT transcript FROM \"Session\" WHERE \"appointmentId\" = 'appt2'",
                 "[00:00:01] Coach Carla (coach): alone");
}

Test(store_life, end_refuses_unknown_and_cancelled_appointments)
{
    struct store_req *r = end_session("nope", T_END, 1);
    cr_expect_eq(r->rc, STORE_E_NOTFOUND, "%d %s", r->rc, r->err.msg);
    store_req_free(r);
    r = end_session("bad\xff", T_END, 1);
    cr_expect_eq(r->rc, STORE_E_NOTFOUND, "%d %s", r->rc, r->err.msg);
    store_req_free(r);
    sql("UPDATE \"Appointment\" SET status = 'cancelled' WHERE id = 'appt2'");
    r = end_session("appt2", T_END, 1);
    cr_expect_eq(r->rc, STORE_E_STATE, "%d %s", r->rc, r->err.msg);
    store_req_free(r);
    r = end_session("appt1", 0, 1);
    cr_expect_eq(r->rc, -EINVAL);
    store_req_free(r);
    cr_expect_eq(PQtransactionStatus(conn), PQTRANS_IDLE);
    expect_value("SELECT string_agg(status, ',' ORDER BY id) FROM \"Appointment\"",
                 "scheduled,cancelled,scheduled");
}

Test(store_life, end_reports_the_clients_rating)
{
    struct room_sids s;
    three_messages(&s);
    end_ok("appt1", T_END, 1);
    cr_assert_eq(rate_rc("room-1", "", "uclient", 4, 0), 0);
    struct store_req *r = end_session("appt1", T_END, 1);
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    cr_expect_eq(r->u.end.already_ended, 1);
    cr_expect_eq(r->u.end.client_has_rating, 1);
    cr_expect_eq(r->u.end.n_messages, 3);
    store_req_free(r);
}

/* ---- rate --------------------------------------------------------------------------------- */

Test(store_life, rate_by_room_stores_the_clients_rating_once)
{
    struct room_sids s;
    three_messages(&s);
    cr_expect_eq(rate_rc("room-1", "", "uclient", 5, 0), STORE_E_STATE, "before the end");
    end_ok("appt1", T_END, 1);
    struct store_req *r = rate_on(conn, "room-1", "", "uclient", 5, 0, "Very \"helpful\" ✓");
    cr_assert_not_null(r);
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    cr_expect_str_eq(r->u.rate.session_id, s.client);
    cr_expect_eq(strlen(r->u.rate.rating_id), (size_t)STORE_CUID_LEN);
    char q[256];
    (void)snprintf(q, sizeof q,
                   "SELECT (extract(epoch FROM \"createdAt\") * 1000)::int8"
                   " FROM \"SessionRating\" WHERE id = '%s'",
                   r->u.rate.rating_id);
    cr_expect_eq(r->u.rate.created_unix_ms, query_i64(q));
    cr_expect_gt(r->u.rate.created_unix_ms, T_END);
    (void)snprintf(q, sizeof q,
                   "SELECT concat_ws('|', \"sessionId\" = '%s', rating, comment,"
                   " coalesce(\"tipAmount\"::text, 'NULL')) FROM \"SessionRating\"",
                   s.client);
    expect_value(q, "t|5|Very \"helpful\" ✓|NULL");
    store_req_free(r);
    cr_expect_eq(rate_rc("room-1", "", "uclient", 3, 0), STORE_E_CONFLICT);
    cr_expect_eq(rate_rc("", s.client, "uclient", 3, 0), STORE_E_CONFLICT);
    expect_value("SELECT count(*) FROM \"SessionRating\"", "1");
}

Test(store_life, rate_by_session_goes_on_the_clients_row_with_a_tip)
{
    struct room_sids s;
    three_messages(&s);
    end_ok("appt1", T_END, 1);
    /* The coach's Session id names the appointment; the rating is the client's. */
    struct store_req *r = rate_on(conn, "", s.coach, "uclient", 2, 5, NULL);
    cr_assert_not_null(r);
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    cr_expect_str_eq(r->u.rate.session_id, s.client);
    store_req_free(r);
    char q[256];
    (void)snprintf(q, sizeof q,
                   "SELECT concat_ws('|', \"sessionId\" = '%s', rating,"
                   " coalesce(comment, 'NULL'), \"tipAmount\") FROM \"SessionRating\"",
                   s.client);
    expect_value(q, "t|2|NULL|5");
}

Test(store_life, rate_refuses_everyone_but_the_client)
{
    struct room_sids s;
    three_messages(&s);
    end_ok("appt1", T_END, 1);
    cr_expect_eq(rate_rc("room-1", "", "ucoach", 5, 0), STORE_E_FORBIDDEN);
    cr_expect_eq(rate_rc("room-1", "", "ustranger", 5, 0), STORE_E_FORBIDDEN);
    cr_expect_eq(rate_rc("room-1", "", "uadmin", 5, 0), STORE_E_FORBIDDEN);
    cr_expect_eq(rate_rc("", s.client, "ucoach", 5, 0), STORE_E_FORBIDDEN);
    cr_expect_eq(rate_rc("", s.coach, "ustranger", 5, 0), STORE_E_FORBIDDEN);
    cr_expect_eq(rate_rc("no-room", "", "uclient", 5, 0), STORE_E_NOTFOUND);
    cr_expect_eq(rate_rc("", "no-session", "uclient", 5, 0), STORE_E_NOTFOUND);
    cr_expect_eq(rate_rc("", "bad\xff", "uclient", 5, 0), STORE_E_NOTFOUND);
    cr_expect_eq(rate_rc("room-1", "", "uclient", 0, 0), -EINVAL);
    cr_expect_eq(rate_rc("room-1", "", "uclient", 6, 0), -EINVAL);
    cr_expect_eq(rate_rc("room-1", "", "uclient", 5, 2), -EINVAL);
    cr_expect_eq(rate_rc("", "", "uclient", 5, 0), -EINVAL);
    expect_value("SELECT count(*) FROM \"SessionRating\"", "0");

    /* An ended appointment the client never joined: nothing to rate. */
    char sid[STORE_ID_MAX + 1];
    join_ok("appt3", "room-3", "ucoach", T0, sid);
    end_ok("appt3", T_END, 1);
    cr_expect_eq(rate_rc("room-3", "", "uclient", 5, 0), STORE_E_NOTFOUND);
    cr_expect_eq(PQtransactionStatus(conn), PQTRANS_IDLE);
}

/* Prepare the store's statements on c (a warning for no appointment), so
 * that racing threads start their operations together. */
static void warm_up(PGconn *c)
{
    struct store_req *r = store_req_new(STORE_OP_WARNING, NULL, NULL);
    if (r != NULL) {
        (void)snprintf(r->u.warning.appointment_id, sizeof r->u.warning.appointment_id, "none");
        store__op_warning(c, r);
    }
    store_req_free(r);
}

/* Two clients' connections rate the same session at the same moment. */
struct rater {
    pthread_barrier_t *go;
    int rc;
};

static void *rate_racer(void *arg)
{
    struct rater *ra = arg;
    PGconn *c = connect_quietly();
    ra->rc = 1;
    warm_up(c);
    pthread_barrier_wait(ra->go);
    struct store_req *r = rate_on(c, "room-1", "", "uclient", 4, 1, "race");
    ra->rc = r != NULL ? r->rc : 1;
    store_req_free(r);
    PQfinish(c);
    return NULL;
}

Test(store_life, of_two_concurrent_ratings_exactly_one_wins)
{
    struct room_sids s;
    three_messages(&s);
    end_ok("appt1", T_END, 1);
    for (int round = 0; round < 10; round++) {
        pthread_barrier_t go;
        cr_assert_eq(pthread_barrier_init(&go, NULL, 2), 0);
        struct rater ra[2] = {{&go, 1}, {&go, 1}};
        pthread_t t[2];
        for (int i = 0; i < 2; i++) {
            cr_assert_eq(pthread_create(&t[i], NULL, rate_racer, &ra[i]), 0);
        }
        for (int i = 0; i < 2; i++) {
            pthread_join(t[i], NULL);
        }
        pthread_barrier_destroy(&go);
        int won = (ra[0].rc == 0) + (ra[1].rc == 0);
        int lost = (ra[0].rc == STORE_E_CONFLICT) + (ra[1].rc == STORE_E_CONFLICT);
        cr_expect(won == 1 && lost == 1, "round %d: rcs %d and %d", round, ra[0].rc, ra[1].rc);
        expect_value("SELECT count(*) FROM \"SessionRating\"", "1");
        sql("DELETE FROM \"SessionRating\"");
    }
}

/* ---- session get -------------------------------------------------------------------------- */

Test(store_life, session_get_is_for_participants_and_admins)
{
    struct room_sids s;
    three_messages(&s);
    const char *allowed[] = {"ucoach", "uclient", "uadmin"};
    for (size_t i = 0; i < 3; i++) {
        struct store_req *r = session_get(s.client, allowed[i]);
        cr_expect_eq(r->rc, 0, "%s: %s", allowed[i], r->err.msg);
        store_req_free(r);
    }
    struct store_req *r = session_get(s.coach, "ustranger");
    cr_expect_eq(r->rc, STORE_E_FORBIDDEN);
    cr_expect_null(r->u.session_get.transcript);
    store_req_free(r);
    r = session_get(s.coach, "uclient2"); /* another appointment's client */
    cr_expect_eq(r->rc, STORE_E_FORBIDDEN);
    store_req_free(r);
    r = session_get("no-session", "uadmin");
    cr_expect_eq(r->rc, STORE_E_NOTFOUND);
    store_req_free(r);
    r = session_get("bad\xff", "uadmin");
    cr_expect_eq(r->rc, STORE_E_NOTFOUND);
    store_req_free(r);
}

Test(store_life, session_get_returns_the_row_transcript_summary_and_rating)
{
    struct room_sids s;
    three_messages(&s);
    struct store_req *r = session_get(s.coach, "ucoach");
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    const struct store_session_get *g = &r->u.session_get;
    cr_expect_str_eq(g->appointment_id, "appt1");
    cr_expect_str_eq(g->room_id, "room-1");
    cr_expect_str_eq(g->owner_id, "ucoach");
    cr_expect_str_eq(g->status, "active");
    cr_expect_eq(g->started_unix_ms, T0);
    cr_expect_eq(g->ended_unix_ms, 0);
    cr_expect_eq(g->duration_minutes, 30);
    cr_expect_null(g->transcript);
    cr_expect_null(g->ai_summary);
    cr_expect_str_eq(g->ai_status, "");
    cr_expect_eq(g->has_rating, 0);
    cr_expect_null(g->rating_comment);
    store_req_free(r);

    end_ok("appt1", T_END, 1);
    struct store_req *rt = rate_on(conn, "room-1", "", "uclient", 4, 3, "thanks");
    cr_assert_eq(rt->rc, 0, "%s", rt->err.msg);
    r = session_get(s.coach, "uadmin"); /* the coach's row shows the client's rating */
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    g = &r->u.session_get;
    cr_expect_str_eq(g->status, "completed");
    cr_expect_eq(g->ended_unix_ms, T_END);
    expect_text(g->transcript, THREE_LINES);
    cr_expect_str_eq(g->ai_status, "pending");
    cr_expect_eq(g->has_rating, 1);
    cr_expect_eq(g->rating, 4);
    cr_expect_eq(g->tip, 3);
    expect_text(g->rating_comment, "thanks");
    cr_expect_eq(g->rated_unix_ms, rt->u.rate.created_unix_ms);
    store_req_free(r);
    store_req_free(rt);

    struct store_req *c = claim(1);
    cr_assert_eq(c->u.ai_claim.n_jobs, 1);
    r = session_get(s.client, "uclient");
    cr_expect_str_eq(r->u.session_get.ai_status, "running");
    store_req_free(r);
    store_req_free(ai_result(c->u.ai_claim.jobs[0].job_id, STORE_AI_DONE, "All good.", 0, ""));
    store_req_free(c);
    r = session_get(s.client, "uclient");
    cr_expect_str_eq(r->u.session_get.ai_status, "done");
    expect_text(r->u.session_get.ai_summary, "All good.");
    store_req_free(r);
}

/* ---- AI claim ----------------------------------------------------------------------------- */

Test(store_life, claim_takes_due_jobs_only_oldest_first)
{
    jobs(1, 1, "pending", "now() - INTERVAL '1 minute'");
    jobs(2, 2, "pending", "now() + INTERVAL '1 hour'");
    jobs(3, 3, "retry", "now() - INTERVAL '2 minutes'");
    jobs(4, 4, "done", "now() - INTERVAL '1 hour'");
    jobs(5, 5, "failed", "now() - INTERVAL '1 hour'");
    jobs(6, 6, "skipped", "now() - INTERVAL '1 hour'");
    jobs(7, 7, "running", "now() - INTERVAL '1 hour'");
    sql("UPDATE coach_ai_job SET lease_until = now() + INTERVAL '1 minute', attempts = 1"
        " WHERE id = 'job7'");
    struct store_req *r = claim(16);
    expect_claimed(r, "job3,job1");
    cr_expect_eq(r->u.ai_claim.jobs[0].attempt, 1);
    /* Next due: the earliest of job2's next_at, the leases of job1, job3, job7. */
    cr_expect_eq(r->u.ai_claim.next_due_unix_ms,
                 query_i64("SELECT ceil(extract(epoch FROM min(lease_until)) * 1000)::int8"
                           " FROM coach_ai_job WHERE id = 'job7'"));
    store_req_free(r);
    expect_value("SELECT string_agg(id || ':' || status || ':' || attempts, ',' ORDER BY id)"
                 " FROM coach_ai_job WHERE lease_until > now() + INTERVAL '9 minutes'",
                 "job1:running:1,job3:running:1");
    r = claim(16);
    expect_claimed(r, "");
    store_req_free(r);

    /* Only a job due later: next_due is its next_at (rounded up to the ms). */
    sql("DELETE FROM coach_ai_job WHERE id <> 'job2';"
        "UPDATE coach_ai_job SET next_at = TIMESTAMPTZ '2030-01-01 00:00:00.0004+00'");
    r = claim(16);
    cr_expect_eq(r->u.ai_claim.n_jobs, 0);
    cr_expect_eq(r->u.ai_claim.next_due_unix_ms, INT64_C(1893456000001));
    store_req_free(r);
    sql("DELETE FROM coach_ai_job");
    r = claim(16);
    cr_expect_eq(r->u.ai_claim.next_due_unix_ms, 0);
    store_req_free(r);

    const int bad[] = {0, 17};
    for (size_t i = 0; i < 2; i++) {
        struct store_req *b = claim_on(conn, bad[i], 1000);
        cr_expect_eq(b->rc, -EINVAL);
        store_req_free(b);
    }
}

Test(store_life, claim_respects_max_jobs)
{
    jobs(1, 5, "pending", "now() - INTERVAL '1 minute'");
    struct store_req *r = claim(2);
    cr_expect_eq(r->u.ai_claim.n_jobs, 2);
    cr_expect_gt(r->u.ai_claim.next_due_unix_ms, 0);
    store_req_free(r);
    expect_value("SELECT count(*) FROM coach_ai_job WHERE status = 'running'", "2");
}

Test(store_life, claim_returns_the_prompt_inputs)
{
    struct room_sids s;
    three_messages(&s);
    end_ok("appt1", T_END, 1);
    struct store_req *r = claim(4);
    cr_assert_eq(r->u.ai_claim.n_jobs, 1);
    const struct store_ai_job *j = &r->u.ai_claim.jobs[0];
    cr_expect_eq(strlen(j->job_id), (size_t)STORE_CUID_LEN);
    cr_expect_str_eq(j->appointment_id, "appt1");
    cr_expect_str_eq(j->room_id, "room-1");
    cr_expect_str_eq(j->coach_id, "ucoach");
    cr_expect_eq(j->attempt, 1);
    cr_expect_str_eq(j->coach_name, "Coach Carla");
    cr_expect_str_eq(j->client_name, "Client Chloé");
    const char *facts[] = {"likes \"quotes\"", "comma, inside", "brace {x}", "back\\slash",
                           "ünïcödé"};
    cr_assert_eq(j->n_client_facts, 5, "the NULL element is left out");
    for (size_t i = 0; i < 5; i++) {
        expect_text(j->client_facts[i], facts[i]);
    }
    cr_expect_eq(j->n_challenges, 0);
    cr_expect_null(j->challenges);
    expect_text(j->goals, "sleep better");
    expect_text(j->symptoms, "tired");
    expect_text(j->last_summary, "old summary");
    expect_text(j->transcript, THREE_LINES);
    store_req_free(r);

    /* A client without a Profile row: empty lists and NULLs. */
    char sid[STORE_ID_MAX + 1];
    join_ok("appt2", "room-2", "uclient2", T0, sid);
    chat_at("appt2", sid, "uclient2", "z", "hi", "2026-01-02 00:00:00");
    end_ok("appt2", T_END, 1);
    r = claim(4);
    cr_assert_eq(r->u.ai_claim.n_jobs, 1);
    j = &r->u.ai_claim.jobs[0];
    cr_expect_str_eq(j->client_name, "Client Zoë");
    cr_expect_eq(j->n_client_facts, 0);
    cr_expect_null(j->goals);
    cr_expect_null(j->symptoms);
    cr_expect_null(j->last_summary);
    expect_text(j->transcript, "[00:00:00] Client Zoë (client): hi");
    store_req_free(r);
}

Test(store_life, an_expired_lease_is_claimed_again)
{
    jobs(1, 2, "running", "now() - INTERVAL '1 hour'");
    sql("UPDATE coach_ai_job SET attempts = 1, lease_until = now() - INTERVAL '1 second'"
        " WHERE id = 'job1';"
        "UPDATE coach_ai_job SET attempts = 1, lease_until = now() + INTERVAL '1 minute'"
        " WHERE id = 'job2'");
    struct store_req *r = claim(16);
    expect_claimed(r, "job1");
    cr_expect_eq(r->u.ai_claim.jobs[0].attempt, 2);
    store_req_free(r);
    expect_value("SELECT concat_ws('|', status, attempts, lease_until > now())"
                 " FROM coach_ai_job WHERE id = 'job1'",
                 "running|2|t");
}

Test(store_life, claim_skips_jobs_locked_by_another_worker)
{
    jobs(1, 2, "pending", "now() - INTERVAL '1 minute'");
    sql("UPDATE coach_ai_job SET next_at = next_at - INTERVAL '1 minute' WHERE id = 'job1'");
    PGconn *other = connect_quietly();
    cr_assert_eq(PQstatus(other), CONNECTION_OK);
    PQclear(PQexec(other, "BEGIN"));
    PGresult *lk = PQexec(other, "SELECT id FROM coach_ai_job WHERE id = 'job1' FOR UPDATE");
    cr_assert_eq(PQresultStatus(lk), PGRES_TUPLES_OK);
    PQclear(lk);
    struct store_req *r = claim(16); /* does not wait for the lock */
    expect_claimed(r, "job2");
    store_req_free(r);
    PQclear(PQexec(other, "ROLLBACK"));
    r = claim(16);
    expect_claimed(r, "job1");
    store_req_free(r);
    PQfinish(other);
}

/* Workers claiming from the same queue at once, each on its connection. */
#define RACE_JOBS 60

struct claimer {
    pthread_barrier_t *go;
    char ids[RACE_JOBS][STORE_ID_MAX + 1];
    size_t n;
    int failures;
};

static void *claim_racer(void *arg)
{
    struct claimer *cl = arg;
    PGconn *c = connect_quietly();
    warm_up(c);
    pthread_barrier_wait(cl->go);
    for (;;) {
        struct store_req *r = claim_on(c, 3, 600000);
        if (r == NULL || r->rc != 0) {
            cl->failures++;
            store_req_free(r);
            break;
        }
        size_t n = r->u.ai_claim.n_jobs;
        for (size_t i = 0; i < n && cl->n < RACE_JOBS; i++) {
            memcpy(cl->ids[cl->n++], r->u.ai_claim.jobs[i].job_id, STORE_ID_MAX + 1);
        }
        store_req_free(r);
        if (n == 0) {
            break;
        }
    }
    PQfinish(c);
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

Test(store_life, concurrent_claims_never_share_a_job)
{
    pthread_barrier_t go;
    cr_assert_eq(pthread_barrier_init(&go, NULL, 4), 0);
    static struct claimer cl[3];
    memset(cl, 0, sizeof cl);
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        cl[i].go = &go;
        cr_assert_eq(pthread_create(&t[i], NULL, claim_racer, &cl[i]), 0);
    }
    jobs(1, RACE_JOBS, "pending", "now() - INTERVAL '1 minute'");
    pthread_barrier_wait(&go);
    static char all[3 * RACE_JOBS][STORE_ID_MAX + 1];
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        cr_expect_eq(cl[i].failures, 0, "worker %d", i);
        memcpy(all[n], cl[i].ids, cl[i].n * sizeof all[0]);
        n += cl[i].n;
    }
    pthread_barrier_destroy(&go);
    cr_expect_eq(n, (size_t)RACE_JOBS);
    qsort(all, n, sizeof all[0], cmp_id);
    for (size_t i = 1; i < n; i++) {
        cr_expect_str_neq(all[i - 1], all[i], "claimed twice");
    }
    expect_value("SELECT count(*) FROM coach_ai_job WHERE status = 'running' AND attempts = 1",
                 "60");
}

/* ---- AI result ---------------------------------------------------------------------------- */

/* End appt (joined by the coach and `client`, one message) and claim its
 * job; the job id goes to job, the Session ids to s. */
static void ended_and_claimed(const char *appt, const char *room, const char *client,
                              struct room_sids *s, char *job)
{
    join_ok(appt, room, "ucoach", T0, s->coach);
    join_ok(appt, room, client, T0, s->client);
    chat_at(appt, s->client, client, "q", "question", "2026-01-01 00:01:00");
    end_ok(appt, T_END, 1);
    struct store_req *r = claim(1);
    cr_assert_eq(r->u.ai_claim.n_jobs, 1);
    memcpy(job, r->u.ai_claim.jobs[0].job_id, STORE_ID_MAX + 1);
    store_req_free(r);
}

Test(store_life, done_writes_the_summary_everywhere)
{
    struct room_sids s;
    char job[STORE_ID_MAX + 1];
    ended_and_claimed("appt1", "room-1", "uclient", &s, job);
    struct store_req *r =
        ai_result(job, STORE_AI_DONE, "Chloé sleeps better.\nNext: walks.", 0, "");
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    cr_expect_str_eq(r->u.ai_result.appointment_id, "appt1");
    cr_expect_str_eq(r->u.ai_result.room_id, "room-1");
    cr_expect_str_eq(r->u.ai_result.session_id, s.coach);
    store_req_free(r);
    expect_value("SELECT count(*) FROM \"Session\""
                 " WHERE \"aiSummary\" = E'Chloé sleeps better.\\nNext: walks.'",
                 "2");
    expect_value("SELECT concat_ws('|', id, \"lastSummary\") FROM \"Profile\""
                 " WHERE \"userId\" = 'uclient'",
                 "prof1|Chloé sleeps better.\nNext: walks.");
    expect_value("SELECT concat_ws('|', status, attempts, lease_until IS NULL) FROM coach_ai_job",
                 "done|1|t");
}

Test(store_life, done_creates_a_missing_profile)
{
    struct room_sids s;
    char job[STORE_ID_MAX + 1];
    ended_and_claimed("appt2", "room-2", "uclient2", &s, job);
    struct store_req *r = ai_result(job, STORE_AI_DONE, "Zoë: first session.", 0, "");
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    store_req_free(r);
    expect_value("SELECT concat_ws('|', length(id), left(id, 1), \"lastSummary\","
                 " \"onboardingCompleted\") FROM \"Profile\" WHERE \"userId\" = 'uclient2'",
                 "25|c|Zoë: first session.|f");
    expect_value("SELECT \"lastSummary\" FROM \"Profile\" WHERE \"userId\" = 'uclient'",
                 "old summary");
}

Test(store_life, retry_and_failed_are_recorded)
{
    struct room_sids s;
    char job[STORE_ID_MAX + 1];
    ended_and_claimed("appt1", "room-1", "uclient", &s, job);
    const int64_t next = INT64_C(4102444800250); /* 2100-01-01 00:00:00.25 UTC */
    struct store_req *r = ai_result(job, STORE_AI_RETRY, NULL, next, "HTTP 503\n\xff");
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    store_req_free(r);
    expect_value("SELECT concat_ws('|', status, (extract(epoch FROM next_at) * 1000)::int8,"
                 " last_error, lease_until IS NULL) FROM coach_ai_job",
                 "retry|4102444800250|HTTP 503 ?|t");
    r = claim(4);
    cr_expect_eq(r->u.ai_claim.n_jobs, 0, "not due before next_at");
    cr_expect_eq(r->u.ai_claim.next_due_unix_ms, next);
    store_req_free(r);

    sql("UPDATE coach_ai_job SET next_at = now() - INTERVAL '1 second'");
    r = claim(4);
    cr_assert_eq(r->u.ai_claim.n_jobs, 1);
    cr_expect_eq(r->u.ai_claim.jobs[0].attempt, 2);
    store_req_free(r);
    r = ai_result(job, STORE_AI_FAILED, NULL, 0, "HTTP 400");
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    store_req_free(r);
    expect_value("SELECT concat_ws('|', status, attempts, last_error) FROM coach_ai_job",
                 "failed|2|HTTP 400");
    expect_value("SELECT count(*) FROM \"Session\" WHERE \"aiSummary\" IS NOT NULL", "0");
}

Test(store_life, a_result_for_a_job_not_running_is_stale)
{
    struct room_sids s;
    char job[STORE_ID_MAX + 1];
    ended_and_claimed("appt1", "room-1", "uclient", &s, job);
    store_req_free(ai_result(job, STORE_AI_DONE, "first", 0, ""));
    struct store_req *r = ai_result(job, STORE_AI_DONE, "second", 0, "");
    cr_expect_eq(r->rc, STORE_E_STATE, "%d %s", r->rc, r->err.msg);
    cr_expect_str_eq(r->u.ai_result.room_id, "");
    store_req_free(r);
    r = ai_result(job, STORE_AI_FAILED, NULL, 0, "late");
    cr_expect_eq(r->rc, STORE_E_STATE);
    store_req_free(r);
    expect_value("SELECT concat_ws('|', status, coalesce(last_error, '-')) FROM coach_ai_job",
                 "done|-");
    expect_value("SELECT string_agg(DISTINCT \"aiSummary\", ',') FROM \"Session\"", "first");

    /* A pending job (never claimed) and an unknown one. */
    jobs(1, 1, "pending", "now()");
    r = ai_result("job1", STORE_AI_DONE, "x", 0, "");
    cr_expect_eq(r->rc, STORE_E_STATE);
    store_req_free(r);
    r = ai_result("nope", STORE_AI_RETRY, NULL, 1, "");
    cr_expect_eq(r->rc, STORE_E_NOTFOUND);
    store_req_free(r);
    r = ai_result("job1", STORE_AI_DONE, NULL, 0, "");
    cr_expect_eq(r->rc, -EINVAL, "done without a summary");
    store_req_free(r);
    cr_expect_eq(PQtransactionStatus(conn), PQTRANS_IDLE);
    expect_value("SELECT status FROM coach_ai_job WHERE id = 'job1'", "pending");
}
