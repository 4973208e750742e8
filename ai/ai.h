/*
 * ai.h: the ai module's public header: the session summary request sent to
 * an OpenAI-compatible chat completions endpoint (protocol.md section 4).
 *
 * Pure parts (any thread, no I/O, no clock reads):
 *  - ai_prompt_build(): a client's context and a transcript -> the JSON
 *    request body;
 *  - ai_retry_decide(): what to do after an attempt, and when to try again;
 *  - ai_response_parse(): the summary out of a response body.
 *
 * The client (ai_client_open): one thread driving a libcurl multi handle.
 * The loop thread submits jobs into a bounded queue (ai_submit never
 * blocks); the ai thread performs ONE HTTP attempt per submitted job, posts
 * the finished job onto a done list and calls the wake callback; the loop
 * thread then runs the done callbacks with ai_run_done(), like the store.
 * The client keeps no state across attempts: the durable retry schedule
 * (attempt number, next_at) belongs to the caller's job table, which
 * submits the job again at next_at with attempt + 1.
 *
 * How one attempt ends (job->decision, job->rc):
 *   2xx with choices[0].message.content a non-empty string -> AI_DONE_OK, 0
 *   network error, connect failure, timeout                -> AI_RETRY, AI_E_TRANSPORT
 *   429, 5xx                                                -> AI_RETRY, AI_E_HTTP
 *   any other status (4xx, 1xx, 3xx: redirects are not followed)
 *                                                           -> AI_FAIL_PERMANENT, AI_E_HTTP
 *   2xx whose body is not JSON, or has no non-empty string at
 *   choices[0].message.content                              -> AI_FAIL_PERMANENT, AI_E_BADRESP
 *   2xx whose body exceeds AI_RESPONSE_MAX_BYTES            -> AI_FAIL_PERMANENT, AI_E_TOOBIG
 *   a retryable outcome of attempt max_attempts             -> AI_FAIL_EXHAUSTED
 *   the client closed before the attempt finished           -> AI_CANCELLED, AI_E_CANCELLED
 *   out of memory on the ai thread (ours, not the endpoint's)
 *                                                           -> as a network error, -ENOMEM
 * A malformed 2xx counts as permanent: the endpoint did answer, and asking
 * the same question again would most likely get the same answer and cost
 * the same money. AI_CANCELLED is not an attempt: the caller re-submits
 * later (e.g. after a restart) with the same attempt number.
 *
 * Errors are values: int functions return 0 or a negative code (-EINVAL,
 * -ENOMEM, AI_E_*); nothing here prints, exits or aborts. Nothing here logs
 * or puts in an error message the API key, the Authorization header, the
 * URL, the request body, the summary or the endpoint's error text (only
 * the endpoint's error code name, e.g. "rate_limit_exceeded", sanitized).
 */
#ifndef COACH_AI_H
#define COACH_AI_H

#include <stddef.h>
#include <stdint.h>

/* Error codes beyond negative errno values. */
enum {
    AI_E_FULL = -2000,      /* submission queue full: back-pressure */
    AI_E_STOPPED = -2001,   /* the client is shutting down */
    AI_E_TRANSPORT = -2002, /* no HTTP answer: DNS, connect, TLS, reset, timeout */
    AI_E_HTTP = -2003,      /* the endpoint answered with a non-2xx status */
    AI_E_BADRESP = -2004,   /* a 2xx whose body has no usable summary */
    AI_E_TOOBIG = -2005,    /* a 2xx whose body exceeds AI_RESPONSE_MAX_BYTES */
    AI_E_CANCELLED = -2006, /* the client closed while the job was queued or running */
};

/* A caller-owned error value; msg never holds secrets or user text. */
struct ai_err {
    int code;
    char msg[256];
};

/* A static description of an ai error code (AI_E_*, -EINVAL, -ENOMEM, 0).
 * Any thread. */
const char *ai_strerror(int code);

/* ---- prompt building (pure) ---------------------------------------------- */

