/*
 * test_ws.c: the live room over real WebSockets against the real binary
 * and a real PostgreSQL: authentication (session token, JWT, header or
 * hello), join rules, presence, durable chat with ack after commit and
 * exactly-once per clientMsgId, recovery with `since`, history, typing,
 * and every kind of bad input getting its error or close code.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "gwproc.h"
#include "jwt.h"
#include "pgtest.h"
#include "wsclient.h"

#define COACH        "ccoach0000000000000000001"
#define CLIENT       "cclient000000000000000001"
#define ADMIN        "cadmin0000000000000000001"
#define STRANGER     "cstrange00000000000000001"
#define TOK_COACH    "tok-coach-0123456789abcdefghijklmnopqrstuvw"
#define TOK_CLIENT   "tok-client-0123456789abcdefghijklmnopqrstuv"
#define TOK_ADMIN    "tok-admin-0123456789abcdefghijklmnopqrstuvw"
#define TOK_STRANGER "tok-stranger-0123456789abcdefghijklmnopqrst"
#define TOK_EXPIRED  "tok-expired-0123456789abcdefghijklmnopqrstu"
#define TOK_INACTIVE "tok-inactive-0123456789abcdefghijklmnopqrst"
#define SECRET       "test-jwt-secret-0123456789"
#define WAIT         5000

static const char seed_sql[] =
    "INSERT INTO \"User\"(id,email,\"displayName\",role,\"updatedAt\",\"skoolUserId\") VALUES"
    " ('" COACH "','coach@t','Dana Coach','coach',now(),'sk-coach'),"
    " ('" CLIENT "','client@t','Sam Client','client',now(),'sk-client'),"
    " ('" ADMIN "','admin@t','Ada Admin','admin',now(),'sk-admin'),"
    " ('" STRANGER "','s@t','Stan Ger','client',now(),'sk-stranger');"
    "INSERT INTO \"AuthCode\"(id,code,\"skoolUserId\",\"skoolUsername\",\"expiresAt\") VALUES"
    " ('cauth1','vgs-1-a','sk-coach','coach',now()+interval '1 hour');"
    "INSERT INTO \"UserSession\"(id,\"sessionId\",\"skoolUserId\",\"skoolUsername\","
    "\"authCodeUsed\",\"expiresAt\",\"ipAddress\",\"userAgent\",\"deviceFingerprint\",\"isActive\")"
    " VALUES"
    " ('cus1','" TOK_COACH "','sk-coach','c','vgs-1-a',now()+interval '1 day','::1','t','f',true),"
    " ('cus2','" TOK_CLIENT
    "','sk-client','c','vgs-1-a',now()+interval '1 day','::1','t','f',true),"
    " ('cus3','" TOK_ADMIN "','sk-admin','c','vgs-1-a',now()+interval '1 day','::1','t','f',true),"
    " ('cus4','" TOK_STRANGER "','sk-stranger','c','vgs-1-a',now()+interval '1 day','::1','t','f',"
    "true),"
    " ('cus5','" TOK_EXPIRED "','sk-client','c','vgs-1-a',now()-interval '1 minute','::1','t','f',"
    "true),"
    " ('cus6','" TOK_INACTIVE "','sk-client','c','vgs-1-a',now()+interval '1 day','::1','t','f',"
    "false);"
    "INSERT INTO \"Appointment\"(id,\"scheduledFor\",\"durationMin\",\"clientId\",\"coachId\","
    "\"roomId\",status) VALUES"
    " ('cappt1',now() at time zone 'UTC',20,'" CLIENT "','" COACH "','room-1','scheduled'),"
    " ('cappt2',now() at time zone 'UTC',20,'" CLIENT "','" COACH "','room-cancelled',"
    "'cancelled'),"
    " ('cappt3',(now() at time zone 'UTC')+interval '2 hours',20,'" CLIENT "','" COACH "',"
    "'room-future','scheduled');";

static char dbname[64], conninfo[512];
static struct gwproc gp;

static void start_gateway(const char *extra)
{
    cr_assert_eq(sodium_init() >= 0, 1);
    cr_assert_eq(pgtest_db_create(1, dbname, sizeof(dbname), conninfo, sizeof(conninfo)), 0);
    cr_assert_eq(pgtest_exec(conninfo, seed_sql), 0);
    char env_db[600];
    snprintf(env_db, sizeof(env_db), "DATABASE_URL=%s", conninfo);
    const char *env[] = {env_db,
                         "JWT_SECRET=" SECRET,
                         "STORE_TIMEOUT_MS=1500",
                         "MAX_CONN_PER_USER=3",
                         "ALLOWED_ORIGINS=http://good.example",
                         "LOG_LEVEL=info",
                         "TOKEN_RECHECK_SEC=1",
                         extra,
                         NULL};
    cr_assert_eq(gwproc_start(&gp, env, NULL), 0, "gateway starts");
}

static void setup(void)
{
    start_gateway(NULL);
}

static void teardown(void)
{
    int rc = gp.pid > 0 ? gwproc_stop(&gp, SIGTERM) : 0;
    char *log = gwproc_log(&gp);
    cr_expect_eq(rc, 0, "clean exit: %s", log != NULL ? log : "");
    cr_expect(log == NULL || strstr(log, "tok-") == NULL, "no token in the log");
    free(log);
    unlink(gp.log_path);
    pgtest_db_drop(dbname);
}

TestSuite(ws, .init = setup, .fini = teardown, .timeout = 60);

static struct wsc *dial(const char *bearer, const char *origin, int *status)
{
    struct wsc_opts o = {.port = gp.port, .bearer = bearer, .origin = origin};
    int st = 0;
    struct wsc *c = wsc_connect(&o, &st);
    if (status != NULL) {
        *status = st;
    }
    return c;
}

/* Connect and authenticate with hello; asserts the welcome. */
static struct wsc *login(const char *token)
{
    struct wsc *c = dial(NULL, NULL, NULL);
    cr_assert_not_null(c, "connect");
    cr_assert_eq(wsc_send_json(c, "{\"type\":\"hello\",\"token\":\"%s\",\"id\":\"h1\"}", token), 0);
    json_t *w = wsc_expect(c, "welcome", WAIT);
    cr_assert_not_null(w, "welcome for %s", token);
    cr_expect_str_eq(json_string_value(json_object_get(w, "id")), "h1");
    cr_expect_eq(json_integer_value(json_object_get(w, "heartbeatSec")), 25);
    json_decref(w);
    return c;
}

