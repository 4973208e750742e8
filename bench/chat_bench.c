/*
 * chat_bench.c: the durable-chat benchmark client. For each room of a
 * fixture file it opens two WebSocket connections (the coach's and the
 * client's), authenticates each with a hello token, joins, and then sends
 * chats on a schedule for a fixed time: every connection at a steady rate
 * (--rate, default 9.5/s, under the gateway's 10/s limit), or, with
 * --burst, as fast as the per-connection limit allows (20 at once, then
 * 10/s). It measures acked messages per second, the ack latency (send to
 * `ack`) and the delivery latency (send to the peer's `message`), counts
 * error frames by code, and verifies that every acked message reached both
 * members exactly once, with the seq of its ack, and that each connection
 * saw its room's seqs in order without gaps. It also reports the ack
 * latency per 5 s of the window (to show drift), and, given their pids, the
 * CPU the gateway and PostgreSQL used during the window, next to its own
 * and the whole machine's (the three share the machine).
 *
 * One thread per connection, each with its own blocking wsclient
 * connection (tests/support/wsclient.h); threads share nothing while they
 * run: each keeps its own arrays, which the main thread reads after
 * joining them. Latencies use CLOCK_MONOTONIC; the send time also travels
 * in the chat's text so the peer can compute the delivery latency.
 *
 * Fixture file: one room per line, three tab-separated fields:
 * room id, the coach's session token, the client's session token.
 *
 * Output: a human summary, then one "RESULT key=value ..." line for
 * scripts (bench/chat.sh). Exit status: 0 when every check passed, 1 when
 * the verification failed or any error frame came, 2 on bad usage or when
 * the connections could not be set up. Loopback only (127.0.0.1).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "wsclient.h"

#define MAX_ROOMS          1000
#define MAX_DURATION_S     600.0
#define MAX_ID_LEN         128
#define CHAT_BURST         20      /* the gateway's per-connection chat bucket */
#define CHAT_PER_SEC       10      /* and its refill rate */
#define BURST_MARGIN_NS    2000000 /* 2 ms: the gateway counts whole milliseconds */
#define SETUP_TIMEOUT_MS   20000
#define DRAIN_TIMEOUT_NS   10000000000LL /* waiting for the last acks */
#define QUIET_MS           1000          /* no frame for this long: the room is settled */
#define QUIET_CAP_NS       10000000000LL
#define THREAD_STACK_BYTES ((size_t)512 * 1024)
#define NS_PER_MS          1000000LL
#define NS_PER_S           1000000000LL

static const char *const error_codes[] = {
    "bad_request", "unauthorized", "forbidden", "not_found",   "not_open", "closed",
    "conflict",    "rate_limited", "too_large", "unavailable", "internal",
};
#define N_CODES (sizeof(error_codes) / sizeof(error_codes[0]))

struct opts {
    int port;
    const char *fixture;
    double duration_s;
    double rate;
    int burst;
    int max_rooms;
    int text_bytes;
    char tag[17];
    long gateway_pid;  /* 0: not watched */
    long postgres_pid; /* the postmaster; its children are watched with it */
};

/* One connection: its identity, its schedule's outcome and everything it
 * observed. Written only by its own thread until that thread is joined. */
struct conn {
    int idx;  /* 2 * room + role */
    int peer; /* the other member's idx */
    int role; /* 0 coach, 1 client */
    const char *room_id;
    const char *token;
    struct wsc *ws;

    size_t cap;            /* most chats this connection may send */
    size_t sent;           /* chats sent: n = 0 .. sent-1 */
    size_t resolved;       /* sent chats that got an ack or an error */
    int64_t *send_ns;      /* [cap] when chat n was sent */
    unsigned char *acked;  /* [cap] acks received for chat n */
    unsigned char *erred;  /* [cap] errors received for chat n */
    long long *ack_seq;    /* [cap] the seq its ack gave */
    unsigned char *self_n; /* [cap] deliveries of my chat n to me */
    long long *self_seq;   /* [cap] the seq of that delivery */
    unsigned char *peer_n; /* [cap] deliveries of the peer's chat n to me */
    long long *peer_seq;   /* [cap] the seq of that delivery */
    int64_t *ack_lat;      /* [cap] ack latencies, n_ack of them */
    int64_t *lat_of;       /* [cap] the ack latency of chat n (when acked) */
    size_t n_ack;
    int64_t *dlv_lat; /* [cap] delivery latencies of the peer's chats */
    size_t n_dlv;

    long long next_seq; /* the seq expected next, from joined.lastSeq */
    long seq_errors;    /* messages whose seq was not next_seq */
    long strange;       /* unparsable frames, foreign or out-of-range ids, extra acks */
    long errors[N_CODES + 1];
    int64_t first_send_ns, last_ack_ns;
    int64_t late_max_ns; /* the most a send lagged its schedule */
    int64_t burst_done_ns;
    int failed;
    char why[200];
};

static struct opts g_opt = {
    .duration_s = 20.0, .rate = 9.5, .max_rooms = MAX_ROOMS, .text_bytes = 64};
