/*
 * test_ws_edges.c: the live room at its edges: PostgreSQL going away and
 * coming back under a connected room, TLS with a certificate the test
 * makes, token expiry (4001), and /metrics reflecting the traffic.
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

#define COACH  "ccoach0000000000000000001"
#define CLIENT "cclient000000000000000001"
#define SECRET "edge-secret-0123456789"
#define WAIT   5000

static const char seed_sql[] =
    "INSERT INTO \"User\"(id,email,\"displayName\",role,\"updatedAt\",\"skoolUserId\") VALUES"
    " ('" COACH "','coach@t','Dana Coach','coach',now(),'sk-coach'),"
    " ('" CLIENT "','client@t','Sam Client','client',now(),'sk-client');"
    "INSERT INTO \"Appointment\"(id,\"scheduledFor\",\"durationMin\",\"clientId\",\"coachId\","
    "\"roomId\",status) VALUES"
    " ('cappt1',now() at time zone 'UTC',20,'" CLIENT "','" COACH "','room-1','scheduled');";

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *jwt_for(const char *sub, long long exp)
{
    json_t *claims = json_pack("{s:s, s:I}", "sub", sub, "exp", (json_int_t)exp);
    char *t = gw_jwt_sign_hs256(claims, (const unsigned char *)SECRET, strlen(SECRET));
    json_decref(claims);
    cr_assert_not_null(t);
    return t;
}

static struct wsc *login(int port, int tls, const char *ca, const char *sub, long long exp)
{
    char *jwt = jwt_for(sub, exp);
    struct wsc_opts o = {.port = port, .bearer = jwt, .tls = tls, .ca_file = ca};
    int status = 0;
    struct wsc *c = wsc_connect(&o, &status);
    free(jwt);
    cr_assert_not_null(c, "connect (status %d)", status);
    json_t *w = wsc_expect(c, "welcome", WAIT);
    cr_assert_not_null(w, "welcome");
    json_decref(w);
    return c;
}

static json_t *send_chat(struct wsc *c, const char *cmid, const char *want_type)
{
    wsc_send_json(
        c, "{\"type\":\"chat\",\"room\":\"room-1\",\"clientMsgId\":\"%s\",\"text\":\"t\"}", cmid);
    char *f = wsc_recv(c, WAIT, NULL);
    cr_assert_not_null(f, "a reply to %s", cmid);
    json_t *o = json_loads(f, 0, NULL);
    free(f);
    if (want_type != NULL) {
        cr_assert_str_eq(json_string_value(json_object_get(o, "type")), want_type);
    }
    return o;
}


/* A PostgreSQL server of the test's own (so that it can stop it), its
 * database seeded, and a gateway on it with STORE_TIMEOUT_MS=1000. */
static void start_with_own_postgres(struct pgserver *pg, struct gwproc *gp, char *db, size_t cap)
{
    cr_assert(sodium_init() >= 0);
    cr_assert_eq(pgserver_start(pg), 0);
    char env_db[600];
    cr_assert_eq(pgtest_db_on(pg->conninfo, "coach", db, cap), 0);
    snprintf(env_db, sizeof(env_db), "DATABASE_URL=%s", db);
    const char *env[] = {env_db, "JWT_SECRET=" SECRET, "STORE_TIMEOUT_MS=1000", NULL};
    cr_assert_eq(gwproc_start(gp, env, NULL), 0);
    cr_assert_eq(pgtest_exec(db, seed_sql), 0);
}

