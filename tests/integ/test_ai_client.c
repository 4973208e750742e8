/*
 * test_ai_client.c: the ai client against the fake endpoint (fakeai) over
 * real HTTP: a summary comes back; the request carries the key and exactly
 * the built prompt; 429 with Retry-After (seconds and date), 5xx, timeouts,
 * dropped and refused connections are retried with a next_at; 4xx, bodies
 * without a summary and oversized bodies fail for good; the queue cap, the
 * concurrency bound and invalid jobs are enforced; closing with jobs in
 * flight completes them as cancelled and leaks nothing.
 *
 * Completions are awaited on the wake callback with deadlines; nothing
 * here sleeps.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "ai.h"
#include "fakeai.h"

#define KEY      "sk-test-0123456789abcdef"
#define WAIT_MS  10000
#define MAX_DONE 32
#define LONG_MS  60000 /* a delay no test waits out */

/* The test's side of the client: what the loop thread would hold. */
struct harness {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned wakes; /* {mu} */
    struct ai_client *c;
    struct fakeai *fa;
    struct ai_job *done[MAX_DONE]; /* test thread only (ai_run_done runs there) */
    size_t n_done;
    char logs[4096]; /* every log line, for the no-secrets check; {mu} */
};

static struct harness h;

static void on_wake(void *arg)
{
    struct harness *hh = arg;
    pthread_mutex_lock(&hh->mu);
    hh->wakes++;
    pthread_cond_broadcast(&hh->cv);
    pthread_mutex_unlock(&hh->mu);
}

static void on_log(void *arg, int level, const char *event, const char *msg)
{
    struct harness *hh = arg;
    pthread_mutex_lock(&hh->mu);
    size_t len = strlen(hh->logs);
    snprintf(hh->logs + len, sizeof(hh->logs) - len, "%d %s %s\n", level, event, msg);
    pthread_mutex_unlock(&hh->mu);
}

