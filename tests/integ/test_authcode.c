/*
 * test_authcode.c: the Skool auth-code routes (POST /api/auth/codes and
 * POST /api/auth/redeem) against the real binary and a real PostgreSQL:
 * the service key, the code format and lifetime, the daily rate limit
 * (also under concurrency), redeeming once (also under concurrency), the
 * UserSession it creates, and that its token opens a WebSocket session.
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

#define SERVICE_KEY "svc-key-0123456789abcdef"
#define UA          "coach-test/1.0 (auth codes)"
#define WAIT        5000
#define MIN_MS      (60LL * 1000)
#define DAY_MS      (24LL * 60 * MIN_MS)

static char dbname[64], conninfo[512];
static char env_db[600];
static struct gwproc gp, gp2; /* gp2: a second node on the same database, when started */

static void start_with(const char *service_key_env)
{
    cr_assert_eq(pgtest_db_create(1, dbname, sizeof(dbname), conninfo, sizeof(conninfo)), 0);
    snprintf(env_db, sizeof(env_db), "DATABASE_URL=%s", conninfo);
    const char *env[] = {env_db, "LOG_LEVEL=info", service_key_env, NULL};
    cr_assert_eq(gwproc_start(&gp, env, NULL), 0, "gateway starts");
}

static void start(void)
{
    start_with("SERVICE_KEY=" SERVICE_KEY);
}

/* A second gateway on the same database: concurrency across nodes. */
static void start_second(void)
{
    const char *env[] = {env_db, "LOG_LEVEL=info", "SERVICE_KEY=" SERVICE_KEY, NULL};
    cr_assert_eq(gwproc_start(&gp2, env, NULL), 0, "second gateway starts");
}

static void stop(void)
{
    if (gp2.pid > 0) {
        cr_expect_eq(gwproc_stop(&gp2, SIGTERM), 0, "clean exit (second node)");
        unlink(gp2.log_path);
    }
    int rc = gp.pid > 0 ? gwproc_stop(&gp, SIGTERM) : 0;
    cr_expect_eq(rc, 0, "clean exit");
    char *log = gwproc_log(&gp);
    cr_expect(log == NULL || strstr(log, "vgs-") == NULL, "no code in the log");
    free(log);
    unlink(gp.log_path);
    pgtest_db_drop(dbname);
}

static char *query(const char *sql)
{
    return pgtest_query_value(conninfo, sql);
}

/* One POST; returns the status (0: no answer), body in out. */
static long post(const char *path, const char *token, const char *ua, const char *json,
                 struct http_body *out)
{
    return http_request(gp.port, "POST", path, token, ua, json, out);
}

/* n identical POSTs at once (curl multi), alternating between the nodes
 * when a second one runs; statuses into st. */
static void post_many(int n, const char *path, const char *token, const char *json, long *st,
                      struct http_body *bodies)
{
    CURLM *m = curl_multi_init();
    CURL *e[16];
    struct curl_slist *h[16];
    cr_assert(n <= 16);
    for (int i = 0; i < n; i++) {
        int port = gp2.pid > 0 && i % 2 == 1 ? gp2.port : gp.port;
        e[i] = http_handle(port, "POST", path, token, UA, json, &bodies[i], &h[i]);
        curl_multi_add_handle(m, e[i]);
    }
    int running = 1;
    while (running > 0) {
        curl_multi_perform(m, &running);
        curl_multi_wait(m, NULL, 0, 100, NULL);
    }
    for (int i = 0; i < n; i++) {
        st[i] = 0;
        curl_easy_getinfo(e[i], CURLINFO_RESPONSE_CODE, &st[i]);
        curl_multi_remove_handle(m, e[i]);
        curl_easy_cleanup(e[i]);
        curl_slist_free_all(h[i]);
    }
    curl_multi_cleanup(m);
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "";
}