static json_t *join(struct wsc *c, const char *room)
{
    wsc_send_json(c, "{\"type\":\"join\",\"room\":\"%s\",\"id\":\"j\"}", room);
    return wsc_expect(c, "joined", WAIT);
}

static json_t *expect_error(struct wsc *c, const char *code)
{
    json_t *e = wsc_expect(c, "error", WAIT);
    cr_assert_not_null(e, "an error %s", code);
    cr_expect_str_eq(json_string_value(json_object_get(e, "code")), code);
    return e;
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "";
}

static long long num(json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

Test(ws, session_token_and_jwt_authenticate)
{
    struct wsc *a = login(TOK_COACH);
    wsc_close(a, 1000);

    json_t *claims = json_pack("{s:s, s:I}", "sub", CLIENT, "exp", (json_int_t)(time(NULL) + 3600));
    char *jwt = gw_jwt_sign_hs256(claims, (const unsigned char *)SECRET, strlen(SECRET));
    json_decref(claims);
    struct wsc *b = dial(jwt, NULL, NULL);
    cr_assert_not_null(b);
    json_t *w = wsc_expect(b, "welcome", WAIT);
    cr_assert_not_null(w, "welcome through the Authorization header");
    json_t *user = json_object_get(w, "user");
    cr_expect_str_eq(str(user, "id"), CLIENT);
    cr_expect_str_eq(str(user, "displayName"), "Sam Client");
    cr_expect_str_eq(str(user, "role"), "client");
    json_decref(w);
    free(jwt);
    wsc_close(b, 1000);
    char *last = pgtest_query_value(conninfo, "SELECT count(*) FROM \"UserSession\" WHERE id='cus1'"
                                              " AND \"lastActive\" > now() - interval '1 minute'");
    cr_expect_str_eq(last, "1", "lastActive updated");
    free(last);
}

static void expect_refused(const char *token)
{
    struct wsc *c = dial(NULL, NULL, NULL);
    cr_assert_not_null(c);
    wsc_send_json(c, "{\"type\":\"hello\",\"token\":\"%s\"}", token);
    json_decref(expect_error(c, "unauthorized"));
    cr_expect_eq(wsc_wait_close(c, WAIT), 1008, "close 1008 for %s", token);
    wsc_free(c);
}

Test(ws, bad_tokens_get_unauthorized_and_1008)
{
    expect_refused("no-such-token");
    expect_refused(TOK_EXPIRED);
    expect_refused(TOK_INACTIVE);
    json_t *claims = json_pack("{s:s, s:I}", "sub", CLIENT, "exp", (json_int_t)(time(NULL) - 10));
    char *jwt = gw_jwt_sign_hs256(claims, (const unsigned char *)SECRET, strlen(SECRET));
    expect_refused(jwt);
    free(jwt);
    jwt = gw_jwt_sign_hs256(claims, (const unsigned char *)"other", 5);
    expect_refused(jwt);
    free(jwt);
    json_decref(claims);
    /* alg none */
    expect_refused("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJjY2xpZW50MDAwMDAwMDAwMDAwMDAw"
                   "MDAwMSIsImV4cCI6OTk5OTk5OTk5OX0.");
    /* A bad header token: the upgrade succeeds, then error and 1008. */
    struct wsc *c = dial("nope", NULL, NULL);
    cr_assert_not_null(c);
    json_decref(expect_error(c, "unauthorized"));
    cr_expect_eq(wsc_wait_close(c, WAIT), 1008);
    wsc_free(c);
}

Test(ws, frames_before_hello_are_unauthorized)
{
    struct wsc *c = dial(NULL, NULL, NULL);
    cr_assert_not_null(c);
    wsc_send_json(c, "{\"type\":\"join\",\"room\":\"room-1\",\"id\":\"x\"}");
    json_t *e = expect_error(c, "unauthorized");
    cr_expect_str_eq(str(e, "id"), "x");
    json_decref(e);
    wsc_send_json(c, "{\"type\":\"ping\",\"id\":\"p\"}");
    json_t *p = wsc_expect(c, "pong", WAIT);
    cr_expect_not_null(p, "ping works before hello");
    json_decref(p);
    wsc_send_json(c, "{\"type\":\"hello\",\"token\":\"" TOK_CLIENT "\"}");
    json_t *w = wsc_expect(c, "welcome", WAIT);
    cr_expect_not_null(w, "then hello works");
    json_decref(w);
    wsc_close(c, 1000);
}

Test(ws, join_rules)
{
    struct wsc *s = login(TOK_STRANGER);
    wsc_send_json(s, "{\"type\":\"join\",\"room\":\"room-1\"}");
    json_decref(expect_error(s, "forbidden"));
    struct wsc *c = login(TOK_CLIENT);
    wsc_send_json(c, "{\"type\":\"join\",\"room\":\"room-cancelled\"}");
    json_decref(expect_error(c, "closed"));
    wsc_send_json(c, "{\"type\":\"join\",\"room\":\"room-future\"}");
    json_decref(expect_error(c, "not_open"));
    wsc_send_json(c, "{\"type\":\"join\",\"room\":\"no-such-room\",\"id\":\"n\"}");
    json_t *e = expect_error(c, "not_found");
    cr_expect_str_eq(str(e, "id"), "n");
    cr_expect_str_eq(str(e, "room"), "no-such-room");
    json_decref(e);
    struct wsc *a = login(TOK_ADMIN);
    json_t *j = join(a, "room-1");
    cr_assert_not_null(j, "an admin joins as observer");
    json_decref(j);
    wsc_send_json(a,
                  "{\"type\":\"chat\",\"room\":\"room-1\",\"clientMsgId\":\"o1\",\"text\":\"hi\"}");
    json_decref(expect_error(a, "forbidden"));
    wsc_close(a, 1000);
    wsc_close(c, 1000);
    wsc_close(s, 1000);
}

static json_t *chat(struct wsc *c, const char *cmid, const char *text)
{
    wsc_send_json(c,
                  "{\"type\":\"chat\",\"room\":\"room-1\",\"clientMsgId\":\"%s\",\"text\":\"%s\","
                  "\"id\":\"c-%s\"}",
                  cmid, text, cmid);
    json_t *ack = wsc_expect(c, "ack", WAIT);
    cr_assert_not_null(ack, "ack for %s", cmid);
    cr_expect_str_eq(str(ack, "clientMsgId"), cmid);
    return ack;
}

Test(ws, chat_both_ways_durable_in_order)
{
    struct wsc *coach = login(TOK_COACH);
    json_t *j = join(coach, "room-1");
    cr_assert_not_null(j);
    json_t *sess = json_object_get(j, "session");
    cr_expect_str_eq(str(sess, "status"), "active", "the first participant starts the session");
    cr_expect(strlen(str(sess, "id")) == 25, "the coach's Session row id");
    cr_expect(json_is_string(json_object_get(sess, "endsAt")));
    cr_expect_eq(num(j, "lastSeq"), 0);
    cr_expect_str_eq(
        str(json_object_get(json_object_get(j, "appointment"), "coach"), "displayName"),
        "Dana Coach");
    json_decref(j);

    struct wsc *client = login(TOK_CLIENT);
    j = join(client, "room-1");
    cr_assert_not_null(j);
    cr_expect_eq(json_array_size(json_object_get(j, "members")), 2);
    json_decref(j);
    json_t *p = wsc_expect(coach, "presence", WAIT);
    cr_assert_not_null(p, "the coach sees the client arrive");
    cr_expect_str_eq(str(p, "event"), "join");
    cr_expect_str_eq(str(json_object_get(p, "member"), "userId"), CLIENT);
    json_decref(p);

    json_t *ack = chat(client, "m1", "hello coach");
    cr_expect_eq(num(ack, "seq"), 1);
    cr_expect_str_eq(str(ack, "id"), "c-m1", "ack echoes the id");
    char mid[64];
    snprintf(mid, sizeof(mid), "%s", str(ack, "messageId"));
    json_decref(ack);
    for (int who = 0; who < 2; who++) {
        json_t *m = wsc_expect(who ? coach : client, "message", WAIT);
        cr_assert_not_null(m, "delivered to %s", who ? "coach" : "client (own)");
        cr_expect_eq(num(m, "seq"), 1);
        cr_expect_str_eq(str(m, "text"), "hello coach");
        cr_expect_str_eq(str(m, "messageId"), mid);
        cr_expect_str_eq(str(json_object_get(m, "from"), "role"), "client");
        cr_expect_str_eq(str(json_object_get(m, "from"), "displayName"), "Sam Client");
        json_decref(m);
    }
    ack = chat(coach, "m2", "hello client");
    cr_expect_eq(num(ack, "seq"), 2);
    json_decref(ack);
    json_t *m = wsc_expect(client, "message", WAIT);
    cr_expect_eq(num(m, "seq"), 2);
    cr_expect_str_eq(str(json_object_get(m, "from"), "displayName"), "Dana Coach");
    json_decref(m);

    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT content FROM \"Message\" WHERE id='%s'", mid);
    char *stored = pgtest_query_value(conninfo, sql);
    cr_expect_str_eq(stored, "hello coach", "the acked message is in the database");
    free(stored);
    char *appt =
        pgtest_query_value(conninfo, "SELECT status FROM \"Appointment\" WHERE id='cappt1'");
    cr_expect_str_eq(appt, "active");
    free(appt);
    wsc_close(coach, 1000);
    wsc_close(client, 1000);
}

