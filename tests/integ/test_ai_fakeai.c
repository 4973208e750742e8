/*
 * test_ai_fakeai.c: the fake AI endpoint itself (tests/support/fakeai),
 * driven with plain blocking libcurl: the script is answered in order,
 * then the default; every request is recorded; headers, delays, dropped
 * connections and close-delimited bodies behave as documented; large
 * uploads with "Expect: 100-continue" work; chunked uploads get 411.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "fakeai.h"

static struct fakeai *fa;

static void setup(void)
{
    cr_assert_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    cr_assert_eq(fakeai_start(&fa), 0);
}

static void teardown(void)
{
    fakeai_free(fa);
    curl_global_cleanup();
}

TestSuite(fakeai, .init = setup, .fini = teardown, .timeout = 60);

struct reply {
    long status;
    CURLcode res;
    char *body;
    size_t len;
    char retry_after[64];
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct reply *r = arg;
    char *b = realloc(r->body, r->len + size * n + 1);
    cr_assert_not_null(b);
    memcpy(b + r->len, p, size * n);
    r->len += size * n;
    b[r->len] = '\0';
    r->body = b;
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct reply *r = arg;
    if (size * n > 13 && strncmp(p, "Retry-After: ", 13) == 0) {
        size_t len = strcspn(p + 13, "\r\n");
        cr_assert_lt(len, sizeof(r->retry_after));
        memcpy(r->retry_after, p + 13, len);
        r->retry_after[len] = '\0';
    }
    return size * n;
}

/* POST body (len bytes; NULL: a GET) to path with extra headers. */
static struct reply request(const char *path, const char *body, size_t len,
                            struct curl_slist *headers, long timeout_ms)
{
    struct reply r = {0};
    char url[128];
    (void)snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", fakeai_port(fa), path);
    CURL *e = curl_easy_init();
    cr_assert_not_null(e);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    if (body != NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    r.res = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(e);
    return r;
}

Test(fakeai, url_names_the_port_and_path)
{
    char want[64];
    (void)snprintf(want, sizeof(want), "http://127.0.0.1:%d%s", fakeai_port(fa), FAKEAI_PATH);
    cr_assert_str_eq(fakeai_url(fa), want);
    cr_assert_gt(fakeai_port(fa), 0);
}

Test(fakeai, script_in_order_then_default)
{
    cr_assert_eq(fakeai_push(fa, &(struct fakeai_response){.status = 429,
                                                           .headers = "Retry-After: 7\r\n",
                                                           .body = "slow down"}),
                 0);
    cr_assert_eq(fakeai_push_summary(fa, "scripted"), 0);
    cr_assert_eq(fakeai_script_len(fa), 2u);

    struct reply r = request(FAKEAI_PATH, "{}", 2, NULL, 5000);
    cr_assert_eq(r.res, CURLE_OK);
    cr_assert_eq(r.status, 429);
    cr_assert_str_eq(r.retry_after, "7");
    cr_assert_str_eq(r.body, "slow down");
    free(r.body);

    r = request(FAKEAI_PATH, "{}", 2, NULL, 5000);
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr(r.body, "\"content\":\"scripted\""), "%s", r.body);
    free(r.body);

    r = request(FAKEAI_PATH, "{}", 2, NULL, 5000);
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr(r.body, "\"content\":\"" FAKEAI_DEFAULT_SUMMARY "\""));
    free(r.body);
    cr_assert_eq(fakeai_script_len(fa), 0u);
    cr_assert_eq(fakeai_request_count(fa), 3u);
}

Test(fakeai, requests_are_recorded)
{
    struct curl_slist *h = curl_slist_append(NULL, "Authorization: Bearer abc");
    h = curl_slist_append(h, "Content-Type: application/json");
    struct reply r = request("/v1/other?x=1", "{\"a\":1}", 7, h, 5000);
    curl_slist_free_all(h);
    free(r.body);
    r = request("/get", NULL, 0, NULL, 5000);
    free(r.body);

    struct fakeai_request q;
    cr_assert_eq(fakeai_request_get(fa, 0, &q), 0);
    cr_assert_str_eq(q.method, "POST");
    cr_assert_str_eq(q.path, "/v1/other?x=1");
    cr_assert_str_eq(q.authorization, "Bearer abc");
    cr_assert_str_eq(q.content_type, "application/json");
    cr_assert_eq(q.body_len, 7u);
    cr_assert_str_eq(q.body, "{\"a\":1}");
    fakeai_request_fini(&q);

    cr_assert_eq(fakeai_request_get(fa, 1, &q), 0);
    cr_assert_str_eq(q.method, "GET");
    cr_assert_null(q.authorization);
    cr_assert_eq(q.body_len, 0u);
    cr_assert_str_eq(q.body, "");
    fakeai_request_fini(&q);

    cr_assert_eq(fakeai_request_get(fa, 2, &q), -ERANGE);
    fakeai_request_fini(NULL);
}