Test(edges, chat_is_unavailable_while_postgres_is_down_then_works, .timeout = 120)
{
    struct pgserver pg = {0};
    struct gwproc gp = {0};
    char db[512];
    start_with_own_postgres(&pg, &gp, db, sizeof(db));

    struct wsc *c = login(gp.port, 0, NULL, COACH, time(NULL) + 3600);
    wsc_send_json(c, "{\"type\":\"join\",\"room\":\"room-1\"}");
    json_t *j = wsc_expect(c, "joined", WAIT);
    cr_assert_not_null(j);
    json_decref(j);
    json_decref(send_chat(c, "before", "ack"));
    json_decref(wsc_expect(c, "message", WAIT));

    cr_assert_eq(pgserver_stop(&pg), 0);
    long long t0 = mono_ms();
    json_t *e = send_chat(c, "during", "error");
    long long took = mono_ms() - t0;
    cr_expect_str_eq(json_string_value(json_object_get(e, "code")), "unavailable");
    cr_expect_str_eq(json_string_value(json_object_get(e, "clientMsgId")), "during");
    cr_expect(took <= 1000 + 1500, "within STORE_TIMEOUT_MS (took %lld ms)", took);
    json_decref(e);

    cr_assert_eq(pgserver_start(&pg), 0);
    /* The store reconnects with backoff; until then a chat is refused again. */
    json_t *ack = NULL;
    for (long long dl = mono_ms() + 20000; ack == NULL && mono_ms() < dl;) {
        json_t *o = send_chat(c, "during", NULL);
        if (strcmp(json_string_value(json_object_get(o, "type")), "ack") == 0) {
            ack = o;
        } else {
            cr_expect_str_eq(json_string_value(json_object_get(o, "code")), "unavailable");
            json_decref(o);
        }
    }
    cr_assert_not_null(ack, "the resend is stored once the database is back");
    cr_expect_eq(json_integer_value(json_object_get(ack, "seq")), 2, "no gap, no duplicate");
    json_decref(ack);
    char *n = pgtest_query_value(db, "SELECT count(*) FROM \"Message\"");
    cr_expect_str_eq(n, "2", "every acked message is stored, nothing else");
    free(n);
    wsc_close(c, 1000);
    cr_expect_eq(gwproc_stop(&gp, SIGTERM), 0);
    unlink(gp.log_path);
    pgserver_destroy(&pg);
}

/* A participant whose Session row could not be written (PostgreSQL down
 * at its join) is not left joined without one: the join is refused, and
 * the next join writes the row, so its chats are stored. */
Test(edges, a_session_row_refused_at_join_is_written_at_the_next_join, .timeout = 120)
{
    struct pgserver pg = {0};
    struct gwproc gp = {0};
    char db[512];
    start_with_own_postgres(&pg, &gp, db, sizeof(db));

    struct wsc *coach = login(gp.port, 0, NULL, COACH, time(NULL) + 3600);
    wsc_send_json(coach, "{\"type\":\"join\",\"room\":\"room-1\"}");
    json_decref(wsc_expect(coach, "joined", WAIT));
    struct wsc *client = login(gp.port, 0, NULL, CLIENT, time(NULL) + 3600);

    cr_assert_eq(pgserver_stop(&pg), 0);
    wsc_send_json(client, "{\"type\":\"join\",\"room\":\"room-1\",\"id\":\"j1\"}");
    json_t *e = wsc_expect(client, "error", WAIT);
    cr_assert_not_null(e, "the join is refused");
    cr_expect_str_eq(json_string_value(json_object_get(e, "code")), "unavailable");
    cr_expect_str_eq(json_string_value(json_object_get(e, "id")), "j1");
    json_decref(e);

    cr_assert_eq(pgserver_start(&pg), 0);
    json_t *joined = NULL;
    for (long long dl = mono_ms() + 20000; joined == NULL && mono_ms() < dl;) {
        wsc_send_json(client, "{\"type\":\"join\",\"room\":\"room-1\",\"id\":\"j2\"}");
        char *f = wsc_recv(client, WAIT, NULL);
        cr_assert_not_null(f, "a reply to the join");
        json_t *o = json_loads(f, 0, NULL);
        free(f);
        const char *type = json_string_value(json_object_get(o, "type"));
        if (strcmp(type, "joined") == 0) {
            joined = o;
        } else {
            cr_expect_str_eq(type, "error", "%s", type);
            json_decref(o);
            nanosleep(&(struct timespec){.tv_nsec = 200 * 1000 * 1000}, NULL);
        }
    }
    cr_assert_not_null(joined, "joined once the database is back");
    const char *sid =
        json_string_value(json_object_get(json_object_get(joined, "session"), "id"));
    cr_assert_not_null(sid, "the client's Session row exists");
    char want[128];
    snprintf(want, sizeof(want), "%s", sid);
    json_decref(joined);

    json_t *ack = send_chat(client, "after", "ack");
    json_decref(ack);
    char *row = pgtest_query_value(db, "SELECT \"sessionId\" FROM \"Message\"");
    cr_expect_str_eq(row, want, "the chat is stored under the client's Session row");
    free(row);
    char *n = pgtest_query_value(db, "SELECT count(*) FROM \"Session\" WHERE \"userId\" = '" CLIENT "'");
    cr_expect_str_eq(n, "1");
    free(n);
    wsc_close(client, 1000);
    wsc_close(coach, 1000);
    cr_expect_eq(gwproc_stop(&gp, SIGTERM), 0);
    unlink(gp.log_path);
    pgserver_destroy(&pg);
}