Test(ws, resend_of_a_client_msg_id_is_acked_once_stored_once)
{
    struct wsc *coach = login(TOK_COACH);
    json_decref(join(coach, "room-1"));
    json_t *a1 = chat(coach, "dup1", "only once");
    json_t *m1 = wsc_expect(coach, "message", WAIT);
    cr_assert_not_null(m1);
    json_decref(m1);
    json_t *a2 = chat(coach, "dup1", "only once");
    cr_expect_eq(num(a2, "seq"), num(a1, "seq"), "the original ack");
    cr_expect_str_eq(str(a2, "messageId"), str(a1, "messageId"));
    json_t *a3 = chat(coach, "dup2", "next");
    cr_expect_eq(num(a3, "seq"), num(a1, "seq") + 1, "no seq was spent on the duplicate");
    json_t *m3 = wsc_expect(coach, "message", WAIT);
    cr_assert_not_null(m3);
    cr_expect_str_eq(str(m3, "clientMsgId"), "dup2", "the duplicate was not delivered again");
    json_decref(m3);
    char *n = pgtest_query_value(conninfo, "SELECT count(*) FROM \"Message\"");
    cr_expect_str_eq(n, "2");
    free(n);
    json_decref(a1);
    json_decref(a2);
    json_decref(a3);
    wsc_close(coach, 1000);
}

