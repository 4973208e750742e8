/*
 * fakeai.c: the fake chat completions server (see fakeai.h).
 *
 * DESIGN: an accept thread polls the listening socket and a stop pipe; each
 * accepted connection gets a thread from a fixed table of slots (finished
 * threads are joined when their slot is reused, and all at the end). A
 * connection thread reads one request, records it, takes the script's
 * next answer (or the default), waits out its delay and answers or hangs
 * up. Every blocking call is a poll() that also watches the stop pipe,
 * whose read end is never drained once written: stopping wakes every
 * thread for good.
 */
#include "fakeai.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

/* A copied script entry; strings owned. */
struct answer {
    int status;
    char *headers;
    char *body;
    size_t body_len;
    int delay_ms;
    int drop;
    int no_length;
    struct answer *next;
};

struct slot {
    pthread_t th;
    int fd;
    bool used; /* a thread was started and not joined yet */
    bool done; /* that thread finished */
    struct fakeai *fa;
};

struct fakeai {
    int lfd;
    int stop_pipe[2];
    int port;
    char url[64];
    pthread_t accept_th;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct answer *script_head, *script_tail; /* {mu} */
    size_t script_len;                        /* {mu} */
    struct answer dflt;                       /* {mu} */
    struct fakeai_request *reqs;              /* {mu}: FAKEAI_MAX_REQUESTS entries */
    size_t n_reqs, n_received;                /* {mu} */
    struct slot slots[FAKEAI_MAX_CONNS];      /* {mu} */
    size_t n_open;                            /* {mu}: connection threads running */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- answers ---------------------------------------------------------------- */

static void answer_fini(struct answer *a)
{
    free(a->headers);
    free(a->body);
    a->headers = a->body = NULL;
}

static int answer_copy(struct answer *a, const struct fakeai_response *r)
{
    memset(a, 0, sizeof(*a));
    a->status = r->status != 0 ? r->status : 200;
    a->delay_ms = r->delay_ms;
    a->drop = r->drop;
    a->no_length = r->no_length;
    a->body_len = r->body == NULL ? 0 : r->body_len != 0 ? r->body_len : strlen(r->body);
    a->headers = strdup(r->headers != NULL ? r->headers : "");
    a->body = malloc(a->body_len + 1);
    if (a->headers == NULL || a->body == NULL) {
        answer_fini(a);
        return -ENOMEM;
    }
    if (a->body_len > 0) {
        memcpy(a->body, r->body, a->body_len);
    }
    a->body[a->body_len] = '\0';
    return 0;
}

char *fakeai_completion_json(const char *content)
{
    json_t *root =
        json_pack("{s:s, s:s, s:s, s:[{s:i, s:{s:s, s:s}, s:s}]}", "id", "chatcmpl-fake", "object",
                  "chat.completion", "model", "fake-model", "choices", "index", 0, "message",
                  "role", "assistant", "content", content, "finish_reason", "stop");
    if (root == NULL) {
        return NULL;
    }
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}

int fakeai_push(struct fakeai *fa, const struct fakeai_response *r)
{
    struct answer *a = malloc(sizeof(*a));
    if (a == NULL || answer_copy(a, r) != 0) {
        free(a);
        return -ENOMEM;
    }
    pthread_mutex_lock(&fa->mu);
    if (fa->script_len >= FAKEAI_MAX_SCRIPT) {
        pthread_mutex_unlock(&fa->mu);
        answer_fini(a);
        free(a);
        return -ENOSPC;
    }
    if (fa->script_tail != NULL) {
        fa->script_tail->next = a;
    } else {
        fa->script_head = a;
    }
    fa->script_tail = a;
    fa->script_len++;
    pthread_mutex_unlock(&fa->mu);
    return 0;
}

int fakeai_push_summary(struct fakeai *fa, const char *content)
{
    char *body = fakeai_completion_json(content);
    if (body == NULL) {
        return -ENOMEM;
    }
    int rc = fakeai_push(fa, &(struct fakeai_response){.status = 200, .body = body});
    free(body);
    return rc;
}

int fakeai_set_default(struct fakeai *fa, const struct fakeai_response *r)
{
    struct answer a;
    if (answer_copy(&a, r) != 0) {
        return -ENOMEM;
    }
    pthread_mutex_lock(&fa->mu);
    answer_fini(&fa->dflt);
    fa->dflt = a;
    pthread_mutex_unlock(&fa->mu);
    return 0;
}

/* The next answer (a copy the caller finis), script first. */
static int next_answer(struct fakeai *fa, struct answer *out)
{
    pthread_mutex_lock(&fa->mu);
    struct answer *a = fa->script_head;
    if (a != NULL) {
        fa->script_head = a->next;
        if (fa->script_head == NULL) {
            fa->script_tail = NULL;
        }
        fa->script_len--;
        pthread_mutex_unlock(&fa->mu);
        *out = *a;
        free(a);
        return 0;
    }
    struct fakeai_response r = {.status = fa->dflt.status,
                                .headers = fa->dflt.headers,
                                .body = fa->dflt.body,
                                .body_len = fa->dflt.body_len,
                                .delay_ms = fa->dflt.delay_ms,
                                .drop = fa->dflt.drop,
                                .no_length = fa->dflt.no_length};
    int rc = answer_copy(out, &r);
    pthread_mutex_unlock(&fa->mu);
    return rc;
}

/* ---- requests ---------------------------------------------------------------- */

void fakeai_request_fini(struct fakeai_request *r)
{
    if (r == NULL) {
        return;
    }
    free(r->authorization);
    free(r->content_type);
    free(r->body);
    r->authorization = r->content_type = r->body = NULL;
}

static char *dup_opt(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static int request_copy(struct fakeai_request *dst, const struct fakeai_request *src)
{
    *dst = *src;
    dst->authorization = dup_opt(src->authorization);
    dst->content_type = dup_opt(src->content_type);
    dst->body = malloc(src->body_len + 1);
    if ((src->authorization != NULL && dst->authorization == NULL) ||
        (src->content_type != NULL && dst->content_type == NULL) || dst->body == NULL) {
        fakeai_request_fini(dst);
        return -ENOMEM;
    }
    memcpy(dst->body, src->body, src->body_len);
    dst->body[src->body_len] = '\0';
    return 0;
}

/* Record req (taking its strings) and wake the waiters. */
static void record(struct fakeai *fa, struct fakeai_request *req)
{
    pthread_mutex_lock(&fa->mu);
    fa->n_received++;
    if (fa->n_reqs < FAKEAI_MAX_REQUESTS) {
        fa->reqs[fa->n_reqs++] = *req;
        memset(req, 0, sizeof(*req));
    }
    pthread_cond_broadcast(&fa->cv);
    pthread_mutex_unlock(&fa->mu);
    fakeai_request_fini(req);
}

int fakeai_request_get(struct fakeai *fa, size_t i, struct fakeai_request *out)
{
    pthread_mutex_lock(&fa->mu);
    int rc = i < fa->n_reqs ? request_copy(out, &fa->reqs[i]) : -ERANGE;
    pthread_mutex_unlock(&fa->mu);
    return rc;
}

size_t fakeai_request_count(struct fakeai *fa)
{
    pthread_mutex_lock(&fa->mu);
    size_t n = fa->n_received;
    pthread_mutex_unlock(&fa->mu);
    return n;
}

size_t fakeai_script_len(struct fakeai *fa)
{
    pthread_mutex_lock(&fa->mu);
    size_t n = fa->script_len;
    pthread_mutex_unlock(&fa->mu);
    return n;
}

/* Wait (mu held) on cv until the monotonic deadline. false when it passed. */
static bool wait_until(struct fakeai *fa, int64_t deadline_ms)
{
    int64_t left = deadline_ms - mono_ms();
    if (left <= 0) {
        return false;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += left / 1000;
    ts.tv_nsec += (left % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&fa->cv, &fa->mu, &ts);
    return true;
}

int fakeai_wait_requests(struct fakeai *fa, size_t n, int timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;
    int rc = 0;
    pthread_mutex_lock(&fa->mu);
    while (fa->n_received < n) {
        if (!wait_until(fa, deadline)) {
            rc = -ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&fa->mu);
    return rc;
}

int fakeai_wait_idle(struct fakeai *fa, int timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;
    int rc = 0;
    pthread_mutex_lock(&fa->mu);
    while (fa->n_open > 0) {
        if (!wait_until(fa, deadline)) {
            rc = -ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&fa->mu);
    return rc;
}

/* ---- connection I/O ------------------------------------------------------------ */

/* Wait until fd is ready for events, the deadline passes (0), or the
 * server stops (-1). deadline_ms < 0: no deadline. */
static int wait_fd(struct fakeai *fa, int fd, short events, int64_t deadline_ms)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = fd, .events = events},
                              {.fd = fa->stop_pipe[0], .events = POLLIN}};
        int timeout = -1;
        if (deadline_ms >= 0) {
            int64_t left = deadline_ms - mono_ms();
            timeout = left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
        }
        int n = poll(p, 2, timeout);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 || p[1].revents != 0) {
            return -1;
        }
        return n == 0 ? 0 : 1;
    }
}

