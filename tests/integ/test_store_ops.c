/*
 * test_store_ops.c: the store thread's operations (store/ops_*.c) against a
 * real PostgreSQL with the real migrations.
 *
 * Each test gets its own database cloned from the migrated template, seeded
 * with a coach, a client, an admin and two appointments (setup), and calls
 * the operations directly on a connection of its own, the way the store
 * thread does. The last test goes through the public API instead: a store
 * thread fed 1000 chats from the test thread, which must batch them.
 * Timestamps are compared to the millisecond, both as the operations
 * return them and as the database stores them.
 */
#include <assert.h>
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

#define T0 INT64_C(1767225600123) /* 2026-01-01 00:00:00.123 UTC */

static char db[64], conninfo[512];
static PGconn *conn;

static const char seed_sql[] =
    "INSERT INTO \"User\" (id, email, \"displayName\", role, \"updatedAt\", \"skoolUserId\") VALUES"
    " ('ucoach', 'coach@example.com', 'Coach Carla', 'coach', now(), 'sk-coach'),"
    " ('uclient', 'client@example.com', 'Client Chloé', 'client', now(), 'sk-client'),"
    " ('uadmin', 'admin@example.com', 'Admin Ada', 'admin', now(), 'sk-admin');"
    "INSERT INTO \"Appointment\" (id, \"scheduledFor\", \"durationMin\", \"clientId\","
    " \"coachId\", \"roomId\") VALUES"
    " ('appt1', '2030-05-06 07:08:09.123', 30, 'uclient', 'ucoach', 'room-1'),"
    " ('appt2', '2030-05-06 08:00:00', 45, 'uclient', 'ucoach', 'room-2');"
    "INSERT INTO \"AuthCode\" (id, code, \"skoolUserId\", \"skoolUsername\", \"expiresAt\")"
    " VALUES ('ac1', 'vgs-1', 'sk-coach', 'carla', '2099-01-01')";

static void setup(void)
{
    cr_assert(sodium_init() >= 0);
    cr_assert_eq(pgtest_db_create(1, db, sizeof db, conninfo, sizeof conninfo), 0,
                 "cannot create a test database (is the pg fixture running?)");
    cr_assert_eq(pgtest_exec(conninfo, seed_sql), 0);
    conn = storetest_connect(conninfo);
    cr_assert_eq(PQstatus(conn), CONNECTION_OK);
}

static void teardown(void)
{
    PQfinish(conn);
    conn = NULL;
    pgtest_db_drop(db);
}

TestSuite(store_ops, .init = setup, .fini = teardown, .timeout = 120);

/* ---- helpers -------------------------------------------------------------------- */

static void sql(const char *s)
{
    storetest_sql(conninfo, s);
}

/* The first value of query q, as text ("NULL" for no row or SQL NULL). */
static void expect_value(const char *q, const char *want)
{
    storetest_expect_value(conninfo, q, want);
}

static int64_t query_i64(const char *q)
{
    return storetest_query_i64(conninfo, q);
}

static struct store_req *new_req(enum store_op op)
{
    return storetest_req(op);
}

static struct store_req *auth_session(const char *token)
{
    struct store_req *r = new_req(STORE_OP_AUTH_SESSION);
    (void)snprintf(r->u.auth_session.token, sizeof r->u.auth_session.token, "%s", token);
    store__op_auth_session(conn, r);
    return r;
}

static struct store_req *room_load(const char *room)
{
    struct store_req *r = new_req(STORE_OP_ROOM_LOAD);
    (void)snprintf(r->u.room.room_id, sizeof r->u.room.room_id, "%s", room);
    store__op_room_load(conn, r);
    return r;
}

static struct store_req *join(const char *appt, const char *room, const char *user, int64_t at)
{
    struct store_req *r = new_req(STORE_OP_SESSION_JOIN);
    struct store_session_join *j = &r->u.join;
    (void)snprintf(j->appointment_id, sizeof j->appointment_id, "%s", appt);
    (void)snprintf(j->room_id, sizeof j->room_id, "%s", room);
    (void)snprintf(j->user_id, sizeof j->user_id, "%s", user);
    j->at_unix_ms = at;
    j->duration_minutes = 30;
    store__op_session_join(conn, r);
    return r;
}

/* Join and return the Session id (into sid, STORE_ID_MAX + 1 bytes). */
static void join_ok(const char *appt, const char *room, const char *user, int64_t at, char *sid)
{
    struct store_req *r = join(appt, room, user, at);
    cr_assert_eq(r->rc, 0, "join: %s", r->err.msg);
    memcpy(sid, r->u.join.session_id, STORE_ID_MAX + 1);
    store_req_free(r);
}

static struct store_req *chat(const char *appt, const char *sid, const char *user, const char *cmid,
                              const char *text)
{
    struct store_req *r = new_req(STORE_OP_CHAT);
    struct store_chat *c = &r->u.chat;
    (void)snprintf(c->appointment_id, sizeof c->appointment_id, "%s", appt);
    (void)snprintf(c->session_id, sizeof c->session_id, "%s", sid);
    (void)snprintf(c->user_id, sizeof c->user_id, "%s", user);
    (void)snprintf(c->client_msg_id, sizeof c->client_msg_id, "%s", cmid);
    c->role = strcmp(user, "ucoach") == 0 ? STORE_ROLE_COACH : STORE_ROLE_CLIENT;
    c->text_len = strlen(text);
    c->text = malloc(c->text_len + 1);
    cr_assert_not_null(c->text);
    memcpy(c->text, text, c->text_len + 1);
    return r;
}

static void free_all(struct store_req **r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        store_req_free(r[i]);
    }
}

static struct store_req *history(const char *appt, int64_t after, int64_t before, int limit)
{
    struct store_req *r = new_req(STORE_OP_HISTORY);
    struct store_history *h = &r->u.history;
    (void)snprintf(h->appointment_id, sizeof h->appointment_id, "%s", appt);
    (void)snprintf(h->coach_id, sizeof h->coach_id, "%s", "ucoach");
    h->after_seq = after;
    h->before_seq = before;
    h->limit = limit;
    store__op_history(conn, r);
    return r;
}

/* The seqs of a history page as "1,2,3" plus has_more as "+" at the end. */
static void expect_page(struct store_req *r, const char *want)
{
    cr_assert_eq(r->rc, 0, "history: %s", r->err.msg);
    char got[256] = "";
    size_t len = 0;
    for (size_t i = 0; i < r->u.history.n_msgs; i++) {
        len += (size_t)snprintf(got + len, sizeof got - len, "%s%lld", i > 0 ? "," : "",
                                (long long)r->u.history.msgs[i].seq);
    }
    (void)snprintf(got + len, sizeof got - len, "%s", r->u.history.has_more ? "+" : "");
    cr_expect_str_eq(got, want);
    store_req_free(r);
}

/* ms as PostgreSQL prints a TIMESTAMP(3): "2026-01-01 00:00:00.12" (no
 * trailing zeros in the fraction, no fraction for whole seconds). */
