/*
 * retry.c: ai_retry_decide(), the retry policy of a summary attempt, and
 * the Retry-After parser behind it.
 *
 * DESIGN: a pure function of its inputs. Time (now_unix_ms) and randomness
 * (rand32) come from the caller, so tests pin both. The backoff is
 * exponential (base * 2^(attempt-1), capped) with equal jitter: the wait
 * is at least half the backoff, so waits still grow attempt by attempt,
 * while many gateways failing together spread over the other half. A
 * larger Retry-After wins, capped so a hostile or broken header cannot
 * park a job for days. HTTP-dates are converted without timegm() (not in
 * POSIX) by the days-from-civil algorithm (H. Hinnant).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "ai.h"
#include "ai_int.h"

static int64_t clamp_ms(int64_t v, int64_t dflt)
{
    if (v <= 0) {
        return dflt;
    }
    return v > AI_POLICY_MAX_MS ? AI_POLICY_MAX_MS : v;
}

struct ai_policy ai__policy_norm(const struct ai_policy *p)
{
    struct ai_policy r = {0};
    if (p != NULL) {
        r = *p;
    }
    if (r.max_attempts <= 0) {
        r.max_attempts = AI_DEFAULT_MAX_ATTEMPTS;
    }
    r.base_ms = clamp_ms(r.base_ms, AI_DEFAULT_BASE_MS);
    r.cap_ms = clamp_ms(r.cap_ms, AI_DEFAULT_CAP_MS);
    r.retry_after_cap_ms = clamp_ms(r.retry_after_cap_ms, AI_DEFAULT_RETRY_AFTER_CAP_MS);
    return r;
}

/* ---- Retry-After ------------------------------------------------------------ */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* n decimal digits at s, or -1 when any is not a digit. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(s[i])) {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Days since 1970-01-01 of the proleptic Gregorian date y-m-d. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : mdays[m - 1];
}

/* 1..12 for "Jan".."Dec" at s, else 0. */
static int month_of(const char *s)
{
    static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    for (size_t i = 0; i < 12; i++) {
        if (memcmp(s, names + 3 * i, 3) == 0) {
            return (int)i + 1;
        }
    }
    return 0;
}

static bool is_day_name(const char *s)
{
    static const char names[] = "MonTueWedThuFriSatSun";
    for (size_t i = 0; i < 7; i++) {
        if (memcmp(s, names + 3 * i, 3) == 0) {
            return true;
        }
    }
    return false;
}

/* IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT" (exactly n = 29 bytes) to
 * unix ms. Returns 0 or -EINVAL. */
static int parse_imf_fixdate(const char *s, size_t n, int64_t *unix_ms)
{
    if (n != 29 || !is_day_name(s) || memcmp(s + 3, ", ", 2) != 0 || s[7] != ' ' || s[11] != ' ' ||
        s[16] != ' ' || s[19] != ':' || s[22] != ':' || memcmp(s + 25, " GMT", 4) != 0) {
        return -EINVAL;
    }
    int day = digits(s + 5, 2), mon = month_of(s + 8), year = digits(s + 12, 4);
    int hh = digits(s + 17, 2), mm = digits(s + 20, 2), ss = digits(s + 23, 2);
    if (day < 1 || mon == 0 || year < 0 || hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 ||
        ss > 60 || day > days_in_month(year, mon)) {
        return -EINVAL;
    }
    int64_t secs =
        days_from_civil(year, mon, day) * 86400 + (int64_t)hh * 3600 + (int64_t)mm * 60 + ss;
    *unix_ms = secs * 1000;
    return 0;
}

/* 1*DIGIT seconds (n bytes) to ms, saturating at INT64_MAX. */
static int parse_delta_seconds(const char *s, size_t n, int64_t *ms)
{
    if (n == 0) {
        return -EINVAL;
    }
    int64_t secs = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i])) {
            return -EINVAL;
        }
        if (secs > (INT64_MAX / 1000 - 9) / 10) {
            secs = INT64_MAX / 1000; /* saturate; keep checking the digits */
        } else {
            secs = secs * 10 + (s[i] - '0');
        }
    }
    *ms = secs * 1000;
    return 0;
}

int ai__retry_after_ms(const char *v, int64_t now_unix_ms, int64_t *delay_ms)
{
    if (v == NULL) {
        return -EINVAL;
    }
    size_t a = 0, b = strlen(v);
    while (a < b && (v[a] == ' ' || v[a] == '\t')) {
        a++;
    }
    while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t' || v[b - 1] == '\r' || v[b - 1] == '\n')) {
        b--;
    }
    if (parse_delta_seconds(v + a, b - a, delay_ms) == 0) {
        return 0;
    }
    int64_t at_ms;
    if (parse_imf_fixdate(v + a, b - a, &at_ms) != 0) {
        return -EINVAL;
    }
    *delay_ms = at_ms > now_unix_ms ? at_ms - now_unix_ms : 0;
    return 0;
}

/* ---- the decision ----------------------------------------------------------- */

/* min(cap, base * 2^(attempt-1)) with equal jitter from rand32. */
static int64_t jittered_backoff_ms(int attempt, uint32_t rand32, const struct ai_policy *p)
{
    int64_t d = p->base_ms;
    for (int i = 1; i < attempt && d < p->cap_ms; i++) {
        d *= 2; /* d <= 2 * AI_POLICY_MAX_MS: no overflow */
    }
    if (d > p->cap_ms) {
        d = p->cap_ms;
    }
    int64_t half = d / 2;
    uint64_t span = (uint64_t)(d - half);
    return half + (int64_t)(span * rand32 / UINT32_MAX);
}

static bool is_retryable(long http_status, int curl_failed)
{
    return curl_failed != 0 || http_status == 0 || http_status == 429 ||
           (http_status >= 500 && http_status <= 599);
}

enum ai_decision ai_retry_decide(int attempt, long http_status, int curl_failed,
                                 const char *retry_after, int64_t now_unix_ms, uint32_t rand32,
                                 const struct ai_policy *p, int64_t *next_at_unix_ms)
{
    struct ai_policy pol = ai__policy_norm(p);
    if (attempt < 1) {
        attempt = 1;
    }
    if (curl_failed == 0 && http_status >= 200 && http_status <= 299) {
        return AI_DONE_OK;
    }
    if (!is_retryable(http_status, curl_failed)) {
        return AI_FAIL_PERMANENT;
    }
    if (attempt >= pol.max_attempts) {
        return AI_FAIL_EXHAUSTED;
    }
    int64_t wait_ms = jittered_backoff_ms(attempt, rand32, &pol);
    int64_t ra_ms;
    if (retry_after != NULL && ai__retry_after_ms(retry_after, now_unix_ms, &ra_ms) == 0) {
        if (ra_ms > pol.retry_after_cap_ms) {
            ra_ms = pol.retry_after_cap_ms;
        }
        if (ra_ms > wait_ms) {
            wait_ms = ra_ms;
        }
    }
    *next_at_unix_ms = now_unix_ms > INT64_MAX - wait_ms ? INT64_MAX : now_unix_ms + wait_ms;
    return AI_RETRY;
}
