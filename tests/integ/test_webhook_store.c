/*
 * test_webhook_store.c: LiveKit webhooks against the real gateway and a
 * PostgreSQL that goes away: 503 while the database is down (LiveKit
 * retries 5xx), nothing recorded, then the retry is applied exactly once;
 * and concurrent redeliveries of one event id: one applies, the rest are
 * duplicates.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "gwproc.h"
#include "jwt.h"
#include "pgtest.h"

#define KEY    "APIstoretest"
#define SECRET "store-test-secret-0123456789abcdef"
#define COACH  PGTEST_COACH
#define CLIENT PGTEST_CLIENT


static const char body_fmt[] =
    "{\"event\":\"participant_joined\",\"room\":{\"sid\":\"RM_1\",\"name\":\"room-1\","
    "\"creationTime\":\"%lld\"},\"participant\":{\"sid\":\"%s\",\"identity\":\"" COACH "\"},"
    "\"id\":\"%s\",\"createdAt\":\"%lld\"}";

/* The Authorization LiveKit's server would send for body. */
static char *sign(const char *body)
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    char b64[sodium_base64_ENCODED_LEN(crypto_hash_sha256_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    crypto_hash_sha256(digest, (const unsigned char *)body, strlen(body));
    sodium_bin2base64(b64, sizeof b64, digest, sizeof digest, sodium_base64_VARIANT_ORIGINAL);
    long long now = (long long)time(NULL);
    json_t *claims =
        json_pack("{s:s, s:I, s:I, s:s, s:{}}", "iss", KEY, "nbf", (json_int_t)now, "exp",
                  (json_int_t)(now + 300), "sha256", b64, "video");
    char *t = gw_jwt_sign_hs256(claims, (const unsigned char *)SECRET, strlen(SECRET));
    json_decref(claims);
    return t;
}

struct hook_req {
    CURL *easy;
    struct curl_slist *hdrs;
    struct http_body out;
};

static void hook_init(struct hook_req *r, int port, const char *body)
{
    char url[128], auth[1024];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/webhooks/livekit", port);
    char *token = sign(body);
    cr_assert_not_null(token);
    snprintf(auth, sizeof auth, "Authorization: %s", token);
    free(token);
    memset(r, 0, sizeof(*r));
    r->hdrs = curl_slist_append(NULL, auth);
    r->hdrs = curl_slist_append(r->hdrs, "Content-Type: application/webhook+json");
    r->easy = curl_easy_init();
    curl_easy_setopt(r->easy, CURLOPT_URL, url);
    curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->hdrs);
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, http_body_write);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, &r->out);
    curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
}

static long hook_status(struct hook_req *r)
{
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(r->hdrs);
    curl_easy_cleanup(r->easy);
    return status;
}

static long deliver(int port, const char *body, struct http_body *out)
{
    struct hook_req r;
    hook_init(&r, port, body);
    curl_easy_perform(r.easy);
    *out = r.out;
    return hook_status(&r);
}

static void make_body(char *out, size_t cap, const char *participant, const char *id)
{
    long long now = (long long)time(NULL);
    snprintf(out, cap, body_fmt, now, participant, id, now);
}

static long long count(const char *db, const char *sql)
{
    char *v = pgtest_query_value(db, sql);
    cr_assert_not_null(v, "%s", sql);
    long long n = atoll(v);
    free(v);
    return n;
}


