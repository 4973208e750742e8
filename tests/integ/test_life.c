/*
 * test_life.c: the session lifecycle against the real binary and a real
 * PostgreSQL: ending by the coach, by the clock (with its warnings), by
 * idleness, and after a restart; the transcript; ratings over WebSocket
 * and HTTP; GET /api/sessions/{id}.
 */
#define _DEFAULT_SOURCE /* timegm */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "gwproc.h"
#include "pgtest.h"
#include "wsclient.h"

#define COACH        "ccoach0000000000000000001"
#define CLIENT       "cclient000000000000000001"
#define STRANGER     "cstrange00000000000000001"
#define TOK_COACH    "tok-coach-0123456789abcdefghijklmnopqrstuvw"
#define TOK_CLIENT   "tok-client-0123456789abcdefghijklmnopqrstuv"
#define TOK_STRANGER "tok-stranger-0123456789abcdefghijklmnopqrst"
#define WAIT         5000

static const char seed_sql[] =
    "INSERT INTO \"User\"(id,email,\"displayName\",role,\"updatedAt\",\"skoolUserId\") VALUES"
    " ('" COACH "','coach@t','Dana Coach','coach',now(),'sk-coach'),"
    " ('" CLIENT "','client@t','Sam Client','client',now(),'sk-client'),"
    " ('" STRANGER "','s@t','Stan Ger','client',now(),'sk-stranger');"
    "INSERT INTO \"AuthCode\"(id,code,\"skoolUserId\",\"skoolUsername\",\"expiresAt\") VALUES"
    " ('cauth1','vgs-1-a','sk-coach','coach',now()+interval '1 hour');"
    "INSERT INTO \"UserSession\"(id,\"sessionId\",\"skoolUserId\",\"skoolUsername\","
    "\"authCodeUsed\",\"expiresAt\",\"ipAddress\",\"userAgent\",\"deviceFingerprint\") VALUES"
    " ('cus1','" TOK_COACH "','sk-coach','c','vgs-1-a',now()+interval '1 day','::1','t','f'),"
    " ('cus2','" TOK_CLIENT "','sk-client','c','vgs-1-a',now()+interval '1 day','::1','t','f'),"
    " ('cus3','" TOK_STRANGER "','sk-stranger','c','vgs-1-a',now()+interval '1 day','::1','t',"
    "'f');"
    "INSERT INTO \"Appointment\"(id,\"scheduledFor\",\"durationMin\",\"clientId\",\"coachId\","
    "\"roomId\",status) VALUES"
    " ('cappt1',now() at time zone 'UTC',20,'" CLIENT "','" COACH "','room-1','scheduled');";

/* A session that started 55 s ago and lasts one minute: it ends in ~5 s. */
static const char ending_sql[] =
    "UPDATE \"Appointment\" SET status='active', \"durationMin\"=1 WHERE id='cappt1';"
    "INSERT INTO \"Session\"(id,\"roomId\",\"appointmentId\",\"userId\",\"startedAt\","
    "\"durationMinutes\",status,\"warningsSent\") VALUES ('csess1','room-1','cappt1','" COACH
    "',(now() at time zone 'UTC') - interval '55 seconds',1,'active',%d);";

static char dbname[64], conninfo[512];
static struct gwproc gp;

static void start(const char *const extra[])
{
    cr_assert_eq(pgtest_db_create(1, dbname, sizeof(dbname), conninfo, sizeof(conninfo)), 0);
    cr_assert_eq(pgtest_exec(conninfo, seed_sql), 0);
    static char env_db[600];
    snprintf(env_db, sizeof(env_db), "DATABASE_URL=%s", conninfo);
    const char *env[16] = {env_db, "LOG_LEVEL=info"};
    size_t n = 2;
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 15; i++) {
        env[n++] = extra[i];
    }
    env[n] = NULL;
    cr_assert_eq(gwproc_start(&gp, env, NULL), 0, "gateway starts");
}

