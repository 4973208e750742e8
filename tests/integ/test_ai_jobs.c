/*
 * test_ai_jobs.c: the AI summary job end to end: the real gateway binary,
 * a real PostgreSQL database and the fake OpenAI-compatible endpoint over
 * real HTTP (tests/support/fakeai.h). A coach and a client chat in room-1,
 * the coach ends the session, and the job is observed through the coach's
 * `summary` event, the coach_ai_job row, the Session and Profile rows and
 * the requests the fake received: retries with backoff after 5xx, a
 * permanent failure on 4xx and on a malformed 2xx, a timeout, exhaustion
 * of AI_MAX_ATTEMPTS, a gateway restart between attempts, no endpoint
 * configured, and a session without messages.
 *
 * Nothing here sleeps to synchronise: conditions are polled with
 * deadlines (database queries, fakeai_wait_requests, wsc_expect). The few
 * negative checks ("no request", "no summary") wait a bounded time for
 * something that must not happen.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "fakeai.h"
#include "gwproc.h"
#include "pgtest.h"
#include "wsclient.h"

#define COACH      "ccoach0000000000000000001"
#define CLIENT     "cclient000000000000000001"
#define TOK_COACH  "tok-coach-0123456789abcdefghijklmnopqrstuvw"
#define TOK_CLIENT "tok-client-0123456789abcdefghijklmnopqrstuv"
#define API_KEY    "sk-test-key-4f9c2a7d1e"
#define MODEL      "test-model"
#define SUMMARY    "Sam sleeps better; keep the breathing."
#define WAIT       5000  /* one WebSocket answer */
#define JOB_WAIT   15000 /* a job reaching its final state */
#define QUIET_MS   1000  /* how long "nothing happens" is watched */

static const char seed_sql[] =
    "INSERT INTO \"User\"(id,email,\"displayName\",role,\"updatedAt\",\"skoolUserId\") VALUES"
    " ('" COACH "','coach@t','Dana Coach','coach',now(),'sk-coach'),"
    " ('" CLIENT "','client@t','Sam Client','client',now(),'sk-client');"
    "INSERT INTO \"AuthCode\"(id,code,\"skoolUserId\",\"skoolUsername\",\"expiresAt\") VALUES"
    " ('cauth1','vgs-1-a','sk-coach','coach',now()+interval '1 hour');"
    "INSERT INTO \"UserSession\"(id,\"sessionId\",\"skoolUserId\",\"skoolUsername\","
    "\"authCodeUsed\",\"expiresAt\",\"ipAddress\",\"userAgent\",\"deviceFingerprint\") VALUES"
    " ('cus1','" TOK_COACH "','sk-coach','c','vgs-1-a',now()+interval '1 day','::1','t','f'),"
    " ('cus2','" TOK_CLIENT "','sk-client','c','vgs-1-a',now()+interval '1 day','::1','t','f');"
    "INSERT INTO \"Appointment\"(id,\"scheduledFor\",\"durationMin\",\"clientId\",\"coachId\","
    "\"roomId\",status) VALUES"
    " ('cappt1',now() at time zone 'UTC',20,'" CLIENT "','" COACH "','room-1','scheduled');";

static char dbname[64], conninfo[512];
static struct gwproc gp;
static struct fakeai *fa;
static char url_env[300];

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A fresh migrated and seeded database, and the fake endpoint (not yet
 * named to anyone). */
static void setup(void)
{
    cr_assert_eq(pgtest_db_create(1, dbname, sizeof(dbname), conninfo, sizeof(conninfo)), 0);
    cr_assert_eq(pgtest_exec(conninfo, seed_sql), 0);
    cr_assert_eq(fakeai_start(&fa), 0);
    snprintf(url_env, sizeof(url_env), "AI_SUMMARY_URL=%s", fakeai_url(fa));
}

/* Start a gateway on the test's database with `extra` ("NAME=value",
 * NULL-terminated, may be NULL) on top of the database and log level. */