static long long unix_ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ISO 8601 UTC with milliseconds -> unix ms (0 when malformed). */
static long long iso_ms(const char *s)
{
    struct tm tm = {0};
    int ms = 0;
    if (strlen(s) != 24 || sscanf(s, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7) {
        return 0;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (long long)timegm(&tm) * 1000 + ms;
}

/* The error code of an error body, or "". */
static void error_code(const char *body, char *out, size_t cap)
{
    json_t *o = json_loads(body, 0, NULL);
    snprintf(out, cap, "%s", str(json_object_get(o, "error"), "code"));
    json_decref(o);
}

static void expect_error(long status, const struct http_body *b, long want, const char *code)
{
    char got[64];
    error_code(b->buf, got, sizeof(got));
    cr_expect_eq(status, want, "status %ld for %s: %s", status, code, b->buf);
    cr_expect_str_eq(got, code, "%s", b->buf);
}

/* "vgs-<unix ms>-<16 of [a-z0-9]>", the ms within 10 s of now. */
static void expect_code_format(const char *code)
{
    char ms[32] = "", rnd[64] = "";
    int n = sscanf(code, "vgs-%31[0-9]-%63[a-z0-9]", ms, rnd);
    cr_expect_eq(n, 2, "format: %s", code);
    cr_expect_eq(strlen(rnd), 16, "16 random characters: %s", code);
    cr_expect_eq(strlen(code), 4 + strlen(ms) + 1 + 16, "nothing else: %s", code);
    cr_expect(llabs(strtoll(ms, NULL, 10) - unix_ms_now()) < 10000, "unix ms now: %s", code);
}

/* Issue a code for user (skoolUsername = name); its code into out. */
static void issue(const char *user, const char *name, char *out, size_t cap)
{
    char json[256];
    snprintf(json, sizeof(json), "{\"skoolUserId\":\"%s\",\"skoolUsername\":\"%s\"}", user, name);
    struct http_body b;
    long st = post("/api/auth/codes", SERVICE_KEY, NULL, json, &b);
    cr_assert_eq(st, 201, "issue: %ld %s", st, b.buf);
    json_t *o = json_loads(b.buf, 0, NULL);
    cr_assert_not_null(o, "%s", b.buf);
    snprintf(out, cap, "%s", str(o, "code"));
    json_decref(o);
}

Test(authcode, issue_format_and_row, .timeout = 60)
{
    start();
    struct http_body b;
    long long before = unix_ms_now();
    long st = post("/api/auth/codes", SERVICE_KEY, NULL,
                   "{\"skoolUserId\":\"sk-42\",\"skoolUsername\":\"Ana Skool\"}", &b);
    cr_assert_eq(st, 201, "%s", b.buf);
    json_t *o = json_loads(b.buf, 0, NULL);
    cr_assert_not_null(o, "%s", b.buf);
    cr_expect_eq(json_object_size(o), 2, "code and expiresAt only: %s", b.buf);
    const char *code = str(o, "code");
    expect_code_format(code);
    long long exp = iso_ms(str(o, "expiresAt"));
    cr_expect(exp >= before + 30 * MIN_MS - 1000 && exp <= unix_ms_now() + 30 * MIN_MS + 1000,
              "expires in 30 minutes: %s", b.buf);
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT \"skoolUserId\" || '|' || \"skoolUsername\" || '|' || \"isActive\" || '|' ||"
             " (\"usedAt\" IS NULL) || '|' || length(id) || '|' ||"
             " (extract(epoch FROM \"expiresAt\" - \"generatedAt\"))::int || '|' ||"
             " (extract(epoch FROM \"expiresAt\") * 1000)::int8"
             " FROM \"AuthCode\" WHERE code = '%s'",
             code);
    char *row = query(sql);
    char want[256];
    snprintf(want, sizeof(want), "sk-42|Ana Skool|true|true|25|1800|%lld", exp);
    cr_expect_str_eq(row != NULL ? row : "(none)", want, "the AuthCode row");
    free(row);
    json_decref(o);
    char *rl = query("SELECT \"requestCount\" || '|' || (\"requestDate\" = date_trunc('day',"
                     " now() AT TIME ZONE 'UTC')) || '|' || length(id) FROM \"RateLimit\""
                     " WHERE \"skoolUserId\" = 'sk-42'");
    cr_expect_str_eq(rl != NULL ? rl : "(none)", "1|true|25", "counted on today's UTC row");
    free(rl);
    stop();
}

Test(authcode, service_key_and_bodies, .timeout = 60)
{
    start();
    const char *ok = "{\"skoolUserId\":\"sk-1\",\"skoolUsername\":\"One\"}";
    struct http_body b;
    expect_error(post("/api/auth/codes", NULL, NULL, ok, &b), &b, 401, "unauthorized");
    expect_error(post("/api/auth/codes", "svc-key-0123456789abcdeX", NULL, ok, &b), &b, 401,
                 "unauthorized");
    expect_error(post("/api/auth/codes", "short", NULL, ok, &b), &b, 401, "unauthorized");
    expect_error(post("/api/auth/codes", SERVICE_KEY "x", NULL, ok, &b), &b, 401, "unauthorized");
    char big[400];
    memset(big, 'a', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    char json[600];
    const char *bad[] = {
        "nonsense",
        "[]",
        "{}",
        "{\"skoolUserId\":\"sk-1\"}",
        "{\"skoolUsername\":\"One\"}",
        "{\"skoolUserId\":\"\",\"skoolUsername\":\"One\"}",
        "{\"skoolUserId\":\"sk-1\",\"skoolUsername\":\"\"}",
        "{\"skoolUserId\":42,\"skoolUsername\":\"One\"}",
        "{\"skoolUserId\":\"sk-1\",\"skoolUsername\":null}",
        "{\"skoolUserId\":\"sk-1\",\"skoolUserId\":\"sk-2\",\"skoolUsername\":\"One\"}",
        json, /* a 129-byte id */
    };
    snprintf(json, sizeof(json), "{\"skoolUserId\":\"%.129s\",\"skoolUsername\":\"One\"}", big);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_error(post("/api/auth/codes", SERVICE_KEY, NULL, bad[i], &b), &b, 422,
                     "bad_request");
    }
    snprintf(json, sizeof(json), "{\"skoolUserId\":\"%.128s\",\"skoolUsername\":\"%.257s\"}", big,
             big);
    cr_expect_eq(post("/api/auth/codes", SERVICE_KEY, NULL, json, &b), 422, "257-byte name");
    snprintf(json, sizeof(json), "{\"skoolUserId\":\"%.128s\",\"skoolUsername\":\"%.256s\"}", big,
             big);
    cr_expect_eq(post("/api/auth/codes", SERVICE_KEY, NULL, json, &b), 201,
                 "128-byte id and 256-byte name are fine: %s", b.buf);
    cr_expect_eq(post("/api/auth/codes", SERVICE_KEY, NULL, ok, &b), 201, "%s", b.buf);
    char *n = query("SELECT count(*) FROM \"AuthCode\"");
    cr_expect_str_eq(n, "2", "only the valid requests issued codes");
    free(n);
    stop();
}

Test(authcode, unconfigured_service_key_is_503, .timeout = 60)
{
    unsetenv("SERVICE_KEY");
    start_with("LOG_LEVEL=info");
    struct http_body b;
    expect_error(post("/api/auth/codes", SERVICE_KEY, NULL,
                      "{\"skoolUserId\":\"sk-1\",\"skoolUsername\":\"One\"}", &b),
                 &b, 503, "unavailable");
    cr_expect(strstr(b.buf, "auth codes are not configured") != NULL, "%s", b.buf);
    expect_error(post("/api/auth/codes", NULL, NULL, "{}", &b), &b, 503, "unavailable");
    expect_error(post("/api/auth/redeem", NULL, NULL, "{\"code\":\"vgs-1-x\"}", &b), &b, 401,
                 "invalid_code");
    stop();
}

Test(authcode, five_codes_a_day_then_429, .timeout = 60)
{
    start();
    char code[128];
    for (int i = 0; i < 5; i++) {
        issue("sk-limit", "Lim", code, sizeof(code));
    }
    struct http_body b;
    const char *json = "{\"skoolUserId\":\"sk-limit\",\"skoolUsername\":\"Lim\"}";
    expect_error(post("/api/auth/codes", SERVICE_KEY, NULL, json, &b), &b, 429, "rate_limited");
    expect_error(post("/api/auth/codes", SERVICE_KEY, NULL, json, &b), &b, 429, "rate_limited");
    char *n = query("SELECT count(*) FROM \"AuthCode\" WHERE \"skoolUserId\" = 'sk-limit'");
    cr_expect_str_eq(n, "5", "nothing issued past the limit");
    free(n);
    n = query("SELECT string_agg(\"requestCount\"::text, ',') FROM \"RateLimit\""
              " WHERE \"skoolUserId\" = 'sk-limit'");
    cr_expect_str_eq(n, "5", "one row; refused requests are not counted");
    free(n);
    issue("sk-other", "Other", code, sizeof(code)); /* per user */

    /* Yesterday's row does not count today. */
    cr_assert_eq(pgtest_exec(conninfo, "UPDATE \"RateLimit\" SET \"requestDate\" ="
                                       " \"requestDate\" - interval '1 day'"
                                       " WHERE \"skoolUserId\" = 'sk-limit'"),
                 0);
    issue("sk-limit", "Lim", code, sizeof(code));
    n = query("SELECT string_agg(\"requestCount\"::text, ',' ORDER BY \"requestDate\")"
              " FROM \"RateLimit\" WHERE \"skoolUserId\" = 'sk-limit'");
    cr_expect_str_eq(n, "5,1", "a new UTC day, a new row");
    free(n);
    stop();
}

/* Twelve requests at once, spread over two gateways on one database. */
Test(authcode, concurrent_issues_never_exceed_five, .timeout = 60)
{
    start();
    start_second();
    long st[12];
    struct http_body bodies[12];
    post_many(12, "/api/auth/codes", SERVICE_KEY,
              "{\"skoolUserId\":\"sk-rush\",\"skoolUsername\":\"Rush\"}", st, bodies);
    int created = 0, limited = 0;
    for (int i = 0; i < 12; i++) {
        created += st[i] == 201;
        limited += st[i] == 429;
    }
    cr_expect_eq(created, 5, "five issued");
    cr_expect_eq(limited, 7, "the rest refused");
    char *n = query("SELECT count(*) FROM \"AuthCode\" WHERE \"skoolUserId\" = 'sk-rush'");
    cr_expect_str_eq(n, "5");
    free(n);
    n = query("SELECT \"requestCount\" FROM \"RateLimit\" WHERE \"skoolUserId\" = 'sk-rush'");
    cr_expect_str_eq(n, "5");
    free(n);
    stop();
}

/* Redeem code (fingerprint fp or none); the reply into b. */
static long redeem(const char *code, const char *fp, struct http_body *b)
{
    char json[512];
    if (fp != NULL) {
        snprintf(json, sizeof(json), "{\"code\":\"%s\",\"deviceFingerprint\":\"%s\"}", code, fp);
    } else {
        snprintf(json, sizeof(json), "{\"code\":\"%s\"}", code);
    }
    return post("/api/auth/redeem", NULL, UA, json, b);
}

Test(authcode, redeem_creates_a_session_whose_token_opens_the_websocket, .timeout = 60)
{
    start();
    cr_assert_eq(pgtest_exec(conninfo,
                             "INSERT INTO \"User\"(id,email,\"displayName\",role,\"updatedAt\","
                             "\"skoolUserId\") VALUES ('cuserskool00000000000001','a@t',"
                             "'Ana Skool','client',now(),'sk-ana')"),
                 0);
    char code[128];
    issue("sk-ana", "Ana S", code, sizeof(code));
    struct http_body b;
    long long before = unix_ms_now();
    cr_assert_eq(redeem(code, "fp-123", &b), 201, "%s", b.buf);
    json_t *o = json_loads(b.buf, 0, NULL);
    cr_assert_not_null(o, "%s", b.buf);
    char token[128];
    snprintf(token, sizeof(token), "%s", str(o, "token"));
    cr_expect_eq(strlen(token), 43, "32 bytes as base64url: %s", token);
    cr_expect_eq(strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                 43, "base64url alphabet, no padding: %s", token);
    cr_expect_str_eq(str(o, "skoolUserId"), "sk-ana");
    cr_expect_str_eq(str(o, "skoolUsername"), "Ana S");
    long long exp = iso_ms(str(o, "expiresAt"));
    cr_expect(exp >= before + 30 * DAY_MS - 1000 && exp <= unix_ms_now() + 30 * DAY_MS + 1000,
              "valid 30 days: %s", b.buf);
    json_decref(o);

    char sql[768];
    snprintf(sql, sizeof(sql),
             "SELECT \"skoolUserId\" || '|' || \"skoolUsername\" || '|' || \"ipAddress\" || '|' ||"
             " \"userAgent\" || '|' || \"deviceFingerprint\" || '|' || \"isActive\" || '|' ||"
             " (\"authCodeUsed\" = '%s') || '|' || length(id) || '|' ||"
             " (extract(epoch FROM \"expiresAt\") * 1000)::int8"
             " FROM \"UserSession\" WHERE \"sessionId\" = '%s'",
             code, token);
    char *row = query(sql);
    char want[256];
    snprintf(want, sizeof(want), "sk-ana|Ana S|127.0.0.1|" UA "|fp-123|true|true|25|%lld", exp);
    cr_expect_str_eq(row != NULL ? row : "(none)", want, "the UserSession row");
    free(row);
    snprintf(sql, sizeof(sql),
             "SELECT (\"usedAt\" IS NOT NULL) || '|' || \"isActive\" || '|' || \"usedIpAddress\""
             " || '|' || \"userAgent\" || '|' || \"deviceFingerprint\""
             " FROM \"AuthCode\" WHERE code = '%s'",
             code);
    row = query(sql);
    cr_expect_str_eq(row != NULL ? row : "(none)", "true|false|127.0.0.1|" UA "|fp-123");
    free(row);

    /* The token is a session token on /ws (hello, then the header). */
    struct wsc_opts wo = {.port = gp.port};
    struct wsc *c = wsc_connect(&wo, NULL);
    cr_assert_not_null(c);
    wsc_send_json(c, "{\"type\":\"hello\",\"token\":\"%s\"}", token);
    json_t *w = wsc_expect(c, "welcome", WAIT);
    cr_assert_not_null(w, "welcome: %s", wsc_last_error(c));
    cr_expect_str_eq(str(json_object_get(w, "user"), "id"), "cuserskool00000000000001");
    json_decref(w);
    wsc_close(c, 1000);
    wo.bearer = token;
    c = wsc_connect(&wo, NULL);
    cr_assert_not_null(c);
    w = wsc_expect(c, "welcome", WAIT);
    cr_expect_not_null(w, "welcome with the header");
    json_decref(w);
    wsc_close(c, 1000);

    expect_error(redeem(code, "fp-123", &b), &b, 401, "code_used");
    char *n = query("SELECT count(*) FROM \"UserSession\"");
    cr_expect_str_eq(n, "1", "one session");
    free(n);
    stop();
}

Test(authcode, a_token_without_a_user_is_refused_on_the_websocket, .timeout = 60)
{
    start();
    char code[128];
    issue("sk-nobody", "Nobody", code, sizeof(code));
    struct http_body b;
    cr_assert_eq(post("/api/auth/redeem", NULL, NULL, "{\"code\":\"x\"}", &b), 401);
    char json[256];
    snprintf(json, sizeof(json), "{\"code\":\"%s\",\"deviceFingerprint\":null}", code);
    cr_assert_eq(post("/api/auth/redeem", NULL, NULL, json, &b), 201, "%s", b.buf);
    json_t *o = json_loads(b.buf, 0, NULL);
    char token[128];
    snprintf(token, sizeof(token), "%s", str(o, "token"));
    json_decref(o);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT \"userAgent\" || '|' || \"deviceFingerprint\" || '|' || \"ipAddress\""
             " FROM \"UserSession\" WHERE \"sessionId\" = '%s'",
             token);
    char *row = query(sql);
    cr_expect_str_eq(row != NULL ? row : "(none)", "||127.0.0.1", "no UA, no fingerprint: \"\"");
    free(row);
    /* No "User" has skoolUserId sk-nobody: the application's business. */
    struct wsc_opts wo = {.port = gp.port};
    struct wsc *c = wsc_connect(&wo, NULL);
    cr_assert_not_null(c);
    wsc_send_json(c, "{\"type\":\"hello\",\"token\":\"%s\"}", token);
    json_t *e = wsc_expect(c, "error", WAIT);
    cr_assert_not_null(e);
    cr_expect_str_eq(str(e, "code"), "unauthorized");
    json_decref(e);
    cr_expect_eq(wsc_wait_close(c, WAIT), 1008);
    wsc_free(c);
    stop();
}