static void on_done(struct ai_job *job)
{
    struct harness *hh = job->arg;
    cr_assert_lt(hh->n_done, (size_t)MAX_DONE);
    hh->done[hh->n_done++] = job;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run completions until n jobs are done, waiting on wakes. */
static void wait_done(size_t n)
{
    int64_t deadline = mono_ms() + WAIT_MS;
    for (;;) {
        pthread_mutex_lock(&h.mu);
        unsigned seen = h.wakes;
        pthread_mutex_unlock(&h.mu);
        ai_run_done(h.c);
        if (h.n_done >= n) {
            return;
        }
        int64_t left = deadline - mono_ms();
        cr_assert_gt(left, 0, "only %zu of %zu jobs completed in time", h.n_done, n);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += left / 1000 + 1;
        pthread_mutex_lock(&h.mu);
        while (h.wakes == seen) {
            if (pthread_cond_timedwait(&h.cv, &h.mu, &ts) == ETIMEDOUT) {
                break;
            }
        }
        pthread_mutex_unlock(&h.mu);
    }
}

static void open_client(const char *url, const char *key, int64_t timeout_ms, size_t cap, int conc)
{
    struct ai_cfg cfg = {
        .url = url,
        .api_key = key,
        .timeout_ms = timeout_ms,
        .policy = {.max_attempts = 5},
        .queue_cap = cap,
        .max_concurrent = conc,
        .wake = on_wake,
        .wake_arg = &h,
        .log = on_log,
        .log_arg = &h,
    };
    struct ai_err err = {0};
    int rc = ai_client_open(&cfg, &h.c, &err);
    cr_assert_eq(rc, 0, "open: %d %s", rc, err.msg);
}

static void setup(void)
{
    memset(&h, 0, sizeof(h));
    pthread_mutex_init(&h.mu, NULL);
    pthread_cond_init(&h.cv, NULL);
    cr_assert_eq(fakeai_start(&h.fa), 0);
}

static void teardown(void)
{
    ai_client_close(h.c);
    for (size_t i = 0; i < h.n_done; i++) {
        ai_job_free(h.done[i]);
    }
    pthread_mutex_lock(&h.mu);
    cr_expect_null(strstr(h.logs, KEY), "the key never reaches the log");
    pthread_mutex_unlock(&h.mu);
    fakeai_free(h.fa);
    pthread_cond_destroy(&h.cv);
    pthread_mutex_destroy(&h.mu);
}

TestSuite(ai_client, .init = setup, .fini = teardown, .timeout = 60);

static struct ai_job *make_job(const char *id, int attempt, const char *body)
{
    struct ai_job *job = ai_job_new(on_done, &h);
    cr_assert_not_null(job);
    snprintf(job->id, sizeof(job->id), "%s", id);
    job->attempt = attempt;
    job->body = strdup(body);
    cr_assert_not_null(job->body);
    return job;
}

static void submit(const char *id, int attempt, const char *body)
{
    struct ai_job *job = make_job(id, attempt, body);
    int rc = ai_submit(h.c, job);
    cr_assert_eq(rc, 0, "submit %s: %d", id, rc);
}

/* Push r, run one job, return it (owned by h.done). */
static struct ai_job *run_one(const struct fakeai_response *r)
{
    if (r != NULL) {
        cr_assert_eq(fakeai_push(h.fa, r), 0);
    }
    size_t before = h.n_done;
    submit("job-1", 1, "{\"model\":\"m\",\"messages\":[]}");
    wait_done(before + 1);
    return h.done[before];
}

static void assert_no_secrets(const struct ai_job *job)
{
    cr_assert_null(strstr(job->err.msg, KEY));
    cr_assert_null(strstr(job->err.msg, "Bearer"));
    cr_assert_null(strstr(job->err.msg, "127.0.0.1"), "no URL: %s", job->err.msg);
}

/* ---- success -------------------------------------------------------------------- */

Test(ai_client, summary_and_exact_request)
{
    open_client(fakeai_url(h.fa), KEY, 5000, 8, 0);
    char *facts[] = {"Prefers morning sessions"};
    struct ai_context ctx = {.client_name = "Ana", .client_facts = facts, .n_client_facts = 1};
    char *body = NULL;
    cr_assert_eq(ai_prompt_build(&ctx, "[00:00:01] Ana (client): hi", "gpt-test", &body), 0);
    cr_assert_eq(fakeai_push_summary(h.fa, "  The client practised box breathing.\n"), 0);

    struct ai_job *job = make_job("cjob0000000000000000000001", 1, body);
    cr_assert_eq(ai_submit(h.c, job), 0);
    cr_assert_eq(ai_in_flight(h.c), 1u);
    wait_done(1);
    cr_assert_eq(h.done[0], job);
    cr_assert_eq(ai_in_flight(h.c), 0u);
    cr_assert_eq(job->rc, 0, "%d %s", job->rc, job->err.msg);
    cr_assert_eq(job->decision, AI_DONE_OK);
    cr_assert_str_eq(job->summary, "The client practised box breathing.");
    cr_assert_eq(job->http_status, 200);
    cr_assert_eq(job->curl_code, 0);
    cr_assert_eq(job->next_at_unix_ms, 0);
    cr_assert_str_eq(job->id, "cjob0000000000000000000001");

    struct fakeai_request req;
    cr_assert_eq(fakeai_request_count(h.fa), 1u);
    cr_assert_eq(fakeai_request_get(h.fa, 0, &req), 0);
    cr_assert_str_eq(req.method, "POST");
    cr_assert_str_eq(req.path, FAKEAI_PATH);
    cr_assert_str_eq(req.authorization, "Bearer " KEY);
    cr_assert_str_eq(req.content_type, "application/json");
    cr_assert_eq(req.body_len, strlen(body));
    cr_assert_str_eq(req.body, body, "the body is exactly the built prompt");
    fakeai_request_fini(&req);
    free(body);
}

Test(ai_client, default_answer_and_no_key)
{
    open_client(fakeai_url(h.fa), NULL, 5000, 8, 0);
    struct ai_job *job = run_one(NULL);
    cr_assert_eq(job->rc, 0);
    cr_assert_str_eq(job->summary, FAKEAI_DEFAULT_SUMMARY);
    struct fakeai_request req;
    cr_assert_eq(fakeai_request_get(h.fa, 0, &req), 0);
    cr_assert_null(req.authorization, "no key: no Authorization header");
    fakeai_request_fini(&req);
}

Test(ai_client, job_submitted_again_for_its_next_attempt)
{
    open_client(fakeai_url(h.fa), KEY, 5000, 8, 0);
    struct ai_job *job = run_one(&(struct fakeai_response){.status = 503});
    cr_assert_eq(job->decision, AI_RETRY);
    h.n_done = 0; /* take it back */
    job->attempt = 2;
    cr_assert_eq(fakeai_push_summary(h.fa, "second time lucky"), 0);
    cr_assert_eq(ai_submit(h.c, job), 0);
    wait_done(1);
    cr_assert_eq(job->rc, 0);
    cr_assert_eq(job->decision, AI_DONE_OK);
    cr_assert_eq(job->http_status, 200);
    cr_assert_eq(job->next_at_unix_ms, 0);
    cr_assert_str_eq(job->summary, "second time lucky");
    cr_assert_eq(job->err.msg[0], '\0');
}

/* ---- retryable ---------------------------------------------------------------- */

Test(ai_client, rate_limited_with_retry_after_seconds)
{
    open_client(fakeai_url(h.fa), KEY, 5000, 8, 0);
    int64_t before = unix_ms();
    struct ai_job *job = run_one(&(struct fakeai_response){
        .status = 429,
        .headers = "Retry-After: 30\r\n",
        .body = "{\"error\":{\"message\":\"Rate limit reached for " KEY "\","
                "\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}"});
    int64_t after = unix_ms();
    cr_assert_eq(job->decision, AI_RETRY);
    cr_assert_eq(job->rc, AI_E_HTTP);
    cr_assert_eq(job->http_status, 429);
    cr_assert_eq(job->curl_code, 0);
    cr_assert_null(job->summary);
    cr_assert(job->next_at_unix_ms >= before + 30000 && job->next_at_unix_ms <= after + 30000,
              "next_at honours Retry-After: %lld", (long long)(job->next_at_unix_ms - before));
    cr_assert_not_null(strstr(job->err.msg, "HTTP 429"), "%s", job->err.msg);
    cr_assert_not_null(strstr(job->err.msg, "rate_limit_exceeded"), "%s", job->err.msg);
    cr_assert_null(strstr(job->err.msg, "Rate limit reached"), "no free text from the endpoint");
    assert_no_secrets(job);
}

Test(ai_client, retry_after_http_date)
{
    open_client(fakeai_url(h.fa), KEY, 5000, 8, 0);
    int64_t at_s = unix_ms() / 1000 + 120;
    time_t t = (time_t)at_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    char hdr[80];
    strftime(hdr, sizeof(hdr), "Retry-After: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    struct ai_job *job = run_one(&(struct fakeai_response){.status = 503, .headers = hdr});
    cr_assert_eq(job->decision, AI_RETRY);
    cr_assert_eq(job->next_at_unix_ms, at_s * 1000, "%lld vs %lld", (long long)job->next_at_unix_ms,
                 (long long)at_s * 1000);
}

Test(ai_client, server_error_retries_with_backoff)
{
    open_client(fakeai_url(h.fa), KEY, 5000, 8, 0);
    int64_t before = unix_ms();
    struct ai_job *job = run_one(&(struct fakeai_response){.status = 500, .body = "oops"});
    int64_t after = unix_ms();
    cr_assert_eq(job->decision, AI_RETRY);
    cr_assert_eq(job->rc, AI_E_HTTP);
    cr_assert_eq(job->http_status, 500);
    /* Attempt 1: equal jitter in [base/2, base]. */
    cr_assert(job->next_at_unix_ms >= before + AI_DEFAULT_BASE_MS / 2 &&
                  job->next_at_unix_ms <= after + AI_DEFAULT_BASE_MS,
              "%lld", (long long)(job->next_at_unix_ms - before));
}

Test(ai_client, last_attempt_is_exhausted)
{
    open_client(fakeai_url(h.fa), KEY, 5000, 8, 0);
    cr_assert_eq(fakeai_push(h.fa, &(struct fakeai_response){.status = 502}), 0);
    submit("job-5", 5, "{}");
    wait_done(1);
    struct ai_job *job = h.done[0];
    cr_assert_eq(job->decision, AI_FAIL_EXHAUSTED);
    cr_assert_eq(job->rc, AI_E_HTTP);
    cr_assert_eq(job->next_at_unix_ms, 0);
    cr_assert_not_null(strstr(job->err.msg, "no attempts left"), "%s", job->err.msg);
}

Test(ai_client, timeout_is_retried)
{
    open_client(fakeai_url(h.fa), KEY, 300, 8, 0);
    int64_t t0 = mono_ms();
    struct ai_job *job = run_one(&(struct fakeai_response){.delay_ms = LONG_MS});
    cr_assert_lt(mono_ms() - t0, 5000, "AI_TIMEOUT_MS ends the attempt");
    cr_assert_eq(job->decision, AI_RETRY);
    cr_assert_eq(job->rc, AI_E_TRANSPORT);
    cr_assert_eq(job->curl_code, CURLE_OPERATION_TIMEDOUT);
    cr_assert_eq(job->http_status, 0);
    cr_assert_gt(job->next_at_unix_ms, 0);
    assert_no_secrets(job);
}

Test(ai_client, dropped_connection_is_retried)
{
    open_client(fakeai_url(h.fa), KEY, 5000, 8, 0);
    struct ai_job *job = run_one(&(struct fakeai_response){.drop = 1});
    cr_assert_eq(job->decision, AI_RETRY);
    cr_assert_eq(job->rc, AI_E_TRANSPORT);
    cr_assert_eq(job->curl_code, CURLE_GOT_NOTHING);
    cr_assert_eq(fakeai_request_count(h.fa), 1u);
}

Test(ai_client, refused_connection_is_retried)
{
    /* Port 1 on loopback: nothing listens there. */
    open_client("http://127.0.0.1:1/v1/chat/completions", KEY, 5000, 8, 0);
    struct ai_job *job = run_one(NULL);
    cr_assert_eq(job->decision, AI_RETRY);
    cr_assert_eq(job->rc, AI_E_TRANSPORT);
    cr_assert_eq(job->curl_code, CURLE_COULDNT_CONNECT);
    assert_no_secrets(job);
}

Test(ai_client, oversized_error_body_is_judged_by_status)
{
    open_client(fakeai_url(h.fa), KEY, 5000, 8, 0);
    size_t n = AI_RESPONSE_MAX_BYTES + 1;
    char *big = malloc(n);
    memset(big, 'e', n);
    struct ai_job *job = run_one(
        &(struct fakeai_response){.status = 503, .body = big, .body_len = n, .no_length = 1});
    cr_assert_eq(job->decision, AI_RETRY);
    cr_assert_eq(job->rc, AI_E_HTTP);
    free(big);
}

/* ---- permanent ---------------------------------------------------------------- */

Test(ai_client, client_error_is_permanent)
{
    open_client(fakeai_url(h.fa), KEY, 5000, 8, 0);
    struct ai_job *job = run_one(&(struct fakeai_response){
        .status = 400,
        .headers = "Retry-After: 5\r\n",
        .body = "{\"error\":{\"message\":\"This model's maximum context length is 8192 tokens\","
                "\"type\":\"invalid_request_error\",\"code\":\"context_length_exceeded\"}}"});
    cr_assert_eq(job->decision, AI_FAIL_PERMANENT);
    cr_assert_eq(job->rc, AI_E_HTTP);
    cr_assert_eq(job->http_status, 400);
    cr_assert_eq(job->next_at_unix_ms, 0);
    cr_assert_not_null(strstr(job->err.msg, "context_length_exceeded"), "%s", job->err.msg);
    cr_assert_null(strstr(job->err.msg, "maximum context"));
}

Test(ai_client, unauthorized_is_permanent_and_hides_the_key)
{
    open_client(fakeai_url(h.fa), KEY, 5000, 8, 0);
    struct ai_job *job = run_one(&(struct fakeai_response){
        .status = 401,
        .body = "{\"error\":{\"message\":\"Incorrect API key provided: " KEY "\","
                "\"code\":\"invalid_api_key\"}}"});
    cr_assert_eq(job->decision, AI_FAIL_PERMANENT);
    cr_assert_not_null(strstr(job->err.msg, "invalid_api_key"));
    assert_no_secrets(job);
}

Test(ai_client, redirect_is_not_followed)
{
    open_client(fakeai_url(h.fa), KEY, 5000, 8, 0);
    struct ai_job *job = run_one(
        &(struct fakeai_response){.status = 307, .headers = "Location: http://127.0.0.1:1/\r\n"});
    cr_assert_eq(job->decision, AI_FAIL_PERMANENT);
    cr_assert_eq(fakeai_request_count(h.fa), 1u);
}

Test(ai_client, malformed_success_is_permanent)
{
    open_client(fakeai_url(h.fa), KEY, 5000, 8, 0);
    struct ai_job *job =
        run_one(&(struct fakeai_response){.status = 200, .body = "{\"choices\":["});
    cr_assert_eq(job->decision, AI_FAIL_PERMANENT);
    cr_assert_eq(job->rc, AI_E_BADRESP);
    cr_assert_null(job->summary);
    job = run_one(&(struct fakeai_response){
        .status = 200, .body = "{\"choices\":[{\"message\":{\"content\":null}}]}"});
    cr_assert_eq(job->decision, AI_FAIL_PERMANENT);
    cr_assert_eq(job->rc, AI_E_BADRESP);
}

/* A valid completion body of exactly n bytes. */
static char *completion_of_size(size_t n)
{
    const char *pre = "{\"choices\":[{\"message\":{\"content\":\"";
    const char *post = "\"}}]}";
    char *b = malloc(n + 1);
    cr_assert_not_null(b);
    size_t lp = strlen(pre), lq = strlen(post);
    memcpy(b, pre, lp);
    memset(b + lp, 's', n - lp - lq);
    memcpy(b + n - lq, post, lq);
    b[n] = '\0';
    return b;
}

Test(ai_client, response_size_limit)
{
    open_client(fakeai_url(h.fa), KEY, 5000, 8, 0);
    const size_t max = AI_RESPONSE_MAX_BYTES;
    char *at = completion_of_size(max), *over = completion_of_size(max + 1);
    /* At the limit, with and without Content-Length: accepted. */
    struct ai_job *job = run_one(&(struct fakeai_response){.body = at});
    cr_assert_eq(job->rc, 0, "%s", job->err.msg);
    cr_assert_eq(strlen(job->summary), max - 40);
    job = run_one(&(struct fakeai_response){.body = at, .no_length = 1});
    cr_assert_eq(job->rc, 0, "%s", job->err.msg);
    /* One byte over: refused early (Content-Length) or mid-body (none). */
    job = run_one(&(struct fakeai_response){.body = over});
    cr_assert_eq(job->decision, AI_FAIL_PERMANENT);
    cr_assert_eq(job->rc, AI_E_TOOBIG);
    cr_assert_null(job->summary);
    job = run_one(&(struct fakeai_response){.body = over, .no_length = 1});
    cr_assert_eq(job->decision, AI_FAIL_PERMANENT);
    cr_assert_eq(job->rc, AI_E_TOOBIG);
    free(at);
    free(over);
}

/* ---- bounds and lifecycle ----------------------------------------------------------- */

Test(ai_client, concurrent_transfers_up_to_the_bound)
{
    open_client(fakeai_url(h.fa), KEY, LONG_MS, 8, 3);
    cr_assert_eq(fakeai_set_default(h.fa, &(struct fakeai_response){.delay_ms = LONG_MS}), 0);
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof(id), "job-%d", i);
        submit(id, 1, "{}");
    }
    cr_assert_eq(fakeai_wait_requests(h.fa, 3, WAIT_MS), 0, "three run at once");
    cr_assert_eq(fakeai_wait_requests(h.fa, 4, 300), -ETIMEDOUT, "never a fourth");
    cr_assert_eq(ai_in_flight(h.c), 5u);
}

