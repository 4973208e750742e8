/*
 * fakeai.h: a fake OpenAI-compatible chat completions server for the
 * tests: a real HTTP/1.1 server on 127.0.0.1 (a free port), answering each
 * request with the next response of a script (status, extra headers such
 * as Retry-After, body, a delay, or dropping the connection), and
 * recording every request (method, path, Authorization, Content-Type,
 * body) for assertions. Test code only.
 *
 * Protocol: one request per connection (every answer says
 * "Connection: close"); the request body must come with Content-Length
 * (chunked uploads get 411); "Expect: 100-continue" is honoured. Any method
 * and path are accepted and recorded: the script decides the answer.
 *
 * Threads: one accept thread plus one thread per open connection (at most
 * FAKEAI_MAX_CONNS at once; more are closed unanswered). Every function is
 * safe to call from any thread. Delays wait on poll() and end early when
 * the client hangs up or the server stops, so fakeai_free() never waits
 * for a script's delay. Nothing here sleeps to synchronise: the wait
 * functions block on a condition with a deadline.
 *
 * Errors: int functions return 0 or a negative errno value (-ENOMEM,
 * -ENOSPC, -ETIMEDOUT, -ERANGE...). Nothing here exits or aborts.
 */
#ifndef COACH_TEST_FAKEAI_H
#define COACH_TEST_FAKEAI_H

#include <stddef.h>

#define FAKEAI_MAX_CONNS        64                         /* open connections at once */
#define FAKEAI_MAX_SCRIPT       1024                       /* responses waiting in the script */
#define FAKEAI_MAX_REQUESTS     1024                       /* requests recorded (all counted) */
#define FAKEAI_MAX_HEADER_BYTES ((size_t)64 * 1024)        /* request line + headers */
#define FAKEAI_MAX_BODY_BYTES   ((size_t)16 * 1024 * 1024) /* larger requests get 413 */
#define FAKEAI_PATH             "/v1/chat/completions"     /* the path fakeai_url() names */
#define FAKEAI_DEFAULT_SUMMARY  "Fake summary."            /* content of the default answer */

struct fakeai;

/* One scripted answer. Strings are copied by fakeai_push()/
 * fakeai_set_default(); zero fields take the defaults. */
struct fakeai_response {
    int status;          /* HTTP status; 0 means 200 */
    const char *headers; /* extra header lines, each "Name: value\r\n"; NULL: none */
    const char *body;    /* NULL: empty */
    size_t body_len;     /* 0: strlen(body) */
    int delay_ms;        /* wait this long after reading the request, then answer */
    int drop;            /* 1: after delay_ms, close the connection without answering */
    int no_length;       /* 1: send no Content-Length; the body ends when the connection
                            closes (tests a client's size limit without early warning) */
};

/* One recorded request. Strings are NUL-terminated and owned by the
 * struct; free them with fakeai_request_fini(). */
struct fakeai_request {
    char method[16];
    char path[256];
    char *authorization; /* the Authorization header's value, or NULL when absent */
    char *content_type;  /* the Content-Type header's value, or NULL when absent */
    char *body;          /* the request body (NUL-terminated; "" when none) */
    size_t body_len;
};

/* Start a server on 127.0.0.1 with a free port, an empty script and the
 * default answer (200, a chat completion whose content is
 * FAKEAI_DEFAULT_SUMMARY). Returns 0 and *out, or a negative errno. */
int fakeai_start(struct fakeai **out);

/* Stop accepting, close every connection (ending any delay), join all
 * threads and free everything. NULL-safe. */
void fakeai_free(struct fakeai *fa);

/* The listening port. */
int fakeai_port(const struct fakeai *fa);

/* "http://127.0.0.1:<port>/v1/chat/completions"; valid until fakeai_free. */
const char *fakeai_url(const struct fakeai *fa);

/* Append r to the script: the next request that finds the script
 * otherwise empty gets it. Returns 0, -ENOSPC (FAKEAI_MAX_SCRIPT waiting)
 * or -ENOMEM. */
int fakeai_push(struct fakeai *fa, const struct fakeai_response *r);

/* fakeai_push() of a 200 whose body is fakeai_completion_json(content). */
int fakeai_push_summary(struct fakeai *fa, const char *content);

/* The answer used while the script is empty (copied). Returns 0 or
 * -ENOMEM (the previous default stays). */
int fakeai_set_default(struct fakeai *fa, const struct fakeai_response *r);

/* Requests received so far (also those beyond FAKEAI_MAX_REQUESTS). */
size_t fakeai_request_count(struct fakeai *fa);

/* Responses still waiting in the script. */
size_t fakeai_script_len(struct fakeai *fa);

/* Block until at least n requests were received (recorded before they are
 * answered). Returns 0 or -ETIMEDOUT after timeout_ms. */
int fakeai_wait_requests(struct fakeai *fa, size_t n, int timeout_ms);

/* Block until no connection is open (every client hung up or was
 * answered). Returns 0 or -ETIMEDOUT after timeout_ms. */
int fakeai_wait_idle(struct fakeai *fa, int timeout_ms);

/* A deep copy of request i (0-based, in arrival order) into *out. Returns
 * 0, -ERANGE when there is no such recorded request, or -ENOMEM. */
int fakeai_request_get(struct fakeai *fa, size_t i, struct fakeai_request *out);

/* Free the strings of a request filled by fakeai_request_get. NULL-safe. */
void fakeai_request_fini(struct fakeai_request *r);

/* A chat completions response body (malloc'd, NUL-terminated) whose
 * choices[0].message.content is content, or NULL when out of memory. */
char *fakeai_completion_json(const char *content);

#endif