Test(authcode, unknown_used_expired_and_bad_bodies, .timeout = 60)
{
    start();
    struct http_body b;
    expect_error(redeem("vgs-1-doesnotexist00000", NULL, &b), &b, 401, "invalid_code");
    char longcode[200];
    memset(longcode, 'v', sizeof(longcode));
    longcode[sizeof(longcode) - 1] = '\0';
    expect_error(redeem(longcode, NULL, &b), &b, 401, "invalid_code");

    char code[128];
    issue("sk-exp", "Exp", code, sizeof(code));
    char sql[256];
    snprintf(sql, sizeof(sql),
             "UPDATE \"AuthCode\" SET \"expiresAt\" = (now() AT TIME ZONE 'UTC')"
             " - interval '1 second' WHERE code = '%s'",
             code);
    cr_assert_eq(pgtest_exec(conninfo, sql), 0);
    expect_error(redeem(code, NULL, &b), &b, 401, "code_expired");

    issue("sk-exp", "Exp", code, sizeof(code));
    snprintf(sql, sizeof(sql), "UPDATE \"AuthCode\" SET \"isActive\" = false WHERE code = '%s'",
             code);
    cr_assert_eq(pgtest_exec(conninfo, sql), 0);
    expect_error(redeem(code, NULL, &b), &b, 401, "code_used");

    const char *bad[] = {
        "nonsense",        "{}",
        "{\"code\":\"\"}", "{\"code\":42}",
        "{\"code\":null}", "{\"code\":\"vgs-1-a\",\"deviceFingerprint\":7}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_error(post("/api/auth/redeem", NULL, UA, bad[i], &b), &b, 422, "bad_request");
    }
    char *n = query("SELECT count(*) FROM \"UserSession\"");
    cr_expect_str_eq(n, "0", "no session from any of these");
    free(n);
    stop();
}