static struct conn *g_conns;
static int g_nconns;
static pthread_barrier_t g_ready, g_go, g_drained;
static int64_t g_start_ns;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void conn_fail(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void conn_fail(struct conn *c, const char *fmt, ...)
{
    if (c->failed) {
        return;
    }
    c->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(c->why, sizeof(c->why), fmt, ap);
    va_end(ap);
}

/* ---- parsing ------------------------------------------------------------------------------- */

/* Parse a base-10 long in [lo, hi] that fills s entirely. */
static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) {
        return -1;
    }
    *out = v;
    return 0;
}

/* clientMsgId: "<tag>_<conn idx>_<n>". Returns 0 and sets *idx, *n when cmid
 * is one of this run's. */
static int parse_cmid(const char *cmid, int *idx, size_t *n)
{
    size_t tl = strlen(g_opt.tag);
    if (cmid == NULL || strncmp(cmid, g_opt.tag, tl) != 0 || cmid[tl] != '_') {
        return -1;
    }
    char *end = NULL;
    errno = 0;
    long i = strtol(cmid + tl + 1, &end, 10);
    if (errno != 0 || *end != '_' || i < 0 || i >= g_nconns) {
        return -1;
    }
    const char *ns = end + 1;
    errno = 0;
    long long v = strtoll(ns, &end, 10);
    if (errno != 0 || end == ns || *end != '\0' || v < 0) {
        return -1;
    }
    *idx = (int)i;
    *n = (size_t)v;
    return 0;
}

/* The send time carried in a chat's text ("bench t=<ns> ..."), or -1. */
static int64_t text_send_ns(const char *text)
{
    if (text == NULL || strncmp(text, "bench t=", 8) != 0) {
        return -1;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text + 8, &end, 10);
    if (errno != 0 || end == text + 8 || *end != ' ') {
        return -1;
    }
    return (int64_t)v;
}

static size_t code_index(const char *code)
{
    for (size_t i = 0; i < N_CODES; i++) {
        if (code != NULL && strcmp(code, error_codes[i]) == 0) {
            return i;
        }
    }
    return N_CODES; /* other */
}

/* ---- one connection ------------------------------------------------------------------------ */

static void on_ack(struct conn *c, json_t *j, int64_t now)
{
    int idx;
    size_t n;
    const char *cmid = json_string_value(json_object_get(j, "clientMsgId"));
    if (parse_cmid(cmid, &idx, &n) != 0 || idx != c->idx || n >= c->sent) {
        c->strange++;
        return;
    }
    if (c->acked[n] < UCHAR_MAX) {
        c->acked[n]++;
    }
    if (c->acked[n] > 1 || c->erred[n] > 0) {
        c->strange++; /* a second answer for one chat */
        return;
    }
    c->ack_seq[n] = (long long)json_integer_value(json_object_get(j, "seq"));
    c->ack_lat[c->n_ack++] = now - c->send_ns[n];
    c->lat_of[n] = now - c->send_ns[n];
    c->resolved++;
    c->last_ack_ns = now;
}

static void on_message(struct conn *c, json_t *j, int64_t now)
{
    long long seq = (long long)json_integer_value(json_object_get(j, "seq"));
    if (seq != c->next_seq) {
        c->seq_errors++;
    }
    c->next_seq = seq + 1;
    int idx;
    size_t n;
    const char *cmid = json_string_value(json_object_get(j, "clientMsgId"));
    if (parse_cmid(cmid, &idx, &n) != 0 || n >= c->cap || (idx != c->idx && idx != c->peer)) {
        c->strange++;
        return;
    }
    if (idx == c->idx) {
        if (c->self_n[n] < UCHAR_MAX) {
            c->self_n[n]++;
        }
        c->self_seq[n] = seq;
        return;
    }
    if (c->peer_n[n] < UCHAR_MAX) {
        c->peer_n[n]++;
    }
    c->peer_seq[n] = seq;
    int64_t sent = text_send_ns(json_string_value(json_object_get(j, "text")));
    if (sent < 0) {
        c->strange++;
    } else if (c->peer_n[n] == 1 && c->n_dlv < c->cap) {
        c->dlv_lat[c->n_dlv++] = now - sent;
    }
}

static void on_error(struct conn *c, json_t *j)
{
    c->errors[code_index(json_string_value(json_object_get(j, "code")))]++;
    int idx;
    size_t n;
    const char *cmid = json_string_value(json_object_get(j, "clientMsgId"));
    if (parse_cmid(cmid, &idx, &n) != 0 || idx != c->idx || n >= c->sent) {
        return; /* counted by its code: not about one of this connection's chats */
    }
    if (c->erred[n] != 0 || c->acked[n] != 0) {
        c->strange++; /* a second answer for one chat */
    } else {
        c->resolved++;
    }
    if (c->erred[n] < UCHAR_MAX) {
        c->erred[n]++;
    }
}

static void on_frame(struct conn *c, const char *text, int64_t now)
{
    json_t *j = json_loads(text, 0, NULL);
    const char *type = json_string_value(json_object_get(j, "type"));
    if (type == NULL) {
        c->strange++;
    } else if (strcmp(type, "ack") == 0) {
        on_ack(c, j, now);
    } else if (strcmp(type, "message") == 0) {
        on_message(c, j, now);
    } else if (strcmp(type, "error") == 0) {
        on_error(c, j);
    }
    json_decref(j);
}