static int send_all(struct fakeai *fa, int fd, const char *p, size_t n)
{
    while (n > 0) {
        if (wait_fd(fa, fd, POLLOUT, -1) != 1) {
            return -1;
        }
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Receive into buf[len..cap) once. Returns bytes read, 0 on EOF, -1. */
static ssize_t recv_some(struct fakeai *fa, int fd, char *buf, size_t len, size_t cap)
{
    for (;;) {
        if (wait_fd(fa, fd, POLLIN, -1) != 1) {
            return -1;
        }
        ssize_t r = recv(fd, buf + len, cap - len, 0);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        return r;
    }
}

static const char *reason(int status)
{
    static const struct {
        int status;
        const char *text;
    } tab[] = {{200, "OK"},
               {400, "Bad Request"},
               {401, "Unauthorized"},
               {404, "Not Found"},
               {411, "Length Required"},
               {413, "Content Too Large"},
               {429, "Too Many Requests"},
               {431, "Request Header Fields Too Large"},
               {500, "Internal Server Error"},
               {502, "Bad Gateway"},
               {503, "Service Unavailable"}};
    for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
        if (tab[i].status == status) {
            return tab[i].text;
        }
    }
    return "Status";
}

static int send_answer(struct fakeai *fa, int fd, const struct answer *a)
{
    char head[FAKEAI_MAX_HEADER_BYTES];
    char len_line[64] = "";
    if (!a->no_length) {
        (void)snprintf(len_line, sizeof(len_line), "Content-Length: %zu\r\n", a->body_len);
    }
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n%s"
                     "Connection: close\r\n%s\r\n",
                     a->status, reason(a->status), len_line, a->headers);
    if (n < 0 || (size_t)n >= sizeof(head) || send_all(fa, fd, head, (size_t)n) != 0) {
        return -1;
    }
    return send_all(fa, fd, a->body, a->body_len);
}