static void pg_timestamp(int64_t ms, char *out, size_t cap)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    cr_assert_not_null(gmtime_r(&secs, &tm));
    char frac[8] = "";
    int f = (int)(ms % 1000);
    if (f != 0) {
        (void)snprintf(frac, sizeof frac, ".%03d", f);
        size_t n = strlen(frac);
        while (n > 1 && frac[n - 1] == '0') {
            frac[--n] = '\0';
        }
    }
    (void)snprintf(out, cap, "%04d-%02d-%02d %02d:%02d:%02d%s", tm.tm_year + 1900, tm.tm_mon + 1,
                   tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

/* ---- auth -------------------------------------------------------------------------- */

static void add_user_session(const char *id, const char *token, const char *skool,
                             const char *expires, const char *active)
{
    char q[1024];
    (void)snprintf(q, sizeof q,
                   "INSERT INTO \"UserSession\" (id, \"sessionId\", \"skoolUserId\","
                   " \"skoolUsername\", \"authCodeUsed\", \"expiresAt\", \"lastActive\","
                   " \"ipAddress\", \"userAgent\", \"deviceFingerprint\", \"isActive\")"
                   " VALUES ('%s', '%s', '%s', 'u', 'vgs-1', %s,"
                   " (now() AT TIME ZONE 'UTC') - INTERVAL '2 minutes', '127.0.0.1', 'ua', 'fp',"
                   " %s)",
                   id, token, skool, expires, active);
    sql(q);
}

Test(store_ops, auth_session_resolves_a_valid_token)
{
    add_user_session("us1", "tok-valid", "sk-coach", "'2099-01-02 03:04:05.678'", "true");
    struct store_req *r = auth_session("tok-valid");
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    cr_expect_str_eq(r->u.auth_session.user.id, "ucoach");
    cr_expect_str_eq(r->u.auth_session.user.display_name, "Coach Carla");
    cr_expect_str_eq(r->u.auth_session.user.role, "coach");
    cr_expect_str_eq(r->u.auth_session.user_session_id, "us1");
    cr_expect_eq(r->u.auth_session.expires_unix_ms, INT64_C(4071006245678));
    store_req_free(r);
    /* lastActive was two minutes old: refreshed to now. */
    expect_value("SELECT \"lastActive\" > (now() AT TIME ZONE 'UTC') - INTERVAL '10 seconds'"
                 " FROM \"UserSession\" WHERE id = 'us1'",
                 "t");
}

Test(store_ops, auth_session_touches_last_active_at_most_once_a_minute)
{
    add_user_session("us1", "tok-valid", "sk-coach", "'2099-01-01'", "true");
    sql("UPDATE \"UserSession\" SET \"lastActive\" = '2000-01-01 00:00:00.5' WHERE id = 'us1'");
    struct store_req *r = auth_session("tok-valid");
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    store_req_free(r);
    char *first = pgtest_query_value(conninfo, "SELECT \"lastActive\"::text FROM \"UserSession\"");
    cr_assert_not_null(first);
    cr_expect_str_neq(first, "2000-01-01 00:00:00.5");
    /* Within the minute: a second look-up writes nothing. */
    r = auth_session("tok-valid");
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    store_req_free(r);
    char *second = pgtest_query_value(conninfo, "SELECT \"lastActive\"::text FROM \"UserSession\"");
    cr_assert_not_null(second);
    cr_expect_str_eq(second, first);
    free(first);
    free(second);
    /* 50 s old (a margin for a slow machine): left alone; 61 s old: refreshed. */
    sql("UPDATE \"UserSession\" SET \"lastActive\" ="
        " (now() AT TIME ZONE 'UTC') - INTERVAL '50 seconds'");
    first = pgtest_query_value(conninfo, "SELECT \"lastActive\"::text FROM \"UserSession\"");
    store_req_free(auth_session("tok-valid"));
    second = pgtest_query_value(conninfo, "SELECT \"lastActive\"::text FROM \"UserSession\"");
    cr_assert(first != NULL && second != NULL);
    cr_expect_str_eq(second, first);
    free(first);
    free(second);
    sql("UPDATE \"UserSession\" SET \"lastActive\" ="
        " (now() AT TIME ZONE 'UTC') - INTERVAL '61 seconds'");
    store_req_free(auth_session("tok-valid"));
    expect_value("SELECT \"lastActive\" > (now() AT TIME ZONE 'UTC') - INTERVAL '10 seconds'"
                 " FROM \"UserSession\"",
                 "t");
}

Test(store_ops, auth_session_refuses_bad_tokens)
{
    add_user_session("us1", "tok-expired", "sk-coach",
                     "(now() AT TIME ZONE 'UTC') - INTERVAL '1 second'", "true");
    add_user_session("us2", "tok-inactive", "sk-coach", "'2099-01-01'", "false");
    add_user_session("us3", "tok-nouser", "sk-nobody", "'2099-01-01'", "true");
    const char *const bad[] = {"tok-expired",    "tok-inactive", "tok-nouser", "tok-unknown", "",
                               "bad\xff\xfeutf8"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct store_req *r = auth_session(bad[i]);
        cr_expect_eq(r->rc, STORE_E_NOTFOUND, "token %zu: rc %d %s", i, r->rc, r->err.msg);
        cr_expect_null(strstr(r->err.msg, "tok-"), "the token is not in the message");
        store_req_free(r);
    }
    /* Refused tokens are not touched. */
    expect_value("SELECT count(*) FROM \"UserSession\""
                 " WHERE \"lastActive\" > (now() AT TIME ZONE 'UTC') - INTERVAL '1 minute'",
                 "0");
}

/* Token checks queued together run as one statement; each request gets
 * what store__op_auth_session would have given it. */
static void check_signins(const char *const *toks, size_t n, const char *const *want_user)
{
    struct store_req *r[8];
    cr_assert(n <= 8);
    for (size_t i = 0; i < n; i++) {
        r[i] = new_req(STORE_OP_AUTH_SESSION);
        (void)snprintf(r[i]->u.auth_session.token, sizeof r[i]->u.auth_session.token, "%s",
                       toks[i]);
    }
    store__op_auth_session_batch(conn, r, n);
    for (size_t i = 0; i < n; i++) {
        if (want_user[i] != NULL) {
            cr_expect_eq(r[i]->rc, 0, "token %zu: %d %s", i, r[i]->rc, r[i]->err.msg);
            cr_expect_str_eq(r[i]->u.auth_session.user.id, want_user[i], "token %zu", i);
        } else {
            cr_expect_eq(r[i]->rc, STORE_E_NOTFOUND, "token %zu: %d %s", i, r[i]->rc,
                         r[i]->err.msg);
            cr_expect_null(strstr(r[i]->err.msg, "tok-"), "the token is not in the message");
        }
        store_req_free(r[i]);
    }
    cr_expect_eq(PQtransactionStatus(conn), PQTRANS_IDLE);
}

Test(store_ops, sign_ins_queued_together_are_checked_in_one_statement)
{
    add_user_session("us1", "tok-coach", "sk-coach", "'2099-01-02 03:04:05.678'", "true");
    add_user_session("us2", "tok-client", "sk-client", "'2099-01-01'", "true");
    add_user_session("us3", "tok-expired", "sk-admin",
                     "(now() AT TIME ZONE 'UTC') - INTERVAL '1 second'", "true");
    const char *const toks[] = {"tok-coach", "tok-unknown", "tok-client", "tok-expired",
                                "tok-coach", ""};
    const char *const users[] = {"ucoach", NULL, "uclient", NULL, "ucoach", NULL};
    check_signins(toks, 6, users);
    struct store_req *one = auth_session("tok-coach");
    cr_expect_eq(one->u.auth_session.expires_unix_ms, INT64_C(4071006245678));
    cr_expect_str_eq(one->u.auth_session.user_session_id, "us1");
    cr_expect_str_eq(one->u.auth_session.user.display_name, "Coach Carla");
    store_req_free(one);
    /* the valid ones were touched (two minutes old), the expired one not */
    expect_value("SELECT string_agg(id, ',' ORDER BY id) FROM \"UserSession\""
                 " WHERE \"lastActive\" > (now() AT TIME ZONE 'UTC') - INTERVAL '10 seconds'",
                 "us1,us2");
    /* a token the server cannot compare fails the statement: each then
     * runs alone, and only that one is refused */
    const char *const mixed[] = {"tok-client", "bad\xff\xfeutf8", "tok-coach"};
    const char *const mixed_users[] = {"uclient", NULL, "ucoach"};
    check_signins(mixed, 3, mixed_users);
}

Test(store_ops, auth_user_loads_a_user_by_id)
{
    struct store_req *r = new_req(STORE_OP_AUTH_USER);
    (void)snprintf(r->u.auth_user.user.id, sizeof r->u.auth_user.user.id, "uclient");
    store__op_auth_user(conn, r);
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    cr_expect_str_eq(r->u.auth_user.user.id, "uclient");
    cr_expect_str_eq(r->u.auth_user.user.display_name, "Client Chloé");
    cr_expect_str_eq(r->u.auth_user.user.role, "client");
    store_req_free(r);

    r = new_req(STORE_OP_AUTH_USER);
    (void)snprintf(r->u.auth_user.user.id, sizeof r->u.auth_user.user.id, "nobody");
    store__op_auth_user(conn, r);
    cr_expect_eq(r->rc, STORE_E_NOTFOUND);
    store_req_free(r);
}

/* ---- room load ------------------------------------------------------------------------ */

Test(store_ops, room_load_of_a_fresh_appointment)
{
    struct store_req *r = room_load("room-1");
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    const struct store_room *m = &r->u.room;
    cr_expect_str_eq(m->appointment_id, "appt1");
    cr_expect_eq(m->scheduled_unix_ms, INT64_C(1904281689123));
    cr_expect_eq(m->duration_min, 30);
    cr_expect_eq(m->duration_minutes, 30);
    cr_expect_str_eq(m->status, "scheduled");
    cr_expect_str_eq(m->coach_id, "ucoach");
    cr_expect_str_eq(m->coach_name, "Coach Carla");
    cr_expect_str_eq(m->client_id, "uclient");
    cr_expect_str_eq(m->client_name, "Client Chloé");
    cr_expect_eq(m->last_seq, 0);
    cr_expect_eq(m->started_unix_ms, 0);
    cr_expect_eq(m->ended_unix_ms, 0);
    cr_expect_eq(m->warnings_sent, 0);
    cr_expect_str_eq(m->coach_session_id, "");
    cr_expect_str_eq(m->client_session_id, "");
    store_req_free(r);

    r = room_load("no-such-room");
    cr_expect_eq(r->rc, STORE_E_NOTFOUND);
    store_req_free(r);
}

Test(store_ops, room_load_defaults_a_zero_duration_to_20)
{
    sql("ALTER TABLE \"Appointment\" DROP CONSTRAINT \"Appointment_durationMin_check\";"
        "UPDATE \"Appointment\" SET \"durationMin\" = 0 WHERE id = 'appt1'");
    struct store_req *r = room_load("room-1");
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    cr_expect_eq(r->u.room.duration_min, 0);
    cr_expect_eq(r->u.room.duration_minutes, 20);
    store_req_free(r);
}

Test(store_ops, room_load_after_joins_chats_and_the_end)
{
    char coach_sid[STORE_ID_MAX + 1], client_sid[STORE_ID_MAX + 1];
    join_ok("appt1", "room-1", "ucoach", T0, coach_sid);
    join_ok("appt1", "room-1", "uclient", T0 + 5000, client_sid);
    struct store_req *c[] = {chat("appt1", coach_sid, "ucoach", "m1", "hello"),
                             chat("appt1", client_sid, "uclient", "m2", "hi")};
    store__op_chat_batch(conn, c, 2);
    cr_assert_eq(c[0]->rc, 0, "%s", c[0]->err.msg);
    free_all(c, 2);
    sql("UPDATE \"Session\" SET \"warningsSent\" = 2 WHERE \"userId\" = 'uclient'");

    struct store_req *r = room_load("room-1");
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    cr_expect_str_eq(r->u.room.status, "active");
    cr_expect_eq(r->u.room.started_unix_ms, T0);
    cr_expect_eq(r->u.room.ended_unix_ms, 0);
    cr_expect_eq(r->u.room.last_seq, 2);
    cr_expect_eq(r->u.room.warnings_sent, 2);
    cr_expect_str_eq(r->u.room.coach_session_id, coach_sid);
    cr_expect_str_eq(r->u.room.client_session_id, client_sid);
    store_req_free(r);

    /* The end, as the gateway writes it: every row completed. */
    sql("UPDATE \"Session\" SET status = 'completed',"
        " \"endedAt\" = TIMESTAMP '2026-01-01 00:20:00.456';"
        "UPDATE \"Appointment\" SET status = 'completed' WHERE id = 'appt1'");
    r = room_load("room-1");
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    cr_expect_str_eq(r->u.room.status, "completed");
    cr_expect_eq(r->u.room.started_unix_ms, T0);
    cr_expect_eq(r->u.room.ended_unix_ms, INT64_C(1767226800456));
    store_req_free(r);
}

/* ---- session join ------------------------------------------------------------------- */

Test(store_ops, session_join_creates_the_row)
{
    struct store_req *r = join("appt1", "room-1", "ucoach", T0);
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    const struct store_session_join *j = &r->u.join;
    cr_expect_eq(strlen(j->session_id), (size_t)STORE_CUID_LEN);
    cr_expect_eq(j->session_id[0], 'c');
    cr_expect_str_eq(j->status, "active");
    cr_expect_eq(j->started_unix_ms, T0);
    cr_expect_eq(j->ended_unix_ms, 0);
    char q[256];
    (void)snprintf(q, sizeof q,
                   "SELECT concat_ws('|', \"roomId\", \"appointmentId\", \"userId\","
                   " \"startedAt\"::text, \"durationMinutes\", status, \"warningsSent\","
                   " coalesce(\"endedAt\"::text, '-')) FROM \"Session\" WHERE id = '%s'",
                   j->session_id);
    expect_value(q, "room-1|appt1|ucoach|2026-01-01 00:00:00.123|30|active|0|-");
    expect_value("SELECT status FROM \"Appointment\" WHERE id = 'appt1'", "active");
    expect_value("SELECT last_seq FROM coach_room WHERE appointment_id = 'appt1'", "0");
    store_req_free(r);
}

Test(store_ops, session_join_is_idempotent)
{
    char first[STORE_ID_MAX + 1];
    join_ok("appt1", "room-1", "ucoach", T0, first);
    struct store_req *r = join("appt1", "room-1", "ucoach", T0 + 9999);
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    cr_expect_str_eq(r->u.join.session_id, first);
    cr_expect_str_eq(r->u.join.status, "active");
    cr_expect_eq(r->u.join.started_unix_ms, T0, "an active row keeps its start");
    store_req_free(r);
    expect_value("SELECT count(*) FROM \"Session\"", "1");
    expect_value("SELECT count(*) FROM coach_room", "1");

    /* A second participant: the room's start stays the earliest. */
    r = join("appt1", "room-1", "uclient", T0 + 60000);
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    cr_expect_str_neq(r->u.join.session_id, first);
    cr_expect_eq(r->u.join.started_unix_ms, T0);
    store_req_free(r);
}

Test(store_ops, session_join_reactivates_a_cancelled_row)
{
    char sid[STORE_ID_MAX + 1];
    join_ok("appt1", "room-1", "uclient", T0, sid);
    sql("UPDATE \"Session\" SET status = 'cancelled', \"endedAt\" = '2026-01-01 00:01:00',"
        " \"warningsSent\" = 1, \"durationMinutes\" = 5");
    struct store_req *r = join("appt1", "room-1", "uclient", T0 + 3600000);
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    cr_expect_str_eq(r->u.join.session_id, sid);
    cr_expect_str_eq(r->u.join.status, "active");
    cr_expect_eq(r->u.join.started_unix_ms, T0 + 3600000);
    cr_expect_eq(r->u.join.ended_unix_ms, 0);
    store_req_free(r);
    expect_value("SELECT concat_ws('|', status, \"startedAt\"::text, coalesce(\"endedAt\"::text,"
                 " '-'), \"warningsSent\", \"durationMinutes\") FROM \"Session\"",
                 "active|2026-01-01 01:00:00.123|-|0|30");
}

Test(store_ops, session_join_leaves_a_completed_row_and_appointment)
{
    char sid[STORE_ID_MAX + 1];
    join_ok("appt1", "room-1", "ucoach", T0, sid);
    sql("UPDATE \"Session\" SET status = 'completed', \"endedAt\" = '2026-01-01 00:30:00.007';"
        "UPDATE \"Appointment\" SET status = 'completed'");
    struct store_req *r = join("appt1", "room-1", "ucoach", T0 + 7200000);
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    cr_expect_str_eq(r->u.join.session_id, sid);
    cr_expect_str_eq(r->u.join.status, "completed");
    cr_expect_eq(r->u.join.started_unix_ms, T0);
    cr_expect_eq(r->u.join.ended_unix_ms, INT64_C(1767227400007));
    store_req_free(r);
    expect_value("SELECT concat_ws('|', status, \"startedAt\"::text, \"endedAt\"::text)"
                 " FROM \"Session\"",
                 "completed|2026-01-01 00:00:00.123|2026-01-01 00:30:00.007");
    expect_value("SELECT status FROM \"Appointment\" WHERE id = 'appt1'", "completed");

    /* A cancelled appointment is not made active either. */
    sql("UPDATE \"Appointment\" SET status = 'cancelled' WHERE id = 'appt2'");
    r = join("appt2", "room-2", "ucoach", T0);
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    store_req_free(r);
    expect_value("SELECT status FROM \"Appointment\" WHERE id = 'appt2'", "cancelled");
}

Test(store_ops, session_join_of_an_unknown_appointment_writes_nothing)
{
    struct store_req *r = join("nope", "room-x", "ucoach", T0);
    cr_expect_eq(r->rc, STORE_E_NOTFOUND, "%d %s", r->rc, r->err.msg);
    store_req_free(r);
    cr_expect_eq(PQtransactionStatus(conn), PQTRANS_IDLE);
    expect_value("SELECT count(*) FROM \"Session\"", "0");
    expect_value("SELECT count(*) FROM coach_room", "0");
    /* The connection is still usable. */
    r = join("appt1", "room-1", "ucoach", T0);
    cr_expect_eq(r->rc, 0, "%s", r->err.msg);
    store_req_free(r);
}

/* ---- chat --------------------------------------------------------------------------- */

struct two_rooms {
    char coach1[STORE_ID_MAX + 1], client1[STORE_ID_MAX + 1];
    char coach2[STORE_ID_MAX + 1], client2[STORE_ID_MAX + 1];
};

static void join_two_rooms(struct two_rooms *s)
{
    join_ok("appt1", "room-1", "ucoach", T0, s->coach1);
    join_ok("appt1", "room-1", "uclient", T0, s->client1);
    join_ok("appt2", "room-2", "ucoach", T0, s->coach2);
    join_ok("appt2", "room-2", "uclient", T0, s->client2);
}

static void expect_chat(const struct store_req *r, int64_t seq, int duplicate)
{
    cr_assert_eq(r->rc, 0, "chat %s: %s", r->u.chat.client_msg_id, r->err.msg);
    cr_expect_eq(r->u.chat.seq, seq, "chat %s: seq %lld, want %lld", r->u.chat.client_msg_id,
                 (long long)r->u.chat.seq, (long long)seq);
    cr_expect_eq(r->u.chat.duplicate, duplicate, "chat %s: duplicate", r->u.chat.client_msg_id);
    cr_expect_eq(strlen(r->u.chat.message_id), (size_t)STORE_CUID_LEN);
}

Test(store_ops, chat_seqs_are_contiguous_per_room_across_batches)
{
    struct two_rooms s;
    join_two_rooms(&s);
    struct store_req *b1[] = {
        chat("appt1", s.coach1, "ucoach", "a1", "one"),
        chat("appt2", s.client2, "uclient", "b1", "uno"),
        chat("appt1", s.client1, "uclient", "a2", "two"),
        chat("appt2", s.coach2, "ucoach", "b2", "dos"),
        chat("appt1", s.coach1, "ucoach", "a3", "three"),
    };
    store__op_chat_batch(conn, b1, 5);
    expect_chat(b1[0], 1, 0);
    expect_chat(b1[1], 1, 0);
    expect_chat(b1[2], 2, 0);
    expect_chat(b1[3], 2, 0);
    expect_chat(b1[4], 3, 0);
    for (size_t i = 1; i < 5; i++) {
        cr_expect_eq(b1[i]->u.chat.created_unix_ms, b1[0]->u.chat.created_unix_ms);
        cr_expect_eq(b1[i]->u.chat.commit_us, b1[0]->u.chat.commit_us);
    }
    cr_expect_gt(b1[0]->u.chat.commit_us, 0);
    cr_expect_gt(b1[0]->u.chat.created_unix_ms, T0);

    struct store_req *b2[] = {
        chat("appt2", s.coach2, "ucoach", "b3", "tres"),
        chat("appt1", s.client1, "uclient", "a4", "four"),
    };
    store__op_chat_batch(conn, b2, 2);
    expect_chat(b2[0], 3, 0);
    expect_chat(b2[1], 4, 0);
    cr_expect_geq(b2[0]->u.chat.created_unix_ms, b1[0]->u.chat.created_unix_ms);

    /* What the database holds: the "Message" rows and their seqs. */
    char q[512], ts[40], want[128];
    (void)snprintf(q, sizeof q,
                   "SELECT concat_ws('|', m.\"sessionId\" = '%s', m.\"userId\", m.sender,"
                   " m.content, cm.seq, cm.client_msg_id, m.\"createdAt\"::text)"
                   " FROM \"Message\" m JOIN coach_message cm ON cm.message_id = m.id"
                   " WHERE m.id = '%s'",
                   s.client1, b1[2]->u.chat.message_id);
    pg_timestamp(b1[2]->u.chat.created_unix_ms, ts, sizeof ts);
    (void)snprintf(want, sizeof want, "t|uclient|client|two|2|a2|%s", ts);
    expect_value(q, want);
    expect_value("SELECT string_agg(seq::text, ',' ORDER BY seq) FROM coach_message"
                 " WHERE appointment_id = 'appt1'",
                 "1,2,3,4");
    expect_value("SELECT string_agg(appointment_id || ':' || last_seq, ','"
                 " ORDER BY appointment_id) FROM coach_room",
                 "appt1:4,appt2:3");
    expect_value("SELECT count(*) FROM \"Message\" WHERE sender = 'coach'", "4");
    free_all(b1, 5);
    free_all(b2, 2);
}

/* A duplicate completes with the original's seq, id and time. */
static void expect_same_message(const struct store_req *dup, const struct store_req *orig)
{
    cr_expect_eq(dup->u.chat.seq, orig->u.chat.seq);
    cr_expect(strcmp(dup->u.chat.message_id, orig->u.chat.message_id) == 0, "%s != %s",
              dup->u.chat.message_id, orig->u.chat.message_id);
    cr_expect_eq(dup->u.chat.created_unix_ms, orig->u.chat.created_unix_ms);
}

Test(store_ops, chat_duplicates_return_the_original)
{
    struct two_rooms s;
    join_two_rooms(&s);
    struct store_req *b1[] = {chat("appt1", s.coach1, "ucoach", "x", "first")};
    store__op_chat_batch(conn, b1, 1);
    expect_chat(b1[0], 1, 0);

    struct store_req *b2[] = {
        chat("appt1", s.coach1, "ucoach", "x", "resent"),    /* stored earlier */
        chat("appt1", s.coach1, "ucoach", "y", "new"),       /* new */
        chat("appt1", s.coach1, "ucoach", "y", "again"),     /* same batch */
        chat("appt1", s.client1, "uclient", "x", "other"),   /* another user's x */
        chat("appt2", s.coach2, "ucoach", "x", "elsewhere"), /* another room's x */
        chat("appt1", s.coach1, "ucoach", "x", "thrice"),    /* stored, twice in batch */
    };
    store__op_chat_batch(conn, b2, 6);
    expect_chat(b2[0], 1, 1);
    expect_same_message(b2[0], b1[0]);
    expect_chat(b2[1], 2, 0);
    expect_chat(b2[2], 2, 1);
    expect_same_message(b2[2], b2[1]);
    expect_chat(b2[3], 3, 0);
    expect_chat(b2[4], 1, 0);
    expect_chat(b2[5], 1, 1);
    expect_same_message(b2[5], b1[0]);

    expect_value("SELECT string_agg(content, ',' ORDER BY cm.appointment_id, seq)"
                 " FROM \"Message\" m JOIN coach_message cm ON cm.message_id = m.id",
                 "first,new,other,elsewhere");
    expect_value("SELECT last_seq FROM coach_room WHERE appointment_id = 'appt1'", "3");
    free_all(b1, 1);
    free_all(b2, 6);

    /* A batch of nothing but duplicates writes nothing. */
    struct store_req *b3[] = {chat("appt1", s.coach1, "ucoach", "y", "once more")};
    store__op_chat_batch(conn, b3, 1);
    expect_chat(b3[0], 2, 1);
    free_all(b3, 1);
    expect_value("SELECT count(*) FROM \"Message\"", "4");
}

/* Run two statements behind the store's back in one implicit transaction
 * and return the name of the constraint that refused them ("" if none). */
static void behind_the_back(const char *sid, int64_t seq, const char *cmid, char *constraint,
                            size_t cap)
{
    char q[512], seq_s[24];
    (void)snprintf(seq_s, sizeof seq_s, "%lld", (long long)seq);
    (void)snprintf(q, sizeof q,
                   "INSERT INTO \"Message\" (id, \"sessionId\", \"userId\", sender, content)"
                   " VALUES ('m-evil', '%s', 'ucoach', 'coach', 'dup');"
                   "INSERT INTO coach_message (message_id, appointment_id, seq, user_id,"
                   " client_msg_id) VALUES ('m-evil', 'appt1', %s, 'ucoach', '%s')",
                   sid, seq_s, cmid);
    PGresult *res = PQexec(conn, q);
    const char *name = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
    (void)snprintf(constraint, cap, "%s", name != NULL ? name : "");
    PQclear(res);
}

Test(store_ops, the_database_rejects_duplicates_behind_the_stores_back)
{
    struct two_rooms s;
    join_two_rooms(&s);
    struct store_req *b[] = {chat("appt1", s.coach1, "ucoach", "k1", "hello")};
    store__op_chat_batch(conn, b, 1);
    expect_chat(b[0], 1, 0);
    free_all(b, 1);
    char name[64];
    /* Same (appointment, user, clientMsgId), new seq: refused. */
    behind_the_back(s.coach1, 2, "k1", name, sizeof name);
    cr_expect_str_eq(name, "coach_message_appointment_id_user_id_client_msg_id_key");
    /* Same seq, new key: refused. */
    behind_the_back(s.coach1, 1, "k2", name, sizeof name);
    cr_expect_str_eq(name, "coach_message_appointment_id_seq_key");
    /* A seq of 0: refused. */
    behind_the_back(s.coach1, 0, "k3", name, sizeof name);
    cr_expect_str_eq(name, "coach_message_seq_check");
    expect_value("SELECT count(*) FROM \"Message\"", "1");
    expect_value("SELECT count(*) FROM coach_message", "1");
    /* Deleting the "Message" row takes its seq row with it. */
    sql("DELETE FROM \"Message\"");
    expect_value("SELECT count(*) FROM coach_message", "0");
}

Test(store_ops, one_bad_chat_fails_alone)
{
    struct two_rooms s;
    join_two_rooms(&s);
    char doomed[STORE_ID_MAX + 1];
    join_ok("appt1", "room-1", "uadmin", T0, doomed);
    char q[256];
    (void)snprintf(q, sizeof q, "DELETE FROM \"Session\" WHERE id = '%s'", doomed);
    sql(q);
    struct store_req *b[] = {
        chat("appt1", s.coach1, "ucoach", "g1", "good"),
        chat("appt1", doomed, "uclient", "bad", "its Session row is gone"),
        chat("appt2", s.client2, "uclient", "g2", "good too"),
        chat("appt1", s.client1, "uclient", "utf8", "bad \xc3\x28 utf-8"),
        chat("appt1", s.client1, "uclient", "g3", "still good"),
    };
    b[1]->u.chat.role = STORE_ROLE_CLIENT;
    store__op_chat_batch(conn, b, 5);
    expect_chat(b[0], 1, 0);
    cr_expect_eq(b[1]->rc, STORE_E_QUERY, "%d %s", b[1]->rc, b[1]->err.msg);
    cr_expect_eq(b[1]->u.chat.seq, 0);
    cr_expect_eq(b[1]->u.chat.message_id[0], '\0');
    cr_expect_not_null(strstr(b[1]->err.msg, "23503"), "%s", b[1]->err.msg);
    expect_chat(b[2], 1, 0);
    cr_expect_eq(b[3]->rc, STORE_E_QUERY, "%d %s", b[3]->rc, b[3]->err.msg);
    expect_chat(b[4], 2, 0);
    cr_expect_eq(PQtransactionStatus(conn), PQTRANS_IDLE);
    expect_value("SELECT string_agg(content, ',' ORDER BY content) FROM \"Message\"",
                 "good,good too,still good");
    expect_value("SELECT string_agg(appointment_id || ':' || last_seq, ','"
                 " ORDER BY appointment_id) FROM coach_room",
                 "appt1:2,appt2:1");
    free_all(b, 5);
}

Test(store_ops, a_sender_without_a_session_row_fails_alone)
{
    struct two_rooms s;
    join_two_rooms(&s);
    /* No sessionId given: the sender's row is looked up. uadmin has none
     * in appt1. Only its chats fail, with STORE_E_STATE, in the batch's
     * one transaction (a whole batch failing and rerun one by one would
     * answer STORE_E_QUERY, 23502). */
    struct store_req *b[] = {
        chat("appt1", "", "ucoach", "s1", "looked up"),
        chat("appt1", "", "uadmin", "s2", "no row"),
        chat("appt1", s.client1, "uclient", "s3", "given"),
        chat("appt1", "", "uadmin", "s2", "no row, again"),
    };
    b[1]->u.chat.role = STORE_ROLE_CLIENT;
    b[3]->u.chat.role = STORE_ROLE_CLIENT;
    store__op_chat_batch(conn, b, 4);
    expect_chat(b[0], 1, 0);
    expect_chat(b[2], 2, 0);
    for (size_t i = 1; i < 4; i += 2) {
        cr_expect_eq(b[i]->rc, STORE_E_STATE, "chat %zu: %d %s", i, b[i]->rc, b[i]->err.msg);
        cr_expect_eq(b[i]->u.chat.seq, 0);
        cr_expect_eq(b[i]->u.chat.message_id[0], '\0');
        cr_expect_not_null(strstr(b[i]->err.msg, "no Session row"), "%s", b[i]->err.msg);
    }
    cr_expect_eq(PQtransactionStatus(conn), PQTRANS_IDLE);
    char q[256];
    (void)snprintf(q, sizeof q,
                   "SELECT string_agg(\"sessionId\" || ':' || content, ',' ORDER BY content)"
                   " FROM \"Message\"");
    char want[256];
    (void)snprintf(want, sizeof want, "%s:given,%s:looked up", s.client1, s.coach1);
    expect_value(q, want);
    free_all(b, 4);
}

Test(store_ops, a_failed_batch_leaves_nothing)
{
    struct two_rooms s;
    join_two_rooms(&s);
    sql("DELETE FROM coach_room");
    struct store_req *b[] = {
        chat("appt1", "no-such-session", "ucoach", "n1", "lost"),
        chat("appt2", "no-such-session", "uclient", "n2", "lost too"),
        chat("appt1", s.coach1, "ucoach", "nul", "x"),
    };
    b[2]->u.chat.text[0] = '\0'; /* a NUL byte inside the text: PostgreSQL refuses it */
    store__op_chat_batch(conn, b, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_expect_eq(b[i]->rc, STORE_E_QUERY, "chat %zu: %d %s", i, b[i]->rc, b[i]->err.msg);
        cr_expect_eq(b[i]->u.chat.seq, 0);
    }
    cr_expect_eq(PQtransactionStatus(conn), PQTRANS_IDLE);
    expect_value("SELECT count(*) FROM \"Message\"", "0");
    expect_value("SELECT count(*) FROM coach_message", "0");
    expect_value("SELECT count(*) FROM coach_room", "0");
    free_all(b, 3);
}

Test(store_ops, chat_refuses_observers_and_missing_fields)
{
    struct two_rooms s;
    join_two_rooms(&s);
    struct store_req *b[] = {
        chat("appt1", s.coach1, "ucoach", "o1", "observer"),
        chat("appt1", s.coach1, "ucoach", "", "no clientMsgId"),
        chat("appt1", s.coach1, "ucoach", "ok", "fine"),
    };
    b[0]->u.chat.role = STORE_ROLE_OBSERVER;
    store__op_chat_batch(conn, b, 3);
    cr_expect_eq(b[0]->rc, -EINVAL);
    cr_expect_eq(b[1]->rc, -EINVAL);
    expect_chat(b[2], 1, 0);
    free_all(b, 3);
    expect_value("SELECT count(*) FROM \"Message\"", "1");
}

Test(store_ops, a_lost_connection_fails_the_whole_batch)
{
    struct two_rooms s;
    join_two_rooms(&s);
    char q[128];
    (void)snprintf(q, sizeof q, "SELECT pg_terminate_backend(%d)", PQbackendPID(conn));
    sql(q);
    struct store_req *b[] = {
        chat("appt1", s.coach1, "ucoach", "l1", "lost"),
        chat("appt1", s.client1, "uclient", "l2", "lost too"),
    };
    store__op_chat_batch(conn, b, 2);
    cr_expect_eq(PQstatus(conn), CONNECTION_BAD);
    for (size_t i = 0; i < 2; i++) {
        cr_expect_eq(b[i]->rc, STORE_E_QUERY, "chat %zu: %d %s", i, b[i]->rc, b[i]->err.msg);
        cr_expect_eq(b[i]->u.chat.seq, 0);
    }
    free_all(b, 2);
    expect_value("SELECT count(*) FROM \"Message\"", "0");
}

/* Two writers (two connections, as two gateway nodes would have) on the
 * same rooms at once: the room lock keeps seqs contiguous and unique. */
struct writer {
    const struct two_rooms *s;
    int id;
    int failures;
};

static void *write_batches(void *arg)
{
    struct writer *wr = arg;
    PGconn *c = storetest_connect(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        wr->failures = -1;
        PQfinish(c);
        return NULL;
    }
    for (int round = 0; round < 20; round++) {
        struct store_req *b[10];
        for (int i = 0; i < 10; i++) {
            char cmid[32];
            (void)snprintf(cmid, sizeof cmid, "w%d-%d-%d", wr->id, round, i);
            b[i] = chat(i % 2 ? "appt1" : "appt2", i % 2 ? wr->s->coach1 : wr->s->coach2, "ucoach",
                        cmid, "concurrent");
        }
        store__op_chat_batch(c, b, 10);
        for (int i = 0; i < 10; i++) {
            wr->failures += b[i]->rc != 0;
        }
        free_all(b, 10);
    }
    PQfinish(c);
    return NULL;
}

Test(store_ops, concurrent_writers_keep_seqs_contiguous)
{
    struct two_rooms s;
    join_two_rooms(&s);
    struct writer wr[3] = {{&s, 0, 0}, {&s, 1, 0}, {&s, 2, 0}};
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(pthread_create(&t[i], NULL, write_batches, &wr[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        cr_expect_eq(wr[i].failures, 0, "writer %d", i);
    }
    expect_value("SELECT string_agg(appointment_id || ':' || n || ':' || lo || ':' || hi, ','"
                 " ORDER BY appointment_id) FROM (SELECT appointment_id, count(*) AS n,"
                 " min(seq) AS lo, max(seq) AS hi FROM coach_message GROUP BY 1) x",
                 "appt1:300:1:300,appt2:300:1:300");
    expect_value("SELECT string_agg(appointment_id || ':' || last_seq, ','"
                 " ORDER BY appointment_id) FROM coach_room",
                 "appt1:300,appt2:300");
}

Test(store_ops, statements_lost_from_the_session_are_prepared_again)
{
    struct two_rooms s;
    join_two_rooms(&s);
    PQclear(PQexec(conn, "DEALLOCATE ALL"));
    struct store_req *r = room_load("room-1");
    cr_expect_eq(r->rc, 0, "%s", r->err.msg);
    store_req_free(r);
    PQclear(PQexec(conn, "DISCARD ALL"));
    struct store_req *b[] = {
        chat("appt1", s.coach1, "ucoach", "d1", "after discard"),
        chat("appt1", s.client1, "uclient", "d2", "after discard too"),
    };
    store__op_chat_batch(conn, b, 2);
    expect_chat(b[0], 1, 0);
    expect_chat(b[1], 2, 0);
    free_all(b, 2);
}

Test(store_ops, a_database_without_the_tables_fails_cleanly)
{
    char empty_db[64], empty[512];
    cr_assert_eq(pgtest_db_create(0, empty_db, sizeof empty_db, empty, sizeof empty), 0);
    PGconn *c = storetest_connect(empty);
    cr_assert_eq(PQstatus(c), CONNECTION_OK);
    struct store_req *r = new_req(STORE_OP_AUTH_USER);
    (void)snprintf(r->u.auth_user.user.id, sizeof r->u.auth_user.user.id, "ucoach");
    store__op_auth_user(c, r);
    cr_expect_eq(r->rc, STORE_E_QUERY);
    cr_expect_not_null(strstr(r->err.msg, "42P01"), "%s", r->err.msg);
    store_req_free(r);
    cr_expect_eq(PQstatus(c), CONNECTION_OK);
    cr_expect_eq(PQpipelineStatus(c), PQ_PIPELINE_OFF);
    cr_expect_eq(PQtransactionStatus(c), PQTRANS_IDLE);
    PQfinish(c);
    pgtest_db_drop(empty_db);
}

/* ---- history ---------------------------------------------------------------------------- */

/* Seven messages in appt1, alternating coach and client, seqs 1..7. */
static void seven_messages(void)
{
    struct two_rooms s;
    join_two_rooms(&s);
    struct store_req *b[7];
    for (int i = 0; i < 7; i++) {
        char cmid[16], text[32];
        (void)snprintf(cmid, sizeof cmid, "h%d", i + 1);
        (void)snprintf(text, sizeof text, "message %d", i + 1);
        int coach = i % 2 == 0;
        b[i] =
            chat("appt1", coach ? s.coach1 : s.client1, coach ? "ucoach" : "uclient", cmid, text);
    }
    store__op_chat_batch(conn, b, 3);
    store__op_chat_batch(conn, b + 3, 4);
    for (int i = 0; i < 7; i++) {
        expect_chat(b[i], i + 1, 0);
    }
    free_all(b, 7);
}

Test(store_ops, history_forward_pages)
{
    seven_messages();
    struct store_req *r = history("appt1", 0, 0, 3);
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    cr_assert_eq(r->u.history.n_msgs, 3);
    const struct store_message *m = &r->u.history.msgs[1];
    cr_expect_eq(m->seq, 2);
    cr_expect_str_eq(m->client_msg_id, "h2");
    cr_expect_str_eq(m->user_id, "uclient");
    cr_expect_str_eq(m->display_name, "Client Chloé");
    cr_expect_eq(m->role, STORE_ROLE_CLIENT);
    cr_expect_str_eq(m->text, "message 2");
    cr_expect_eq(strlen(m->message_id), (size_t)STORE_CUID_LEN);
    cr_expect_gt(m->created_unix_ms, T0);
    cr_expect_eq(r->u.history.msgs[0].role, STORE_ROLE_COACH);
    cr_expect_str_eq(r->u.history.msgs[0].display_name, "Coach Carla");
    expect_page(r, "1,2,3+");
    expect_page(history("appt1", 3, 0, 4), "4,5,6,7");
    expect_page(history("appt1", 4, 0, 3), "5,6,7");
    expect_page(history("appt1", 4, 0, 2), "5,6+");
    expect_page(history("appt1", 7, 0, 5), "");
    expect_page(history("appt1", 0, 0, 1000), "1,2,3,4,5,6,7");
    expect_page(history("appt2", 0, 0, 10), "");
}

Test(store_ops, history_backward_pages)
{
    seven_messages();
    expect_page(history("appt1", -1, INT64_MAX, 3), "5,6,7+");
    expect_page(history("appt1", -1, 5, 3), "2,3,4+");
    expect_page(history("appt1", -1, 5, 4), "1,2,3,4");
    expect_page(history("appt1", -1, 5, 5), "1,2,3,4");
    expect_page(history("appt1", -1, 2, 1), "1");
    expect_page(history("appt1", -1, 1, 10), "");
    expect_page(history("appt1", -1, INT64_MAX, 7), "1,2,3,4,5,6,7");
}

Test(store_ops, history_refuses_a_limit_out_of_range)
{
    const int bad[] = {0, -1, 1001};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct store_req *r = history("appt1", 0, 0, bad[i]);
        cr_expect_eq(r->rc, -EINVAL);
        cr_expect_eq(r->u.history.n_msgs, 0);
        store_req_free(r);
    }
}

/* ---- timestamps ---------------------------------------------------------------------------- */

Test(store_ops, timestamps_round_trip_to_the_ms_in_any_session_time_zone)
{
    /* The session's TimeZone must not matter: TIMESTAMP(3) is UTC wall time. */
    PQclear(PQexec(conn, "SET TimeZone = 'America/New_York'"));
    const int64_t at[] = {T0, INT64_C(1767225600999), INT64_C(1700000000001),
                          INT64_C(1719792000500)}; /* 2024-07-01: summer time in New York */
    const char *appts[] = {"appt1", "appt1", "appt2", "appt2"};
    const char *users[] = {"ucoach", "uclient", "ucoach", "uclient"};
    for (size_t i = 0; i < 4; i++) {
        struct store_req *r = join(appts[i], i < 2 ? "room-1" : "room-2", users[i], at[i]);
        cr_assert_eq(r->rc, 0, "%s", r->err.msg);
        char q[256], ts[40];
        (void)snprintf(q, sizeof q, "SELECT \"startedAt\"::text FROM \"Session\" WHERE id = '%s'",
                       r->u.join.session_id);
        pg_timestamp(at[i], ts, sizeof ts);
        expect_value(q, ts);
        store_req_free(r);
    }
    struct store_req *r = room_load("room-1");
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    cr_expect_eq(r->u.room.started_unix_ms, T0);
    cr_expect_eq(r->u.room.scheduled_unix_ms, INT64_C(1904281689123));
    store_req_free(r);
    r = room_load("room-2");
    cr_assert_eq(r->rc, 0, "%s", r->err.msg);
    cr_expect_eq(r->u.room.started_unix_ms, INT64_C(1700000000001));
    store_req_free(r);

    /* A chat's createdAt: what the ack says is what is stored and read back. */
    char sid[STORE_ID_MAX + 1];
    join_ok("appt1", "room-1", "ucoach", T0, sid);
    struct store_req *c[] = {chat("appt1", sid, "ucoach", "t1", "tick")};
    store__op_chat_batch(conn, c, 1);
    expect_chat(c[0], 1, 0);
    int64_t created = c[0]->u.chat.created_unix_ms;
    int64_t db_ms = query_i64("SELECT (extract(epoch FROM \"createdAt\") * 1000)::int8"
                              " FROM \"Message\"");
    cr_expect_eq(db_ms, created);
    int64_t now_ms = query_i64("SELECT (extract(epoch FROM now()) * 1000)::int8");
    cr_expect(created <= now_ms && created > now_ms - 60000, "createdAt is UTC now");
    struct store_req *h = history("appt1", 0, 0, 1);
    cr_assert_eq(h->rc, 0);
    cr_assert_eq(h->u.history.n_msgs, 1);
    cr_expect_eq(h->u.history.msgs[0].created_unix_ms, created);
    store_req_free(h);
    free_all(c, 1);
}

/* ---- through the store thread ---------------------------------------------------------------- */

enum { ROOMS = 10, PER_ROOM = 100, N_CHATS = 1000 };
static_assert(N_CHATS == ROOMS * PER_ROOM, "every room gets PER_ROOM chats");

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int woken; /* {mu} */
};

static struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

static void wake(void *arg)
{
    struct waiter *wt = arg;
    pthread_mutex_lock(&wt->mu);
    wt->woken = 1;
    pthread_cond_signal(&wt->cv);
    pthread_mutex_unlock(&wt->mu);
}

struct outcome {
    int done;
    int rc;
    int64_t seq;
    int64_t commit_us;
    int64_t created_ms;
};

static struct outcome outcomes[N_CHATS];
static size_t n_done;

static void on_done(struct store_req *req)
{
    struct outcome *o = req->arg;
    o->done = 1;
    o->rc = req->rc;
    o->seq = req->u.chat.seq;
    o->commit_us = req->u.chat.commit_us;
    o->created_ms = req->u.chat.created_unix_ms;
    n_done++;
    store_req_free(req);
}

/* Wait for the wake callback, at most until deadline (CLOCK_REALTIME). */
static void wait_wake(const struct timespec *deadline)
{
    pthread_mutex_lock(&w.mu);
    while (!w.woken) {
        if (pthread_cond_timedwait(&w.cv, &w.mu, deadline) != 0) {
            break;
        }
    }
    w.woken = 0;
    pthread_mutex_unlock(&w.mu);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* n appointments "<prefix><k>" with rooms "<prefix>-room-<k>", each with
 * the coach's Session row (its id in sids[k]). */
static void make_rooms(const char *prefix, int n, char appt[][16], char sids[][STORE_ID_MAX + 1])
{
    for (int k = 0; k < n; k++) {
        char q[512], room[32];
        (void)snprintf(appt[k], 16, "%s%d", prefix, k);
        (void)snprintf(room, sizeof room, "%s-room-%d", prefix, k);
        (void)snprintf(q, sizeof q,
                       "INSERT INTO \"Appointment\" (id, \"scheduledFor\", \"clientId\","
                       " \"coachId\", \"roomId\") VALUES ('%s', now(), 'uclient', 'ucoach', '%s')",
                       appt[k], room);
        sql(q);
        join_ok(appt[k], room, "ucoach", T0, sids[k]);
    }
}

Test(store_ops, the_store_thread_batches_1000_chats, .timeout = 120)
{
    char sids[ROOMS][STORE_ID_MAX + 1];
    char appt[ROOMS][16];
    make_rooms("bulk", ROOMS, appt, sids);
    struct store_cfg cfg = {.conninfo = conninfo,
                            .timeout_ms = 30000,
                            .queue_cap = N_CHATS,
                            .wake = wake,
                            .wake_arg = &w};
    struct store *st = NULL;
    struct store_err err = {0};
    cr_assert_eq(store_open(&cfg, &st, &err), 0, "%s", err.msg);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < N_CHATS; i++) {
        struct store_req *r = store_req_new(STORE_OP_CHAT, on_done, &outcomes[i]);
        cr_assert_not_null(r);
        struct store_chat *c = &r->u.chat;
        int k = i % ROOMS;
        (void)snprintf(c->appointment_id, sizeof c->appointment_id, "%s", appt[k]);
        (void)snprintf(c->session_id, sizeof c->session_id, "%s", sids[k]);
        (void)snprintf(c->user_id, sizeof c->user_id, "ucoach");
        (void)snprintf(c->client_msg_id, sizeof c->client_msg_id, "bulk-%d", i);
        c->role = STORE_ROLE_COACH;
        c->text = malloc(32);
        cr_assert_not_null(c->text);
        c->text_len = (size_t)snprintf(c->text, 32, "message %d", i);
        cr_assert_eq(store_submit(st, r, store__now_ms()), 0);
    }
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 60;
    while (n_done < N_CHATS) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        cr_assert_lt(now.tv_sec, deadline.tv_sec, "timed out with %zu of %d done", n_done, N_CHATS);
        wait_wake(&deadline);
        store_run_done(st);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_expect_eq(store_in_flight(st), 0);
    store_close(st);

    /* Per room, in submission order: seqs 1..PER_ROOM. */
    int64_t commits[N_CHATS];
    for (int i = 0; i < N_CHATS; i++) {
        cr_assert(outcomes[i].done && outcomes[i].rc == 0, "chat %d: rc %d", i, outcomes[i].rc);
        cr_expect_eq(outcomes[i].seq, i / ROOMS + 1, "chat %d: seq %lld", i,
                     (long long)outcomes[i].seq);
        /* A batch shares its commit time and its createdAt. */
        commits[i] = outcomes[i].commit_us * 1000000 + outcomes[i].created_ms % 1000000;
    }
    qsort(commits, N_CHATS, sizeof commits[0], cmp_i64);
    size_t batches = 1;
    for (int i = 1; i < N_CHATS; i++) {
        batches += commits[i] != commits[i - 1];
    }
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    cr_log_info("1000 chats in %zu transactions, %.1f ms (%.0f chats/s)", batches, secs * 1e3,
                N_CHATS / secs);
    cr_expect_lt(batches, (size_t)N_CHATS, "the chats were batched");
    expect_value("SELECT count(*) FROM coach_message WHERE appointment_id LIKE 'bulk%'", "1000");
    expect_value("SELECT string_agg(DISTINCT last_seq::text, ',') FROM coach_room"
                 " WHERE appointment_id LIKE 'bulk%'",
                 "100");
}

static size_t chats_before_signin = SIZE_MAX;

static void on_signin(struct store_req *req)
{
    cr_expect_eq(req->rc, 0, "the sign-in: %s", req->err.msg);
    chats_before_signin = n_done;
    store_req_free(req);
}

/* A hello's token check goes ahead of a shard's queued chats: after a
 * reconnect storm, sign-ins must not wait behind the rooms' batches. */
Test(store_ops, a_sign_in_overtakes_queued_chats, .timeout = 120)
{
    char sid[STORE_ID_MAX + 1];
    join_ok("appt1", "room-1", "ucoach", T0, sid);
    add_user_session("us1", "tok-valid", "sk-coach", "'2099-01-02 03:04:05.678'", "true");
    struct store_cfg cfg = {.conninfo = conninfo,
                            .connections = 1,
                            .timeout_ms = 30000,
                            .queue_cap = N_CHATS + 1,
                            .wake = wake,
                            .wake_arg = &w};
    struct store *st = NULL;
    struct store_err err = {0};
    cr_assert_eq(store_open(&cfg, &st, &err), 0, "%s", err.msg);
    for (int i = 0; i < N_CHATS; i++) {
        struct store_req *r = chat("appt1", sid, "ucoach", "", "queued");
        (void)snprintf(r->u.chat.client_msg_id, sizeof r->u.chat.client_msg_id, "q-%d", i);
        r->done = on_done;
        r->arg = &outcomes[i];
        cr_assert_eq(store_submit(st, r, store__now_ms()), 0);
    }
    struct store_req *a = store_req_new(STORE_OP_AUTH_SESSION, on_signin, NULL);
    cr_assert_not_null(a);
    (void)snprintf(a->u.auth_session.token, sizeof a->u.auth_session.token, "tok-valid");
    cr_assert_eq(store_submit(st, a, store__now_ms()), 0);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 60;
    while (n_done < N_CHATS || chats_before_signin == SIZE_MAX) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        cr_assert_lt(now.tv_sec, deadline.tv_sec, "timed out with %zu of %d done", n_done, N_CHATS);
        wait_wake(&deadline);
        store_run_done(st);
    }
    store_close(st);
    for (int i = 0; i < N_CHATS; i++) {
        cr_assert(outcomes[i].done && outcomes[i].rc == 0, "chat %d: rc %d", i, outcomes[i].rc);
        cr_expect_eq(outcomes[i].seq, i + 1, "the chats keep their order");
    }
    /* at most the batch in progress (a group commit takes up to 256) went
     * first; in plain FIFO order all 1000 would have */
    cr_expect_lt(chats_before_signin, (size_t)N_CHATS / 2, "%zu chats were written first",
                 chats_before_signin);
}