Test(ai_client, queue_full_is_back_pressure)
{
    open_client(fakeai_url(h.fa), KEY, LONG_MS, 2, 0);
    cr_assert_eq(fakeai_set_default(h.fa, &(struct fakeai_response){.delay_ms = LONG_MS}), 0);
    submit("a", 1, "{}");
    submit("b", 1, "{}");
    struct ai_job *third = make_job("c", 1, "{}");
    cr_assert_eq(ai_submit(h.c, third), AI_E_FULL);
    cr_assert_eq(third->rc, 0, "untouched");
    cr_assert_eq(third->next, NULL);
    cr_assert_eq(ai_in_flight(h.c), 2u);
    ai_job_free(third);
}

Test(ai_client, invalid_jobs_are_refused)
{
    open_client(fakeai_url(h.fa), KEY, 5000, 8, 0);
    struct ai_job *job = make_job("x", 1, "{}");
    job->attempt = 0;
    cr_assert_eq(ai_submit(h.c, job), -EINVAL);
    job->attempt = 1;
    job->id[0] = '\0';
    cr_assert_eq(ai_submit(h.c, job), -EINVAL);
    memset(job->id, 'a', sizeof(job->id)); /* unterminated */
    cr_assert_eq(ai_submit(h.c, job), -EINVAL);
    snprintf(job->id, sizeof(job->id), "x");
    job->done = NULL;
    cr_assert_eq(ai_submit(h.c, job), -EINVAL);
    job->done = on_done;
    free(job->body);
    job->body = NULL;
    cr_assert_eq(ai_submit(h.c, job), -EINVAL);
    cr_assert_eq(ai_submit(h.c, NULL), -EINVAL);
    cr_assert_eq(ai_in_flight(h.c), 0u);
    ai_job_free(job);
}