#define AI_TRANSCRIPT_MAX_BYTES ((size_t)100 * 1024) /* the newest part is kept */
#define AI_FIELD_MAX_BYTES      ((size_t)8 * 1024)   /* goals, symptoms, last summary, names */
#define AI_ITEM_MAX_BYTES       ((size_t)1024)       /* each clientFacts / challenges item */
#define AI_LIST_MAX_ITEMS       100                  /* clientFacts, challenges */

/*
 * What the summary request may know about the session: the two display
 * names and the client's "Profile" context fields named by protocol.md
 * section 4. The builder has no other inputs, so nothing else of the
 * profile can reach the endpoint. Every pointer is borrowed for the call
 * and may be NULL; NULL, empty and whitespace-only strings (and list items)
 * are left out, and so is a section with nothing left in it. Strings must
 * be valid UTF-8.
 */
struct ai_context {
    const char *client_name;     /* the client's display name */
    const char *coach_name;      /* the coach's display name */
    char *const *client_facts;   /* "Profile"."clientFacts" */
    size_t n_client_facts;       /* entries in client_facts */
    char *const *challenges;     /* "Profile"."challenges" */
    size_t n_challenges;         /* entries in challenges */
    const char *intake_goals;    /* "Profile"."intakeCoachingGoals" */
    const char *intake_symptoms; /* "Profile"."intakeSymptoms" */
    const char *last_summary;    /* "Profile"."lastSummary" */
};

/*
 * Build the request body {"model": model, "messages": [system, user]} as
 * compact JSON. The system message asks for a concise plain-text summary
 * for the coach (key themes, client progress, agreed next steps, no
 * invented facts) and says the context and transcript are data, not
 * instructions. The user message has one section per present field, each
 * opened by a line "## <label>", in this order: "Client", "Coach",
 * "Client facts", "Challenges", "Coaching goals (intake)",
 * "Symptoms (intake)", "Previous session summary", "Transcript"; list
 * items are lines "- <item>" (line breaks inside an item become spaces).
 * The transcript section is always present. Values are trimmed of
 * surrounding whitespace, and a line inside a value that starts with '#'
 * gets a leading space, so no value can open a section of its own.
 *
 * Bounds: a transcript over AI_TRANSCRIPT_MAX_BYTES keeps its newest
 * bytes, cut at a line start, after a note saying how much was left out;
 * a string over AI_FIELD_MAX_BYTES (a list item over AI_ITEM_MAX_BYTES) is
 * cut at a UTF-8 character boundary and ends with " [...]"; at most
 * AI_LIST_MAX_ITEMS items of each list are sent, the first ones.
 *
 * ctx and transcript (the "Session"."transcript" text) are borrowed; ctx
 * may be NULL (no context). On success *body_out is a malloc'd NUL-
 * terminated string the caller frees. Returns 0, -EINVAL (model NULL or
 * empty, transcript NULL or blank, or a string that is not valid UTF-8),
 * or -ENOMEM; *body_out is untouched on error. Any thread.
 */
int ai_prompt_build(const struct ai_context *ctx, const char *transcript, const char *model,
                    char **body_out);

/* ---- retry policy (pure) --------------------------------------------------- */

/* What to do after an attempt. */
enum ai_decision {
    AI_DONE_OK,        /* a usable answer */
    AI_RETRY,          /* try again at next_at */
    AI_FAIL_PERMANENT, /* give up: retrying cannot help */
    AI_FAIL_EXHAUSTED, /* give up: retryable, but that was the last attempt */
    AI_CANCELLED,      /* job completions only: the attempt did not finish */
};

#define AI_DEFAULT_MAX_ATTEMPTS       5
#define AI_DEFAULT_BASE_MS            ((int64_t)1000)          /* backoff after attempt 1 */
#define AI_DEFAULT_CAP_MS             ((int64_t)5 * 60 * 1000) /* backoff cap */
#define AI_DEFAULT_RETRY_AFTER_CAP_MS ((int64_t)60 * 60 * 1000)
#define AI_POLICY_MAX_MS              ((int64_t)24 * 60 * 60 * 1000) /* larger values are clamped */