/* Read and handle at most one frame, waiting up to timeout_ms. Returns 1
 * when a frame was handled, 0 on timeout, -1 when the connection is gone. */
static int recv_one(struct conn *c, int timeout_ms)
{
    char *text = wsc_recv(c->ws, timeout_ms < 0 ? 0 : timeout_ms, NULL);
    int64_t now = mono_ns();
    if (text == NULL) {
        int code = wsc_close_code(c->ws);
        if (code != 0) {
            conn_fail(c, "connection closed (code %d): %s", code, wsc_last_error(c->ws));
            return -1;
        }
        return 0;
    }
    on_frame(c, text, now);
    free(text);
    return 1;
}

static int ms_until(int64_t deadline_ns)
{
    int64_t d = deadline_ns - mono_ns();
    if (d <= 0) {
        return 0;
    }
    return (int)((d + NS_PER_MS - 1) / NS_PER_MS);
}

static void send_chat(struct conn *c, int64_t due_ns)
{
    size_t n = c->sent;
    char text[512];
    int64_t now = mono_ns();
    int len = snprintf(text, sizeof(text), "bench t=%" PRId64 " from=%d n=%zu ", now, c->idx, n);
    if (len < 0 || (size_t)len >= sizeof(text)) {
        conn_fail(c, "chat text does not fit");
        return;
    }
    size_t want = (size_t)g_opt.text_bytes;
    for (size_t i = (size_t)len; i < want && i + 1 < sizeof(text); i++) {
        text[i] = 'x';
        text[i + 1] = '\0';
    }
    c->send_ns[n] = now;
    c->sent++;
    if (n == 0) {
        c->first_send_ns = now;
    }
    if (now - due_ns > c->late_max_ns) {
        c->late_max_ns = now - due_ns;
    }
    int rc = wsc_send_json(c->ws,
                           "{\"type\":\"chat\",\"room\":\"%s\",\"clientMsgId\":\"%s_%d_%zu\","
                           "\"text\":\"%s\"}",
                           c->room_id, g_opt.tag, c->idx, n, text);
    if (rc != 0) {
        conn_fail(c, "send failed (%d): %s", rc, wsc_last_error(c->ws));
    }
}

/* When chat n is due, or INT64_MAX while not yet known. */
static int64_t due_ns(const struct conn *c, size_t n)
{
    if (!g_opt.burst) {
        int64_t interval = (int64_t)((double)NS_PER_S / g_opt.rate);
        int64_t phase = interval * c->idx / g_nconns; /* spread the connections */
        return g_start_ns + phase + (int64_t)n * interval;
    }
    if (n < CHAT_BURST) {
        return g_start_ns;
    }
    if (c->burst_done_ns == 0) {
        return INT64_MAX;
    }
    /* After the burst the bucket is empty once its last chat is processed,
     * which happened before its answer came: one chat per refill from then
     * never finds it empty. */
    return c->burst_done_ns + BURST_MARGIN_NS +
           (int64_t)(n - CHAT_BURST + 1) * (NS_PER_S / CHAT_PER_SEC);
}

static void conn_setup(struct conn *c)
{
    char err[160] = "";
    struct wsc_opts o = {.host = "127.0.0.1",
                         .port = g_opt.port,
                         .timeout_ms = SETUP_TIMEOUT_MS,
                         .errbuf = err,
                         .errbuf_len = sizeof(err)};
    int status = 0;
    c->ws = wsc_connect(&o, &status);
    if (c->ws == NULL) {
        conn_fail(c, "connect failed (HTTP %d): %s", status, err);
        return;
    }
    if (wsc_send_json(c->ws, "{\"type\":\"hello\",\"token\":\"%s\"}", c->token) != 0) {
        conn_fail(c, "hello not sent: %s", wsc_last_error(c->ws));
        return;
    }
    json_t *w = wsc_expect(c->ws, "welcome", SETUP_TIMEOUT_MS);
    if (w == NULL) {
        conn_fail(c, "no welcome: %s", wsc_last_error(c->ws));
        return;
    }
    json_decref(w);
    if (wsc_send_json(c->ws, "{\"type\":\"join\",\"room\":\"%s\"}", c->room_id) != 0) {
        conn_fail(c, "join not sent: %s", wsc_last_error(c->ws));
        return;
    }
    json_t *j = wsc_expect(c->ws, "joined", SETUP_TIMEOUT_MS);
    if (j == NULL) {
        conn_fail(c, "no joined for %s: %s", c->room_id, wsc_last_error(c->ws));
        return;
    }
    c->next_seq = (long long)json_integer_value(json_object_get(j, "lastSeq")) + 1;
    json_decref(j);
}

static void conn_run(struct conn *c)
{
    int64_t end = g_start_ns + (int64_t)(g_opt.duration_s * (double)NS_PER_S);
    while (!c->failed) {
        int64_t now = mono_ns();
        if (now >= end) {
            break;
        }
        if (g_opt.burst && c->burst_done_ns == 0 && c->sent == CHAT_BURST &&
            c->resolved == CHAT_BURST) {
            c->burst_done_ns = now;
        }
        int64_t due = c->sent < c->cap ? due_ns(c, c->sent) : INT64_MAX;
        if (now >= due) {
            send_chat(c, due);
            continue;
        }
        recv_one(c, ms_until(due < end ? due : end));
    }
}