static int make_cert(char *dir, size_t cap)
{
    snprintf(dir, cap, "/tmp/coach-tls-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        return -1;
    }
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
             "-keyout %s/key.pem -out %s/cert.pem >/dev/null 2>&1",
             dir, dir);
    return system(cmd) == 0 ? 0 : -1;
}

Test(edges, tls_serves_websocket_and_http, .timeout = 60)
{
    cr_assert(sodium_init() >= 0);
    char dir[64], dbname[64], conninfo[512], env_db[600], cert[128], key[128];
    cr_assert_eq(make_cert(dir, sizeof(dir)), 0, "openssl makes a self-signed certificate");
    cr_assert_eq(pgtest_db_create(1, dbname, sizeof(dbname), conninfo, sizeof(conninfo)), 0);
    cr_assert_eq(pgtest_exec(conninfo, seed_sql), 0);
    snprintf(env_db, sizeof(env_db), "DATABASE_URL=%s", conninfo);
    snprintf(cert, sizeof(cert), "TLS_CERT=%s/cert.pem", dir);
    snprintf(key, sizeof(key), "TLS_KEY=%s/key.pem", dir);
    const char *env[] = {env_db, "JWT_SECRET=" SECRET, cert, key, NULL};
    struct gwproc gp = {0};
    cr_assert_eq(gwproc_start(&gp, env, NULL), 0, "healthz answers over https");
    char ca[128];
    snprintf(ca, sizeof(ca), "%s/cert.pem", dir);
    struct wsc *c = login(gp.port, 1, ca, CLIENT, time(NULL) + 3600);
    wsc_send_json(c, "{\"type\":\"join\",\"room\":\"room-1\"}");
    json_t *j = wsc_expect(c, "joined", WAIT);
    cr_expect_not_null(j, "a room over wss://");
    json_decref(j);
    wsc_close(c, 1000);
    long status = 0;
    char body[64];
    cr_expect_neq(http_get(gp.port, "/healthz", &status, body, sizeof(body)) == 0 && status == 200,
                  1, "plain HTTP is not served on a TLS port");
    cr_expect_eq(gwproc_stop(&gp, SIGTERM), 0);
    unlink(gp.log_path);
    pgtest_db_drop(dbname);
    char rm[128];
    snprintf(rm, sizeof(rm), "rm -rf %s", dir);
    cr_expect_eq(system(rm), 0);
}