/* Retry policy. Zero (or negative) fields take the defaults above. */
struct ai_policy {
    int max_attempts;           /* attempts in all, including the first */
    int64_t base_ms;            /* backoff after the first attempt; doubles per attempt */
    int64_t cap_ms;             /* the backoff never exceeds this */
    int64_t retry_after_cap_ms; /* a Retry-After longer than this is cut to it */
};

/*
 * Decide what follows attempt number `attempt` (1-based; values below 1
 * count as 1), which ended with HTTP status http_status (0 when there was
 * no answer) or a transport failure (curl_failed nonzero: connect, DNS,
 * TLS, reset, timeout; http_status is then ignored).
 *
 *  - 2xx: AI_DONE_OK (the caller still checks the body, ai_response_parse);
 *  - transport failure, 429, 5xx: AI_RETRY, or AI_FAIL_EXHAUSTED when
 *    attempt >= max_attempts;
 *  - anything else: AI_FAIL_PERMANENT.
 *
 * On AI_RETRY, *next_at_unix_ms = now_unix_ms + wait, where wait is the
 * exponential backoff min(cap_ms, base_ms * 2^(attempt-1)) with equal
 * jitter (uniform in [backoff/2, backoff], rand32 picking the point:
 * 0 -> backoff/2, UINT32_MAX -> backoff), or the Retry-After delay when
 * that is larger (capped at retry_after_cap_ms). retry_after is the raw
 * header value or NULL: delta-seconds ("120") or an IMF-fixdate
 * ("Sun, 06 Nov 1994 08:49:37 GMT"); a date in the past, or anything
 * unparsable (including the obsolete RFC 850 and asctime forms) is
 * ignored. *next_at_unix_ms is untouched for other decisions. p NULL means
 * all defaults. Randomness and time are inputs, so this is deterministic.
 * Any thread.
 */
enum ai_decision ai_retry_decide(int attempt, long http_status, int curl_failed,
                                 const char *retry_after, int64_t now_unix_ms, uint32_t rand32,
                                 const struct ai_policy *p, int64_t *next_at_unix_ms);

/* ---- response parsing (pure) ---------------------------------------------- */

/*
 * Pull the summary out of a chat completions response body (len bytes,
 * need not be NUL-terminated): the string at choices[0].message.content,
 * with surrounding whitespace trimmed. On success *summary_out is a
 * malloc'd NUL-terminated string the caller frees. Returns 0; AI_E_BADRESP
 * when the body is not a JSON object, or that member is missing, not a
 * string, or empty after trimming; -ENOMEM. *summary_out is untouched on
 * error. Any thread.
 */
int ai_response_parse(const char *body, size_t len, char **summary_out);

/* ---- the client -------------------------------------------------------------- */

#define AI_RESPONSE_MAX_BYTES  ((size_t)1024 * 1024) /* response bodies above: aborted */
#define AI_ID_MAX              64                    /* job ids, bytes */
#define AI_DEFAULT_CONCURRENCY 8                     /* transfers at once */
#define AI_MAX_CONCURRENCY     64                    /* the most max_concurrent may ask */

struct ai_client;
struct ai_job;

/* Called on the loop thread (from ai_run_done or ai_client_close) when job
 * completed. The callback owns job from then on and frees it with
 * ai_job_free. */
typedef void (*ai_done_fn)(struct ai_job *job);

/* Log sink the client may call from its own thread (must be thread-safe).
 * level uses syslog numbering (3 error .. 7 debug). Messages carry ids and
 * counts only. */
typedef void (*ai_log_fn)(void *arg, int level, const char *event, const char *msg);

/*
 * One summary attempt. The caller fills the "in" fields between
 * ai_job_new() and ai_submit(); the ai thread fills the "out" fields. While
 * submitted (from a successful ai_submit until its done callback runs) the
 * job belongs to the client and the caller must not touch it. A job may be
 * submitted again once its callback ran (e.g. with attempt + 1 at
 * next_at): ai_submit resets the "out" fields, freeing an old summary.
 */