static void stop(void)
{
    int rc = gp.pid > 0 ? gwproc_stop(&gp, SIGTERM) : 0;
    cr_expect_eq(rc, 0, "clean exit");
    unlink(gp.log_path);
    pgtest_db_drop(dbname);
}

static struct wsc *login(const char *token)
{
    struct wsc_opts o = {.port = gp.port};
    struct wsc *c = wsc_connect(&o, NULL);
    cr_assert_not_null(c);
    wsc_send_json(c, "{\"type\":\"hello\",\"token\":\"%s\"}", token);
    json_t *w = wsc_expect(c, "welcome", WAIT);
    cr_assert_not_null(w);
    json_decref(w);
    return c;
}

static json_t *join(struct wsc *c)
{
    wsc_send_json(c, "{\"type\":\"join\",\"room\":\"room-1\"}");
    json_t *j = wsc_expect(c, "joined", WAIT);
    cr_assert_not_null(j);
    return j;
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "";
}

static char *query(const char *sql)
{
    return pgtest_query_value(conninfo, sql);
}

static void chat(struct wsc *c, const char *cmid, const char *text)
{
    wsc_send_json(c,
                  "{\"type\":\"chat\",\"room\":\"room-1\",\"clientMsgId\":\"%s\",\"text\":\"%s\"}",
                  cmid, text);
    json_t *a = wsc_expect(c, "ack", WAIT);
    cr_assert_not_null(a, "ack %s", cmid);
    json_decref(a);
}

Test(life, coach_ends_the_session, .timeout = 60)
{
    start(NULL);
    struct wsc *coach = login(TOK_COACH);
    json_decref(join(coach));
    struct wsc *client = login(TOK_CLIENT);
    json_decref(join(client));
    chat(client, "m1", "I slept better");
    chat(coach, "m2", "Great, keep the breathing");
    wsc_send_json(client, "{\"type\":\"end\",\"room\":\"room-1\"}");
    json_t *e = wsc_expect(client, "error", WAIT);
    cr_assert_not_null(e);
    cr_expect_str_eq(str(e, "code"), "forbidden", "a client cannot end");
    json_decref(e);
    wsc_send_json(client, "{\"type\":\"rate\",\"room\":\"room-1\",\"rating\":5}");
    e = wsc_expect(client, "error", WAIT);
    cr_assert_not_null(e);
    cr_expect_str_eq(str(e, "code"), "conflict", "no rating before the end");
    json_decref(e);

    wsc_send_json(coach, "{\"type\":\"end\",\"room\":\"room-1\"}");
    json_t *ec = wsc_expect(coach, "session.ended", WAIT);
    json_t *el = wsc_expect(client, "session.ended", WAIT);
    cr_assert_not_null(ec);
    cr_assert_not_null(el);
    cr_expect_str_eq(str(ec, "reason"), "coach");
    cr_expect(json_is_false(json_object_get(ec, "rateable")), "the coach does not rate");
    cr_expect(json_is_true(json_object_get(el, "rateable")), "the client may rate");
    cr_expect_str_eq(str(ec, "endedAt"), str(el, "endedAt"));
    json_decref(ec);
    json_decref(el);

    wsc_send_json(client, "{\"type\":\"chat\",\"room\":\"room-1\",\"clientMsgId\":\"late\","
                          "\"text\":\"hello?\"}");
    e = wsc_expect(client, "error", WAIT);
    cr_assert_not_null(e);
    cr_expect_str_eq(str(e, "code"), "closed", "chat after the end");
    json_decref(e);
    wsc_send_json(coach, "{\"type\":\"end\",\"room\":\"room-1\"}");
    e = wsc_expect(coach, "error", WAIT);
    cr_assert_not_null(e, "ending twice changes nothing");
    cr_expect_str_eq(str(e, "code"), "closed");
    json_decref(e);

    char *st = query("SELECT string_agg(status, ',' ORDER BY \"userId\") FROM \"Session\"");
    cr_expect_str_eq(st, "completed,completed");
    free(st);
    char *ap = query("SELECT status FROM \"Appointment\" WHERE id = 'cappt1'");
    cr_expect_str_eq(ap, "completed");
    free(ap);
    char *tr = query("SELECT regexp_replace(transcript, '\\[\\d\\d:\\d\\d:\\d\\d\\]', '[T]', 'g')"
                     " FROM \"Session\" WHERE \"userId\" = '" CLIENT "'");
    cr_expect_str_eq(tr, "[T] Sam Client (client): I slept better\n"
                         "[T] Dana Coach (coach): Great, keep the breathing");
    free(tr);
    char *job = query("SELECT status FROM coach_ai_job");
    cr_expect_str_eq(job, "skipped", "no AI_SUMMARY_URL: the job is recorded as skipped");
    free(job);

    wsc_send_json(client, "{\"type\":\"rate\",\"room\":\"room-1\",\"rating\":5,\"tip\":3,"
                          "\"comment\":\"thank you\",\"id\":\"r1\"}");
    json_t *r = wsc_expect(client, "rated", WAIT);
    cr_assert_not_null(r);
    cr_expect_eq(json_integer_value(json_object_get(r, "rating")), 5);
    cr_expect_eq(json_integer_value(json_object_get(r, "tip")), 3);
    cr_expect_str_eq(str(r, "id"), "r1");
    json_decref(r);
    wsc_send_json(client, "{\"type\":\"rate\",\"room\":\"room-1\",\"rating\":4}");
    e = wsc_expect(client, "error", WAIT);
    cr_assert_not_null(e);
    cr_expect_str_eq(str(e, "code"), "conflict", "one rating per session");
    json_decref(e);
    wsc_send_json(coach, "{\"type\":\"rate\",\"room\":\"room-1\",\"rating\":4}");
    e = wsc_expect(coach, "error", WAIT);
    cr_assert_not_null(e);
    cr_expect_str_eq(str(e, "code"), "forbidden", "only the client rates");
    json_decref(e);
    char *rt = query("SELECT rating || ':' || \"tipAmount\" || ':' || comment FROM "
                     "\"SessionRating\"");
    cr_expect_str_eq(rt, "5:3:thank you");
    free(rt);
    wsc_close(coach, 1000);
    wsc_close(client, 1000);
    stop();
}