Test(ws, recovery_with_since_and_history_paging)
{
    struct wsc *coach = login(TOK_COACH);
    json_decref(join(coach, "room-1"));
    char cmid[16];
    for (int i = 1; i <= 12; i++) {
        snprintf(cmid, sizeof(cmid), "r%d", i);
        json_decref(chat(coach, cmid, "x"));
    }
    struct wsc *client = login(TOK_CLIENT);
    wsc_send_json(client, "{\"type\":\"join\",\"room\":\"room-1\",\"since\":9}");
    json_t *j = wsc_expect(client, "joined", WAIT);
    cr_assert_not_null(j);
    json_t *h = json_object_get(j, "history");
    cr_expect_eq(json_array_size(h), 3, "seq 10, 11, 12");
    cr_expect_eq(num(json_array_get(h, 0), "seq"), 10);
    cr_expect_eq(num(json_array_get(h, 2), "seq"), 12);
    cr_expect_eq(num(j, "lastSeq"), 12);
    cr_expect(json_is_false(json_object_get(j, "truncated")));
    json_decref(j);

    wsc_send_json(client, "{\"type\":\"history\",\"room\":\"room-1\",\"before\":6,\"limit\":3,"
                          "\"id\":\"h\"}");
    json_t *hist = wsc_expect(client, "history", WAIT);
    cr_assert_not_null(hist);
    json_t *msgs = json_object_get(hist, "messages");
    cr_expect_eq(json_array_size(msgs), 3);
    cr_expect_eq(num(json_array_get(msgs, 0), "seq"), 3, "ascending");
    cr_expect_eq(num(json_array_get(msgs, 2), "seq"), 5);
    cr_expect(json_is_true(json_object_get(hist, "hasMore")));
    json_decref(hist);
    wsc_send_json(client, "{\"type\":\"history\",\"room\":\"room-1\",\"limit\":201}");
    json_decref(expect_error(client, "bad_request"));
    wsc_close(coach, 1000);
    wsc_close(client, 1000);
}