static void gateway_start(const char *const extra[])
{
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

/* Start with the fake as the endpoint, the test key and model, and
 * `extra` (AI_TIMEOUT_MS, AI_MAX_ATTEMPTS...). */
static void gateway_start_ai(const char *const extra[])
{
    const char *env[12] = {url_env, "AI_API_KEY=" API_KEY, "AI_MODEL=" MODEL};
    size_t n = 3;
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 11; i++) {
        env[n++] = extra[i];
    }
    env[n] = NULL;
    gateway_start(env);
}

/* The gateway's log, for failure messages (caller frees). */
static char *gateway_log(void)
{
    char *log = gwproc_log(&gp);
    return log != NULL ? log : strdup("(no log)");
}

static void gateway_stop(void)
{
    if (gp.pid > 0) {
        int rc = gwproc_stop(&gp, SIGTERM);
        cr_expect_eq(rc, 0, "clean exit");
        gp.pid = 0;
    }
}

static void teardown(void)
{
    gateway_stop();
    if (gp.log_path[0] != '\0') {
        unlink(gp.log_path);
    }
    fakeai_free(fa);
    fa = NULL;
    pgtest_db_drop(dbname);
}

static char *query(const char *sql)
{
    return pgtest_query_value(conninfo, sql);
}

/* Poll sql until its value is want or within_ms passed; returns the last
 * value (caller frees; NULL when SQL NULL or no row). */
static char *wait_for(const char *sql, const char *want, int within_ms)
{
    int64_t deadline = mono_ms() + within_ms;
    struct timespec step = {0, 50 * 1000000L};
    for (;;) {
        char *v = query(sql);
        if ((v != NULL && strcmp(v, want) == 0) || mono_ms() >= deadline) {
            return v;
        }
        free(v);
        nanosleep(&step, NULL);
    }
}

/* Wait for the job row to read want ("status:attempts") and check it. */
static void expect_job(const char *want, int within_ms)
{
    char *job = wait_for("SELECT status || ':' || attempts FROM coach_ai_job", want, within_ms);
    if (job == NULL || strcmp(job, want) != 0) {
        char *log = gateway_log();
        cr_expect_fail("job is %s, want %s; gateway log:\n%s", job != NULL ? job : "(none)", want,
                       log);
        free(log);
    }
    free(job);
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "";
}

static struct wsc *login_join(const char *token)
{
    struct wsc_opts o = {.port = gp.port};
    struct wsc *c = wsc_connect(&o, NULL);
    cr_assert_not_null(c);
    wsc_send_json(c, "{\"type\":\"hello\",\"token\":\"%s\"}", token);
    json_t *w = wsc_expect(c, "welcome", WAIT);
    cr_assert_not_null(w, "welcome: %s", wsc_last_error(c));
    json_decref(w);
    wsc_send_json(c, "{\"type\":\"join\",\"room\":\"room-1\"}");
    json_t *j = wsc_expect(c, "joined", WAIT);
    cr_assert_not_null(j, "joined: %s", wsc_last_error(c));
    json_decref(j);
    return c;
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

struct room {
    struct wsc *coach, *client;
};

/* Coach and client join room-1 and, when chatty, exchange two messages. */
static struct room meet(int chatty)
{
    struct room r = {.coach = login_join(TOK_COACH), .client = login_join(TOK_CLIENT)};
    if (chatty) {
        chat(r.client, "m1", "I slept better");
        chat(r.coach, "m2", "Great, keep the breathing");
    }
    return r;
}

/* The coach ends the session; both see session.ended. */
static void end_session(struct room *r)
{
    wsc_send_json(r->coach, "{\"type\":\"end\",\"room\":\"room-1\"}");
    json_t *ec = wsc_expect(r->coach, "session.ended", WAIT);
    cr_assert_not_null(ec, "the coach sees the end");
    json_decref(ec);
    json_t *el = wsc_expect(r->client, "session.ended", WAIT);
    cr_assert_not_null(el, "the client sees the end");
    json_decref(el);
}

static void leave(struct room *r)
{
    wsc_close(r->coach, 1000);
    wsc_close(r->client, 1000);
    r->coach = r->client = NULL;
}

/* No `summary` reaches the coach within QUIET_MS. */
static void expect_no_summary(struct room *r)
{
    json_t *s = wsc_expect(r->coach, "summary", QUIET_MS);
    cr_expect_null(s, "no summary event for a job that did not succeed");
    json_decref(s);
}

/* The summary was written nowhere. */
static void expect_no_summary_rows(void)
{
    char *n = query("SELECT count(*) FROM \"Session\" WHERE \"aiSummary\" IS NULL");
    cr_expect_str_eq(n, "2", "aiSummary stays NULL on both Session rows");
    free(n);
    char *p = query("SELECT count(*) FROM \"Profile\" WHERE \"lastSummary\" IS NOT NULL");
    cr_expect_str_eq(p, "0", "no lastSummary written");
    free(p);
}

/* The summary reached both Session rows and the client's Profile. */
static void expect_summary_rows(const char *text)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM \"Session\" WHERE \"aiSummary\" = '%s'", text);
    char *n = query(sql);
    cr_expect_str_eq(n, "2", "aiSummary on both Session rows");
    free(n);
    char *p = query("SELECT \"lastSummary\" FROM \"Profile\" WHERE \"userId\" = '" CLIENT "'");
    cr_expect_str_eq(p != NULL ? p : "(null)", text, "the client's lastSummary");
    free(p);
}

