/*
 * gwproc.h: run the real coach-gateway binary from a test, talk HTTP to it,
 * and start/stop private PostgreSQL servers through the ctest fixture
 * script. Test code only.
 */
#ifndef COACH_TEST_GWPROC_H
#define COACH_TEST_GWPROC_H

#include <stddef.h>
#include <sys/types.h>

#include <curl/curl.h>

struct gwproc {
    pid_t pid;
    int port;
    int tls;            /* set by gwproc_start when TLS_CERT is in env */
    char log_path[256]; /* the gateway's stderr */
};

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int gwproc_free_port(void);

/* Start the gateway (binary from COACH_GATEWAY_BIN) with the environment
 * of this process plus `env` ("NAME=value" strings, NULL-terminated; these
 * win) and LISTEN=127.0.0.1:<free port>, then wait (up to 20 s) until
 * /healthz answers. args: extra argv after the program name, NULL-terminated
 * (may be NULL). Returns 0, or -1 when it exited or never answered. */
int gwproc_start(struct gwproc *gp, const char *const env[], const char *const args[]);

/* Run the binary to completion (no server expected) and return its exit
 * status (or -1); its stderr is kept in gp->log_path. */
int gwproc_run(struct gwproc *gp, const char *const env[], const char *const args[]);

/* Send sig and wait (up to 20 s) for the exit status; SIGKILL after that.
 * Returns the exit code, 128+signal when killed by a signal, -1 on error. */
int gwproc_stop(struct gwproc *gp, int sig);

/* The gateway's log so far (malloc'd, NUL-terminated), or NULL. */
char *gwproc_log(const struct gwproc *gp);

/* GET http://127.0.0.1:port/path. Fills status and up to cap-1 bytes of the
 * body. Returns 0, or -1 when no HTTP answer came. */
int http_get(int port, const char *path, long *status, char *body, size_t cap);
/* The same over https (the certificate is not verified). */
int https_get(int port, const char *path, long *status, char *body, size_t cap);

/* A response body, NUL-terminated, cut at its capacity. */
struct http_body {
    char buf[8192];
    size_t len;
};

/* A libcurl write callback filling a struct http_body (arg). */
size_t http_body_write(char *data, size_t size, size_t nmemb, void *arg);

/* A request to http://127.0.0.1:port/path with method, an optional bearer
 * token, User-Agent and JSON body (Content-Type: application/json); the
 * response body goes to out. The caller performs it (alone or in a multi
 * handle), then frees it with curl_easy_cleanup and *hdrs with
 * curl_slist_free_all. */
CURL *http_handle(int port, const char *method, const char *path, const char *token, const char *ua,
                  const char *json, struct http_body *out, struct curl_slist **hdrs);

/* One such request performed: the status, 0 when no answer came. */
long http_request(int port, const char *method, const char *path, const char *token, const char *ua,
                  const char *json, struct http_body *out);

/* A private PostgreSQL server of the test's own (for outage tests): the
 * fixture script with a state dir under /tmp. */
struct pgserver {
    char state_dir[128];
    char conninfo[256]; /* dbname=postgres */
};
int pgserver_start(struct pgserver *pg); /* first call initialises state_dir */
int pgserver_stop(struct pgserver *pg);
int pgserver_destroy(struct pgserver *pg);

#endif
