/*
 * client.c: the ai thread: one libcurl multi handle running summary
 * attempts beside the event loop.
 *
 * DESIGN: the loop thread submits jobs into a bounded FIFO (ai_submit
 * never blocks) and pokes the multi handle with curl_multi_wakeup(), the
 * one libcurl call that is safe from another thread. The ai thread moves
 * queued jobs into transfers while fewer than max_concurrent run, drives
 * them with curl_multi_perform()/curl_multi_poll(), and when one finishes
 * it classifies the outcome (ai_retry_decide, ai_response_parse), posts the
 * job onto the done list and calls the wake callback. The loop thread swaps
 * the done list out under the lock and runs the callbacks unlocked
 * (ai_run_done), as the store does. "In flight" counts queued, running and
 * done-but-not-collected jobs, so one cap bounds all three lists.
 *
 * Each job is exactly one attempt; the client remembers nothing between
 * attempts. The response body is buffered up to AI_RESPONSE_MAX_BYTES and
 * the transfer aborted beyond (CURLOPT_MAXFILESIZE_LARGE catches an
 * announced Content-Length early). The API key lives only in the header
 * list, which is wiped before it is freed; CURLOPT_VERBOSE stays off.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <sodium.h>

#include "ai.h"
#include "ai_int.h"

#define RETRY_AFTER_MAX    64 /* bytes of a Retry-After value kept */
#define POLL_MS            1000
#define RESP_INITIAL_BYTES 4096
#define USER_AGENT         "coach-gateway"

/* One running attempt. Ai thread only. */
struct transfer {
    struct ai_job *job; /* owned by the client while running */
    CURL *easy;         /* owned */
    char *resp;         /* owned: the response body so far */
    size_t resp_len, resp_cap;
    bool overflow; /* the body went past AI_RESPONSE_MAX_BYTES */
    bool oom;      /* the body could not be buffered */
    char retry_after[RETRY_AFTER_MAX];
    struct curl_slist *headers; /* owned: the job's own Authorization, or NULL */
};

struct ai_client {
    char *url;                  /* owned; never logged */
    struct curl_slist *headers; /* owned; holds the key; wiped before freeing */
    int64_t timeout_ms;
    struct ai_policy policy;
    size_t queue_cap;
    int max_concurrent;
    void (*wake)(void *arg);
    void *wake_arg;
    ai_log_fn log;
    void *log_arg;
    CURLM *multi; /* driven by the ai thread; others only curl_multi_wakeup() */

    pthread_t thread;
    pthread_mutex_t mu;
    struct ai_job *q_head, *q_tail;       /* {mu} */
    struct ai_job *done_head, *done_tail; /* {mu} */
    bool stopping;                        /* {mu} */
    atomic_size_t in_flight;

    /* Ai thread only. */
    struct transfer *running[AI_MAX_CONCURRENCY]; /* the first n_running are in use */
    int n_running;
};

static void alog(struct ai_client *c, int level, const char *event, const char *msg)
{
    if (c->log != NULL) {
        c->log(c->log_arg, level, event, msg);
    }
}

static int64_t now_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- completions ------------------------------------------------------------ */

/* Append job to the done list; the caller wakes the loop afterwards. */
static void post_done(struct ai_client *c, struct ai_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->done_tail != NULL) {
        c->done_tail->next = job;
    } else {
        c->done_head = job;
    }
    c->done_tail = job;
    pthread_mutex_unlock(&c->mu);
}

static void wake(struct ai_client *c)
{
    if (c->wake != NULL) {
        c->wake(c->wake_arg);
    }
}

static void complete_cancelled(struct ai_client *c, struct ai_job *job)
{
    job->rc = AI_E_CANCELLED;
    job->decision = AI_CANCELLED;
    job->next_at_unix_ms = 0;
    ai__err_set(&job->err, AI_E_CANCELLED, "cancelled: the ai client closed");
    post_done(c, job);
}

/* A job that could not even start (rc -ENOMEM): decided like a transport
 * failure, so the durable schedule retries it. */
static void complete_local_failure(struct ai_client *c, struct ai_job *job)
{
    job->rc = -ENOMEM;
    job->decision = ai_retry_decide(job->attempt, 0, 1, NULL, now_unix_ms(), randombytes_random(),
                                    &c->policy, &job->next_at_unix_ms);
    ai__err_set(&job->err, -ENOMEM, "out of memory starting the request");
    post_done(c, job);
}

/* ---- transfer callbacks (ai thread, inside curl_multi_perform) -------------- */