/* last_error is set and holds no secret; the log holds no key either. */
static void expect_error_recorded(void)
{
    char *err = query("SELECT last_error FROM coach_ai_job");
    cr_expect_not_null(err, "last_error is set");
    if (err != NULL) {
        cr_expect(strlen(err) > 0, "last_error is not empty");
        cr_expect_null(strstr(err, API_KEY), "last_error holds the API key: %s", err);
        cr_expect_null(strstr(err, "Bearer"), "last_error holds the header: %s", err);
    }
    free(err);
    char *log = gateway_log();
    cr_expect_null(strstr(log, API_KEY), "the gateway log holds the API key");
    free(log);
}

/* The coach's `summary` event carries text. */
static void expect_summary_event(struct room *r, const char *text, int within_ms)
{
    json_t *s = wsc_expect(r->coach, "summary", within_ms);
    if (s == NULL) {
        char *log = gateway_log();
        cr_assert_fail("no summary event (%s); gateway log:\n%s", wsc_last_error(r->coach), log);
        free(log);
    }
    cr_expect_str_eq(str(s, "text"), text);
    cr_expect_str_eq(str(s, "room"), "room-1");
    cr_expect_eq(strlen(str(s, "sessionId")), 25, "the coach's Session id");
    json_decref(s);
}

/* 1. Two 5xx answers, then a summary: the job retries with its backoff
 * (about 1 s, then about 2 s, each with equal jitter: at least half) and
 * ends 'done' after three attempts. The first request carries the key,
 * the content type and the model. */
