/*
 * test_ai_retry.c: ai_retry_decide() at every status class, at the attempt
 * limit and past it, the backoff's growth, cap and jitter bounds, and
 * Retry-After as delta-seconds and as an IMF-fixdate (with its cap, and
 * the forms that are ignored). Time and randomness are inputs: every
 * expectation is exact.
 */
#include <criterion/criterion.h>
#include <stdint.h>

#include "ai.h"

#define NOW      ((int64_t)784111777000) /* Sun, 06 Nov 1994 08:49:37 GMT */
#define SENTINEL ((int64_t)-12345)
#define RMAX     UINT32_MAX

static const struct ai_policy dflt = {0};

/* Decide with the defaults; returns the decision, *wait the wait (or
 * SENTINEL when next_at was left alone). */
static enum ai_decision decide(int attempt, long status, int failed, const char *ra, uint32_t r,
                               const struct ai_policy *p, int64_t *wait)
{
    int64_t next = SENTINEL;
    enum ai_decision d = ai_retry_decide(attempt, status, failed, ra, NOW, r, p, &next);
    *wait = next == SENTINEL ? SENTINEL : next - NOW;
    return d;
}

Test(ai_retry, success_statuses)
{
    const long ok[] = {200, 201, 204, 299};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t w;
        cr_assert_eq(decide(1, ok[i], 0, NULL, 0, &dflt, &w), AI_DONE_OK, "%ld", ok[i]);
        cr_assert_eq(w, SENTINEL, "next_at untouched");
        /* Even on the last attempt, and with a Retry-After. */
        cr_assert_eq(decide(5, ok[i], 0, "10", 0, &dflt, &w), AI_DONE_OK);
    }
}

Test(ai_retry, retryable_statuses)
{
    const long st[] = {429, 500, 501, 502, 503, 504, 599};
    for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++) {
        int64_t w;
        cr_assert_eq(decide(1, st[i], 0, NULL, RMAX, &dflt, &w), AI_RETRY, "%ld", st[i]);
        cr_assert_eq(w, AI_DEFAULT_BASE_MS);
    }
}

Test(ai_retry, transport_failures_retry)
{
    int64_t w;
    cr_assert_eq(decide(1, 0, 1, NULL, RMAX, &dflt, &w), AI_RETRY);
    cr_assert_eq(w, AI_DEFAULT_BASE_MS);
    /* A failure after a 2xx status line (reset mid-body) is a failure. */
    cr_assert_eq(decide(1, 200, 1, NULL, RMAX, &dflt, &w), AI_RETRY);
    /* So is no answer at all. */
    cr_assert_eq(decide(1, 0, 0, NULL, RMAX, &dflt, &w), AI_RETRY);
}

Test(ai_retry, permanent_statuses)
{
    const long st[] = {400, 401, 403, 404, 408, 409, 413, 422, 428, 430, 499,
                       100, 101, 199, 300, 301, 302, 304, 307, 600, 999, -1};
    for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++) {
        int64_t w;
        cr_assert_eq(decide(1, st[i], 0, "5", RMAX, &dflt, &w), AI_FAIL_PERMANENT, "%ld", st[i]);
        cr_assert_eq(w, SENTINEL);
    }
}

Test(ai_retry, attempt_limit)
{
    struct ai_policy p = {.max_attempts = 3};
    int64_t w;
    cr_assert_eq(decide(1, 503, 0, NULL, 0, &p, &w), AI_RETRY);
    cr_assert_eq(decide(2, 503, 0, NULL, 0, &p, &w), AI_RETRY);
    cr_assert_eq(decide(3, 503, 0, NULL, 0, &p, &w), AI_FAIL_EXHAUSTED);
    cr_assert_eq(w, SENTINEL);
    cr_assert_eq(decide(4, 503, 0, NULL, 0, &p, &w), AI_FAIL_EXHAUSTED);
    cr_assert_eq(decide(3, 0, 1, NULL, 0, &p, &w), AI_FAIL_EXHAUSTED);
    cr_assert_eq(decide(3, 429, 0, "1", 0, &p, &w), AI_FAIL_EXHAUSTED);
    /* Permanent stays permanent at the limit. */
    cr_assert_eq(decide(3, 400, 0, NULL, 0, &p, &w), AI_FAIL_PERMANENT);
    /* Default limit: AI_DEFAULT_MAX_ATTEMPTS. */
    cr_assert_eq(decide(AI_DEFAULT_MAX_ATTEMPTS - 1, 500, 0, NULL, 0, NULL, &w), AI_RETRY);
    cr_assert_eq(decide(AI_DEFAULT_MAX_ATTEMPTS, 500, 0, NULL, 0, NULL, &w), AI_FAIL_EXHAUSTED);
    /* One attempt in all: the first failure exhausts. */
    struct ai_policy one = {.max_attempts = 1};
    cr_assert_eq(decide(1, 500, 0, NULL, 0, &one, &w), AI_FAIL_EXHAUSTED);
}