/* Wait for the answers to every chat sent. */
static void conn_drain(struct conn *c)
{
    int64_t deadline = mono_ns() + DRAIN_TIMEOUT_NS;
    while (!c->failed && c->resolved < c->sent && mono_ns() < deadline) {
        recv_one(c, ms_until(deadline));
    }
}

/* Every member has all its answers, so every delivery is on its way: read
 * until the connection stays silent. */
static void conn_quiet(struct conn *c)
{
    int64_t cap = mono_ns() + QUIET_CAP_NS;
    while (!c->failed && mono_ns() < cap) {
        if (recv_one(c, QUIET_MS) == 0) {
            break;
        }
    }
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    conn_setup(c);
    pthread_barrier_wait(&g_ready);
    pthread_barrier_wait(&g_go);
    if (!c->failed) {
        conn_run(c);
        conn_drain(c);
    }
    pthread_barrier_wait(&g_drained);
    if (!c->failed) {
        conn_quiet(c);
    }
    if (c->ws != NULL) {
        wsc_close(c->ws, 1000);
        c->ws = NULL;
    }
    return NULL;
}

/* ---- fixture, options ---------------------------------------------------------------------- */

static int safe_field(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_ID_LEN) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '-' || ch == '_' || ch == '.';
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p != NULL) {
        memcpy(p, s, n);
    }
    return p;
}

/* Read up to max_rooms lines "room\tcoach_token\tclient_token" into
 * rooms[i][0..2]. Returns the number of rooms, or -1 (reported). */
static int read_fixture(const char *path, char *(*rooms)[3], int max_rooms)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "chat_bench: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[3 * MAX_ID_LEN + 16];
    int n = 0, lineno = 0;
    while (n < max_rooms && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0' || line[0] == '#') {
            continue;
        }
        char *t1 = strchr(line, '\t');
        char *t2 = t1 != NULL ? strchr(t1 + 1, '\t') : NULL;
        if (t2 == NULL || strchr(t2 + 1, '\t') != NULL) {
            fprintf(stderr, "chat_bench: %s:%d: want room<TAB>coach token<TAB>client token\n", path,
                    lineno);
            fclose(f);
            return -1;
        }
        *t1 = '\0';
        *t2 = '\0';
        const char *fields[3] = {line, t1 + 1, t2 + 1};
        for (int k = 0; k < 3; k++) {
            if (!safe_field(fields[k])) {
                fprintf(stderr, "chat_bench: %s:%d: field %d must be 1..%d of [A-Za-z0-9._-]\n",
                        path, lineno, k + 1, MAX_ID_LEN);
                fclose(f);
                return -1;
            }
            rooms[n][k] = dup_str(fields[k]);
            if (rooms[n][k] == NULL) {
                fclose(f);
                return -1;
            }
        }
        n++;
    }
    fclose(f);
    if (n == 0) {
        fprintf(stderr, "chat_bench: %s holds no room\n", path);
        return -1;
    }
    return n;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: chat_bench --port PORT --fixture FILE [--duration SEC] [--rate PER_SEC]\n"
            "                  [--burst] [--rooms N] [--text-bytes N] [--tag TAG]\n"
            "                  [--gateway-pid PID] [--postgres-pid PID]\n"
            "  --port PORT       the gateway on 127.0.0.1\n"
            "  --fixture FILE    lines: room<TAB>coach token<TAB>client token\n"
            "  --duration SEC    sending time, 1..%.0f (default 20)\n"
            "  --rate PER_SEC    chats a second per connection, 0.1..%d (default 9.5)\n"
            "  --burst           send as fast as the limit allows: %d at once, then %d/s\n"
            "  --rooms N         use the first N rooms of the fixture (default all, at most %d)\n"
            "  --text-bytes N    chat text length, 48..400 (default 64)\n"
            "  --tag TAG         clientMsgId prefix, 1..16 of [A-Za-z0-9] (default: random)\n"
            "  --gateway-pid PID, --postgres-pid PID (the postmaster, with its children):\n"
            "                    report their CPU use over the sending window\n",
            MAX_DURATION_S, CHAT_PER_SEC, CHAT_BURST, CHAT_PER_SEC, MAX_ROOMS);
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long l = 0;
        if (strcmp(a, "--burst") == 0) {
            g_opt.burst = 1;
            continue;
        }
        if (v == NULL) {
            usage();
        }
        i++;
        if (strcmp(a, "--port") == 0 && parse_long(v, 1, 65535, &l) == 0) {
            g_opt.port = (int)l;
        } else if (strcmp(a, "--fixture") == 0) {
            g_opt.fixture = v;
        } else if (strcmp(a, "--duration") == 0 &&
                   parse_double(v, 1.0, MAX_DURATION_S, &g_opt.duration_s) == 0) {
        } else if (strcmp(a, "--rate") == 0 &&
                   parse_double(v, 0.1, CHAT_PER_SEC, &g_opt.rate) == 0) {
        } else if (strcmp(a, "--rooms") == 0 && parse_long(v, 1, MAX_ROOMS, &l) == 0) {
            g_opt.max_rooms = (int)l;
        } else if (strcmp(a, "--gateway-pid") == 0 &&
                   parse_long(v, 1, LONG_MAX, &g_opt.gateway_pid) == 0) {
        } else if (strcmp(a, "--postgres-pid") == 0 &&
                   parse_long(v, 1, LONG_MAX, &g_opt.postgres_pid) == 0) {
        } else if (strcmp(a, "--text-bytes") == 0 && parse_long(v, 48, 400, &l) == 0) {
            g_opt.text_bytes = (int)l;
        } else if (strcmp(a, "--tag") == 0 && strlen(v) >= 1 && strlen(v) < sizeof(g_opt.tag) &&
                   strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") ==
                       strlen(v)) {
            memcpy(g_opt.tag, v, strlen(v) + 1);
        } else {
            fprintf(stderr, "chat_bench: bad option or value: %s %s\n", a, v);
            usage();
        }
    }
    if (g_opt.port == 0 || g_opt.fixture == NULL) {
        usage();
    }
    if (g_opt.tag[0] == '\0') {
        uint32_t r = randombytes_random();
        (void)snprintf(g_opt.tag, sizeof(g_opt.tag), "b%08" PRIx32, r);
    }
}