Test(ws, typing_reaches_the_others_only)
{
    struct wsc *coach = login(TOK_COACH);
    json_decref(join(coach, "room-1"));
    struct wsc *client = login(TOK_CLIENT);
    json_decref(join(client, "room-1"));
    json_decref(wsc_expect(coach, "presence", WAIT));
    wsc_send_json(client, "{\"type\":\"typing\",\"room\":\"room-1\",\"state\":true}");
    json_t *t = wsc_expect(coach, "typing", WAIT);
    cr_assert_not_null(t);
    cr_expect_str_eq(str(t, "userId"), CLIENT);
    cr_expect(json_is_true(json_object_get(t, "state")));
    json_decref(t);
    /* The sender gets no typing back: a ping's pong arrives first and nothing before it. */
    wsc_send_json(client, "{\"type\":\"ping\"}");
    char *next = wsc_recv(client, WAIT, NULL);
    cr_assert_not_null(next);
    cr_expect(strstr(next, "\"pong\"") != NULL, "got %s", next);
    free(next);
    wsc_send_json(client, "{\"type\":\"leave\",\"room\":\"room-1\",\"id\":\"l\"}");
    json_t *left = wsc_expect(client, "left", WAIT);
    cr_expect_not_null(left);
    json_decref(left);
    json_t *p = wsc_expect(coach, "presence", WAIT);
    cr_assert_not_null(p);
    cr_expect_str_eq(str(p, "event"), "leave");
    json_decref(p);
    wsc_close(coach, 1000);
    wsc_close(client, 1000);
}

static void expect_close(int opcode, const void *payload, size_t len, int code)
{
    struct wsc *c = login(TOK_CLIENT);
    cr_assert_eq(wsc_send_frame(c, opcode, 1, payload, len), 0);
    cr_expect_eq(wsc_wait_close(c, WAIT), code, "close %d", code);
    wsc_free(c);
}

Test(ws, bad_frames_get_their_close_codes_and_others_carry_on)
{
    struct wsc *coach = login(TOK_COACH);
    json_decref(join(coach, "room-1"));
    expect_close(WSC_OP_BINARY, "\x01\x02", 2, 1003);
    const char bad_utf8[] = "{\"type\":\"ping\",\"x\":\"\xc3\x28\"}";
    expect_close(WSC_OP_TEXT, bad_utf8, sizeof(bad_utf8) - 1, 1007);
    size_t big = 16385;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    expect_close(WSC_OP_TEXT, huge, big, 1009);
    free(huge);

    struct wsc *c = login(TOK_CLIENT);
    const char *bad[] = {"nonsense", "[]", "{\"type\":\"dance\"}", "{\"type\":\"chat\"}",
                         "{\"type\":\"join\",\"room\":5}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        wsc_send_text(c, bad[i], strlen(bad[i]));
        json_decref(expect_error(c, "bad_request"));
    }
    wsc_send_json(c, "{\"type\":\"ping\"}");
    json_t *p = wsc_expect(c, "pong", WAIT);
    cr_expect_not_null(p, "the connection is still served");
    json_decref(p);
    json_t *ack = chat(coach, "still", "others are undisturbed");
    json_decref(ack);
    wsc_close(c, 1000);
    wsc_close(coach, 1000);
}