static size_t on_write(char *p, size_t size, size_t nmemb, void *arg)
{
    struct transfer *t = arg;
    size_t n = size * nmemb;
    if (n > AI_RESPONSE_MAX_BYTES - t->resp_len) {
        t->overflow = true;
        return 0; /* aborts the transfer (CURLE_WRITE_ERROR) */
    }
    if (t->resp_len + n + 1 > t->resp_cap) {
        size_t cap = t->resp_cap == 0 ? RESP_INITIAL_BYTES : t->resp_cap;
        while (cap < t->resp_len + n + 1) {
            cap *= 2;
        }
        if (cap > AI_RESPONSE_MAX_BYTES + 1) {
            cap = AI_RESPONSE_MAX_BYTES + 1;
        }
        char *r = realloc(t->resp, cap);
        if (r == NULL) {
            t->oom = true;
            return 0;
        }
        t->resp = r;
        t->resp_cap = cap;
    }
    memcpy(t->resp + t->resp_len, p, n);
    t->resp_len += n;
    t->resp[t->resp_len] = '\0';
    return n;
}

/* Keep the Retry-After value of the final response. */
static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
    static const char name[] = "retry-after:";
    struct transfer *t = arg;
    size_t n = size * nmemb;
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        t->retry_after[0] = '\0'; /* a new response (e.g. after 100 Continue) */
        return n;
    }
    if (n > sizeof(name) - 1 && strncasecmp(p, name, sizeof(name) - 1) == 0) {
        size_t a = sizeof(name) - 1, b = n;
        while (a < b && (p[a] == ' ' || p[a] == '\t')) {
            a++;
        }
        while (b > a && (p[b - 1] == '\r' || p[b - 1] == '\n' || p[b - 1] == ' ')) {
            b--;
        }
        if (b - a < sizeof(t->retry_after)) {
            memcpy(t->retry_after, p + a, b - a);
            t->retry_after[b - a] = '\0';
        }
    }
    return n;
}

/* ---- starting and finishing transfers (ai thread) ------------------------------ */

static void headers_free(struct curl_slist *h);
static struct curl_slist *headers_build(const char *api_key);

static void transfer_free(struct transfer *t)
{
    if (t->easy != NULL) {
        curl_easy_cleanup(t->easy);
    }
    headers_free(t->headers);
    free(t->resp);
    free(t);
}

/* 0, or -1 when the job's own headers cannot be built. */
static int set_options(struct ai_client *c, struct transfer *t)
{
    CURL *e = t->easy;
    if (t->job->bearer != NULL) {
        t->headers = headers_build(t->job->bearer);
        if (t->headers == NULL) {
            return -1;
        }
    }
    curl_easy_setopt(e, CURLOPT_URL, c->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers != NULL ? t->headers : c->headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->job->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)t->job->body_len);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_VERBOSE, 0L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)AI_RESPONSE_MAX_BYTES);
    curl_easy_setopt(e, CURLOPT_USERAGENT, USER_AGENT);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    return 0;
}

/* Start job's attempt, or complete it at once when that fails. */
static void transfer_start(struct ai_client *c, struct ai_job *job)
{
    struct transfer *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        complete_local_failure(c, job);
        return;
    }
    t->job = job;
    t->easy = curl_easy_init();
    if (t->easy == NULL) {
        transfer_free(t);
        complete_local_failure(c, job);
        return;
    }
    if (set_options(c, t) != 0 || curl_multi_add_handle(c->multi, t->easy) != CURLM_OK) {
        transfer_free(t);
        complete_local_failure(c, job);
        return;
    }
    c->running[c->n_running++] = t;
}

/* Remove t from the running set and from the multi handle. */
static void transfer_detach(struct ai_client *c, struct transfer *t)
{
    for (int i = 0; i < c->n_running; i++) {
        if (c->running[i] == t) {
            c->running[i] = c->running[--c->n_running];
            break;
        }
    }
    curl_multi_remove_handle(c->multi, t->easy);
}

/* The outcome of a 2xx: the summary, or a permanent failure (out of
 * memory here is ours, not the endpoint's: decided like a transport
 * failure). */
static void judge_success(struct ai_client *c, struct transfer *t)
{
    struct ai_job *job = t->job;
    int rc = ai_response_parse(t->resp, t->resp_len, &job->summary);
    if (rc == 0) {
        job->rc = 0;
        job->err.code = 0;
        job->err.msg[0] = '\0';
    } else if (rc == -ENOMEM) {
        job->rc = -ENOMEM;
        job->decision = ai_retry_decide(job->attempt, 0, 1, NULL, now_unix_ms(),
                                        randombytes_random(), &c->policy, &job->next_at_unix_ms);
        ai__err_set(&job->err, rc, "HTTP %ld: out of memory parsing the response",
                    job->http_status);
    } else {
        job->rc = AI_E_BADRESP;
        job->decision = AI_FAIL_PERMANENT;
        ai__err_set(&job->err, rc,
                    "HTTP %ld: no summary in the response (not JSON, or no non-empty "
                    "choices[0].message.content)",
                    job->http_status);
    }
}