Test(edges, expired_token_closes_with_4001_and_metrics_count, .timeout = 60)
{
    cr_assert(sodium_init() >= 0);
    char dbname[64], conninfo[512], env_db[600];
    cr_assert_eq(pgtest_db_create(1, dbname, sizeof(dbname), conninfo, sizeof(conninfo)), 0);
    cr_assert_eq(pgtest_exec(conninfo, seed_sql), 0);
    snprintf(env_db, sizeof(env_db), "DATABASE_URL=%s", conninfo);
    const char *env[] = {env_db, "JWT_SECRET=" SECRET, NULL};
    struct gwproc gp = {0};
    cr_assert_eq(gwproc_start(&gp, env, NULL), 0);
    struct wsc *c = login(gp.port, 0, NULL, COACH, time(NULL) + 2);
    wsc_send_json(c, "{\"type\":\"join\",\"room\":\"room-1\"}");
    json_decref(wsc_expect(c, "joined", WAIT));
    json_decref(send_chat(c, "m1", "ack"));
    wsc_send_text(c, "garbage", 7);
    cr_expect_eq(wsc_wait_close(c, 6000), 4001, "token expired");
    wsc_free(c);

    long status = 0;
    char *body = calloc(1, 65536);
    cr_assert_eq(http_get(gp.port, "/metrics", &status, body, 65536), 0);
    cr_expect_eq(status, 200);
    cr_expect(strstr(body, "# TYPE coach_connections gauge") != NULL, "%s", body);
    cr_expect(strstr(body, "coach_messages_in_total 1\n") != NULL, "one chat counted");
    cr_expect(strstr(body, "coach_errors_total{code=\"bad_request\"} 1\n") != NULL,
              "the garbage frame counted");
    cr_expect(strstr(body, "coach_persist_seconds_count 1\n") != NULL, "one commit observed");
    cr_expect(strstr(body, "coach_rooms 1\n") != NULL);
    /* the chat's ack and message were queued together: one write */
    unsigned long long frames = 0, writes = 0;
    const char *fo = strstr(body, "\ncoach_frames_out_total ");
    const char *wr = strstr(body, "\ncoach_ws_writes_total ");
    cr_assert(fo != NULL && wr != NULL, "%s", body);
    cr_assert_eq(sscanf(fo, "\ncoach_frames_out_total %llu", &frames), 1);
    cr_assert_eq(sscanf(wr, "\ncoach_ws_writes_total %llu", &writes), 1);
    cr_expect(writes > 0 && writes < frames, "writes %llu, frames %llu", writes, frames);
    free(body);
    cr_expect_eq(gwproc_stop(&gp, SIGTERM), 0);
    unlink(gp.log_path);
    pgtest_db_drop(dbname);
}

/* Keepalive, with WS_PING_SEC=1 and WS_IDLE_SEC=3: a connection that
 * answers the server's pings stays however quiet it is; one that reads
 * nothing (so answers no ping) and sends nothing is dropped after 3 s. */
Test(edges, silent_connections_are_pinged_then_dropped, .timeout = 60)
{
    cr_assert(sodium_init() >= 0);
    char dbname[64], conninfo[512], env_db[600];
    cr_assert_eq(pgtest_db_create(1, dbname, sizeof(dbname), conninfo, sizeof(conninfo)), 0);
    cr_assert_eq(pgtest_exec(conninfo, seed_sql), 0);
    snprintf(env_db, sizeof(env_db), "DATABASE_URL=%s", conninfo);
    const char *env[] = {env_db, "JWT_SECRET=" SECRET, "WS_PING_SEC=1", "WS_IDLE_SEC=3", NULL};
    struct gwproc gp = {0};
    cr_assert_eq(gwproc_start(&gp, env, NULL), 0);
    long long t0 = mono_ms();
    struct wsc *quiet = login(gp.port, 0, NULL, COACH, time(NULL) + 3600);
    struct wsc *mute = login(gp.port, 0, NULL, CLIENT, time(NULL) + 3600);
    /* quiet reads (and so answers pings) for 5 s without sending a frame */
    while (mono_ms() - t0 < 5000) {
        char *f = wsc_recv(quiet, 200, NULL);
        cr_assert_null(f, "no data frame expected: %s", f != NULL ? f : "");
        cr_assert_eq(wsc_close_code(quiet), 0, "quiet stays open: %s", wsc_last_error(quiet));
    }
    wsc_send_json(quiet, "{\"type\":\"ping\",\"id\":\"p\"}");
    json_t *pong = wsc_expect(quiet, "pong", WAIT);
    cr_expect_not_null(pong, "the pinged connection still works after 5 s");
    json_decref(pong);
    /* mute has been dropped: what it reads now is pings, then the end */
    int code = wsc_wait_close(mute, WAIT);
    cr_expect(code != 0 && code != -2, "mute was dropped (close %d, %s)", code,
              wsc_last_error(mute));
    wsc_free(quiet);
    wsc_free(mute);
    cr_expect_eq(gwproc_stop(&gp, SIGTERM), 0);
    unlink(gp.log_path);
    pgtest_db_drop(dbname);
}