Test(ws, upgrade_checks_origin_and_subprotocol)
{
    int status = 0;
    struct wsc *c = dial(NULL, "http://evil.example", &status);
    cr_expect_null(c);
    cr_expect_eq(status, 403, "foreign Origin: 403, no socket");
    c = dial(NULL, "http://good.example", &status);
    cr_expect_not_null(c, "listed Origin");
    wsc_close(c, 1000);
    struct wsc_opts o = {.port = gp.port, .no_subprotocol = 1};
    c = wsc_connect(&o, &status);
    cr_expect_null(c);
    cr_expect_eq(status, 400, "coachroom.v1 is required");
    struct wsc_opts o2 = {.port = gp.port, .path = "/elsewhere"};
    c = wsc_connect(&o2, &status);
    cr_expect_null(c);
    cr_expect_eq(status, 404);
}

Test(ws, connections_per_user_are_capped)
{
    struct wsc *c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = login(TOK_CLIENT);
    }
    struct wsc *extra = dial(NULL, NULL, NULL);
    cr_assert_not_null(extra);
    wsc_send_json(extra, "{\"type\":\"hello\",\"token\":\"" TOK_CLIENT "\"}");
    json_decref(expect_error(extra, "rate_limited"));
    cr_expect_eq(wsc_wait_close(extra, WAIT), 1008);
    wsc_free(extra);
    wsc_close(c[0], 1000);
    /* A slot frees when a connection goes (the server notices the close). */
    struct wsc *again = NULL;
    for (int tries = 0; tries < 50 && again == NULL; tries++) {
        struct wsc *t = dial(NULL, NULL, NULL);
        wsc_send_json(t, "{\"type\":\"hello\",\"token\":\"" TOK_CLIENT "\"}");
        json_t *w = wsc_expect(t, "welcome", 1000);
        if (w != NULL) {
            again = t;
            json_decref(w);
        } else {
            wsc_free(t);
        }
    }
    cr_expect_not_null(again, "a new connection is accepted after one closed");
    wsc_close(again, 1000);
    wsc_close(c[1], 1000);
    wsc_close(c[2], 1000);
}

Test(ws, chat_bursts_are_rate_limited_not_stored)
{
    struct wsc *coach = login(TOK_COACH);
    json_decref(join(coach, "room-1"));
    for (int i = 0; i < 30; i++) {
        wsc_send_json(coach,
                      "{\"type\":\"chat\",\"room\":\"room-1\",\"clientMsgId\":\"b%d\","
                      "\"text\":\"burst\"}",
                      i);
    }
    int acks = 0, limited = 0;
    for (int i = 0; i < 30; i++) {
        char *f = wsc_recv(coach, WAIT, NULL);
        cr_assert_not_null(f);
        json_t *o = json_loads(f, 0, NULL);
        free(f);
        const char *type = str(o, "type");
        if (strcmp(type, "ack") == 0) {
            acks++;
        } else if (strcmp(type, "error") == 0) {
            cr_expect_str_eq(str(o, "code"), "rate_limited");
            cr_expect(strlen(str(o, "clientMsgId")) > 0, "the refused clientMsgId is echoed");
            limited++;
        } else {
            i--; /* a `message` */
        }
        json_decref(o);
    }
    cr_expect(acks >= 20 && acks <= 22, "the burst of 20 (plus refill) passes: %d", acks);
    cr_expect_eq(acks + limited, 30);
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT count(*) = %d FROM \"Message\"", acks);
    char *ok = pgtest_query_value(conninfo, sql);
    cr_expect_str_eq(ok, "t", "only acked messages are stored");
    free(ok);
    wsc_close(coach, 1000);
}

Test(ws, sigterm_closes_connections_with_1001)
{
    struct wsc *coach = login(TOK_COACH);
    json_decref(join(coach, "room-1"));
    json_decref(chat(coach, "last", "before shutdown"));
    kill(gp.pid, SIGTERM);
    cr_expect_eq(wsc_wait_close(coach, 10000), 1001, "going away");
    cr_expect_eq(gwproc_stop(&gp, SIGTERM), 0, "exit 0 after the drain");
    wsc_free(coach);
    char *n = pgtest_query_value(conninfo, "SELECT count(*) FROM \"Message\"");
    cr_expect_str_eq(n, "1");
    free(n);
}