static int send_status(struct fakeai *fa, int fd, int status)
{
    struct answer a = {.status = status, .headers = "", .body = "", .body_len = 0};
    return send_answer(fa, fd, &a);
}

/* ---- one connection ------------------------------------------------------------ */

/* The trimmed value of header `name` in head (the header block, lines
 * ending in CRLF, NUL-terminated), malloc'd; NULL when absent. */
static char *header_value(const char *head, const char *name)
{
    size_t nl = strlen(name);
    const char *p = strstr(head, "\r\n"); /* skip the request line */
    while (p != NULL) {
        p += 2;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ' || *v == '\t') {
                v++;
            }
            const char *e = strstr(v, "\r\n");
            size_t len = e != NULL ? (size_t)(e - v) : strlen(v);
            while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t')) {
                len--;
            }
            return strndup(v, len);
        }
        p = strstr(p, "\r\n");
    }
    return NULL;
}

/* Copy the first space-delimited word of *p into out (cap bytes) and move
 * *p past it and one space. -1 when missing or too long. */
static int take_word(const char **p, char *out, size_t cap)
{
    size_t n = strcspn(*p, " \r\n");
    if (n == 0 || n >= cap) {
        return -1;
    }
    memcpy(out, *p, n);
    out[n] = '\0';
    *p += n;
    if (**p == ' ') {
        (*p)++;
    }
    return 0;
}

/* The request's header block into buf (NUL-terminated after the last
 * header's CRLF). *head_len: bytes up to and including the blank line;
 * *len: bytes read in all (body bytes may follow). 0, or an HTTP status to
 * answer (400, 431), or -1 to hang up. */
static int read_head(struct fakeai *fa, int fd, char *buf, size_t *len, size_t *head_len)
{
    for (;;) {
        ssize_t r = recv_some(fa, fd, buf, *len, FAKEAI_MAX_HEADER_BYTES);
        if (r <= 0) {
            return -1;
        }
        *len += (size_t)r;
        buf[*len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end != NULL) {
            *head_len = (size_t)(end - buf) + 4;
            end[2] = '\0';
            return 0;
        }
        if (memchr(buf, '\0', *len) != NULL) {
            return 400;
        }
        if (*len == FAKEAI_MAX_HEADER_BYTES) {
            return 431;
        }
    }
}

/* The body: content_length bytes, `have` of them already in pre. */
static int read_body(struct fakeai *fa, int fd, struct fakeai_request *req, const char *pre,
                     size_t have, size_t content_length)
{
    req->body = malloc(content_length + 1);
    if (req->body == NULL) {
        return 500;
    }
    if (have > content_length) {
        have = content_length; /* pipelined bytes: ignored (one request per connection) */
    }
    memcpy(req->body, pre, have);
    while (have < content_length) {
        ssize_t r = recv_some(fa, fd, req->body, have, content_length);
        if (r <= 0) {
            return -1;
        }
        have += (size_t)r;
    }
    req->body[content_length] = '\0';
    req->body_len = content_length;
    return 0;
}