/* Fill job->rc and job->err for a failed attempt. */
static void describe_failure(struct ai_client *c, struct transfer *t, CURLcode res, bool failed)
{
    struct ai_job *job = t->job;
    const char *tail = job->decision == AI_FAIL_EXHAUSTED ? "; no attempts left" : "";
    if (t->oom) {
        job->rc = -ENOMEM;
        ai__err_set(&job->err, -ENOMEM, "out of memory buffering the response%s", tail);
    } else if (failed) {
        job->rc = AI_E_TRANSPORT;
        ai__err_set(&job->err, AI_E_TRANSPORT, "no answer: %s (attempt %d of %d)%s",
                    curl_easy_strerror(res), job->attempt, c->policy.max_attempts, tail);
    } else {
        char code[64];
        ai__error_code_name(t->resp, t->resp_len, code, sizeof(code));
        job->rc = AI_E_HTTP;
        ai__err_set(&job->err, AI_E_HTTP, "HTTP %ld%s%s (attempt %d of %d)%s", job->http_status,
                    code[0] != '\0' ? ", error code " : "", code, job->attempt,
                    c->policy.max_attempts, tail);
    }
}

/* Classify a finished transfer into its job and post the job. */
static void transfer_finish(struct ai_client *c, struct transfer *t, CURLcode res)
{
    struct ai_job *job = t->job;
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    job->http_status = status;
    job->curl_code = (int)res;
    job->next_at_unix_ms = 0;
    bool too_big = t->overflow || res == CURLE_FILESIZE_EXCEEDED;
    /* An oversized body is judged by its status; only a 2xx needed it. */
    bool failed = t->oom || (res != CURLE_OK && !too_big);
    if (too_big && !failed && status >= 200 && status <= 299) {
        job->rc = AI_E_TOOBIG;
        job->decision = AI_FAIL_PERMANENT;
        ai__err_set(&job->err, AI_E_TOOBIG, "HTTP %ld: response over %zu bytes", status,
                    AI_RESPONSE_MAX_BYTES);
    } else {
        job->decision = ai_retry_decide(job->attempt, status, failed, t->retry_after, now_unix_ms(),
                                        randombytes_random(), &c->policy, &job->next_at_unix_ms);
        if (job->decision == AI_DONE_OK && job->plain) {
            job->rc = 0; /* any 2xx will do */
        } else if (job->decision == AI_DONE_OK) {
            judge_success(c, t);
        } else {
            describe_failure(c, t, res, failed);
        }
    }
    t->job = NULL;
    post_done(c, job);
}

/* Finish every transfer libcurl reports done. Returns how many. */
static int collect_finished(struct ai_client *c)
{
    int n = 0, left = 0;
    for (;;) {
        CURLMsg *m = curl_multi_info_read(c->multi, &left);
        if (m == NULL) {
            break;
        }
        if (m->msg != CURLMSG_DONE) {
            continue;
        }
        char *priv = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        struct transfer *t = (struct transfer *)priv;
        CURLcode res = m->data.result; /* m is invalid after remove_handle */
        transfer_detach(c, t);
        transfer_finish(c, t, res);
        transfer_free(t);
        n++;
    }
    return n;
}

/* ---- the thread --------------------------------------------------------------- */