Test(life, the_clock_warns_and_ends_once, .timeout = 60)
{
    const char *env[] = {"TIMER_WARNINGS=300,60,1", NULL};
    start(env);
    char sql[1024];
    snprintf(sql, sizeof(sql), ending_sql, 1); /* the 300 s warning was sent before */
    cr_assert_eq(pgtest_exec(conninfo, sql), 0);
    struct wsc *client = login(TOK_CLIENT);
    json_t *j = join(client);
    cr_expect_str_eq(str(json_object_get(j, "session"), "status"), "active");
    json_decref(j);
    /* 60 s is past at load: one warning with the real time left, then 1 s, then the end. */
    json_t *w1 = wsc_expect(client, "timer", WAIT);
    cr_assert_not_null(w1);
    cr_expect_str_eq(str(w1, "kind"), "warning");
    cr_expect(json_integer_value(json_object_get(w1, "remainingSec")) <= 6);
    json_decref(w1);
    json_t *w2 = wsc_expect(client, "timer", WAIT);
    cr_assert_not_null(w2, "the 1 s warning");
    cr_expect_eq(json_integer_value(json_object_get(w2, "remainingSec")), 1);
    json_decref(w2);
    json_t *e = wsc_expect(client, "session.ended", WAIT);
    cr_assert_not_null(e);
    cr_expect_str_eq(str(e, "reason"), "timer");
    json_decref(e);
    cr_expect_null(wsc_expect(client, "timer", 300), "no warning repeated");
    char *ws = query("SELECT max(\"warningsSent\") FROM \"Session\"");
    cr_expect_str_eq(ws, "3", "each warning counted");
    free(ws);
    char *ended = query("SELECT abs(extract(epoch from (\"endedAt\" - (\"startedAt\" + interval"
                        " '1 minute')))) < 0.01 FROM \"Session\" WHERE id = 'csess1'");
    cr_expect_str_eq(ended, "t", "endedAt is endsAt");
    free(ended);
    wsc_close(client, 1000);
    stop();
}