/* Each round: two redeems of one code at once, one to each of two gateways
 * on the same database (a real race in PostgreSQL, not only on one store
 * thread). */
Test(authcode, two_concurrent_redeems_one_wins, .timeout = 60)
{
    start();
    start_second();
    for (int round = 0; round < 5; round++) {
        char code[128], json[256];
        issue("sk-race", "Race", code, sizeof(code));
        snprintf(json, sizeof(json), "{\"code\":\"%s\",\"deviceFingerprint\":\"fp\"}", code);
        long st[2];
        struct http_body bodies[2];
        post_many(2, "/api/auth/redeem", NULL, json, st, bodies);
        int loser = st[0] == 201 ? 1 : 0;
        cr_expect(st[1 - loser] == 201 && st[loser] == 401, "one 201 and one 401, got %ld, %ld",
                  st[0], st[1]);
        char got[64];
        error_code(bodies[loser].buf, got, sizeof(got));
        cr_expect_str_eq(got, "code_used", "%s", bodies[loser].buf);
    }
    char *n = query("SELECT count(*) || '|' || count(DISTINCT \"authCodeUsed\")"
                    " FROM \"UserSession\"");
    cr_expect_str_eq(n, "5|5", "one session per code");
    free(n);
    stop();
}

Test(authcode, ten_concurrent_redeems_of_one_code_one_201, .timeout = 60)
{
    start();
    start_second();
    enum { N = 10 };
    char code[128], json[256];
    issue("sk-ten", "Ten", code, sizeof(code));
    snprintf(json, sizeof(json), "{\"code\":\"%s\"}", code);
    long st[N];
    struct http_body bodies[N];
    post_many(N, "/api/auth/redeem", NULL, json, st, bodies);
    int created = 0, used = 0;
    for (int i = 0; i < N; i++) {
        char got[64] = "";
        if (st[i] == 201) {
            created++;
        } else {
            error_code(bodies[i].buf, got, sizeof(got));
            used += st[i] == 401 && strcmp(got, "code_used") == 0;
        }
    }
    cr_expect_eq(created, 1, "exactly one 201 of %d", N);
    cr_expect_eq(used, N - 1, "the others are 401 code_used");
    char *n = query("SELECT count(*) FROM \"UserSession\" WHERE \"skoolUserId\" = 'sk-ten'");
    cr_expect_str_eq(n, "1", "one session");
    free(n);
    stop();
}