Test(fakeai, large_upload_with_expect_continue)
{
    size_t n = (size_t)2 * 1024 * 1024;
    char *big = malloc(n);
    memset(big, 'u', n);
    struct curl_slist *h = curl_slist_append(NULL, "Expect: 100-continue");
    struct reply r = request(FAKEAI_PATH, big, n, h, 10000);
    curl_slist_free_all(h);
    cr_assert_eq(r.res, CURLE_OK);
    cr_assert_eq(r.status, 200);
    free(r.body);
    struct fakeai_request q;
    cr_assert_eq(fakeai_request_get(fa, 0, &q), 0);
    cr_assert_eq(q.body_len, n);
    cr_assert_eq(memcmp(q.body, big, n), 0);
    fakeai_request_fini(&q);
    free(big);
}

Test(fakeai, chunked_upload_is_refused)
{
    struct curl_slist *h = curl_slist_append(NULL, "Transfer-Encoding: chunked");
    struct reply r = request(FAKEAI_PATH, "{}", 2, h, 5000);
    curl_slist_free_all(h);
    cr_assert_eq(r.status, 411);
    cr_assert_eq(fakeai_request_count(fa), 0u, "not recorded");
    free(r.body);
}

Test(fakeai, drop_and_delay)
{
    cr_assert_eq(fakeai_push(fa, &(struct fakeai_response){.drop = 1}), 0);
    cr_assert_eq(fakeai_push(fa, &(struct fakeai_response){.delay_ms = 60000}), 0);
    cr_assert_eq(fakeai_push(fa, &(struct fakeai_response){.delay_ms = 50, .body = "late"}), 0);
    struct reply r = request(FAKEAI_PATH, "{}", 2, NULL, 5000);
    cr_assert_eq(r.res, CURLE_GOT_NOTHING);
    free(r.body);
    r = request(FAKEAI_PATH, "{}", 2, NULL, 200);
    cr_assert_eq(r.res, CURLE_OPERATION_TIMEDOUT);
    free(r.body);
    cr_assert_eq(fakeai_wait_idle(fa, 5000), 0, "the hang-up ended the delay");
    r = request(FAKEAI_PATH, "{}", 2, NULL, 5000);
    cr_assert_eq(r.res, CURLE_OK);
    cr_assert_str_eq(r.body, "late");
    free(r.body);
    cr_assert_eq(fakeai_wait_requests(fa, 3, 1000), 0);
    cr_assert_eq(fakeai_wait_requests(fa, 4, 50), -ETIMEDOUT);
}

Test(fakeai, body_without_length_ends_at_close)
{
    cr_assert_eq(fakeai_push(fa, &(struct fakeai_response){.body = "until close", .no_length = 1}),
                 0);
    struct reply r = request(FAKEAI_PATH, "{}", 2, NULL, 5000);
    cr_assert_eq(r.res, CURLE_OK);
    cr_assert_str_eq(r.body, "until close");
    free(r.body);
}

Test(fakeai, set_default_and_binary_body)
{
    const char bin[] = {'a', '\0', 'b'};
    cr_assert_eq(
        fakeai_set_default(
            fa, &(struct fakeai_response){.status = 503, .body = bin, .body_len = sizeof(bin)}),
        0);
    for (int i = 0; i < 2; i++) {
        struct reply r = request(FAKEAI_PATH, "{}", 2, NULL, 5000);
        cr_assert_eq(r.status, 503);
        cr_assert_eq(r.len, sizeof(bin));
        cr_assert_eq(memcmp(r.body, bin, sizeof(bin)), 0);
        free(r.body);
    }
}

Test(fakeai, free_ends_pending_delays)
{
    cr_assert_eq(fakeai_set_default(fa, &(struct fakeai_response){.delay_ms = 60000}), 0);
    /* A raw client that sends a request and never reads: only fakeai_free
     * (in teardown) can end the connection thread, and it must not wait
     * out the delay (the suite's timeout would catch it). */
    CURLM *m = curl_multi_init();
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, fakeai_url(fa));
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, "{}");
    curl_multi_add_handle(m, e);
    int running = 1;
    while (fakeai_request_count(fa) == 0 && running > 0) {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    cr_assert_eq(fakeai_wait_requests(fa, 1, 5000), 0);
    fakeai_free(fa);
    fa = NULL;
    curl_multi_remove_handle(m, e);
    curl_easy_cleanup(e);
    curl_multi_cleanup(m);
}