static char *wait_for(const char *sql, const char *want, int within_ms)
{
    struct timespec step = {0, 50 * 1000000L};
    for (int waited = 0; waited < within_ms; waited += 50) {
        char *v = query(sql);
        if (v != NULL && strcmp(v, want) == 0) {
            return v;
        }
        free(v);
        nanosleep(&step, NULL);
    }
    return query(sql);
}

Test(life, a_restarted_gateway_ends_a_running_session_nobody_rejoins, .timeout = 60)
{
    start(NULL);
    char sql[1024];
    snprintf(sql, sizeof(sql), ending_sql, 2);
    cr_assert_eq(pgtest_exec(conninfo, sql), 0);
    /* A new process: the room was never loaded by anyone joining. */
    cr_assert_eq(gwproc_stop(&gp, SIGTERM), 0);
    static char env_db[600];
    snprintf(env_db, sizeof(env_db), "DATABASE_URL=%s", conninfo);
    const char *env[] = {env_db, NULL};
    cr_assert_eq(gwproc_start(&gp, env, NULL), 0);
    char *st =
        wait_for("SELECT status FROM \"Appointment\" WHERE id = 'cappt1'", "completed", 10000);
    cr_expect_str_eq(st, "completed", "ended by its clock after the restart");
    free(st);
    char *ws = query("SELECT \"warningsSent\" FROM \"Session\" WHERE id = 'csess1'");
    cr_expect_str_eq(ws, "2", "no warning repeated after the restart");
    free(ws);
    stop();
}

Test(life, nobody_connected_ends_the_session_as_idle, .timeout = 60)
{
    const char *env[] = {"IDLE_END_SEC=1", NULL};
    start(env);
    struct wsc *coach = login(TOK_COACH);
    json_decref(join(coach));
    wsc_close(coach, 1000);
    char *st =
        wait_for("SELECT status FROM \"Appointment\" WHERE id = 'cappt1'", "completed", 10000);
    cr_expect_str_eq(st, "completed", "idle end");
    free(st);
    stop();
}

/* One HTTP request to the gateway; returns the status (0: no answer). */
static long http(const char *method, const char *path, const char *token, const char *json,
                 struct http_body *out)
{
    return http_request(gp.port, method, path, token, NULL, json, out);
}

Test(life, http_session_and_rating_routes, .timeout = 60)
{
    start(NULL);
    struct wsc *coach = login(TOK_COACH);
    json_decref(join(coach));
    struct wsc *client = login(TOK_CLIENT);
    json_t *j = join(client);
    char sid[64];
    snprintf(sid, sizeof(sid), "%s", str(json_object_get(j, "session"), "id"));
    json_decref(j);
    chat(client, "h1", "hi");
    char path[128], rpath[160];
    snprintf(path, sizeof(path), "/api/sessions/%s", sid);
    snprintf(rpath, sizeof(rpath), "%s/rating", path);
    struct http_body b;
    cr_expect_eq(http("POST", rpath, TOK_CLIENT, "{\"rating\":5}", &b), 409, "before the end");

    wsc_send_json(coach, "{\"type\":\"end\",\"room\":\"room-1\"}");
    json_decref(wsc_expect(client, "session.ended", WAIT));

    cr_expect_eq(http("GET", path, NULL, NULL, &b), 401, "no token");
    cr_expect_eq(http("GET", path, "not-a-token", NULL, &b), 401);
    cr_expect_eq(http("GET", path, TOK_STRANGER, NULL, &b), 403, "not a participant");
    cr_expect_eq(http("GET", "/api/sessions/nope", TOK_CLIENT, NULL, &b), 404);
    cr_assert_eq(http("GET", path, TOK_COACH, NULL, &b), 200, "%s", b.buf);
    json_t *g = json_loads(b.buf, 0, NULL);
    cr_assert_not_null(g, "JSON: %s", b.buf);
    cr_expect_str_eq(str(json_object_get(g, "session"), "status"), "completed");
    cr_expect(strstr(str(g, "transcript"), "Sam Client (client): hi") != NULL);
    cr_expect(json_is_null(json_object_get(g, "rating")));
    json_decref(g);

    cr_expect_eq(http("POST", rpath, TOK_CLIENT, "{\"rating\":6}", &b), 422);
    cr_expect_eq(http("POST", rpath, TOK_CLIENT, "{\"rating\":4,\"tip\":2}", &b), 422);
    cr_expect_eq(http("POST", rpath, TOK_CLIENT, "nonsense", &b), 422);
    cr_expect_eq(http("POST", rpath, TOK_COACH, "{\"rating\":4}", &b), 403, "the client only");
    cr_expect_eq(http("POST", rpath, TOK_CLIENT, "{\"rating\":4,\"tip\":5}", &b), 201, "%s", b.buf);
    cr_expect(strstr(b.buf, "\"rating\":4") != NULL, "%s", b.buf);
    cr_expect_eq(http("POST", rpath, TOK_CLIENT, "{\"rating\":3}", &b), 409, "once");
    cr_expect_eq(http("GET", path, TOK_CLIENT, NULL, &b), 200);
    cr_expect(strstr(b.buf, "\"tip\":5") != NULL, "the rating is shown: %s", b.buf);
    wsc_close(coach, 1000);
    wsc_close(client, 1000);
    stop();
}