Test(ai_client, close_cancels_jobs_in_flight)
{
    open_client(fakeai_url(h.fa), KEY, LONG_MS, 16, 4);
    cr_assert_eq(fakeai_set_default(h.fa, &(struct fakeai_response){.delay_ms = LONG_MS}), 0);
    for (int i = 0; i < 6; i++) {
        char id[16];
        snprintf(id, sizeof(id), "job-%d", i);
        submit(id, 2, "{}");
    }
    cr_assert_eq(fakeai_wait_requests(h.fa, 4, WAIT_MS), 0);
    int64_t t0 = mono_ms();
    ai_client_close(h.c); /* 4 running, 2 queued */
    h.c = NULL;
    cr_assert_lt(mono_ms() - t0, 5000, "close does not wait for the endpoint");
    cr_assert_eq(h.n_done, 6u, "every job completed, on the closing thread");
    for (size_t i = 0; i < h.n_done; i++) {
        struct ai_job *job = h.done[i];
        cr_assert_eq(job->decision, AI_CANCELLED);
        cr_assert_eq(job->rc, AI_E_CANCELLED);
        cr_assert_eq(job->next_at_unix_ms, 0);
        cr_assert_null(job->summary);
        cr_assert_eq(job->attempt, 2, "not counted as an attempt");
    }
    cr_assert_eq(fakeai_wait_idle(h.fa, WAIT_MS), 0, "the connections were closed");
    pthread_mutex_lock(&h.mu);
    cr_assert_not_null(strstr(h.logs, "ai.cancelled jobs=6"), "%s", h.logs);
    pthread_mutex_unlock(&h.mu);
}