Test(ws, chat_pipelined_right_behind_the_first_join_is_stored)
{
    struct wsc *client = login(TOK_CLIENT);
    wsc_send_json(client, "{\"type\":\"join\",\"room\":\"room-1\"}");
    wsc_send_json(client, "{\"type\":\"chat\",\"room\":\"room-1\",\"clientMsgId\":\"p1\","
                          "\"text\":\"first words\"}");
    json_t *j = wsc_expect(client, "joined", WAIT);
    cr_assert_not_null(j);
    json_decref(j);
    json_t *ack = wsc_expect(client, "ack", WAIT);
    cr_assert_not_null(ack, "the chat queued behind the Session row is stored");
    cr_expect_eq(num(ack, "seq"), 1);
    json_decref(ack);
    char *sid = pgtest_query_value(conninfo, "SELECT m.\"sessionId\" = s.id FROM \"Message\" m"
                                             " JOIN \"Session\" s ON s.\"userId\" = m.\"userId\"");
    cr_expect_str_eq(sid, "t", "the message belongs to the sender's Session row");
    free(sid);
    wsc_close(client, 1000);
}

Test(ws, revoked_session_token_closes_with_4001)
{
    struct wsc *coach = login(TOK_COACH);
    cr_assert_eq(pgtest_exec(conninfo, "UPDATE \"UserSession\" SET \"isActive\" = false"
                                       " WHERE id = 'cus1'"),
                 0);
    cr_expect_eq(wsc_wait_close(coach, 5000), 4001, "revocation noticed within TOKEN_RECHECK_SEC");
    wsc_free(coach);
}

/* Read `message` frames from c until it has n of them; their seqs in out. */
static size_t read_messages(struct wsc *c, long long *out, size_t n)
{
    size_t got = 0;
    while (got < n) {
        json_t *m = wsc_expect(c, "message", WAIT);
        if (m == NULL) {
            break;
        }
        out[got++] = num(m, "seq");
        json_decref(m);
    }
    return got;
}

Test(ws, two_members_chatting_concurrently_see_everything_in_order, .timeout = 90)
{
    struct wsc *coach = login(TOK_COACH);
    json_decref(join(coach, "room-1"));
    struct wsc *client = login(TOK_CLIENT);
    json_decref(join(client, "room-1"));
    enum { EACH = 50 };
    for (int i = 0; i < EACH; i++) {
        wsc_send_json(coach,
                      "{\"type\":\"chat\",\"room\":\"room-1\",\"clientMsgId\":\"k%d\","
                      "\"text\":\"coach %d\"}",
                      i, i);
        wsc_send_json(client,
                      "{\"type\":\"chat\",\"room\":\"room-1\",\"clientMsgId\":\"c%d\","
                      "\"text\":\"client %d\"}",
                      i, i);
        if (i >= 15) {
            /* stay under 10 chats/s per connection once the burst is spent */
            struct timespec pace = {0, 105 * 1000000L};
            nanosleep(&pace, NULL);
        }
    }
    long long seen[2][2 * EACH];
    struct wsc *who[2] = {coach, client};
    for (int w = 0; w < 2; w++) {
        size_t got = read_messages(who[w], seen[w], 2 * EACH);
        cr_assert_eq(got, 2 * EACH, "connection %d got %zu of %d", w, got, 2 * EACH);
        for (size_t i = 0; i < got; i++) {
            cr_assert_eq(seen[w][i], (long long)i + 1, "in seq order without gaps");
        }
    }
    for (int w = 0; w < 2; w++) {
        json_t *e = NULL;
        while ((e = wsc_expect(who[w], "error", 0)) != NULL) {
            cr_expect_fail("unexpected error: %s", str(e, "code"));
            json_decref(e);
        }
    }
    char *rows = pgtest_query_value(conninfo, "SELECT count(*) || ':' || max(seq) ||"
                                              " ':' || count(DISTINCT seq) FROM coach_message");
    cr_expect_str_eq(rows, "100:100:100", "the database holds exactly what was delivered");
    free(rows);
    wsc_close(coach, 1000);
    wsc_close(client, 1000);
}

Test(ws, a_user_on_two_connections_is_one_member)
{
    struct wsc *client = login(TOK_CLIENT);
    json_decref(join(client, "room-1"));
    struct wsc *c1 = login(TOK_COACH);
    json_decref(join(c1, "room-1"));
    struct wsc *c2 = login(TOK_COACH);
    json_t *j = join(c2, "room-1");
    cr_assert_not_null(j);
    cr_expect_eq(json_array_size(json_object_get(j, "members")), 2, "coach listed once");
    json_decref(j);
    json_t *p = wsc_expect(client, "presence", WAIT);
    cr_assert_not_null(p);
    cr_expect_str_eq(str(p, "event"), "join");
    json_decref(p);
    wsc_close(c1, 1000);
    /* The first coach connection left: no presence. A ping round trip proves
     * nothing was queued before the pong. */
    wsc_send_json(client, "{\"type\":\"ping\"}");
    char *next = wsc_recv(client, WAIT, NULL);
    cr_assert_not_null(next);
    cr_expect(strstr(next, "\"pong\"") != NULL, "no presence leave yet: %s", next);
    free(next);
    wsc_close(c2, 1000);
    p = wsc_expect(client, "presence", WAIT);
    cr_assert_not_null(p, "leave when the last connection goes");
    cr_expect_str_eq(str(p, "event"), "leave");
    cr_expect_eq(json_array_size(json_object_get(p, "members")), 1);
    json_decref(p);
    wsc_close(client, 1000);
}