#include "fakeai.h"

Test(life, the_ai_summary_reaches_the_coach_after_a_retry, .timeout = 60)
{
    struct fakeai *fa = NULL;
    cr_assert_eq(fakeai_start(&fa), 0);
    struct fakeai_response busy = {.status = 429,
                                   .headers = "Retry-After: 1\r\n",
                                   .body = "{\"error\":{\"code\":\"rate_limit_exceeded\"}}"};
    cr_assert_eq(fakeai_push(fa, &busy), 0);
    cr_assert_eq(fakeai_push_summary(fa, "Sam sleeps better; keep the breathing."), 0);
    static char url[300];
    snprintf(url, sizeof(url), "AI_SUMMARY_URL=%s", fakeai_url(fa));
    const char *env[] = {url, "AI_API_KEY=sk-test-key", "AI_MODEL=test-model", NULL};
    start(env);
    cr_assert_eq(pgtest_exec(conninfo,
                             "INSERT INTO \"Profile\"(id,\"userId\",\"clientFacts\","
                             "challenges,\"intakeCoachingGoals\") VALUES ('cprof1','" CLIENT
                             "',ARRAY['night shifts'],ARRAY['sleep'],'sleep through')"),
                 0);
    struct wsc *coach = login(TOK_COACH);
    json_decref(join(coach));
    struct wsc *client = login(TOK_CLIENT);
    json_decref(join(client));
    chat(client, "a1", "I slept better");
    wsc_send_json(coach, "{\"type\":\"end\",\"room\":\"room-1\"}");
    json_decref(wsc_expect(coach, "session.ended", WAIT));
    json_t *s = wsc_expect(coach, "summary", 15000);
    cr_assert_not_null(s, "the summary arrives after the 429 and its Retry-After");
    cr_expect_str_eq(str(s, "text"), "Sam sleeps better; keep the breathing.");
    cr_expect_eq(strlen(str(s, "sessionId")), 25);
    json_decref(s);
    cr_expect_null(wsc_expect(client, "summary", 300), "the summary is for the coach");
    cr_expect_eq(fakeai_request_count(fa), 2);
    struct fakeai_request rq;
    cr_assert_eq(fakeai_request_get(fa, 1, &rq), 0);
    cr_expect_str_eq(rq.method, "POST");
    cr_expect_str_eq(rq.authorization, "Bearer sk-test-key");
    cr_expect(strstr(rq.body, "\"model\":\"test-model\"") != NULL, "%s", rq.body);
    cr_expect(strstr(rq.body, "Sam Client (client): I slept better") != NULL, "transcript");
    cr_expect(strstr(rq.body, "night shifts") != NULL, "client facts");
    cr_expect(strstr(rq.body, "sleep through") != NULL, "intake goals");
    fakeai_request_fini(&rq);
    char *rows = query("SELECT count(*) FROM \"Session\" WHERE \"aiSummary\" ="
                       " 'Sam sleeps better; keep the breathing.'");
    cr_expect_str_eq(rows, "2", "on every Session row");
    free(rows);
    char *last = query("SELECT \"lastSummary\" FROM \"Profile\" WHERE \"userId\" = '" CLIENT "'");
    cr_expect_str_eq(last, "Sam sleeps better; keep the breathing.");
    free(last);
    char *job = query("SELECT status || ':' || attempts FROM coach_ai_job");
    cr_expect_str_eq(job, "done:2");
    free(job);
    wsc_close(coach, 1000);
    wsc_close(client, 1000);
    stop();
    fakeai_free(fa);
}