/* Start queued jobs while slots are free. Returns true when stopping. */
static bool start_queued(struct ai_client *c)
{
    struct ai_job *batch = NULL, **tail = &batch;
    pthread_mutex_lock(&c->mu);
    bool stopping = c->stopping;
    int free_slots = c->max_concurrent - c->n_running;
    while (!stopping && free_slots > 0 && c->q_head != NULL) {
        struct ai_job *job = c->q_head;
        c->q_head = job->next;
        job->next = NULL;
        *tail = job;
        tail = &job->next;
        free_slots--;
    }
    if (c->q_head == NULL) {
        c->q_tail = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    int failed_at_start = 0;
    while (batch != NULL) {
        struct ai_job *next = batch->next;
        int before = c->n_running;
        transfer_start(c, batch);
        if (c->n_running == before) {
            failed_at_start++; /* completed at once */
        }
        batch = next;
    }
    if (failed_at_start > 0) {
        wake(c);
    }
    return stopping;
}

/* Stop: complete every running and queued job as cancelled. */
static void cancel_all(struct ai_client *c)
{
    size_t n = 0;
    while (c->n_running > 0) {
        struct transfer *t = c->running[0];
        transfer_detach(c, t);
        complete_cancelled(c, t->job);
        transfer_free(t);
        n++;
    }
    pthread_mutex_lock(&c->mu);
    struct ai_job *q = c->q_head;
    c->q_head = c->q_tail = NULL;
    pthread_mutex_unlock(&c->mu);
    while (q != NULL) {
        struct ai_job *next = q->next;
        complete_cancelled(c, q);
        q = next;
        n++;
    }
    if (n > 0) {
        char msg[64];
        (void)snprintf(msg, sizeof(msg), "jobs=%zu", n);
        alog(c, 5, "ai.cancelled", msg);
        wake(c);
    }
}

static void *thread_main(void *arg)
{
    struct ai_client *c = arg;
    while (!start_queued(c)) {
        int still = 0;
        CURLMcode mc = curl_multi_perform(c->multi, &still);
        if (collect_finished(c) > 0) {
            wake(c);
        }
        if (mc == CURLM_OK) {
            mc = curl_multi_poll(c->multi, NULL, 0, POLL_MS, NULL);
        }
        if (mc != CURLM_OK) {
            /* The multi handle is unusable: refuse new jobs, cancel the rest. */
            alog(c, 3, "ai.multi_error", curl_multi_strerror(mc));
            pthread_mutex_lock(&c->mu);
            c->stopping = true;
            pthread_mutex_unlock(&c->mu);
            break;
        }
    }
    cancel_all(c);
    return NULL;
}

/* ---- public API ------------------------------------------------------------- */

struct ai_job *ai_job_new(ai_done_fn done, void *arg)
{
    struct ai_job *job = calloc(1, sizeof(*job));
    if (job != NULL) {
        job->done = done;
        job->arg = arg;
    }
    return job;
}

void ai_job_free(struct ai_job *job)
{
    if (job == NULL) {
        return;
    }
    free(job->body);
    free(job->summary);
    if (job->bearer != NULL) {
        sodium_memzero(job->bearer, strlen(job->bearer));
        free(job->bearer);
    }
    free(job);
}

/* Are all bytes of s printable ASCII without spaces (a URL or a key that
 * cannot break a header line)? */
static bool is_token_text(const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s <= ' ' || *s >= 0x7f) {
            return false;
        }
    }
    return true;
}

static bool is_http_url(const char *u)
{
    return u != NULL && is_token_text(u) &&
           (strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0) &&
           strlen(u) > 8;
}

/* Wipe every header line (the key is one of them), then free the list. */
static void headers_free(struct curl_slist *h)
{
    for (struct curl_slist *p = h; p != NULL; p = p->next) {
        sodium_memzero(p->data, strlen(p->data));
    }
    curl_slist_free_all(h);
}

static struct curl_slist *headers_build(const char *api_key)
{
    static const char *const fixed[] = {"Content-Type: application/json",
                                        "Accept: application/json", "Expect:"};
    struct curl_slist *h = NULL, *n;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        n = curl_slist_append(h, fixed[i]);
        if (n == NULL) {
            headers_free(h);
            return NULL;
        }
        h = n;
    }
    if (api_key == NULL || api_key[0] == '\0') {
        return h;
    }
    static const char prefix[] = "Authorization: Bearer ";
    size_t len = sizeof(prefix) + strlen(api_key);
    char *line = malloc(len);
    n = NULL;
    if (line != NULL) {
        (void)snprintf(line, len, "%s%s", prefix, api_key);
        n = curl_slist_append(h, line); /* copies the line */
        sodium_memzero(line, len);
        free(line);
    }
    if (n == NULL) {
        headers_free(h);
        return NULL;
    }
    return n;
}

static int check_cfg(const struct ai_cfg *cfg, struct ai_err *err)
{
    if (!is_http_url(cfg->url)) {
        return ai__err_set(err, -EINVAL, "ai: the URL must be http:// or https://");
    }
    if (cfg->api_key != NULL && !is_token_text(cfg->api_key)) {
        return ai__err_set(err, -EINVAL, "ai: the API key holds spaces or control characters");
    }
    if (cfg->timeout_ms <= 0 || cfg->timeout_ms > AI_POLICY_MAX_MS || cfg->queue_cap == 0 ||
        cfg->max_concurrent < 0 || cfg->max_concurrent > AI_MAX_CONCURRENCY) {
        return ai__err_set(err, -EINVAL,
                           "ai: timeout_ms 1..%lld, queue_cap > 0 and max_concurrent 0..%d needed",
                           (long long)AI_POLICY_MAX_MS, AI_MAX_CONCURRENCY);
    }
    return 0;
}