/* This process's CPU time, all threads, in seconds. */
static double cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) {
        return 0.0;
    }
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- CPU of the processes under test, over the sending window --------------------------- */

#define CPU_MAX_PIDS 256

struct cpu_set {
    long pids[CPU_MAX_PIDS];
    int n;
    long long ticks0;
};

/* Fields of /proc/PID/stat after the command: state is index 0, the parent
 * index 1, utime index 11, stime index 12. Returns 0 and fills *ppid and
 * *ticks (utime + stime), or -1 when the process is gone. */
static int proc_stat(long pid, long *ppid, long long *ticks)
{
    char path[64], buf[1024];
    (void)snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    size_t len = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[len] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL) {
        return -1;
    }
    p++;
    long long field[13];
    for (int i = 0; i < 13; i++) {
        while (*p == ' ') {
            p++;
        }
        if (i == 0) { /* the state: one letter */
            field[0] = 0;
            p++;
            continue;
        }
        char *end = NULL;
        errno = 0;
        field[i] = strtoll(p, &end, 10);
        if (errno != 0 || end == p) {
            return -1;
        }
        p = end;
    }
    *ppid = (long)field[1];
    *ticks = field[11] + field[12];
    return 0;
}

static long long cpu_ticks(const struct cpu_set *cs)
{
    long long sum = 0;
    for (int i = 0; i < cs->n; i++) {
        long ppid;
        long long t;
        if (proc_stat(cs->pids[i], &ppid, &t) == 0) {
            sum += t;
        }
    }
    return sum;
}

/* pid, and with children set its children (one level: PostgreSQL's
 * backends and auxiliary processes are the postmaster's children). */
static void cpu_watch(struct cpu_set *cs, long pid, int children)
{
    cs->n = 0;
    if (pid <= 0) {
        return;
    }
    cs->pids[cs->n++] = pid;
    DIR *d = children ? opendir("/proc") : NULL;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL && cs->n < CPU_MAX_PIDS) {
        long child, ppid;
        long long t;
        if (parse_long(e->d_name, 1, LONG_MAX, &child) == 0 && proc_stat(child, &ppid, &t) == 0 &&
            ppid == pid) {
            cs->pids[cs->n++] = child;
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    cs->ticks0 = cpu_ticks(cs);
}

/* Busy ticks of the whole machine (all of /proc/stat's "cpu" line but idle
 * and iowait), or -1. */
static long long machine_busy_ticks(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL) {
        return -1;
    }
    char line[512];
    char *ok = fgets(line, sizeof(line), f);
    fclose(f);
    if (ok == NULL || strncmp(line, "cpu ", 4) != 0) {
        return -1;
    }
    /* user nice system idle iowait irq softirq steal (guest time is in user) */
    long long v[8] = {0};
    char *p = line + 4;
    for (int i = 0; i < 8; i++) {
        char *end = NULL;
        errno = 0;
        v[i] = strtoll(p, &end, 10);
        if (errno != 0 || end == p) {
            return -1;
        }
        p = end;
    }
    return v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
}

/* Percent of one core used since cpu_watch(), over span_ns; -1 when not
 * watched. */
static double cpu_pct(const struct cpu_set *cs, int64_t span_ns)
{
    if (cs->n == 0 || span_ns <= 0) {
        return -1.0;
    }
    long hz = sysconf(_SC_CLK_TCK);
    double used_s = (double)(cpu_ticks(cs) - cs->ticks0) / (double)(hz > 0 ? hz : 100);
    return 100.0 * used_s / ((double)span_ns / (double)NS_PER_S);
}

/* ---- results ------------------------------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[0..n-1], in milliseconds. */
static double pct_ms(const int64_t *v, size_t n, double p)
{
    if (n == 0) {
        return 0.0;
    }
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1) {
        rank = 1;
    }
    if (rank > n) {
        rank = n;
    }
    return (double)v[rank - 1] / (double)NS_PER_MS;
}

/* Gather every connection's latencies of one kind (ack or delivery),
 * sorted. Returns a malloc'd array (NULL when empty or out of memory). */