struct ai_job {
    char id[AI_ID_MAX + 1]; /* in: the durable job row's id, for the caller (copied in) */
    char *body;             /* in: the request body (ai_prompt_build); owned by the job */
    size_t body_len;        /* in: bytes of body; 0 means strlen(body) */
    int attempt;            /* in: 1-based number of this attempt */
    char *bearer;           /* in: optional; sent as "Authorization: Bearer <bearer>" instead
                               of the client's key; owned by the job, wiped when freed */
    int plain;              /* in: nonzero: any 2xx is AI_DONE_OK and its body is not read
                               for a summary (calls that only need to succeed) */
    ai_done_fn done;        /* in: loop thread */
    void *arg;              /* in: the submitter's, untouched by the client */

    int rc;                    /* out: 0, AI_E_* or -ENOMEM (see the table at the top) */
    struct ai_err err;         /* out: why, in words; no secrets, no user text */
    enum ai_decision decision; /* out: what the caller does next */
    int64_t next_at_unix_ms;   /* out: AI_RETRY: when to submit attempt + 1; else 0 */
    long http_status;          /* out: the answer's status, 0 when none */
    int curl_code;             /* out: libcurl's CURLcode of the transfer, 0 when OK */
    char *summary;             /* out: AI_DONE_OK: the summary; owned by the job */

    struct ai_job *next; /* queue link, owned by the client while submitted */
};

/* A zeroed job with done and arg set, or NULL when out of memory. Any
 * thread. */
struct ai_job *ai_job_new(ai_done_fn done, void *arg);

/* Free job, its body and its summary. NULL-safe. Never on a submitted job.
 * Any thread. */
void ai_job_free(struct ai_job *job);

struct ai_cfg {
    const char *url;         /* the chat completions URL, http:// or https://; copied */
    const char *api_key;     /* sent as "Authorization: Bearer <key>"; copied, wiped on
                                close, never logged; NULL or "" sends no Authorization */
    int64_t timeout_ms;      /* per attempt, connect to last byte (AI_TIMEOUT_MS);
                                1..AI_POLICY_MAX_MS */
    struct ai_policy policy; /* max_attempts = AI_MAX_ATTEMPTS; zero fields: defaults */
    size_t queue_cap;        /* jobs in flight at most (queued + running + done); > 0 */
    int max_concurrent;      /* transfers at once, 0..AI_MAX_CONCURRENCY; 0: the default */
    void (*wake)(void *arg); /* called from the ai thread after completions were posted,
                                until ai_client_close returns; optional */
    void *wake_arg;
    ai_log_fn log; /* optional */
    void *log_arg;
};

/* Start the ai thread. cfg is borrowed for the call. Calls
 * curl_global_init() and sodium_init(), so open the client before other
 * threads use libcurl. Returns 0, -EINVAL (missing url, timeout_ms or
 * queue_cap; url not http(s)), -ENOMEM, or a negative errno when the thread
 * cannot start, with err filled (never with the key or URL). Loop thread,
 * at start-up. */
int ai_client_open(const struct ai_cfg *cfg, struct ai_client **out, struct ai_err *err);

/* Queue job for one attempt; ownership passes to the client on success.
 * Non-blocking: a full client returns AI_E_FULL, a closing one
 * AI_E_STOPPED, an invalid job (empty or unterminated id, no body, no done
 * callback, attempt < 1) -EINVAL; on error the caller keeps job and nothing
 * changed. Loop thread (any thread is safe). */
int ai_submit(struct ai_client *c, struct ai_job *job);

/* Run the done callbacks of every completed job, in completion order.
 * Loop thread. */
void ai_run_done(struct ai_client *c);

/* Jobs submitted and not yet handed back by ai_run_done: queued, running
 * or completed. Any thread. */
size_t ai_in_flight(const struct ai_client *c);

/* Stop: refuse new jobs, abort the transfers in flight, complete every
 * queued or running job with AI_CANCELLED / AI_E_CANCELLED, join the
 * thread, run all pending done callbacks on the calling thread, wipe the
 * key and free. NULL-safe. Loop thread. */
void ai_client_close(struct ai_client *c);

#endif