/* Submit chats [from, to) of the rooms appt[] (one chat in turn each) and
 * collect every answer into out[]. */
static void chats_through(struct store *st, char appt[][16], char sids[][STORE_ID_MAX + 1],
                          int rooms, int from, int to, struct outcome *out)
{
    size_t want = n_done + (size_t)(to - from);
    for (int i = from; i < to; i++) {
        struct store_req *r = store_req_new(STORE_OP_CHAT, on_done, &out[i]);
        cr_assert_not_null(r);
        struct store_chat *c = &r->u.chat;
        (void)snprintf(c->appointment_id, sizeof c->appointment_id, "%s", appt[i % rooms]);
        (void)snprintf(c->session_id, sizeof c->session_id, "%s", sids[i % rooms]);
        (void)snprintf(c->user_id, sizeof c->user_id, "ucoach");
        (void)snprintf(c->client_msg_id, sizeof c->client_msg_id, "stats-%d", i);
        c->role = STORE_ROLE_COACH;
        c->text = strdup("a chat");
        cr_assert_not_null(c->text);
        c->text_len = strlen(c->text);
        cr_assert_eq(store_submit(st, r, store__now_ms()), 0);
    }
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 60;
    while (n_done < want) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        cr_assert_lt(now.tv_sec, deadline.tv_sec, "timed out");
        wait_wake(&deadline);
        store_run_done(st);
    }
}