static int64_t *gather(int ack, size_t *n_out)
{
    size_t n = 0;
    for (int i = 0; i < g_nconns; i++) {
        n += ack ? g_conns[i].n_ack : g_conns[i].n_dlv;
    }
    *n_out = 0;
    int64_t *v = n > 0 ? malloc(n * sizeof(*v)) : NULL;
    if (v == NULL) {
        return NULL;
    }
    size_t k = 0;
    for (int i = 0; i < g_nconns; i++) {
        const struct conn *c = &g_conns[i];
        size_t m = ack ? c->n_ack : c->n_dlv;
        memcpy(v + k, ack ? c->ack_lat : c->dlv_lat, m * sizeof(*v));
        k += m;
    }
    qsort(v, n, sizeof(*v), cmp_i64);
    *n_out = n;
    return v;
}

#define SLICE_S 5

/* Ack latency by when the chat was sent: one line per SLICE_S seconds of
 * the window, to show whether latency drifts during a run. */
static void print_slices(void)
{
    size_t total = 0;
    for (int i = 0; i < g_nconns; i++) {
        total += g_conns[i].n_ack;
    }
    int64_t *v = total > 0 ? malloc(total * sizeof(*v)) : NULL;
    if (v == NULL) {
        return;
    }
    int64_t width = (int64_t)SLICE_S * NS_PER_S;
    int64_t window = (int64_t)(g_opt.duration_s * (double)NS_PER_S);
    printf("  ack latency by send time (ms):");
    for (int64_t lo = 0; lo < window; lo += width) {
        size_t k = 0;
        for (int i = 0; i < g_nconns; i++) {
            const struct conn *c = &g_conns[i];
            for (size_t n = 0; n < c->sent; n++) {
                int64_t at = c->send_ns[n] - g_start_ns;
                if (c->acked[n] == 1 && c->erred[n] == 0 && at >= lo && at < lo + width &&
                    k < total) {
                    v[k++] = c->lat_of[n];
                }
            }
        }
        qsort(v, k, sizeof(*v), cmp_i64);
        printf("%s %lld-%llds p50 %.2f p99 %.2f", lo == 0 ? "" : ";", (long long)(lo / NS_PER_S),
               (long long)((lo + width < window ? lo + width : window) / NS_PER_S),
               pct_ms(v, k, 50), pct_ms(v, k, 99));
    }
    printf("\n");
    free(v);
}

struct verdict {
    long failed_conns, unanswered, missing, duplicated, wrong_seq, rejected_delivered, bogus,
        seq_errors, strange;
};

/* Every acked chat delivered exactly once to both members with the seq of
 * its ack; nothing else delivered; each connection's seqs in order. */
static void verify(struct verdict *vd)
{
    memset(vd, 0, sizeof(*vd));
    for (int i = 0; i < g_nconns; i++) {
        const struct conn *s = &g_conns[i];
        const struct conn *p = &g_conns[s->peer];
        vd->failed_conns += s->failed != 0;
        vd->seq_errors += s->seq_errors;
        vd->strange += s->strange;
        for (size_t n = 0; n < s->cap; n++) {
            if (n >= s->sent) {
                vd->bogus += (s->self_n[n] != 0) + (p->peer_n[n] != 0);
            } else if (s->acked[n] == 1 && s->erred[n] == 0) {
                vd->missing += (s->self_n[n] == 0) + (p->peer_n[n] == 0);
                vd->duplicated += (s->self_n[n] > 1) + (p->peer_n[n] > 1);
                vd->wrong_seq += (s->self_n[n] != 0 && s->self_seq[n] != s->ack_seq[n]) +
                                 (p->peer_n[n] != 0 && p->peer_seq[n] != s->ack_seq[n]);
            } else if (s->acked[n] == 0 && s->erred[n] != 0) {
                vd->rejected_delivered += (s->self_n[n] != 0) + (p->peer_n[n] != 0);
            } else if (s->acked[n] == 0) {
                vd->unanswered++;
            }
            /* acked and erred, or acked twice: counted in strange */
        }
    }
}

static int conn_alloc(struct conn *c, size_t cap)
{
    c->cap = cap;
    c->send_ns = calloc(cap, sizeof(*c->send_ns));
    c->acked = calloc(cap, 1);
    c->erred = calloc(cap, 1);
    c->ack_seq = calloc(cap, sizeof(*c->ack_seq));
    c->self_n = calloc(cap, 1);
    c->self_seq = calloc(cap, sizeof(*c->self_seq));
    c->peer_n = calloc(cap, 1);
    c->peer_seq = calloc(cap, sizeof(*c->peer_seq));
    c->ack_lat = calloc(cap, sizeof(*c->ack_lat));
    c->dlv_lat = calloc(cap, sizeof(*c->dlv_lat));
    c->lat_of = calloc(cap, sizeof(*c->lat_of));
    return c->send_ns && c->acked && c->erred && c->ack_seq && c->self_n && c->self_seq &&
                   c->peer_n && c->peer_seq && c->ack_lat && c->dlv_lat && c->lat_of
               ? 0
               : -1;
}