Test(ai_client, close_when_idle)
{
    open_client(fakeai_url(h.fa), KEY, 5000, 8, 0);
    ai_client_close(h.c);
    h.c = NULL;
    cr_assert_eq(h.n_done, 0u);
    ai_client_close(NULL);
}

Test(ai_client, invalid_configs)
{
    const struct {
        const char *url, *key;
        int64_t timeout_ms;
        size_t cap;
        int conc;
    } bad[] = {
        {NULL, KEY, 1000, 8, 0},
        {"", KEY, 1000, 8, 0},
        {"ftp://127.0.0.1/x", KEY, 1000, 8, 0},
        {"http://", KEY, 1000, 8, 0},
        {"http://exa mple/x", KEY, 1000, 8, 0},
        {"http://127.0.0.1/x", "sk\r\nX-Evil: 1", 1000, 8, 0},
        {"http://127.0.0.1/x", "sk key", 1000, 8, 0},
        {"http://127.0.0.1/x", KEY, 0, 8, 0},
        {"http://127.0.0.1/x", KEY, 1000, 0, 0},
        {"http://127.0.0.1/x", KEY, 1000, 8, -1},
        {"http://127.0.0.1/x", KEY, 1000, 8, 65},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ai_cfg cfg = {.url = bad[i].url,
                             .api_key = bad[i].key,
                             .timeout_ms = bad[i].timeout_ms,
                             .queue_cap = bad[i].cap,
                             .max_concurrent = bad[i].conc};
        struct ai_client *c = (struct ai_client *)0x1;
        struct ai_err err = {0};
        cr_assert_eq(ai_client_open(&cfg, &c, &err), -EINVAL, "case %zu", i);
        cr_assert_eq(err.code, -EINVAL);
        cr_assert_neq(err.msg[0], '\0');
        cr_assert_null(strstr(err.msg, "X-Evil"), "case %zu: %s", i, err.msg);
        cr_assert_null(strstr(err.msg, "sk key"), "case %zu: %s", i, err.msg);
        cr_assert_eq(c, (struct ai_client *)0x1, "untouched");
    }
    /* HTTPS URLs are accepted (not contacted here). */
    struct ai_cfg ok = {
        .url = "HTTPS://api.example.com/v1/chat/completions", .timeout_ms = 1000, .queue_cap = 1};
    struct ai_err err = {0};
    cr_assert_eq(ai_client_open(&ok, &h.c, &err), 0, "%s", err.msg);
}