/* Read one request into req. 0, an HTTP status to answer, or -1. */
static int read_request(struct fakeai *fa, int fd, struct fakeai_request *req)
{
    char *buf = malloc(FAKEAI_MAX_HEADER_BYTES + 1);
    if (buf == NULL) {
        return -1;
    }
    size_t len = 0, head_len = 0;
    int rc = read_head(fa, fd, buf, &len, &head_len);
    const char *p = buf;
    if (rc == 0 && (take_word(&p, req->method, sizeof(req->method)) != 0 ||
                    take_word(&p, req->path, sizeof(req->path)) != 0)) {
        rc = 400;
    }
    char *te = rc == 0 ? header_value(buf, "Transfer-Encoding") : NULL;
    char *cl = rc == 0 ? header_value(buf, "Content-Length") : NULL;
    char *expect = rc == 0 ? header_value(buf, "Expect") : NULL;
    unsigned long long content_length = 0;
    if (rc == 0 && te != NULL) {
        rc = 411;
    } else if (rc == 0 && cl != NULL) {
        char *end = NULL;
        errno = 0;
        content_length = strtoull(cl, &end, 10);
        if (errno != 0 || end == cl || *end != '\0') {
            rc = 400;
        } else if (content_length > FAKEAI_MAX_BODY_BYTES) {
            rc = 413;
        }
    }
    if (rc == 0 && expect != NULL && strcasecmp(expect, "100-continue") == 0 &&
        len - head_len < content_length) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        rc = send_all(fa, fd, cont, sizeof(cont) - 1) == 0 ? 0 : -1;
    }
    if (rc == 0) {
        req->authorization = header_value(buf, "Authorization");
        req->content_type = header_value(buf, "Content-Type");
        rc = read_body(fa, fd, req, buf + head_len, len - head_len, (size_t)content_length);
    }
    free(te);
    free(cl);
    free(expect);
    free(buf);
    return rc;
}

/* Wait ms, watching for the client hanging up. true when the delay passed;
 * false when the client left or the server stops. */
static bool wait_delay(struct fakeai *fa, int fd, int ms)
{
    int64_t deadline = mono_ms() + ms;
    for (;;) {
        int r = wait_fd(fa, fd, POLLIN, deadline);
        if (r == 0) {
            return true;
        }
        if (r < 0) {
            return false;
        }
        char tmp[512];
        ssize_t n = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) {
            return false;
        }
    }
}

/* After answering: end our side, then wait (briefly) for the client to
 * close, so that the answer is never cut by a reset. */
static void linger_close(struct fakeai *fa, int fd)
{
    shutdown(fd, SHUT_WR);
    int64_t deadline = mono_ms() + 2000;
    while (wait_fd(fa, fd, POLLIN, deadline) == 1) {
        char tmp[512];
        ssize_t n = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) {
            break;
        }
    }
}

static void serve(struct fakeai *fa, int fd)
{
    struct fakeai_request req;
    memset(&req, 0, sizeof(req));
    int rc = read_request(fa, fd, &req);
    if (rc != 0) {
        fakeai_request_fini(&req);
        if (rc > 0 && send_status(fa, fd, rc) == 0) {
            linger_close(fa, fd);
        }
        return;
    }
    record(fa, &req);
    struct answer a;
    if (next_answer(fa, &a) != 0) {
        return;
    }
    if ((a.delay_ms <= 0 || wait_delay(fa, fd, a.delay_ms)) && !a.drop &&
        send_answer(fa, fd, &a) == 0) {
        linger_close(fa, fd);
    }
    answer_fini(&a);
}

static void *conn_main(void *arg)
{
    struct slot *s = arg;
    struct fakeai *fa = s->fa;
    serve(fa, s->fd);
    close(s->fd);
    pthread_mutex_lock(&fa->mu);
    s->done = true;
    fa->n_open--;
    pthread_cond_broadcast(&fa->cv);
    pthread_mutex_unlock(&fa->mu);
    return NULL;
}

/* ---- server ------------------------------------------------------------------- */