/* Free what ai_client_open allocated (thread not running). */
static void client_free(struct ai_client *c)
{
    if (c->multi != NULL) {
        curl_multi_cleanup(c->multi);
    }
    headers_free(c->headers);
    if (c->url != NULL) {
        sodium_memzero(c->url, strlen(c->url));
        free(c->url);
    }
    free(c);
}

static int start_thread(struct ai_client *c)
{
    pthread_mutex_init(&c->mu, NULL);
    /* The ai thread takes no signals: they belong to the loop thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&c->thread, NULL, thread_main, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_mutex_destroy(&c->mu);
    }
    return -rc;
}

int ai_client_open(const struct ai_cfg *cfg, struct ai_client **out, struct ai_err *err)
{
    int rc = check_cfg(cfg, err);
    if (rc != 0) {
        return rc;
    }
    if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return ai__err_set(err, -ENOMEM, "ai: cannot initialise libsodium or libcurl");
    }
    struct ai_client *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        curl_global_cleanup();
        return ai__err_set(err, -ENOMEM, "ai: out of memory");
    }
    c->timeout_ms = cfg->timeout_ms;
    c->policy = ai__policy_norm(&cfg->policy);
    c->queue_cap = cfg->queue_cap;
    c->max_concurrent = cfg->max_concurrent > 0 ? cfg->max_concurrent : AI_DEFAULT_CONCURRENCY;
    c->wake = cfg->wake;
    c->wake_arg = cfg->wake_arg;
    c->log = cfg->log;
    c->log_arg = cfg->log_arg;
    atomic_init(&c->in_flight, 0);
    c->url = strdup(cfg->url);
    c->headers = headers_build(cfg->api_key);
    c->multi = curl_multi_init();
    if (c->url == NULL || c->headers == NULL || c->multi == NULL) {
        client_free(c);
        curl_global_cleanup();
        return ai__err_set(err, -ENOMEM, "ai: out of memory");
    }
    rc = start_thread(c);
    if (rc != 0) {
        client_free(c);
        curl_global_cleanup();
        return ai__err_set(err, rc, "ai: cannot start thread");
    }
    *out = c;
    return 0;
}

static bool job_valid(const struct ai_job *job)
{
    return job != NULL && job->done != NULL && job->body != NULL && job->attempt >= 1 &&
           job->id[0] != '\0' && memchr(job->id, '\0', sizeof(job->id)) != NULL &&
           (job->bearer == NULL || is_token_text(job->bearer));
}

int ai_submit(struct ai_client *c, struct ai_job *job)
{
    if (!job_valid(job)) {
        return -EINVAL;
    }
    pthread_mutex_lock(&c->mu);
    if (c->stopping) {
        pthread_mutex_unlock(&c->mu);
        return AI_E_STOPPED;
    }
    if (atomic_load(&c->in_flight) >= c->queue_cap) {
        pthread_mutex_unlock(&c->mu);
        return AI_E_FULL;
    }
    atomic_fetch_add(&c->in_flight, 1);
    if (job->body_len == 0) {
        job->body_len = strlen(job->body);
    }
    free(job->summary); /* a job submitted again for its next attempt */
    job->summary = NULL;
    job->rc = 0;
    job->err = (struct ai_err){0};
    job->decision = AI_DONE_OK;
    job->next_at_unix_ms = 0;
    job->http_status = 0;
    job->curl_code = 0;
    job->next = NULL;
    if (c->q_tail != NULL) {
        c->q_tail->next = job;
    } else {
        c->q_head = job;
    }
    c->q_tail = job;
    /* Under the lock, so that ai_client_close cannot free the handle meanwhile. */
    curl_multi_wakeup(c->multi);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

void ai_run_done(struct ai_client *c)
{
    pthread_mutex_lock(&c->mu);
    struct ai_job *list = c->done_head;
    c->done_head = c->done_tail = NULL;
    pthread_mutex_unlock(&c->mu);
    while (list != NULL) {
        struct ai_job *next = list->next;
        list->next = NULL;
        atomic_fetch_sub(&c->in_flight, 1);
        list->done(list);
        list = next;
    }
}

size_t ai_in_flight(const struct ai_client *c)
{
    return atomic_load(&((struct ai_client *)c)->in_flight);
}

void ai_client_close(struct ai_client *c)
{
    if (c == NULL) {
        return;
    }
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    curl_multi_wakeup(c->multi);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    ai_run_done(c);
    pthread_mutex_destroy(&c->mu);
    client_free(c);
    curl_global_cleanup();
}
