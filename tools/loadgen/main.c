/*
 * main.c: coach-loadgen, the load and correctness tool for coach-gateway.
 * Parses the command line, raises the open-files limit, and runs one
 * command: --setup, --cleanup, --export, or a load run (lg_run.h). The only
 * file that prints usage or exits. See docs/loadgen.md.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <sodium.h>

#include "lg_fix.h"
#include "lg_rec.h"
#include "lg_report.h"
#include "lg_run.h"

#define EXIT_FAILED        1
#define EXIT_USAGE         2
#define MAX_RECS           64
#define MAX_DURATION_S     3600.0
#define DEFAULT_DURATION_S 60.0

static volatile sig_atomic_t g_stop; /* set by SIGINT/SIGTERM; main's own state */

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static const char USAGE[] =
    "usage: coach-loadgen [options]\n"
    "\n"
    "Load and correctness tool for coach-gateway (loopback only). Commands:\n"
    "  --setup N             create N rooms (coach + client users, session tokens,\n"
    "                        appointments starting now) in --db; write --fixtures\n"
    "  --cleanup             delete every row coach-loadgen created in --db (ids\n"
    "                        starting \"clg\") and what hangs off them\n"
    "  --export SESSION_ID   write that \"Session\" as a recording (JSON Lines) to\n"
    "                        --out (default stdout)\n"
    "  (none of these)       run a load test against --url with --fixtures\n"
    "\n"
    "Run options:\n"
    "  --mode MODE           replay (default): each room replays a recording;\n"
    "                        unthrottled: each connection keeps --window chats in\n"
    "                          flight (the server's 10/s limit shows as rate_limited);\n"
    "                        idle: connect, authenticate, join, hold (connection counts);\n"
    "                        storm: replay, drop every connection at --storm-at,\n"
    "                          reconnect with since, verify recovery (every dropped\n"
    "                          connection back; storm_recovery_s: the last one)\n"
    "  --url URL             ws://HOST:PORT/ws, repeatable: connections spread over\n"
    "                        them (default ws://127.0.0.1:8080/ws); loopback only\n"
    "  --proto P             native (default): coachroom.v1 JSON frames;\n"
    "                        socketio: the same commands and events as Socket.IO\n"
    "                          packets (Engine.IO v4 over WebSocket; join, chat,\n"
    "                          leave, end and rate answered by acks), for\n"
    "                          bench/peer-node/server-sio.mjs; --url then names the\n"
    "                          Socket.IO path: ws://127.0.0.1:8091/socket.io\n"
    "  --fixtures FILE       rooms: roomId TAB coach token TAB client token\n"
    "                        (default loadgen-fixtures.tsv)\n"
    "  --rooms R             use R rooms of the fixtures (default: all)\n"
    "  --first K             starting with the K-th (0-based, default 0)\n"
    "  --recording PATH      a recording (.jsonl) or a directory of them, repeatable;\n"
    "                        rooms take them in turn (needed except in idle mode)\n"
    "  --speed X             time compression: 60 plays 20 minutes in 20 s (default 1)\n"
    "  --ramp S              start the rooms spread over S seconds (default 0)\n"
    "  --duration S          hard cap of the traffic phase (default 60, at most 3600)\n"
    "  --storm-at S          storm: when to drop everyone (default half the duration)\n"
    "  --drain S             after traffic, wait up to S s for acks and deliveries\n"
    "                        (default 10)\n"
    "  --window N            unthrottled: chats in flight per connection (1..100,\n"
    "                        default 8)\n"
    "  --rate R              unthrottled: at most R chats a second per connection,\n"
    "                        evenly paced (0..1000; default 0: no pacing). 9.5 stays\n"
    "                        under the gateway's 10/s limit: the peak it allows\n"
    "  --sources N           bind connections to N source addresses 127.0.0.1,\n"
    "                        127.0.0.2, ... (beyond ~28k connections per address)\n"
    "  --json                print the summary as JSON on stdout (the text goes to\n"
    "                        stderr)\n"
    "  --no-progress         no live progress line (it shows only on a terminal)\n"
    "\n"
    "Database options:\n"
    "  --db CONNINFO         libpq conninfo or URI (default: $DATABASE_URL)\n"
    "  --room-minutes M      --setup: the appointments' duration (default 60)\n"
    "  --out FILE            --export: where to write\n"
    "\n"
    "Exit status: 0 passed; 1 the run failed (loss, duplicates, reordering,\n"
    "unanswered chats, unexpected error frames, rooms that never started,\n"
    "storm connections that never came back); `unavailable` is retried, as\n"
    "the browser does, and counted apart: at hello or join by reconnecting\n"
    "with backoff, for a chat by sending it again after 1-2 s;\n"
    "2 bad usage or setup error.\n";