/* The chat tables' statistics are brought up to date as they grow (the
 * checks at 500, 2000, ... chats written), by the store's background
 * connection, not in the way of the rooms' chats. */
Test(store_ops, the_chat_tables_are_analyzed_as_they_grow, .timeout = 120)
{
    enum { N = 2500, R = 5 };
    char sids[R][STORE_ID_MAX + 1];
    char appt[R][16];
    make_rooms("stats", R, appt, sids);
    expect_value("SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'Message'"
                 " AND last_analyze IS NOT NULL",
                 "0");
    /* one room connection, so that it writes all the chats and passes the
     * 2000 check; the refresh runs on the background one */
    struct store_cfg cfg = {.conninfo = conninfo,
                            .connections = 1,
                            .timeout_ms = 30000,
                            .queue_cap = N,
                            .wake = wake,
                            .wake_arg = &w};
    struct store *st = NULL;
    struct store_err err = {0};
    cr_assert_eq(store_open(&cfg, &st, &err), 0, "%s", err.msg);
    static struct outcome out[N];
    n_done = 0;
    /* PostgreSQL publishes its row counts about once a second: the second
     * wave's check (2000 chats) sees the first wave's rows */
    chats_through(st, appt, sids, R, 0, 1200, out);
    nanosleep(&(struct timespec){.tv_sec = 1, .tv_nsec = 500 * 1000 * 1000}, NULL);
    chats_through(st, appt, sids, R, 1200, N, out);
    int analyzed = 0;
    for (int i = 0; i < 100 && !analyzed; i++) {
        char *v = pgtest_query_value(conninfo, "SELECT count(*) FROM pg_stat_user_tables"
                                               " WHERE relname IN ('Message', 'coach_message')"
                                               " AND last_analyze IS NOT NULL");
        analyzed = v != NULL && strcmp(v, "2") == 0;
        free(v);
        if (!analyzed) {
            nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
        }
    }
    cr_expect(analyzed, "Message and coach_message analyzed (by the store, not autovacuum)");
    store_close(st);
    for (int i = 0; i < N; i++) {
        cr_assert(out[i].done && out[i].rc == 0, "chat %d: rc %d", i, out[i].rc);
    }
}