Test(ws, kill_9_during_a_burst_loses_no_acked_message)
{
    struct wsc *coach = login(TOK_COACH);
    json_decref(join(coach, "room-1"));
    for (int i = 0; i < 20; i++) {
        wsc_send_json(coach,
                      "{\"type\":\"chat\",\"room\":\"room-1\",\"clientMsgId\":\"x%d\","
                      "\"text\":\"burst %d\"}",
                      i, i);
    }
    char acked[20][64];
    int n_acked = 0;
    json_t *a = NULL;
    while (n_acked < 8 && (a = wsc_expect(coach, "ack", WAIT)) != NULL) {
        snprintf(acked[n_acked++], sizeof(acked[0]), "%s", str(a, "clientMsgId"));
        json_decref(a);
    }
    cr_assert_eq(n_acked, 8);
    kill(gp.pid, SIGKILL);
    while ((a = wsc_expect(coach, "ack", 2000)) != NULL && n_acked < 20) {
        snprintf(acked[n_acked++], sizeof(acked[0]), "%s", str(a, "clientMsgId"));
        json_decref(a);
    }
    json_decref(a);
    gwproc_stop(&gp, SIGKILL);
    wsc_free(coach);
    for (int i = 0; i < n_acked; i++) {
        char sql[2048];
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM coach_message WHERE client_msg_id = '%s'",
                 acked[i]);
        char *cnt = pgtest_query_value(conninfo, sql);
        cr_expect_str_eq(cnt, "1", "acked %s is stored exactly once", acked[i]);
        free(cnt);
    }
    char *gap = pgtest_query_value(conninfo, "SELECT count(*) = max(seq) FROM coach_message");
    cr_expect_str_eq(gap, "t", "seq stays contiguous");
    free(gap);
}

Test(ws, a_connection_that_stops_reading_is_closed_with_4008, .timeout = 60)
{
    /* A client with a tiny receive buffer joins and stops reading. */
    struct wsc_opts o = {.port = gp.port, .rcvbuf = 2048};
    struct wsc *stuck = wsc_connect(&o, NULL);
    cr_assert_not_null(stuck);
    wsc_send_json(stuck, "{\"type\":\"hello\",\"token\":\"" TOK_CLIENT "\"}");
    json_decref(wsc_expect(stuck, "welcome", WAIT));
    json_decref(join(stuck, "room-1"));
    /* An observer comes and goes: every pass is two presence frames for it. */
    struct wsc *admin = login(TOK_ADMIN);
    int passes = 0;
    for (; passes < 3000; passes++) {
        wsc_send_json(admin, "{\"type\":\"join\",\"room\":\"room-1\"}");
        json_t *j = wsc_expect(admin, "joined", WAIT);
        wsc_send_json(admin, "{\"type\":\"leave\",\"room\":\"room-1\"}");
        json_t *l = wsc_expect(admin, "left", WAIT);
        cr_assert(j != NULL && l != NULL, "the observer is served throughout (pass %d)", passes);
        json_decref(j);
        json_decref(l);
        if (passes % 100 == 99) {
            /* stop once the server has given up on the stuck reader */
            char *metrics = calloc(1, 65536);
            long st = 0;
            http_get(gp.port, "/metrics", &st, metrics, 65536);
            int closed = strstr(metrics, "coach_slow_consumer_closes_total 1\n") != NULL;
            free(metrics);
            if (closed) {
                break;
            }
        }
    }
    cr_expect(passes < 3000, "the slow consumer was closed");
    /* Now read: what was queued in the kernel, then the close frame. */
    char *f = NULL;
    while ((f = wsc_recv(stuck, 2000, NULL)) != NULL) {
        free(f);
    }
    cr_expect_eq(wsc_close_code(stuck), 4008, "slow consumer");
    wsc_free(stuck);
    wsc_send_json(admin, "{\"type\":\"ping\"}");
    json_t *pong = wsc_expect(admin, "pong", WAIT);
    cr_expect_not_null(pong, "others are undisturbed");
    json_decref(pong);
    wsc_close(admin, 1000);
}