static void conn_release(struct conn *c)
{
    free(c->send_ns);
    free(c->acked);
    free(c->erred);
    free(c->ack_seq);
    free(c->self_n);
    free(c->self_seq);
    free(c->peer_n);
    free(c->peer_seq);
    free(c->ack_lat);
    free(c->dlv_lat);
    free(c->lat_of);
}

/* CPU use over the sending window, in percent of one core (-1: not watched). */
static double g_cpu_gateway = -1.0, g_cpu_postgres = -1.0, g_cpu_client = -1.0,
              g_cpu_machine = -1.0;

static void sleep_until(int64_t t_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(t_ns / NS_PER_S), .tv_nsec = (long)(t_ns % NS_PER_S)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* Sample the CPU time of the gateway, PostgreSQL and this process at the
 * start and the end of the sending window. */
static void watch_window(void)
{
    static struct cpu_set gw, pg;
    int64_t span = (int64_t)(g_opt.duration_s * (double)NS_PER_S);
    sleep_until(g_start_ns);
    cpu_watch(&gw, g_opt.gateway_pid, 0);
    cpu_watch(&pg, g_opt.postgres_pid, 1);
    double self0 = cpu_seconds();
    long long busy0 = machine_busy_ticks();
    sleep_until(g_start_ns + span);
    long long busy1 = machine_busy_ticks();
    long hz = sysconf(_SC_CLK_TCK);
    if (busy0 >= 0 && busy1 >= busy0) {
        g_cpu_machine =
            100.0 * (double)(busy1 - busy0) / (double)(hz > 0 ? hz : 100) / g_opt.duration_s;
    }
    g_cpu_gateway = cpu_pct(&gw, span);
    g_cpu_postgres = cpu_pct(&pg, span);
    g_cpu_client = 100.0 * (cpu_seconds() - self0) / g_opt.duration_s;
}

static int report(double setup_s)
{
    long sent = 0, acked = 0, errors = 0, by_code[N_CODES + 1] = {0};
    int64_t last_ack = g_start_ns, late_max = 0;
    for (int i = 0; i < g_nconns; i++) {
        const struct conn *c = &g_conns[i];
        sent += (long)c->sent;
        acked += (long)c->n_ack;
        if (c->last_ack_ns > last_ack) {
            last_ack = c->last_ack_ns;
        }
        if (c->late_max_ns > late_max) {
            late_max = c->late_max_ns;
        }
        for (size_t k = 0; k <= N_CODES; k++) {
            by_code[k] += c->errors[k];
            errors += c->errors[k];
        }
    }
    double span_s = (double)(last_ack - g_start_ns) / (double)NS_PER_S;
    double per_s = span_s > 0 ? (double)acked / span_s : 0.0;
    size_t na = 0, nd = 0;
    int64_t *ack = gather(1, &na);
    int64_t *dlv = gather(0, &nd);
    struct verdict vd;
    verify(&vd);
    int ok = vd.failed_conns + vd.unanswered + vd.missing + vd.duplicated + vd.wrong_seq +
                 vd.rejected_delivered + vd.bogus + vd.seq_errors + vd.strange + errors ==
             0;

    printf("chat_bench: %s, %d rooms x 2 members = %d connections, %.1f s of sending\n",
           g_opt.burst ? "burst (20 at once, then 10/s per connection)" : "steady", g_nconns / 2,
           g_nconns, g_opt.duration_s);
    if (!g_opt.burst) {
        printf("  offered: %.2f chats/s per connection = %.0f chats/s\n", g_opt.rate,
               g_opt.rate * g_nconns);
    }
    printf("  setup (connect, hello, join, all connections): %.2f s\n", setup_s);
    printf("  sent %ld, acked %ld in %.2f s = %.1f acked chats/s\n", sent, acked, span_s, per_s);
    printf("  ack latency ms:      p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  (%zu)\n",
           pct_ms(ack, na, 50), pct_ms(ack, na, 90), pct_ms(ack, na, 99), pct_ms(ack, na, 100), na);
    printf("  delivery latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  (%zu, to the peer)\n",
           pct_ms(dlv, nd, 50), pct_ms(dlv, nd, 90), pct_ms(dlv, nd, 99), pct_ms(dlv, nd, 100), nd);
    print_slices();
    printf("  latest send behind schedule: %.2f ms\n", (double)late_max / (double)NS_PER_MS);
    printf("  CPU over the sending window, %% of one core: gateway %.0f, PostgreSQL %.0f, "
           "this client %.0f, the whole machine %.0f (-1: not watched)\n",
           g_cpu_gateway, g_cpu_postgres, g_cpu_client, g_cpu_machine);
    printf("  error frames: %ld", errors);
    for (size_t k = 0; k <= N_CODES; k++) {
        if (by_code[k] > 0) {
            printf(" %s=%ld", k < N_CODES ? error_codes[k] : "other", by_code[k]);
        }
    }
    printf("\n");
    for (int i = 0; i < g_nconns; i++) {
        if (g_conns[i].failed) {
            printf("  connection %d (%s of %s): %s\n", i, g_conns[i].role ? "client" : "coach",
                   g_conns[i].room_id, g_conns[i].why);
        }
    }
    printf("  verify: %s: failed connections %ld, unanswered %ld, not delivered %ld, duplicated "
           "%ld, wrong seq %ld, refused but delivered %ld, unknown %ld, seq gaps/disorder %ld, "
           "unexpected frames %ld, error frames %ld\n",
           ok ? "ok" : "FAILED", vd.failed_conns, vd.unanswered, vd.missing, vd.duplicated,
           vd.wrong_seq, vd.rejected_delivered, vd.bogus, vd.seq_errors, vd.strange, errors);
    printf("RESULT mode=%s rooms=%d conns=%d duration_s=%.1f rate=%.2f setup_s=%.2f sent=%ld "
           "acked=%ld span_s=%.3f acked_per_s=%.1f ack_p50_ms=%.2f ack_p90_ms=%.2f "
           "ack_p99_ms=%.2f ack_max_ms=%.2f dlv_p50_ms=%.2f dlv_p99_ms=%.2f dlv_max_ms=%.2f "
           "errors=%ld rate_limited=%ld late_max_ms=%.2f cpu_gateway_pct=%.0f "
           "cpu_postgres_pct=%.0f cpu_client_pct=%.0f cpu_machine_pct=%.0f verify=%s\n",
           g_opt.burst ? "burst" : "steady", g_nconns / 2, g_nconns, g_opt.duration_s,
           g_opt.burst ? (double)CHAT_PER_SEC : g_opt.rate, setup_s, sent, acked, span_s, per_s,
           pct_ms(ack, na, 50), pct_ms(ack, na, 90), pct_ms(ack, na, 99), pct_ms(ack, na, 100),
           pct_ms(dlv, nd, 50), pct_ms(dlv, nd, 99), pct_ms(dlv, nd, 100), errors,
           by_code[code_index("rate_limited")], (double)late_max / (double)NS_PER_MS, g_cpu_gateway,
           g_cpu_postgres, g_cpu_client, g_cpu_machine, ok ? "ok" : "failed");
    free(ack);
    free(dlv);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0) {
        fprintf(stderr, "chat_bench: libsodium failed to initialise\n");
        return 2;
    }
    parse_args(argc, argv);
    static char *rooms[MAX_ROOMS][3];
    int nrooms = read_fixture(g_opt.fixture, rooms, g_opt.max_rooms);
    if (nrooms < 0) {
        return 2;
    }
    g_nconns = 2 * nrooms;
    g_conns = calloc((size_t)g_nconns, sizeof(*g_conns));
    pthread_t *tids = calloc((size_t)g_nconns, sizeof(*tids));
    if (g_conns == NULL || tids == NULL) {
        fprintf(stderr, "chat_bench: out of memory\n");
        return 2;
    }
    size_t cap = (size_t)(g_opt.duration_s * CHAT_PER_SEC) + 2 * CHAT_BURST;
    for (int i = 0; i < g_nconns; i++) {
        struct conn *c = &g_conns[i];
        c->idx = i;
        c->peer = i ^ 1;
        c->role = i & 1;
        c->room_id = rooms[i / 2][0];
        c->token = rooms[i / 2][1 + c->role];
        if (conn_alloc(c, cap) != 0) {
            fprintf(stderr, "chat_bench: out of memory\n");
            return 2;
        }
    }
    unsigned nb = (unsigned)g_nconns + 1;
    if (pthread_barrier_init(&g_ready, NULL, nb) != 0 ||
        pthread_barrier_init(&g_go, NULL, nb) != 0 ||
        pthread_barrier_init(&g_drained, NULL, (unsigned)g_nconns) != 0) {
        fprintf(stderr, "chat_bench: cannot create barriers\n");
        return 2;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, THREAD_STACK_BYTES);
    int64_t t0 = mono_ns();
    for (int i = 0; i < g_nconns; i++) {
        int rc = pthread_create(&tids[i], &attr, conn_main, &g_conns[i]);
        if (rc != 0) {
            /* The barriers count every connection: without its thread
             * nothing can proceed. */
            fprintf(stderr, "chat_bench: cannot start thread %d: %s\n", i, strerror(rc));
            _exit(2);
        }
    }
    pthread_attr_destroy(&attr);
    pthread_barrier_wait(&g_ready);
    double setup_s = (double)(mono_ns() - t0) / (double)NS_PER_S;
    int ready = 0;
    for (int i = 0; i < g_nconns; i++) {
        ready += !g_conns[i].failed;
    }
    g_start_ns = mono_ns() + 100 * NS_PER_MS;
    pthread_barrier_wait(&g_go);
    watch_window();
    for (int i = 0; i < g_nconns; i++) {
        pthread_join(tids[i], NULL);
    }
    int rc = report(setup_s);
    if (ready < g_nconns) {
        fprintf(stderr, "chat_bench: only %d of %d connections were set up\n", ready, g_nconns);
        rc = 2;
    }
    for (int i = 0; i < g_nconns; i++) {
        conn_release(&g_conns[i]);
    }
    for (int i = 0; i < nrooms; i++) {
        for (int k = 0; k < 3; k++) {
            free(rooms[i][k]);
        }
    }
    free(g_conns);
    free(tids);
    pthread_barrier_destroy(&g_ready);
    pthread_barrier_destroy(&g_go);
    pthread_barrier_destroy(&g_drained);
    return rc;
}