/* Give fd a thread in a free slot (joining a finished one), or close it. */
static void start_conn(struct fakeai *fa, int fd)
{
    pthread_mutex_lock(&fa->mu);
    struct slot *s = NULL;
    for (size_t i = 0; i < FAKEAI_MAX_CONNS && s == NULL; i++) {
        if (fa->slots[i].used && fa->slots[i].done) {
            pthread_join(fa->slots[i].th, NULL); /* finished: returns at once */
            fa->slots[i].used = false;
        }
        if (!fa->slots[i].used) {
            s = &fa->slots[i];
        }
    }
    if (s != NULL) {
        *s = (struct slot){.fd = fd, .used = true, .done = false, .fa = fa};
        fa->n_open++;
        if (pthread_create(&s->th, NULL, conn_main, s) != 0) {
            s->used = false;
            fa->n_open--;
            s = NULL;
        }
    }
    pthread_mutex_unlock(&fa->mu);
    if (s == NULL) {
        close(fd);
    }
}

static void *accept_main(void *arg)
{
    struct fakeai *fa = arg;
    while (wait_fd(fa, fa->lfd, POLLIN, -1) == 1) {
        int fd = accept(fa->lfd, NULL, NULL);
        if (fd >= 0) {
            fcntl(fd, F_SETFD, FD_CLOEXEC); /* tests fork the gateway */
            start_conn(fa, fd);
        }
    }
    return NULL;
}

static int listen_local(int *fd_out, int *port_out)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    int one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(sa);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 128) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    *fd_out = fd;
    *port_out = ntohs(sa.sin_port);
    return 0;
}

static int set_initial_default(struct fakeai *fa)
{
    char *body = fakeai_completion_json(FAKEAI_DEFAULT_SUMMARY);
    if (body == NULL) {
        return -ENOMEM;
    }
    int rc = answer_copy(&fa->dflt, &(struct fakeai_response){.status = 200, .body = body});
    free(body);
    return rc;
}

/* Free what fakeai_start set up (no thread running any more). */
static void destroy(struct fakeai *fa)
{
    const int fds[] = {fa->lfd, fa->stop_pipe[0], fa->stop_pipe[1]};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
    while (fa->script_head != NULL) {
        struct answer *next = fa->script_head->next;
        answer_fini(fa->script_head);
        free(fa->script_head);
        fa->script_head = next;
    }
    answer_fini(&fa->dflt);
    for (size_t i = 0; fa->reqs != NULL && i < fa->n_reqs; i++) {
        fakeai_request_fini(&fa->reqs[i]);
    }
    free(fa->reqs);
    pthread_cond_destroy(&fa->cv);
    pthread_mutex_destroy(&fa->mu);
    free(fa);
}

static int make_stop_pipe(int p[2])
{
    if (pipe(p) != 0) {
        p[0] = p[1] = -1;
        return -errno;
    }
    fcntl(p[0], F_SETFD, FD_CLOEXEC);
    fcntl(p[1], F_SETFD, FD_CLOEXEC);
    return 0;
}

int fakeai_start(struct fakeai **out)
{
    struct fakeai *fa = calloc(1, sizeof(*fa));
    if (fa == NULL) {
        return -ENOMEM;
    }
    fa->lfd = fa->stop_pipe[0] = fa->stop_pipe[1] = -1;
    pthread_mutex_init(&fa->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&fa->cv, &ca);
    pthread_condattr_destroy(&ca);
    fa->reqs = calloc(FAKEAI_MAX_REQUESTS, sizeof(*fa->reqs));
    int rc = fa->reqs == NULL ? -ENOMEM : set_initial_default(fa);
    if (rc == 0) {
        rc = listen_local(&fa->lfd, &fa->port);
    }
    if (rc == 0) {
        rc = make_stop_pipe(fa->stop_pipe);
    }
    if (rc == 0) {
        (void)snprintf(fa->url, sizeof(fa->url), "http://127.0.0.1:%d%s", fa->port, FAKEAI_PATH);
        rc = -pthread_create(&fa->accept_th, NULL, accept_main, fa);
    }
    if (rc != 0) {
        destroy(fa);
        return rc;
    }
    *out = fa;
    return 0;
}

void fakeai_free(struct fakeai *fa)
{
    if (fa == NULL) {
        return;
    }
    ssize_t w;
    do {
        w = write(fa->stop_pipe[1], "x", 1);
    } while (w < 0 && errno == EINTR);
    pthread_join(fa->accept_th, NULL);
    for (size_t i = 0; i < FAKEAI_MAX_CONNS; i++) {
        if (fa->slots[i].used) {
            pthread_join(fa->slots[i].th, NULL);
        }
    }
    destroy(fa);
}

int fakeai_port(const struct fakeai *fa)
{
    return fa->port;
}

const char *fakeai_url(const struct fakeai *fa)
{
    return fa->url;
}