Test(webhook_store, outage_is_503_then_the_retry_applies_once, .timeout = 120)
{
    cr_assert(sodium_init() >= 0);
    struct pgserver pg = {0};
    cr_assert_eq(pgserver_start(&pg), 0);
    char db[512], env_db[600];
    cr_assert_eq(pgtest_db_on(pg.conninfo, "coach", db, sizeof db), 0);
    snprintf(env_db, sizeof env_db, "DATABASE_URL=%s", db);
    const char *env[] = {env_db, "LIVEKIT_API_KEY=" KEY, "LIVEKIT_API_SECRET=" SECRET,
                         "STORE_TIMEOUT_MS=1000", NULL};
    struct gwproc gp = {0};
    cr_assert_eq(gwproc_start(&gp, env, NULL), 0);
    cr_assert_eq(pgtest_exec(db, pgtest_seed_room1), 0);

    char body[1024];
    make_body(body, sizeof body, "PA_outage", "EV_outage");
    struct http_body out;
    cr_assert_eq(pgserver_stop(&pg), 0);
    long status = deliver(gp.port, body, &out);
    cr_expect_eq(status, 503, "database down: %ld %s", status, out.buf);
    cr_expect(strstr(out.buf, "\"unavailable\"") != NULL, "%s", out.buf);
    cr_assert_eq(pgserver_start(&pg), 0);
    cr_expect_eq(count(db, "SELECT count(*) FROM coach_livekit_event"), 0, "nothing recorded");

    /* LiveKit retries with the same bytes; the store reconnects with backoff. */
    for (int i = 0; i < 100 && (status = deliver(gp.port, body, &out)) == 503; i++) {
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cr_expect_eq(status, 200, "%s", out.buf);
    cr_expect(strstr(out.buf, "\"ok\"") != NULL, "%s", out.buf);
    cr_expect_eq(deliver(gp.port, body, &out), 200);
    cr_expect(strstr(out.buf, "\"duplicate\"") != NULL, "%s", out.buf);
    cr_expect_eq(count(db, "SELECT count(*) FROM coach_livekit_event"), 1);
    cr_expect_eq(count(db, "SELECT count(*) FROM coach_livekit_participant"), 1);
    cr_expect_eq(count(db, "SELECT count(*) FROM \"Session\" WHERE status = 'active'"), 1);

    cr_expect_eq(gwproc_stop(&gp, SIGTERM), 0);
    unlink(gp.log_path);
    pgserver_destroy(&pg);
}

Test(webhook_store, concurrent_redeliveries_apply_once, .timeout = 120)
{
    cr_assert(sodium_init() >= 0);
    char dbname[64], db[512], env_db[600];
    cr_assert_eq(pgtest_db_create(1, dbname, sizeof dbname, db, sizeof db), 0);
    cr_assert_eq(pgtest_exec(db, pgtest_seed_room1), 0);
    snprintf(env_db, sizeof env_db, "DATABASE_URL=%s", db);
    const char *env[] = {env_db, "LIVEKIT_API_KEY=" KEY, "LIVEKIT_API_SECRET=" SECRET, NULL};
    /* Two gateways on one database: two store connections, so the
     * deliveries really race in two transactions on the unique id. */
    struct gwproc gp = {0}, gp2 = {0};
    cr_assert_eq(gwproc_start(&gp, env, NULL), 0);
    cr_assert_eq(gwproc_start(&gp2, env, NULL), 0);

    enum { N = 10 };
    char body[1024];
    make_body(body, sizeof body, "PA_race", "EV_race");
    struct hook_req r[N];
    CURLM *m = curl_multi_init();
    for (int i = 0; i < N; i++) {
        hook_init(&r[i], i % 2 == 0 ? gp.port : gp2.port, body);
        curl_multi_add_handle(m, r[i].easy);
    }
    int running = 1;
    while (running > 0) {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    int ok = 0, dup = 0;
    for (int i = 0; i < N; i++) {
        curl_multi_remove_handle(m, r[i].easy);
        long status = hook_status(&r[i]);
        cr_expect_eq(status, 200, "%s", r[i].out.buf);
        ok += strstr(r[i].out.buf, "\"ok\"") != NULL;
        dup += strstr(r[i].out.buf, "\"duplicate\"") != NULL;
    }
    curl_multi_cleanup(m);
    cr_expect_eq(ok, 1, "exactly one delivery applies");
    cr_expect_eq(dup, N - 1);
    cr_expect_eq(count(db, "SELECT count(*) FROM coach_livekit_event"), 1);
    cr_expect_eq(count(db, "SELECT count(*) FROM \"Session\""), 1);

    cr_expect_eq(gwproc_stop(&gp, SIGTERM), 0);
    cr_expect_eq(gwproc_stop(&gp2, SIGTERM), 0);
    unlink(gp.log_path);
    unlink(gp2.log_path);
    pgtest_db_drop(dbname);
}