Test(ai_jobs, server_errors_are_retried_with_backoff_then_succeed, .init = setup, .fini = teardown,
     .timeout = 60)
{
    struct fakeai_response e500 = {.status = 500,
                                   .body = "{\"error\":{\"code\":\"server_error\"}}"};
    cr_assert_eq(fakeai_push(fa, &e500), 0);
    cr_assert_eq(fakeai_push(fa, &e500), 0);
    cr_assert_eq(fakeai_push_summary(fa, SUMMARY), 0);
    gateway_start_ai(NULL);
    struct room r = meet(1);
    end_session(&r);
    int64_t at[3];
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(fakeai_wait_requests(fa, i + 1, 10000), 0, "request %zu arrives", i + 1);
        at[i] = mono_ms();
    }
    expect_summary_event(&r, SUMMARY, WAIT);
    expect_job("done:3", JOB_WAIT);
    /* /metrics counts the durable jobs by state (refreshed every 5 s). */
    static char metrics[16384];
    bool counted = false;
    for (int i = 0; i < 100 && !counted; i++) {
        long status = 0;
        cr_assert_eq(http_get(gp.port, "/metrics", &status, metrics, sizeof(metrics)), 0);
        counted = strstr(metrics, "coach_jobs{queue=\"ai\",state=\"done\"} 1\n") != NULL;
        if (!counted) {
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    cr_expect(counted, "the done job is counted in /metrics:\n%s", metrics);
    cr_expect(strstr(metrics, "coach_jobs{queue=\"ai\",state=\"pending\"} 0\n") != NULL);
    /* Backoff after attempt 1 is in [500, 1000] ms, after attempt 2 in
     * [1000, 2000] ms; a little less is allowed for when the waits woke. */
    cr_expect_geq(at[1] - at[0], 450, "first retry after %lld ms", (long long)(at[1] - at[0]));
    cr_expect_geq(at[2] - at[1], 900, "second retry after %lld ms", (long long)(at[2] - at[1]));
    cr_expect_lt(at[2] - at[0], 8000, "no needless waiting: %lld ms", (long long)(at[2] - at[0]));
    cr_expect_eq(fakeai_request_count(fa), 3);
    expect_summary_rows(SUMMARY);
    char *err = query("SELECT coalesce(last_error, '(null)') FROM coach_ai_job");
    cr_expect_str_eq(err, "(null)", "a done job keeps no error");
    free(err);

    struct fakeai_request rq;
    cr_assert_eq(fakeai_request_get(fa, 0, &rq), 0);
    cr_expect_str_eq(rq.method, "POST");
    cr_expect_str_eq(rq.path, FAKEAI_PATH);
    cr_expect_str_eq(rq.authorization != NULL ? rq.authorization : "(none)", "Bearer " API_KEY);
    cr_expect_not_null(rq.content_type);
    if (rq.content_type != NULL) {
        cr_expect_eq(strncmp(rq.content_type, "application/json", 16), 0, "%s", rq.content_type);
    }
    json_error_t jerr;
    json_t *body = json_loads(rq.body, 0, &jerr);
    cr_expect_not_null(body, "the request body is JSON: %s", jerr.text);
    cr_expect_str_eq(str(body, "model"), MODEL);
    cr_expect(json_array_size(json_object_get(body, "messages")) == 2, "system and user");
    json_decref(body);
    cr_expect_not_null(strstr(rq.body, "Sam Client (client): I slept better"), "transcript");
    fakeai_request_fini(&rq);
    for (size_t i = 1; i < 3; i++) {
        cr_assert_eq(fakeai_request_get(fa, i, &rq), 0);
        cr_expect_str_eq(rq.authorization != NULL ? rq.authorization : "(none)", "Bearer " API_KEY,
                         "retry %zu is authorised too", i);
        fakeai_request_fini(&rq);
    }
    leave(&r);
}

/* 2. A 400 is permanent: one request, 'failed', no summary anywhere, and
 * the recorded error holds no key even when the endpoint echoes it. */
Test(ai_jobs, a_client_error_fails_the_job_at_once, .init = setup, .fini = teardown, .timeout = 60)
{
    struct fakeai_response bad = {.status = 400,
                                  .body =
                                      "{\"error\":{\"code\":\"invalid_request_error\","
                                      "\"message\":\"Incorrect API key provided: " API_KEY "\"}}"};
    cr_assert_eq(fakeai_set_default(fa, &bad), 0);
    gateway_start_ai(NULL);
    struct room r = meet(1);
    end_session(&r);
    cr_assert_eq(fakeai_wait_requests(fa, 1, 10000), 0, "the one attempt");
    expect_job("failed:1", JOB_WAIT);
    expect_no_summary(&r);
    cr_expect_eq(fakeai_request_count(fa), 1, "no retry after a 4xx");
    expect_no_summary_rows();
    expect_error_recorded();
    leave(&r);
}

/* 3. An answer slower than AI_TIMEOUT_MS: the attempt is abandoned at the
 * timeout and retried, and the retry's summary arrives. */
Test(ai_jobs, a_hung_answer_times_out_and_is_retried, .init = setup, .fini = teardown,
     .timeout = 60)
{
    char *late = fakeai_completion_json("Too late.");
    cr_assert_not_null(late);
    struct fakeai_response slow = {.status = 200, .body = late, .delay_ms = 3000};
    cr_assert_eq(fakeai_push(fa, &slow), 0);
    free(late);
    cr_assert_eq(fakeai_push_summary(fa, SUMMARY), 0);
    const char *env[] = {"AI_TIMEOUT_MS=500", NULL};
    gateway_start_ai(env);
    struct room r = meet(1);
    end_session(&r);
    cr_assert_eq(fakeai_wait_requests(fa, 1, 10000), 0);
    int64_t t1 = mono_ms();
    cr_assert_eq(fakeai_wait_requests(fa, 2, 10000), 0, "the retry after the timeout");
    int64_t gap = mono_ms() - t1;
    /* 500 ms timeout + a backoff in [500, 1000] ms; waiting out the 3 s
     * delay would put the retry past 3.5 s. */
    cr_expect_geq(gap, 900, "retry after %lld ms", (long long)gap);
    cr_expect_lt(gap, 2900, "the attempt was cut at AI_TIMEOUT_MS: retry after %lld ms",
                 (long long)gap);
    expect_summary_event(&r, SUMMARY, WAIT);
    expect_job("done:2", JOB_WAIT);
    expect_summary_rows(SUMMARY);
    cr_expect_eq(fakeai_request_count(fa), 2);
    leave(&r);
}

/* 4a. A 200 whose body is not JSON is a permanent failure. */
Test(ai_jobs, a_malformed_answer_fails_the_job, .init = setup, .fini = teardown, .timeout = 60)
{
    struct fakeai_response junk = {
        .status = 200, .headers = "Content-Type: application/json\r\n", .body = "not json"};
    cr_assert_eq(fakeai_set_default(fa, &junk), 0);
    gateway_start_ai(NULL);
    struct room r = meet(1);
    end_session(&r);
    cr_assert_eq(fakeai_wait_requests(fa, 1, 10000), 0);
    expect_job("failed:1", JOB_WAIT);
    expect_no_summary(&r);
    cr_expect_eq(fakeai_request_count(fa), 1, "a malformed 2xx is not retried");
    expect_no_summary_rows();
    expect_error_recorded();
    leave(&r);
}

/* 4b. A 200 with JSON but no choice is a permanent failure too. */
Test(ai_jobs, an_answer_without_choices_fails_the_job, .init = setup, .fini = teardown,
     .timeout = 60)
{
    struct fakeai_response empty = {.status = 200,
                                    .headers = "Content-Type: application/json\r\n",
                                    .body = "{\"id\":\"x\",\"object\":\"chat.completion\","
                                            "\"choices\":[]}"};
    cr_assert_eq(fakeai_set_default(fa, &empty), 0);
    gateway_start_ai(NULL);
    struct room r = meet(1);
    end_session(&r);
    cr_assert_eq(fakeai_wait_requests(fa, 1, 10000), 0);
    expect_job("failed:1", JOB_WAIT);
    expect_no_summary(&r);
    cr_expect_eq(fakeai_request_count(fa), 1, "an empty choice list is not retried");
    expect_no_summary_rows();
    expect_error_recorded();
    leave(&r);
}

/* 5. A 503 forever with AI_MAX_ATTEMPTS=2: 'failed' after exactly two
 * requests. */
Test(ai_jobs, retries_stop_at_max_attempts, .init = setup, .fini = teardown, .timeout = 60)
{
    struct fakeai_response busy = {.status = 503, .body = "{\"error\":{\"code\":\"overloaded\"}}"};
    cr_assert_eq(fakeai_set_default(fa, &busy), 0);
    const char *env[] = {"AI_MAX_ATTEMPTS=2", NULL};
    gateway_start_ai(env);
    struct room r = meet(1);
    end_session(&r);
    cr_assert_eq(fakeai_wait_requests(fa, 2, 10000), 0, "two attempts");
    expect_job("failed:2", JOB_WAIT);
    cr_expect_eq(fakeai_wait_requests(fa, 3, QUIET_MS), -ETIMEDOUT, "no third attempt");
    cr_expect_eq(fakeai_request_count(fa), 2);
    expect_no_summary(&r);
    expect_no_summary_rows();
    expect_error_recorded();
    leave(&r);
}

/* 6. The job outlives its process. The first attempt gets a 503 with
 * "Retry-After: 3", so the job waits in 'retry' for 3 s; in that window
 * the gateway is stopped (SIGTERM). The fake is then told to answer 200
 * and a new process starts on the same database: it finds the job when it
 * falls due and completes it, with nobody connected. (The job is in
 * 'retry', not 'running', when the process stops: a job left 'running' by
 * a killed process would only be re-claimed after its lease,
 * AI_TIMEOUT_MS + 30 s, which this test does not wait for.) */
Test(ai_jobs, the_job_survives_a_gateway_restart, .init = setup, .fini = teardown, .timeout = 60)
{
    struct fakeai_response busy = {
        .status = 503, .headers = "Retry-After: 3\r\n", .body = "{\"error\":{\"code\":\"busy\"}}"};
    cr_assert_eq(fakeai_push(fa, &busy), 0);
    gateway_start_ai(NULL);
    struct room r = meet(1);
    end_session(&r);
    cr_assert_eq(fakeai_wait_requests(fa, 1, 10000), 0, "the first attempt");
    expect_job("retry:1", WAIT);
    leave(&r);
    gateway_stop();
    char *st = query("SELECT status || ':' || attempts FROM coach_ai_job");
    cr_assert_str_eq(st, "retry:1", "the stopped gateway left the job waiting");
    free(st);
    cr_expect_eq(fakeai_request_count(fa), 1);

    cr_assert_eq(fakeai_push_summary(fa, SUMMARY), 0);
    unlink(gp.log_path);
    gateway_start_ai(NULL);
    expect_job("done:2", JOB_WAIT);
    expect_summary_rows(SUMMARY);
    cr_expect_eq(fakeai_request_count(fa), 2, "one more attempt, by the new process");
}

/* 7. Without AI_SUMMARY_URL the job is recorded as skipped and no request
 * is made, though an endpoint is running. */
Test(ai_jobs, no_endpoint_configured_skips_the_job, .init = setup, .fini = teardown, .timeout = 60)
{
    const char *env[] = {"AI_API_KEY=" API_KEY, "AI_MODEL=" MODEL, NULL};
    gateway_start(env);
    struct room r = meet(1);
    end_session(&r);
    char *job = query("SELECT status || ':' || attempts FROM coach_ai_job");
    cr_expect_str_eq(job != NULL ? job : "(none)", "skipped:0");
    free(job);
    cr_expect_eq(fakeai_wait_requests(fa, 1, QUIET_MS), -ETIMEDOUT, "no request");
    expect_no_summary(&r);
    expect_no_summary_rows();
    job = query("SELECT status FROM coach_ai_job");
    cr_expect_str_eq(job != NULL ? job : "(none)", "skipped", "still skipped");
    free(job);
    leave(&r);
}

/* 8. A session without a single message has nothing to summarise: no job
 * row, no request. */
Test(ai_jobs, a_silent_session_has_no_job, .init = setup, .fini = teardown, .timeout = 60)
{
    gateway_start_ai(NULL);
    struct room r = meet(0);
    end_session(&r);
    char *ap = query("SELECT status FROM \"Appointment\" WHERE id = 'cappt1'");
    cr_expect_str_eq(ap, "completed", "the session did end");
    free(ap);
    char *n = query("SELECT count(*) FROM coach_ai_job");
    cr_expect_str_eq(n, "0", "no job row");
    free(n);
    cr_expect_eq(fakeai_wait_requests(fa, 1, QUIET_MS), -ETIMEDOUT, "no request");
    expect_no_summary(&r);
    n = query("SELECT count(*) FROM coach_ai_job");
    cr_expect_str_eq(n, "0", "still no job row");
    free(n);
    leave(&r);
}