static long long unix_ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ISO 8601 UTC with milliseconds -> unix ms. */
static long long iso_ms(const char *s)
{
    struct tm tm = {0};
    int ms = 0;
    if (sscanf(s, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &ms) != 7) {
        return 0;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (long long)timegm(&tm) * 1000 + ms;
}

static void expect_warning_near(struct wsc *c, long long at_ms, int remaining)
{
    json_t *w = wsc_expect(c, "timer", 40000);
    cr_assert_not_null(w, "the %d s warning", remaining);
    long long now = unix_ms_now();
    cr_expect_eq(json_integer_value(json_object_get(w, "remainingSec")), remaining);
    cr_expect(llabs(now - at_ms) <= 2000, "warning %d s within 2 s of its time (off by %lld ms)",
              remaining, now - at_ms);
    json_decref(w);
}

Test(life, one_minute_with_warnings_at_30_and_10_survives_kill_9, .timeout = 90)
{
    const char *env[] = {"TIMER_WARNINGS=30,10", NULL};
    start(env);
    /* A 1-minute appointment whose session started 22 s ago. */
    cr_assert_eq(pgtest_exec(conninfo,
                             "UPDATE \"Appointment\" SET status='active', \"durationMin\"=1;"
                             "INSERT INTO \"Session\"(id,\"roomId\",\"appointmentId\",\"userId\","
                             "\"startedAt\",\"durationMinutes\",status) VALUES ('csess1','room-1',"
                             "'cappt1','" COACH "',(now() at time zone 'UTC') - interval"
                             " '22 seconds',1,'active')"),
                 0);
    struct wsc *client = login(TOK_CLIENT);
    json_t *j = join(client);
    long long ends = iso_ms(str(json_object_get(j, "session"), "endsAt"));
    json_decref(j);
    cr_assert(ends > unix_ms_now() + 30000, "about 38 s left");
    chat(client, "k1", "before the crash");
    expect_warning_near(client, ends - 30000, 30);

    gwproc_stop(&gp, SIGKILL); /* kill -9 mid-session */
    wsc_free(client);
    static char env_db[600];
    snprintf(env_db, sizeof(env_db), "DATABASE_URL=%s", conninfo);
    const char *env2[] = {env_db, "TIMER_WARNINGS=30,10", NULL};
    cr_assert_eq(gwproc_start(&gp, env2, NULL), 0, "restart");
    client = login(TOK_CLIENT);
    wsc_send_json(client, "{\"type\":\"join\",\"room\":\"room-1\",\"since\":0}");
    j = wsc_expect(client, "joined", WAIT);
    cr_assert_not_null(j);
    cr_expect_eq(iso_ms(str(json_object_get(j, "session"), "endsAt")), ends, "same clock");
    cr_expect_eq(json_array_size(json_object_get(j, "history")), 1, "the message survived");
    json_decref(j);
    expect_warning_near(client, ends - 10000, 10); /* not the 30 s one again */
    json_t *e = wsc_expect(client, "session.ended", 20000);
    cr_assert_not_null(e);
    cr_expect_str_eq(str(e, "reason"), "timer");
    cr_expect(llabs(unix_ms_now() - ends) <= 2000, "the end within 2 s of endsAt");
    cr_expect_eq(iso_ms(str(e, "endedAt")), ends, "endedAt = endsAt");
    json_decref(e);
    char *rows = query("SELECT string_agg(status || ':' || \"warningsSent\", ',' ORDER BY"
                       " \"userId\") FROM \"Session\"");
    cr_expect_str_eq(rows, "completed:2,completed:2", "both rows completed, two warnings");
    free(rows);
    wsc_close(client, 1000);
    stop();
}

/* Two ratings at once: exactly one wins, over WebSocket and over HTTP. */
Test(life, concurrent_ratings_one_wins, .timeout = 60)
{
    start(NULL);
    struct wsc *coach = login(TOK_COACH);
    json_decref(join(coach));
    struct wsc *c1 = login(TOK_CLIENT);
    json_t *j = join(c1);
    char sid[64];
    snprintf(sid, sizeof(sid), "%s", str(json_object_get(j, "session"), "id"));
    json_decref(j);
    struct wsc *c2 = login(TOK_CLIENT);
    json_decref(join(c2));
    wsc_send_json(coach, "{\"type\":\"end\",\"room\":\"room-1\"}");
    json_decref(wsc_expect(c1, "session.ended", WAIT));
    json_decref(wsc_expect(c2, "session.ended", WAIT));
    wsc_send_json(c1, "{\"type\":\"rate\",\"room\":\"room-1\",\"rating\":5}");
    wsc_send_json(c2, "{\"type\":\"rate\",\"room\":\"room-1\",\"rating\":1}");
    int rated = 0, conflicts = 0;
    struct wsc *cs[2] = {c1, c2};
    for (int i = 0; i < 2; i++) {
        char *f = wsc_recv(cs[i], WAIT, NULL);
        cr_assert_not_null(f);
        rated += strstr(f, "\"rated\"") != NULL;
        conflicts += strstr(f, "\"conflict\"") != NULL;
        free(f);
    }
    cr_expect_eq(rated, 1, "one rating stored");
    cr_expect_eq(conflicts, 1, "the other refused");
    char *n = query("SELECT count(*) FROM \"SessionRating\"");
    cr_expect_str_eq(n, "1");
    free(n);

    /* HTTP: a new appointment, ended, rated twice at once. */
    cr_assert_eq(pgtest_exec(conninfo, "DELETE FROM \"SessionRating\""), 0);
    char path[128];
    snprintf(path, sizeof(path), "/api/sessions/%s/rating", sid);
    CURLM *m = curl_multi_init();
    CURL *e[2];
    struct curl_slist *h[2];
    static struct http_body sink[2];
    for (int i = 0; i < 2; i++) {
        e[i] = http_handle(gp.port, "POST", path, TOK_CLIENT, NULL,
                           i == 0 ? "{\"rating\":4}" : "{\"rating\":2}", &sink[i], &h[i]);
        curl_multi_add_handle(m, e[i]);
    }
    int running = 1;
    while (running > 0) {
        curl_multi_perform(m, &running);
        curl_multi_wait(m, NULL, 0, 100, NULL);
    }
    long st[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        curl_easy_getinfo(e[i], CURLINFO_RESPONSE_CODE, &st[i]);
        curl_multi_remove_handle(m, e[i]);
        curl_easy_cleanup(e[i]);
    }
    curl_multi_cleanup(m);
    curl_slist_free_all(h[0]);
    curl_slist_free_all(h[1]);
    cr_expect((st[0] == 201 && st[1] == 409) || (st[0] == 409 && st[1] == 201),
              "one 201 and one 409, got %ld and %ld", st[0], st[1]);
    n = query("SELECT count(*) FROM \"SessionRating\"");
    cr_expect_str_eq(n, "1");
    free(n);
    wsc_close(coach, 1000);
    wsc_close(c1, 1000);
    wsc_close(c2, 1000);
    stop();
}