Test(ai_retry, attempt_below_one_counts_as_one)
{
    int64_t w0, w1;
    cr_assert_eq(decide(0, 500, 0, NULL, RMAX, NULL, &w0), AI_RETRY);
    cr_assert_eq(decide(-7, 500, 0, NULL, RMAX, NULL, &w1), AI_RETRY);
    cr_assert_eq(w0, AI_DEFAULT_BASE_MS);
    cr_assert_eq(w1, AI_DEFAULT_BASE_MS);
}

Test(ai_retry, backoff_doubles_up_to_the_cap)
{
    struct ai_policy p = {.max_attempts = 40};
    int64_t want = AI_DEFAULT_BASE_MS;
    for (int a = 1; a < 40; a++) {
        int64_t hi, lo;
        cr_assert_eq(decide(a, 500, 0, NULL, RMAX, &p, &hi), AI_RETRY);
        cr_assert_eq(decide(a, 500, 0, NULL, 0, &p, &lo), AI_RETRY);
        cr_assert_eq(hi, want, "attempt %d: %lld", a, (long long)hi);
        cr_assert_eq(lo, want / 2, "attempt %d", a);
        want = want * 2 > AI_DEFAULT_CAP_MS ? AI_DEFAULT_CAP_MS : want * 2;
    }
    int64_t w;
    decide(9, 500, 0, NULL, RMAX, &p, &w);
    cr_assert_eq(w, 256000, "1000 * 2^8, under the cap");
    decide(10, 500, 0, NULL, RMAX, &p, &w);
    cr_assert_eq(w, AI_DEFAULT_CAP_MS, "1000 * 2^9 = 512000: capped");
}

Test(ai_retry, custom_base_and_cap)
{
    struct ai_policy p = {.max_attempts = 10, .base_ms = 100, .cap_ms = 250};
    int64_t w;
    decide(1, 500, 0, NULL, RMAX, &p, &w);
    cr_assert_eq(w, 100);
    decide(2, 500, 0, NULL, RMAX, &p, &w);
    cr_assert_eq(w, 200);
    decide(3, 500, 0, NULL, RMAX, &p, &w);
    cr_assert_eq(w, 250);
    decide(3, 500, 0, NULL, 0, &p, &w);
    cr_assert_eq(w, 125);
}

Test(ai_retry, policy_values_are_clamped)
{
    struct ai_policy p = {.max_attempts = 3, .base_ms = INT64_MAX, .cap_ms = INT64_MAX};
    int64_t w;
    decide(2, 500, 0, NULL, RMAX, &p, &w);
    cr_assert_eq(w, AI_POLICY_MAX_MS);
    struct ai_policy neg = {.max_attempts = -1, .base_ms = -5, .cap_ms = -5};
    decide(1, 500, 0, NULL, RMAX, &neg, &w);
    cr_assert_eq(w, AI_DEFAULT_BASE_MS);
}

Test(ai_retry, jitter_stays_within_half_and_full)
{
    struct ai_policy p = {.max_attempts = 20};
    uint32_t r = 12345;
    for (int a = 1; a < 20; a++) {
        int64_t full;
        decide(a, 503, 0, NULL, RMAX, &p, &full);
        for (int k = 0; k < 1000; k++) {
            r = r * 1664525u + 1013904223u; /* an LCG: deterministic spread */
            int64_t w;
            cr_assert_eq(decide(a, 503, 0, NULL, r, &p, &w), AI_RETRY);
            cr_assert(w >= full / 2 && w <= full, "attempt %d r %u: %lld not in [%lld, %lld]", a, r,
                      (long long)w, (long long)full / 2, (long long)full);
        }
    }
    /* The midpoint of rand32 lands in the middle. */
    int64_t mid;
    decide(1, 503, 0, NULL, RMAX / 2, &p, &mid);
    cr_assert_eq(mid, 749);
}

Test(ai_retry, retry_after_seconds_wins_when_larger)
{
    int64_t w;
    cr_assert_eq(decide(1, 429, 0, "120", RMAX, NULL, &w), AI_RETRY);
    cr_assert_eq(w, 120000);
    cr_assert_eq(decide(1, 503, 0, " 30 ", RMAX, NULL, &w), AI_RETRY);
    cr_assert_eq(w, 30000);
    /* Smaller than the backoff: the backoff stands. */
    struct ai_policy p = {.max_attempts = 10};
    decide(4, 429, 0, "1", 0, &p, &w);
    cr_assert_eq(w, 4000);
    decide(1, 429, 0, "0", RMAX, NULL, &w);
    cr_assert_eq(w, AI_DEFAULT_BASE_MS);
    /* Also honoured on a transport failure that somehow carries one. */
    decide(1, 0, 1, "7", 0, NULL, &w);
    cr_assert_eq(w, 7000);
}

Test(ai_retry, retry_after_is_capped)
{
    int64_t w;
    decide(1, 429, 0, "3600", 0, NULL, &w);
    cr_assert_eq(w, AI_DEFAULT_RETRY_AFTER_CAP_MS, "at the cap");
    decide(1, 429, 0, "3601", 0, NULL, &w);
    cr_assert_eq(w, AI_DEFAULT_RETRY_AFTER_CAP_MS, "over the cap");
    decide(1, 429, 0, "99999999999999999999999999", 0, NULL, &w);
    cr_assert_eq(w, AI_DEFAULT_RETRY_AFTER_CAP_MS, "saturates, no overflow");
    struct ai_policy p = {.retry_after_cap_ms = 5000};
    decide(1, 429, 0, "60", 0, &p, &w);
    cr_assert_eq(w, 5000);
}