struct opts {
    const char *cmd; /* "run", "setup", "cleanup", "export" */
    long setup_n;
    const char *export_id;
    const char *out;
    const char *db;
    const char *fixtures;
    const char *recs[MAX_RECS];
    size_t n_recs;
    struct lg_url urls[LG_MAX_URLS];
    size_t n_urls;
    long rooms, first, window, sources, room_minutes;
    double speed, ramp, duration, storm_at, drain, rate;
    enum lg_mode mode;
    enum lg_proto proto;
    int json, progress;
};

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

static int parse_url(const char *s, struct lg_url *u)
{
    struct lg_err err = {{0}};
    if (lg_url_parse(s, u, &err) != 0) {
        (void)fprintf(stderr, "coach-loadgen: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int parse_proto(const char *s, enum lg_proto *p)
{
    for (int k = LG_PROTO_NATIVE; k <= LG_PROTO_SOCKETIO; k++) {
        if (strcmp(s, lg_proto_name((enum lg_proto)k)) == 0) {
            *p = (enum lg_proto)k;
            return 0;
        }
    }
    return -1;
}

static int parse_mode(const char *s, enum lg_mode *m)
{
    for (int k = LG_MODE_REPLAY; k <= LG_MODE_STORM; k++) {
        if (strcmp(s, lg_mode_name((enum lg_mode)k)) == 0) {
            *m = (enum lg_mode)k;
            return 0;
        }
    }
    return -1;
}

enum {
    O_SETUP = 256,
    O_CLEANUP,
    O_EXPORT,
    O_OUT,
    O_DB,
    O_FIX,
    O_REC,
    O_URL,
    O_ROOMS,
    O_FIRST,
    O_SPEED,
    O_RAMP,
    O_DURATION,
    O_STORM,
    O_DRAIN,
    O_WINDOW,
    O_RATE,
    O_SOURCES,
    O_JSON,
    O_NOPROG,
    O_MODE,
    O_PROTO,
    O_MINUTES,
    O_HELP
};

static const struct option LONGOPTS[] = {{"setup", required_argument, NULL, O_SETUP},
                                         {"cleanup", no_argument, NULL, O_CLEANUP},
                                         {"export", required_argument, NULL, O_EXPORT},
                                         {"out", required_argument, NULL, O_OUT},
                                         {"db", required_argument, NULL, O_DB},
                                         {"fixtures", required_argument, NULL, O_FIX},
                                         {"recording", required_argument, NULL, O_REC},
                                         {"url", required_argument, NULL, O_URL},
                                         {"rooms", required_argument, NULL, O_ROOMS},
                                         {"first", required_argument, NULL, O_FIRST},
                                         {"speed", required_argument, NULL, O_SPEED},
                                         {"ramp", required_argument, NULL, O_RAMP},
                                         {"duration", required_argument, NULL, O_DURATION},
                                         {"storm-at", required_argument, NULL, O_STORM},
                                         {"drain", required_argument, NULL, O_DRAIN},
                                         {"window", required_argument, NULL, O_WINDOW},
                                         {"rate", required_argument, NULL, O_RATE},
                                         {"sources", required_argument, NULL, O_SOURCES},
                                         {"json", no_argument, NULL, O_JSON},
                                         {"no-progress", no_argument, NULL, O_NOPROG},
                                         {"mode", required_argument, NULL, O_MODE},
                                         {"proto", required_argument, NULL, O_PROTO},
                                         {"room-minutes", required_argument, NULL, O_MINUTES},
                                         {"help", no_argument, NULL, O_HELP},
                                         {NULL, 0, NULL, 0}};

static int bad(const char *opt, const char *val)
{
    (void)fprintf(stderr, "coach-loadgen: bad value for --%s: %s (see --help)\n", opt, val);
    return -1;
}

static int set_cmd(struct opts *o, const char *cmd)
{
    if (strcmp(o->cmd, "run") != 0) {
        (void)fprintf(stderr, "coach-loadgen: --%s and --%s cannot be combined\n", o->cmd, cmd);
        return -1;
    }
    o->cmd = cmd;
    return 0;
}

static int parse_opt(struct opts *o, int c, const char *a)
{
    switch (c) {
    case O_SETUP:
        return set_cmd(o, "setup")                               ? -1
               : parse_long(a, 1, LG_FIX_MAX_ROOMS, &o->setup_n) ? bad("setup", a)
                                                                 : 0;
    case O_CLEANUP:
        return set_cmd(o, "cleanup");
    case O_EXPORT:
        o->export_id = a;
        return set_cmd(o, "export");
    case O_OUT:
        o->out = a;
        return 0;
    case O_DB:
        o->db = a;
        return 0;
    case O_FIX:
        o->fixtures = a;
        return 0;
    case O_REC:
        if (o->n_recs == MAX_RECS) {
            return bad("recording", "too many");
        }
        o->recs[o->n_recs++] = a;
        return 0;
    case O_URL:
        if (o->n_urls == LG_MAX_URLS) {
            return bad("url", "too many");
        }
        return parse_url(a, &o->urls[o->n_urls++]);
    case O_ROOMS:
        return parse_long(a, 1, LG_FIX_MAX_ROOMS, &o->rooms) ? bad("rooms", a) : 0;
    case O_FIRST:
        return parse_long(a, 0, LG_FIX_MAX_ROOMS, &o->first) ? bad("first", a) : 0;
    case O_SPEED:
        return parse_double(a, 0.001, 100000, &o->speed) ? bad("speed", a) : 0;
    case O_RAMP:
        return parse_double(a, 0, MAX_DURATION_S, &o->ramp) ? bad("ramp", a) : 0;
    case O_DURATION:
        return parse_double(a, 0.1, MAX_DURATION_S, &o->duration) ? bad("duration", a) : 0;
    case O_STORM:
        return parse_double(a, 0, MAX_DURATION_S, &o->storm_at) ? bad("storm-at", a) : 0;
    case O_DRAIN:
        return parse_double(a, 0, 600, &o->drain) ? bad("drain", a) : 0;
    case O_WINDOW:
        return parse_long(a, 1, LG_MAX_WINDOW, &o->window) ? bad("window", a) : 0;
    case O_RATE:
        return parse_double(a, 0, 1000, &o->rate) ? bad("rate", a) : 0;
    case O_SOURCES:
        return parse_long(a, 1, 65536, &o->sources) ? bad("sources", a) : 0;
    case O_MINUTES:
        return parse_long(a, 1, 1440, &o->room_minutes) ? bad("room-minutes", a) : 0;
    case O_JSON:
        o->json = 1;
        return 0;
    case O_NOPROG:
        o->progress = 0;
        return 0;
    case O_MODE:
        return parse_mode(a, &o->mode) ? bad("mode", a) : 0;
    case O_PROTO:
        return parse_proto(a, &o->proto) ? bad("proto", a) : 0;
    default:
        return -1;
    }
}

/* 0 parsed, 1 --help shown, -1 bad usage. */
static int parse_args(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.cmd = "run",
                       .fixtures = "loadgen-fixtures.tsv",
                       .speed = 1,
                       .duration = DEFAULT_DURATION_S,
                       .storm_at = -1,
                       .drain = 10,
                       .window = 8,
                       .sources = 1,
                       .room_minutes = 60,
                       .progress = 1};
    int c;
    /* NOLINTNEXTLINE(concurrency-mt-unsafe): single-threaded here */
    while ((c = getopt_long(argc, argv, "h", LONGOPTS, NULL)) != -1) {
        if (c == 'h' || c == O_HELP) {
            (void)fputs(USAGE, stdout);
            return 1;
        }
        if (c == '?' || parse_opt(o, c, optarg) != 0) {
            return -1;
        }
    }
    if (optind < argc) {
        (void)fprintf(stderr, "coach-loadgen: unexpected argument %s (see --help)\n", argv[optind]);
        return -1;
    }
    if (o->n_urls == 0) {
        (void)parse_url("ws://127.0.0.1:8080/ws", &o->urls[o->n_urls++]);
    }
    if (o->db == NULL) {
        /* NOLINTNEXTLINE(concurrency-mt-unsafe): single-threaded here */
        o->db = getenv("DATABASE_URL");
    }
    return 0;
}

static void raise_nofile(rlim_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < want) {
        (void)fprintf(stderr,
                      "coach-loadgen: warning: the open-files limit is %llu (hard), %llu wanted; "
                      "raise it (ulimit -Hn) for this many connections\n",
                      (unsigned long long)rl.rlim_cur, (unsigned long long)want);
    }
}

static int has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Load one recording, or every *.jsonl of a directory (in name order). */
static int load_recs(const char *path, struct lg_rec **recs, size_t *n)
{
    DIR *d = opendir(path);
    if (d == NULL) {
        if (*n == MAX_RECS) {
            return -1;
        }
        struct lg_err err = {{0}};
        if (lg_rec_load(path, &recs[*n], &err) != 0) {
            (void)fprintf(stderr, "coach-loadgen: %s\n", err.msg);
            return -1;
        }
        (*n)++;
        return 0;
    }
    char *names[MAX_RECS] = {NULL};
    size_t k = 0;
    struct dirent *e;
    /* NOLINTNEXTLINE(concurrency-mt-unsafe): before the run starts, one thread */
    while ((e = readdir(d)) != NULL && k < MAX_RECS) {
        if (has_suffix(e->d_name, ".jsonl")) {
            names[k] = malloc(strlen(path) + strlen(e->d_name) + 2);
            if (names[k] != NULL) {
                (void)snprintf(names[k], strlen(path) + strlen(e->d_name) + 2, "%s/%s", path,
                               e->d_name);
                k++;
            }
        }
    }
    (void)closedir(d);
    qsort(names, k, sizeof names[0], cmp_str);
    int rc = k == 0 ? -1 : 0;
    if (k == 0) {
        (void)fprintf(stderr, "coach-loadgen: %s: no .jsonl recordings\n", path);
    }
    for (size_t i = 0; i < k; i++) {
        if (rc == 0) {
            rc = load_recs(names[i], recs, n);
        }
        free(names[i]);
    }
    return rc;
}

static int cmd_run(const struct opts *o)
{
    struct lg_fixtures fx = {0};
    struct lg_err err = {{0}};
    struct lg_rec *recs[MAX_RECS];
    size_t n_recs = 0;
    int rc = EXIT_USAGE;
    if (lg_fix_load(o->fixtures, &fx, &err) != 0) {
        (void)fprintf(stderr, "coach-loadgen: %s\n", err.msg);
        return EXIT_USAGE;
    }
    for (size_t i = 0; i < o->n_recs; i++) {
        if (load_recs(o->recs[i], recs, &n_recs) != 0) {
            goto out;
        }
    }
    if (n_recs == 0 && o->mode != LG_MODE_IDLE) {
        (void)fprintf(stderr, "coach-loadgen: --mode %s needs --recording\n",
                      lg_mode_name(o->mode));
        goto out;
    }
    struct lg_rec dummy = {.name = (char *)"none"};
    struct lg_rec *none = &dummy;
    size_t first = (size_t)o->first;
    if (first >= fx.n) {
        (void)fprintf(stderr, "coach-loadgen: --first %zu: the fixtures hold %zu rooms\n", first,
                      fx.n);
        goto out;
    }
    size_t rooms = o->rooms > 0 ? (size_t)o->rooms : fx.n - first;
    if (first + rooms > fx.n) {
        (void)fprintf(stderr, "coach-loadgen: %zu rooms from %zu wanted, the fixtures hold %zu\n",
                      rooms, first, fx.n);
        goto out;
    }
    raise_nofile((rlim_t)(2 * rooms + 64));
    struct lg_run_cfg cfg = {.mode = o->mode,
                             .proto = o->proto,
                             .fx = &fx,
                             .first = first,
                             .n_rooms = rooms,
                             .recs = n_recs ? recs : &none,
                             .n_recs = n_recs ? n_recs : 1,
                             .urls = o->urls,
                             .n_urls = o->n_urls,
                             .speed = o->speed,
                             .ramp_s = o->ramp,
                             .duration_s = o->duration,
                             .storm_at_s = o->storm_at >= 0 ? o->storm_at : o->duration / 2,
                             .drain_s = o->drain,
                             .window = (unsigned)o->window,
                             .rate = o->rate,
                             .sources = (unsigned)o->sources,
                             .progress = o->progress && isatty(STDERR_FILENO),
                             .stop = &g_stop};
    struct lg_run_result *res = malloc(sizeof *res);
    if (res == NULL || lg_run(&cfg, res, &err) != 0) {
        (void)fprintf(stderr, "coach-loadgen: %s\n", res ? err.msg : "out of memory");
        free(res);
        goto out;
    }
    lg_report_text(o->json ? stderr : stdout, &cfg, res);
    if (o->json) {
        (void)lg_report_json(stdout, &cfg, res);
    }
    rc = lg_report_ok(&cfg, res) ? 0 : EXIT_FAILED;
    free(res);
out:
    for (size_t i = 0; i < n_recs; i++) {
        lg_rec_free(recs[i]);
    }
    lg_fix_fini(&fx);
    return rc;
}

static int cmd_db(const struct opts *o)
{
    struct lg_err err = {{0}};
    if (o->db == NULL || o->db[0] == '\0') {
        (void)fprintf(stderr, "coach-loadgen: --%s needs --db or DATABASE_URL\n", o->cmd);
        return EXIT_USAGE;
    }
    int rc;
    if (strcmp(o->cmd, "setup") == 0) {
        rc = lg_fix_setup(o->db, (size_t)o->setup_n, (int)o->room_minutes, o->fixtures, &err);
        if (rc == 0) {
            (void)fprintf(stderr, "coach-loadgen: %ld rooms written to %s\n", o->setup_n,
                          o->fixtures);
        }
    } else if (strcmp(o->cmd, "cleanup") == 0) {
        long rows = 0;
        rc = lg_fix_cleanup(o->db, &rows, &err);
        if (rc == 0) {
            (void)fprintf(stderr, "coach-loadgen: %ld rows deleted\n", rows);
        }
    } else {
        FILE *out = o->out ? fopen(o->out, "w") : stdout;
        if (out == NULL) {
            (void)fprintf(stderr, "coach-loadgen: %s: cannot create\n", o->out);
            return EXIT_USAGE;
        }
        rc = lg_fix_export(o->db, o->export_id, out, &err);
        if (out != stdout && fclose(out) != 0 && rc == 0) {
            rc = -EIO;
            (void)snprintf(err.msg, sizeof err.msg, "%s: write failed", o->out);
        }
    }
    if (rc != 0) {
        (void)fprintf(stderr, "coach-loadgen: %s\n", err.msg);
        return EXIT_USAGE;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    int p = parse_args(argc, argv, &o);
    if (p != 0) {
        return p > 0 ? 0 : EXIT_USAGE;
    }
    if (sodium_init() < 0) {
        (void)fprintf(stderr, "coach-loadgen: libsodium failed to start\n");
        return EXIT_USAGE;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    (void)sigaction(SIGINT, &sa, NULL);
    (void)sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    (void)sigaction(SIGPIPE, &sa, NULL);
    if (strcmp(o.cmd, "run") == 0) {
        return cmd_run(&o);
    }
    return cmd_db(&o);
}