Test(ai_retry, retry_after_garbage_is_ignored)
{
    const char *bad[] = {"",
                         " ",
                         "abc",
                         "-5",
                         "1.5",
                         "+3",
                         "3s",
                         "0x10",
                         "12 34",
                         "\t\n",
                         "1e3",
                         "∞",
                         "Sun, 06 Nov 1994 08:49:37 GMT junk"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t w;
        cr_assert_eq(decide(1, 429, 0, bad[i], RMAX, NULL, &w), AI_RETRY);
        cr_assert_eq(w, AI_DEFAULT_BASE_MS, "\"%s\"", bad[i]);
    }
}

/* The wait a Retry-After date gives when now is NOW. */
static int64_t wait_for_date(const char *date)
{
    int64_t w;
    cr_assert_eq(decide(1, 503, 0, date, 0, NULL, &w), AI_RETRY);
    return w;
}

Test(ai_retry, retry_after_imf_fixdate)
{
    cr_assert_eq(wait_for_date("Sun, 06 Nov 1994 08:51:07 GMT"), 90000);
    cr_assert_eq(wait_for_date("Sun, 06 Nov 1994 09:19:37 GMT"), 1800000);
    cr_assert_eq(wait_for_date("  Sun, 06 Nov 1994 08:51:07 GMT  "), 90000, "OWS");
    /* Past or present: the backoff (rand 0: half the base). */
    cr_assert_eq(wait_for_date("Sun, 06 Nov 1994 08:49:37 GMT"), AI_DEFAULT_BASE_MS / 2);
    cr_assert_eq(wait_for_date("Sat, 05 Nov 1994 08:49:37 GMT"), AI_DEFAULT_BASE_MS / 2);
    /* Far future: capped. */
    cr_assert_eq(wait_for_date("Fri, 31 Dec 9999 23:59:59 GMT"), AI_DEFAULT_RETRY_AFTER_CAP_MS);
    /* Crossing the hour. */
    cr_assert_eq(wait_for_date("Sun, 06 Nov 1994 09:00:00 GMT"), 623000);
}

/* Exact date conversion: now a fixed distance before the date. */
static void check_date(const char *date, int64_t unix_s)
{
    int64_t next = 0;
    int64_t now = unix_s * 1000 - 100000;
    cr_assert_eq(ai_retry_decide(1, 503, 0, date, now, 0, NULL, &next), AI_RETRY);
    cr_assert_eq(next, unix_s * 1000, "%s", date);
}

Test(ai_retry, http_dates_convert_exactly)
{
    check_date("Thu, 01 Jan 1970 00:01:40 GMT", 100);
    check_date("Sun, 06 Nov 1994 08:49:37 GMT", 784111777);
    check_date("Sat, 01 Jan 2000 00:00:00 GMT", 946684800);
    check_date("Thu, 29 Feb 2024 23:59:59 GMT", 1709251199);
    check_date("Fri, 31 Dec 9999 23:59:59 GMT", 253402300799);
}

Test(ai_retry, malformed_and_obsolete_dates_are_ignored)
{
    const char *bad[] = {
        "Sunday, 06-Nov-94 08:49:37 GMT", /* RFC 850: obsolete, ignored */
        "Sun Nov  6 08:49:37 1994",       /* asctime: obsolete, ignored */
        "Sun, 06 Nov 1994 08:49:37 UTC",  "Xyz, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT",  "Sun, 31 Nov 1994 08:49:37 GMT",
        "Sun, 29 Feb 2023 08:49:37 GMT",  "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",  "Sun, 06 Nov 1994 08:60:00 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",  "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun,06 Nov 1994 08:49:37 GMT ",  "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun, 06 Nov 1994 08-49-37 GMT",  "sun, 06 nov 1994 08:49:37 gmt",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t w;
        cr_assert_eq(decide(1, 503, 0, bad[i], 0, NULL, &w), AI_RETRY);
        cr_assert_eq(w, AI_DEFAULT_BASE_MS / 2, "\"%s\" was not ignored", bad[i]);
    }
}

Test(ai_retry, next_at_saturates)
{
    int64_t next = 0;
    cr_assert_eq(ai_retry_decide(1, 503, 0, "60", INT64_MAX - 10, 0, NULL, &next), AI_RETRY);
    cr_assert_eq(next, INT64_MAX);
}

Test(ai_retry, strerror_names_every_code)
{
    const int codes[] = {AI_E_FULL,    AI_E_STOPPED, AI_E_TRANSPORT, AI_E_HTTP,
                         AI_E_BADRESP, AI_E_TOOBIG,  AI_E_CANCELLED};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        cr_assert_str_neq(ai_strerror(codes[i]), ai_strerror(-99999));
    }
    cr_assert_str_eq(ai_strerror(0), "success");
}
