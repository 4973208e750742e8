/*
 * test_config.c: gw_config_load, gw_config_fini and the --help text.
 *
 * One table (`rows`) gives every setting two valid values, A and B; the
 * generic tests check each setting from the environment, from both flag
 * forms, and that a flag wins, by comparing whole-config dumps. A second
 * table lists malformed values, each rejected from the environment and
 * from a flag with a message naming the setting as written and never
 * holding a secret. ASan/LSan check that fini frees everything.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define NO_ENV    ((char *const[]){NULL})
#define ENV(...)  ((char *const[]){__VA_ARGS__, NULL})
#define NO_ARGS   ((char *const[]){"coach-gateway", NULL})
#define ARGS(...) ((char *const[]){"coach-gateway", __VA_ARGS__, NULL})
#define N_OF(a)   (sizeof(a) / sizeof((a)[0]))

/* A marker put in every secret: no message may contain it. */
#define SECRET_MARK "SEKRIT"

static struct gw_config cfg;
static struct gw_err err;

/* Readable files for TLS_CERT/TLS_KEY (A and B values) and a directory. */
static char cert_a[64], cert_b[64], key_a[64], key_b[64], dir_path[64];

static void make_file(char *path, size_t size)
{
    (void)snprintf(path, size, "/tmp/test_config.XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0, "mkstemp");
    cr_assert_eq(write(fd, "pem\n", 4), 4);
    close(fd);
}

static void setup(void)
{
    make_file(cert_a, sizeof(cert_a));
    make_file(cert_b, sizeof(cert_b));
    make_file(key_a, sizeof(key_a));
    make_file(key_b, sizeof(key_b));
    (void)snprintf(dir_path, sizeof(dir_path), "/tmp/test_config_dir.XXXXXX");
    cr_assert(mkdtemp(dir_path) != NULL, "mkdtemp");
    memset(&cfg, 0, sizeof(cfg));
}

static void teardown(void)
{
    gw_config_fini(&cfg);
    unlink(cert_a);
    unlink(cert_b);
    unlink(key_a);
    unlink(key_b);
    rmdir(dir_path);
}

TestSuite(config, .init = setup, .fini = teardown);

/* Load into the global cfg/err; cfg is filled with junk first to prove
 * that load initialises (or, on error, zeroes) all of it. */
static int load(char *const env[], char *const argv[])
{
    int argc = 0;
    while (argv[argc] != NULL) {
        argc++;
    }
    gw_config_fini(&cfg);
    memset(&cfg, 0xab, sizeof(cfg));
    memset(&err, 0, sizeof(err));
    return gw_config_load(&cfg, argc, argv, env, &err);
}

static const char *or_null(const char *s)
{
    return s != NULL ? s : "(null)";
}

/* The whole config as text, for comparing two loads. Caller frees. */
static char *dump(const struct gw_config *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert(f != NULL);
    (void)fprintf(f,
                  "cmd=%d db=%s host=%s port=%d jwt=%s svc=%s lkk=%s lks=%s lku=%s ai=%s aik=%s "
                  "model=%s aito=%lld aima=%d",
                  (int)c->command, or_null(c->database_url), or_null(c->listen_host),
                  c->listen_port, or_null(c->jwt_secret), or_null(c->service_key),
                  or_null(c->livekit_api_key), or_null(c->livekit_api_secret),
                  or_null(c->livekit_url), or_null(c->ai_summary_url), or_null(c->ai_api_key),
                  or_null(c->ai_model), (long long)c->ai_timeout_ms, c->ai_max_attempts);
    (void)fprintf(f, " warn=");
    for (size_t i = 0; i < c->n_timer_warnings; i++) {
        (void)fprintf(f, "%d,", c->timer_warnings_sec[i]);
    }
    (void)fprintf(
        f, " idle=%d early=%d frame=%zu conn=%d storeto=%lld recheck=%d maint=%d origins=",
        c->idle_end_sec, c->early_join_min, c->max_frame_bytes, c->max_conn_per_user,
        (long long)c->store_timeout_ms, c->token_recheck_sec, c->maintenance_interval_sec);
    for (size_t i = 0; i < c->n_allowed_origins; i++) {
        (void)fprintf(f, "%s,", c->allowed_origins[i]);
    }
    (void)fprintf(f, " cert=%s key=%s web=%s log=%d migrate=%d storeconns=%d",
                  or_null(c->tls_cert), or_null(c->tls_key), or_null(c->web_root),
                  (int)c->log_level, (int)c->migrate_on_start, c->store_connections);
    (void)fclose(f);
    return buf;
}

/* All of cfg zero: what load leaves behind on error. */
static bool is_zeroed(const struct gw_config *c)
{
    static const struct gw_config zero;
    char *want = dump(&zero);
    char *got = dump(c);
    bool same = strcmp(want, got) == 0 && c->command == 0 && c->allowed_origins == NULL;
    free(want);
    free(got);
    return same;
}

/* ---- the settings table ------------------------------------------------ */

struct row {
    const char *env, *flag;
    const char *a, *b; /* two valid values */
    const char *def;   /* the default as the help text shows it */
    int partner;       /* row that must be set too (TLS, LiveKit), or -1; its own
                          partner comes along too */
};

enum { R_LK_KEY = 4, R_LK_SECRET = 5, R_TLS_CERT = 21, R_TLS_KEY = 22 };

static const struct row rows[] = {
    {"DATABASE_URL", "--database-url", "postgresql://u:" SECRET_MARK "@db.example/coach",
     "host=db dbname=coach password=" SECRET_MARK, NULL, -1},
    {"LISTEN", "--listen", "0.0.0.0:9000", "[::1]:8081", "127.0.0.1:8080", -1},
    {"JWT_SECRET", "--jwt-secret", SECRET_MARK "-jwt-a", SECRET_MARK "-jwt-b", NULL, -1},
    {"SERVICE_KEY", "--service-key", SECRET_MARK "-svc-a", SECRET_MARK "-svc-b", NULL, -1},
    [R_LK_KEY] = {"LIVEKIT_API_KEY", "--livekit-api-key", "lk-key-a", "lk-key-b", NULL,
                  R_LK_SECRET},
    [R_LK_SECRET] = {"LIVEKIT_API_SECRET", "--livekit-api-secret", SECRET_MARK "-lk-a",
                     SECRET_MARK "-lk-b", NULL, R_LK_KEY},
    {"LIVEKIT_URL", "--livekit-url", "wss://lk.example.com", "http://127.0.0.1:7880", NULL,
     R_LK_KEY},
    {"AI_SUMMARY_URL", "--ai-summary-url", "https://ai.example.com/v1/chat?x=1",
     "http://[::1]:9999/sum", NULL, -1},
    {"AI_API_KEY", "--ai-api-key", SECRET_MARK "-ai-a", SECRET_MARK "-ai-b", NULL, -1},
    {"AI_MODEL", "--ai-model", "model-a", "model-b", "gpt-4o-mini", -1},
    {"AI_TIMEOUT_MS", "--ai-timeout-ms", "1234", "600000", "30000", -1},
    {"AI_MAX_ATTEMPTS", "--ai-max-attempts", "7", "20", "5", -1},
    {"TIMER_WARNINGS", "--timer-warnings", "60,600,10", "", "300,60", -1},
    {"IDLE_END_SEC", "--idle-end-sec", "45", "86400", "300", -1},
    {"EARLY_JOIN_MIN", "--early-join-min", "0", "1440", "10", -1},
    {"MAX_FRAME_BYTES", "--max-frame-bytes", "1024", "1048576", "16384", -1},
    {"MAX_CONN_PER_USER", "--max-conn-per-user", "3", "1000", "10", -1},
    {"STORE_TIMEOUT_MS", "--store-timeout-ms", "100", "250", "5000", -1},
    {"TOKEN_RECHECK_SEC", "--token-recheck-sec", "1", "300", "300", -1},
    {"MAINTENANCE_INTERVAL_SEC", "--maintenance-interval-sec", "1", "86400", "3600", -1},
    {"ALLOWED_ORIGINS", "--allowed-origins", "https://App.example.com, http://localhost:3000",
     "https://b.example", NULL, -1},
    [R_TLS_CERT] = {"TLS_CERT", "--tls-cert", cert_a, cert_b, NULL, R_TLS_KEY},
    [R_TLS_KEY] = {"TLS_KEY", "--tls-key", key_a, key_b, NULL, R_TLS_CERT},
    {"WEB_ROOT", "--web-root", "/srv/a", "/srv/b", NULL, -1},
    {"LOG_LEVEL", "--log-level", "debug", "ERROR", "notice", -1},
    {"MIGRATE_ON_START", "--migrate-on-start", "0", "true", "true", -1},
    {"STORE_CONNECTIONS", "--store-connections", "1", "16", "2", -1},
};

#define N_ROWS N_OF(rows)

/* "NAME=value" strings and argv arrays built at run time. */
struct built {
    char *env[N_ROWS * 2 + 1];
    char *argv[N_ROWS * 2 + 2];
    int argc, envc;
};

/* "a=b" in a new string. */
static char *joined(const char *a, const char *b)
{
    size_t size = strlen(a) + strlen(b) + 2;
    char *s = malloc(size);
    cr_assert(s != NULL);
    (void)snprintf(s, size, "%s=%s", a, b);
    return s;
}

/* Append s (owned) to the NULL-terminated list v of capacity cap. */
static void push(char **v, int *n, size_t cap, char *s)
{
    cr_assert(s != NULL);
    cr_assert((size_t)*n + 1 < cap, "built list full");
    v[*n] = s;
    v[++*n] = NULL;
}

static void add_env(struct built *b, const struct row *r, const char *value)
{
    push(b->env, &b->envc, N_OF(b->env), joined(r->env, value));
}

/* Add "--flag value" (eq false) or "--flag=value" (eq true). */
static void add_flag(struct built *b, const struct row *r, const char *value, bool eq)
{
    if (eq) {
        push(b->argv, &b->argc, N_OF(b->argv), joined(r->flag, value));
    } else {
        push(b->argv, &b->argc, N_OF(b->argv), strdup(r->flag));
        push(b->argv, &b->argc, N_OF(b->argv), strdup(value));
    }
}

static void built_init(struct built *b)
{
    memset(b, 0, sizeof(*b));
    push(b->argv, &b->argc, N_OF(b->argv), strdup("coach-gateway"));
}

static void built_free(struct built *b)
{
    for (int i = 0; i < b->envc; i++) {
        free(b->env[i]);
    }
    for (int i = 0; i < b->argc; i++) {
        free(b->argv[i]);
    }
}

static int load_built(struct built *b)
{
    return load(b->env, b->argv);
}

/* Load and return the dump, asserting success. Caller frees. */
static char *load_dump(struct built *b)
{
    int rc = load_built(b);
    cr_assert_eq(rc, 0, "load failed: %s", err.msg);
    return dump(&cfg);
}

/* ---- defaults ---------------------------------------------------------- */

Test(config, defaults_with_empty_env)
{
    cr_assert_eq(load(NO_ENV, NO_ARGS), 0, "%s", err.msg);
    cr_assert_eq(cfg.command, GW_CMD_SERVE);
    cr_assert_null(cfg.database_url);
    cr_assert_str_eq(cfg.listen_host, "127.0.0.1");
    cr_assert_eq(cfg.listen_port, 8080);
    cr_assert_null(cfg.jwt_secret);
    cr_assert_null(cfg.service_key);
    cr_assert_null(cfg.livekit_api_key);
    cr_assert_null(cfg.livekit_api_secret);
    cr_assert_null(cfg.livekit_url);
    cr_assert_null(cfg.ai_summary_url);
    cr_assert_null(cfg.ai_api_key);
    cr_assert_str_eq(cfg.ai_model, "gpt-4o-mini");
    cr_assert_eq(cfg.ai_timeout_ms, 30000);
    cr_assert_eq(cfg.ai_max_attempts, 5);
    cr_assert_eq(cfg.n_timer_warnings, 2);
    cr_assert_eq(cfg.timer_warnings_sec[0], 300);
    cr_assert_eq(cfg.timer_warnings_sec[1], 60);
    cr_assert_eq(cfg.idle_end_sec, 300);
    cr_assert_eq(cfg.early_join_min, 10);
    cr_assert_eq(cfg.max_frame_bytes, 16384);
    cr_assert_eq(cfg.max_conn_per_user, 10);
    cr_assert_eq(cfg.store_timeout_ms, 5000);
    cr_assert_eq(cfg.token_recheck_sec, 300);
    cr_assert_eq(cfg.maintenance_interval_sec, 3600);
    cr_assert_not_null(cfg.allowed_origins);
    cr_assert_null(cfg.allowed_origins[0]);
    cr_assert_eq(cfg.n_allowed_origins, 0);
    cr_assert_null(cfg.tls_cert);
    cr_assert_null(cfg.tls_key);
    cr_assert_null(cfg.web_root);
    cr_assert_eq(cfg.log_level, GW_LOG_NOTICE);
    cr_assert(cfg.migrate_on_start);
}

Test(config, null_envp_and_zero_argc)
{
    gw_config_fini(&cfg);
    cr_assert_eq(gw_config_load(&cfg, 0, NO_ARGS, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(cfg.command, GW_CMD_SERVE);
    cr_assert_eq(cfg.listen_port, 8080);
}

Test(config, unrelated_env_ignored)
{
    cr_assert_eq(load(ENV("PATH=/bin", "LISTENX=1", "XLISTEN=1", "NOEQUALS", "LISTEN"), NO_ARGS), 0,
                 "%s", err.msg);
    cr_assert_eq(cfg.listen_port, 8080);
}

Test(config, empty_env_counts_as_unset)
{
    char *def = NULL;
    cr_assert_eq(load(NO_ENV, NO_ARGS), 0);
    def = dump(&cfg);
    for (size_t i = 0; i < N_ROWS; i++) {
        if (strcmp(rows[i].env, "TIMER_WARNINGS") == 0 ||
            strcmp(rows[i].env, "ALLOWED_ORIGINS") == 0) {
            continue;
        }
        struct built b;
        built_init(&b);
        add_env(&b, &rows[i], "");
        char *got = load_dump(&b);
        cr_assert_str_eq(got, def, "%s= should be unset", rows[i].env);
        free(got);
        built_free(&b);
    }
    free(def);
}

Test(config, empty_timer_warnings_means_none)
{
    cr_assert_eq(load(ENV("TIMER_WARNINGS="), NO_ARGS), 0, "%s", err.msg);
    cr_assert_eq(cfg.n_timer_warnings, 0);
    cr_assert_eq(load(NO_ENV, ARGS("--timer-warnings=")), 0, "%s", err.msg);
    cr_assert_eq(cfg.n_timer_warnings, 0);
}

Test(config, empty_allowed_origins_means_any)
{
    cr_assert_eq(load(ENV("ALLOWED_ORIGINS=https://a.example"), ARGS("--allowed-origins", "")), 0,
                 "%s", err.msg);
    cr_assert_eq(cfg.n_allowed_origins, 0);
    cr_assert_not_null(cfg.allowed_origins);
    cr_assert_null(cfg.allowed_origins[0]);
}

Test(config, empty_flag_resets_to_default)
{
    cr_assert_eq(load(ENV("AI_MODEL=m"), ARGS("--ai-model=")), 0, "%s", err.msg);
    cr_assert_str_eq(cfg.ai_model, "gpt-4o-mini");
}

/* ---- every setting, A and B values ------------------------------------ */

static void check_a(const struct gw_config *c)
{
    cr_assert_str_eq(c->database_url, rows[0].a);
    cr_assert_str_eq(c->listen_host, "0.0.0.0");
    cr_assert_eq(c->listen_port, 9000);
    cr_assert_str_eq(c->jwt_secret, SECRET_MARK "-jwt-a");
    cr_assert_str_eq(c->service_key, SECRET_MARK "-svc-a");
    cr_assert_str_eq(c->livekit_api_key, "lk-key-a");
    cr_assert_str_eq(c->livekit_api_secret, SECRET_MARK "-lk-a");
    cr_assert_str_eq(c->livekit_url, "wss://lk.example.com");
    cr_assert_str_eq(c->ai_summary_url, "https://ai.example.com/v1/chat?x=1");
    cr_assert_str_eq(c->ai_api_key, SECRET_MARK "-ai-a");
    cr_assert_str_eq(c->ai_model, "model-a");
    cr_assert_eq(c->ai_timeout_ms, 1234);
    cr_assert_eq(c->ai_max_attempts, 7);
    cr_assert_eq(c->n_timer_warnings, 3);
    cr_assert_eq(c->timer_warnings_sec[0], 600, "sorted descending");
    cr_assert_eq(c->timer_warnings_sec[1], 60);
    cr_assert_eq(c->timer_warnings_sec[2], 10);
    cr_assert_eq(c->idle_end_sec, 45);
    cr_assert_eq(c->early_join_min, 0);
    cr_assert_eq(c->max_frame_bytes, 1024);
    cr_assert_eq(c->max_conn_per_user, 3);
    cr_assert_eq(c->store_timeout_ms, 100);
    cr_assert_eq(c->token_recheck_sec, 1);
    cr_assert_eq(c->maintenance_interval_sec, 1);
    cr_assert_eq(c->n_allowed_origins, 2);
    cr_assert_str_eq(c->allowed_origins[0], "https://app.example.com", "lowercased");
    cr_assert_str_eq(c->allowed_origins[1], "http://localhost:3000");
    cr_assert_null(c->allowed_origins[2]);
    cr_assert_str_eq(c->tls_cert, cert_a);
    cr_assert_str_eq(c->tls_key, key_a);
    cr_assert_str_eq(c->web_root, "/srv/a");
    cr_assert_eq(c->log_level, GW_LOG_DEBUG);
    cr_assert_not(c->migrate_on_start);
    cr_assert_eq(c->store_connections, 1);
}

static void check_b(const struct gw_config *c)
{
    cr_assert_str_eq(c->database_url, rows[0].b);
    cr_assert_str_eq(c->listen_host, "::1", "IPv6 stored without brackets");
    cr_assert_eq(c->listen_port, 8081);
    cr_assert_str_eq(c->jwt_secret, SECRET_MARK "-jwt-b");
    cr_assert_str_eq(c->service_key, SECRET_MARK "-svc-b");
    cr_assert_str_eq(c->livekit_api_key, "lk-key-b");
    cr_assert_str_eq(c->livekit_api_secret, SECRET_MARK "-lk-b");
    cr_assert_str_eq(c->livekit_url, "http://127.0.0.1:7880");
    cr_assert_str_eq(c->ai_summary_url, "http://[::1]:9999/sum");
    cr_assert_str_eq(c->ai_api_key, SECRET_MARK "-ai-b");
    cr_assert_str_eq(c->ai_model, "model-b");
    cr_assert_eq(c->ai_timeout_ms, 600000);
    cr_assert_eq(c->ai_max_attempts, 20);
    cr_assert_eq(c->n_timer_warnings, 0);
    cr_assert_eq(c->idle_end_sec, 86400);
    cr_assert_eq(c->early_join_min, 1440);
    cr_assert_eq(c->max_frame_bytes, 1048576);
    cr_assert_eq(c->max_conn_per_user, 1000);
    cr_assert_eq(c->store_timeout_ms, 250);
    cr_assert_eq(c->token_recheck_sec, 300);
    cr_assert_eq(c->maintenance_interval_sec, 86400);
    cr_assert_eq(c->n_allowed_origins, 1);
    cr_assert_str_eq(c->allowed_origins[0], "https://b.example");
    cr_assert_str_eq(c->tls_cert, cert_b);
    cr_assert_str_eq(c->tls_key, key_b);
    cr_assert_str_eq(c->web_root, "/srv/b");
    cr_assert_eq(c->log_level, GW_LOG_ERROR);
    cr_assert(c->migrate_on_start);
    cr_assert_eq(c->store_connections, 16);
}

Test(config, every_setting_from_env)
{
    struct built b;
    built_init(&b);
    for (size_t i = 0; i < N_ROWS; i++) {
        add_env(&b, &rows[i], rows[i].a);
    }
    cr_assert_eq(load_built(&b), 0, "%s", err.msg);
    check_a(&cfg);
    built_free(&b);
}

Test(config, every_setting_from_flags_space_form)
{
    struct built b;
    built_init(&b);
    for (size_t i = 0; i < N_ROWS; i++) {
        add_flag(&b, &rows[i], rows[i].a, false);
    }
    cr_assert_eq(load_built(&b), 0, "%s", err.msg);
    check_a(&cfg);
    built_free(&b);
}

Test(config, every_setting_from_flags_eq_form)
{
    struct built b;
    built_init(&b);
    for (size_t i = 0; i < N_ROWS; i++) {
        add_flag(&b, &rows[i], rows[i].b, true);
    }
    cr_assert_eq(load_built(&b), 0, "%s", err.msg);
    check_b(&cfg);
    built_free(&b);
}

Test(config, every_flag_wins_over_env)
{
    for (int eq = 0; eq < 2; eq++) {
        struct built b;
        built_init(&b);
        for (size_t i = 0; i < N_ROWS; i++) {
            add_env(&b, &rows[i], rows[i].a);
            add_flag(&b, &rows[i], rows[i].b, eq != 0);
        }
        cr_assert_eq(load_built(&b), 0, "%s", err.msg);
        check_b(&cfg);
        built_free(&b);
    }
}

/* Load row i with value v from env (mode 0), "--flag v" (1) or "--flag=v"
 * (2), plus its partners' A values from the environment. */
static char *dump_one(size_t i, const char *v, int mode)
{
    struct built b;
    built_init(&b);
    int p = rows[i].partner;
    if (p >= 0) {
        add_env(&b, &rows[p], rows[p].a);
        if (rows[p].partner >= 0 && (size_t)rows[p].partner != i) {
            add_env(&b, &rows[rows[p].partner], rows[rows[p].partner].a);
        }
    }
    if (mode == 0) {
        add_env(&b, &rows[i], v);
    } else {
        add_flag(&b, &rows[i], v, mode == 2);
    }
    char *d = load_dump(&b);
    built_free(&b);
    return d;
}

Test(config, each_setting_env_and_both_flag_forms_agree)
{
    for (size_t i = 0; i < N_ROWS; i++) {
        char *env_a = dump_one(i, rows[i].a, 0);
        char *space_a = dump_one(i, rows[i].a, 1);
        char *eq_a = dump_one(i, rows[i].a, 2);
        char *env_b = dump_one(i, rows[i].b, 0);
        cr_assert_str_eq(env_a, space_a, "%s", rows[i].flag);
        cr_assert_str_eq(env_a, eq_a, "%s", rows[i].flag);
        cr_assert_str_neq(env_a, env_b, "%s has no effect", rows[i].env);
        free(env_a);
        free(space_a);
        free(eq_a);
        free(env_b);
    }
}

Test(config, each_flag_alone_wins_over_env)
{
    for (size_t i = 0; i < N_ROWS; i++) {
        struct built want, got;
        built_init(&want);
        built_init(&got);
        for (size_t j = 0; j < N_ROWS; j++) {
            add_env(&want, &rows[j], j == i ? rows[j].b : rows[j].a);
            add_env(&got, &rows[j], rows[j].a);
        }
        add_flag(&got, &rows[i], rows[i].b, i % 2 == 0);
        char *w = load_dump(&want);
        char *g = load_dump(&got);
        cr_assert_str_eq(g, w, "%s should win over %s", rows[i].flag, rows[i].env);
        free(w);
        free(g);
        built_free(&want);
        built_free(&got);
    }
}

Test(config, last_flag_wins)
{
    cr_assert_eq(load(NO_ENV, ARGS("--listen", "127.0.0.1:1", "--listen=127.0.0.1:2")), 0);
    cr_assert_eq(cfg.listen_port, 2);
}

Test(config, first_env_definition_wins)
{
    cr_assert_eq(load(ENV("IDLE_END_SEC=7", "IDLE_END_SEC=8"), NO_ARGS), 0);
    cr_assert_eq(cfg.idle_end_sec, 7);
}

Test(config, no_migrate_flag)
{
    cr_assert_eq(load(ENV("MIGRATE_ON_START=1"), ARGS("--no-migrate")), 0, "%s", err.msg);
    cr_assert_not(cfg.migrate_on_start);
    cr_assert_eq(load(NO_ENV, ARGS("--no-migrate", "--migrate-on-start=TRUE")), 0);
    cr_assert(cfg.migrate_on_start);
    cr_assert_eq(load(ENV("MIGRATE_ON_START=false"), NO_ARGS), 0);
    cr_assert_not(cfg.migrate_on_start);
    cr_assert_eq(load(ENV("MIGRATE_ON_START=1"), NO_ARGS), 0);
    cr_assert(cfg.migrate_on_start);
    cr_assert_eq(load(NO_ENV, ARGS("--no-migrate=1")), -EINVAL);
    cr_assert(strstr(err.msg, "--no-migrate") != NULL, "%s", err.msg);
}

Test(config, value_shapes_accepted)
{
    cr_assert_eq(load(ENV("TIMER_WARNINGS= 300 , 60 ,1"), NO_ARGS), 0, "%s", err.msg);
    cr_assert_eq(cfg.n_timer_warnings, 3);
    cr_assert_eq(cfg.timer_warnings_sec[2], 1);
    cr_assert_eq(load(ENV("LISTEN=localhost:80"), NO_ARGS), 0, "%s", err.msg);
    cr_assert_str_eq(cfg.listen_host, "localhost");
    cr_assert_eq(load(ENV("DATABASE_URL=postgres://localhost"), NO_ARGS), 0, "%s", err.msg);
    cr_assert_eq(load(ENV("LIVEKIT_URL=WSS://LK.example.com:443/path", "LIVEKIT_API_KEY=k",
                          "LIVEKIT_API_SECRET=s"),
                      NO_ARGS),
                 0, "%s", err.msg);
    cr_assert_eq(load(ENV("ALLOWED_ORIGINS=http://[::1]:3000,app://x"), NO_ARGS), 0, "%s", err.msg);
    cr_assert_eq(cfg.n_allowed_origins, 2);
    cr_assert_eq(load(ENV("LOG_LEVEL=Warn"), NO_ARGS), 0, "%s", err.msg);
    cr_assert_eq(cfg.log_level, GW_LOG_WARN);
}

/* ---- limits ------------------------------------------------------------ */

struct limit {
    const char *env, *prefix;
    long long min, max;
};

static const struct limit limits[] = {
    {"LISTEN", "127.0.0.1:", 1, 65535},
    {"AI_TIMEOUT_MS", "", 1, 600000},
    {"AI_MAX_ATTEMPTS", "", 1, 20},
    {"TIMER_WARNINGS", "", 1, 86400},
    {"IDLE_END_SEC", "", 1, 86400},
    {"EARLY_JOIN_MIN", "", 0, 1440},
    {"MAX_FRAME_BYTES", "", 1024, 1048576},
    {"MAX_CONN_PER_USER", "", 1, 1000},
    {"STORE_TIMEOUT_MS", "", 100, 600000},
    {"TOKEN_RECHECK_SEC", "", 1, 300},
    {"MAINTENANCE_INTERVAL_SEC", "", 1, 86400},
    {"STORE_CONNECTIONS", "", 1, 16},
    {"STORE_QUEUE_MAX", "", 1, 1000000},
};

static int load_number(const struct limit *l, long long v)
{
    static char buf[96];
    (void)snprintf(buf, sizeof(buf), "%s=%s%lld", l->env, l->prefix, v);
    return load(ENV(buf), NO_ARGS);
}

Test(config, numbers_at_each_limit_and_beyond)
{
    for (size_t i = 0; i < N_OF(limits); i++) {
        const struct limit *l = &limits[i];
        cr_assert_eq(load_number(l, l->min), 0, "%s min: %s", l->env, err.msg);
        cr_assert_eq(load_number(l, l->max), 0, "%s max: %s", l->env, err.msg);
        cr_assert_eq(load_number(l, l->min - 1), -EINVAL, "%s min-1", l->env);
        cr_assert(strstr(err.msg, l->env) != NULL, "%s", err.msg);
        cr_assert_eq(load_number(l, l->max + 1), -EINVAL, "%s max+1", l->env);
        cr_assert(strstr(err.msg, l->env) != NULL, "%s", err.msg);
    }
    cr_assert_eq(load_number(&limits[6], 1048576), 0);
    cr_assert_eq(cfg.max_frame_bytes, 1048576);
    cr_assert_eq(load_number(&limits[0], 65535), 0);
    cr_assert_eq(cfg.listen_port, 65535);
}

Test(config, timer_warnings_count_limit)
{
    cr_assert_eq(load(ENV("TIMER_WARNINGS=8,7,6,5,4,3,2,1"), NO_ARGS), 0, "%s", err.msg);
    cr_assert_eq(cfg.n_timer_warnings, 8);
    cr_assert_eq(cfg.timer_warnings_sec[0], 8);
    cr_assert_eq(cfg.timer_warnings_sec[7], 1);
    cr_assert_eq(load(ENV("TIMER_WARNINGS=9,8,7,6,5,4,3,2,1"), NO_ARGS), -EINVAL);
    cr_assert(strstr(err.msg, "TIMER_WARNINGS") != NULL, "%s", err.msg);
}

/* ---- malformed values -------------------------------------------------- */

struct bad {
    const char *env, *flag, *value;
};

static const struct bad bads[] = {
    {"LISTEN", "--listen", "127.0.0.1:99999"},
    {"LISTEN", "--listen", "127.0.0.1:0"},
    {"LISTEN", "--listen", "127.0.0.1:65536"},
    {"LISTEN", "--listen", "127.0.0.1:80x"},
    {"LISTEN", "--listen", "127.0.0.1:abc"},
    {"LISTEN", "--listen", "127.0.0.1:-1"},
    {"LISTEN", "--listen", "127.0.0.1:+80"},
    {"LISTEN", "--listen", "127.0.0.1: 80"},
    {"LISTEN", "--listen", "127.0.0.1"},
    {"LISTEN", "--listen", "127.0.0.1:"},
    {"LISTEN", "--listen", ":8080"},
    {"LISTEN", "--listen", "::1:8080"},
    {"LISTEN", "--listen", "[::1]"},
    {"LISTEN", "--listen", "[::1]8080"},
    {"LISTEN", "--listen", "[]:8080"},
    {"LISTEN", "--listen", "[::1:8080"},
    {"LISTEN", "--listen", "bad host:8080"},
    {"AI_TIMEOUT_MS", "--ai-timeout-ms", "abc"},
    {"AI_TIMEOUT_MS", "--ai-timeout-ms", "12x"},
    {"AI_TIMEOUT_MS", "--ai-timeout-ms", " 5"},
    {"AI_TIMEOUT_MS", "--ai-timeout-ms", "1e3"},
    {"AI_TIMEOUT_MS", "--ai-timeout-ms", "99999999999999999999999"},
    {"AI_TIMEOUT_MS", "--ai-timeout-ms", "-"},
    {"AI_MAX_ATTEMPTS", "--ai-max-attempts", "x"},
    {"AI_MAX_ATTEMPTS", "--ai-max-attempts", "0x10"},
    {"IDLE_END_SEC", "--idle-end-sec", "1.5"},
    {"EARLY_JOIN_MIN", "--early-join-min", "-1"},
    {"MAX_FRAME_BYTES", "--max-frame-bytes", "16k"},
    {"MAX_CONN_PER_USER", "--max-conn-per-user", "many"},
    {"STORE_TIMEOUT_MS", "--store-timeout-ms", "5s"},
    {"MAINTENANCE_INTERVAL_SEC", "--maintenance-interval-sec", "1h"},
    {"MAINTENANCE_INTERVAL_SEC", "--maintenance-interval-sec", "0"},
    {"TIMER_WARNINGS", "--timer-warnings", "300,abc"},
    {"TIMER_WARNINGS", "--timer-warnings", "300,,60"},
    {"TIMER_WARNINGS", "--timer-warnings", "-5"},
    {"TIMER_WARNINGS", "--timer-warnings", "300,300"},
    {"TIMER_WARNINGS", "--timer-warnings", "300,"},
    {"TIMER_WARNINGS", "--timer-warnings", ",300"},
    {"TIMER_WARNINGS", "--timer-warnings", ","},
    {"TIMER_WARNINGS", "--timer-warnings", "0"},
    {"LIVEKIT_URL", "--livekit-url", "lk.example.com"},
    {"LIVEKIT_URL", "--livekit-url", "ftp://lk.example.com"},
    {"LIVEKIT_URL", "--livekit-url", "wss://"},
    {"LIVEKIT_URL", "--livekit-url", "wss:///path"},
    {"LIVEKIT_URL", "--livekit-url", "wss://lk example.com"},
    {"LIVEKIT_URL", "--livekit-url", "wss://:7880"},
    {"LIVEKIT_URL", "--livekit-url", "wss://lk.example.com:99999"},
    {"LIVEKIT_URL", "--livekit-url", "://lk.example.com"},
    {"AI_SUMMARY_URL", "--ai-summary-url", "ws://ai.example.com"},
    {"AI_SUMMARY_URL", "--ai-summary-url", "ai.example.com/v1"},
    {"AI_SUMMARY_URL", "--ai-summary-url", "https://"},
    {"AI_SUMMARY_URL", "--ai-summary-url", "https://ai.example.com/a b"},
    {"AI_SUMMARY_URL", "--ai-summary-url", "https://user@ai.example.com"},
    {"LOG_LEVEL", "--log-level", "verbose"},
    {"LOG_LEVEL", "--log-level", "warning"},
    {"ALLOWED_ORIGINS", "--allowed-origins", "https://a.example/"},
    {"ALLOWED_ORIGINS", "--allowed-origins", "https://a.example/path"},
    {"ALLOWED_ORIGINS", "--allowed-origins", "a.example"},
    {"ALLOWED_ORIGINS", "--allowed-origins", "https://"},
    {"ALLOWED_ORIGINS", "--allowed-origins", "*"},
    {"ALLOWED_ORIGINS", "--allowed-origins", "https://a.example,,https://b.example"},
    {"ALLOWED_ORIGINS", "--allowed-origins", "https://a.example,"},
    {"ALLOWED_ORIGINS", "--allowed-origins", "https://a.example:0"},
    {"ALLOWED_ORIGINS", "--allowed-origins", "https://a.example?x"},
    {"DATABASE_URL", "--database-url", SECRET_MARK "-not-a-url"},
    {"DATABASE_URL", "--database-url", "mysql://u:" SECRET_MARK "@h/db"},
    {"DATABASE_URL", "--database-url", "=" SECRET_MARK},
    {"DATABASE_URL", "--database-url", "postgres://u:" SECRET_MARK "@h/db x"},
    {"MIGRATE_ON_START", "--migrate-on-start", "yes"},
    {"MIGRATE_ON_START", "--migrate-on-start", "2"},
    {"TLS_CERT", "--tls-cert", "/nonexistent/cert.pem"},
    {"TLS_KEY", "--tls-key", "/nonexistent/key.pem"},
};

/* The secrets from the environment, to prove they never reach a message. */
#define SECRET_ENV                                                                                 \
    "JWT_SECRET=" SECRET_MARK "1", "SERVICE_KEY=" SECRET_MARK "2",                                 \
        "LIVEKIT_API_SECRET=" SECRET_MARK "3", "AI_API_KEY=" SECRET_MARK "4"

static void assert_rejected(int rc, const char *name, const char *what)
{
    cr_assert_eq(rc, -EINVAL, "%s accepted", what);
    cr_assert_eq(err.code, -EINVAL);
    cr_assert(strstr(err.msg, name) != NULL, "'%s' does not name %s", err.msg, name);
    cr_assert(strstr(err.msg, SECRET_MARK) == NULL, "secret in '%s'", err.msg);
    cr_assert(strchr(err.msg, '\n') == NULL, "not one line: '%s'", err.msg);
    cr_assert(is_zeroed(&cfg), "cfg not zeroed after error");
}

Test(config, malformed_values_rejected_from_env)
{
    for (size_t i = 0; i < N_OF(bads); i++) {
        char kv[160];
        (void)snprintf(kv, sizeof(kv), "%s=%s", bads[i].env, bads[i].value);
        assert_rejected(load(ENV(SECRET_ENV, kv), NO_ARGS), bads[i].env, kv);
    }
}

Test(config, malformed_values_rejected_from_flags)
{
    for (size_t i = 0; i < N_OF(bads); i++) {
        char kv[160];
        (void)snprintf(kv, sizeof(kv), "%s=%s", bads[i].flag, bads[i].value);
        assert_rejected(load(ENV(SECRET_ENV), ARGS(kv)), bads[i].flag, kv);
        char *v = (char *)bads[i].value;
        assert_rejected(load(ENV(SECRET_ENV), ARGS((char *)bads[i].flag, v)), bads[i].flag, kv);
    }
}

Test(config, malformed_env_overridden_by_valid_flag)
{
    cr_assert_eq(load(ENV("LISTEN=nope"), ARGS("--listen", "127.0.0.1:1")), 0, "%s", err.msg);
    cr_assert_eq(cfg.listen_port, 1);
}

Test(config, port_message_names_setting_and_value)
{
    cr_assert_eq(load(ENV("LISTEN=127.0.0.1:99999"), NO_ARGS), -EINVAL);
    cr_assert_str_eq(err.msg, "LISTEN: port must be 1..65535, got '99999'");
    cr_assert_eq(load(NO_ENV, ARGS("--listen=127.0.0.1:99999")), -EINVAL);
    cr_assert_str_eq(err.msg, "--listen: port must be 1..65535, got '99999'");
}

Test(config, long_values_are_cut_in_messages)
{
    char kv[600];
    char big[400];
    memset(big, '7', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    (void)snprintf(kv, sizeof(kv), "IDLE_END_SEC=%s\n", big);
    assert_rejected(load(ENV(kv), NO_ARGS), "IDLE_END_SEC", "long value");
    cr_assert(strlen(err.msg) < 120, "%s", err.msg);
}

Test(config, tls_needs_both)
{
    char kv[96];
    (void)snprintf(kv, sizeof(kv), "TLS_CERT=%s", cert_a);
    assert_rejected(load(ENV(kv), NO_ARGS), "TLS_CERT", "cert alone");
    cr_assert(strstr(err.msg, "TLS_KEY") != NULL, "%s", err.msg);
    (void)snprintf(kv, sizeof(kv), "--tls-key=%s", key_a);
    assert_rejected(load(NO_ENV, ARGS(kv)), "--tls-key", "key alone");
    cr_assert(strstr(err.msg, "TLS_CERT") != NULL, "%s", err.msg);
}

Test(config, tls_files_must_be_regular_and_readable)
{
    char cert[96], key[96];
    (void)snprintf(cert, sizeof(cert), "TLS_CERT=%s", dir_path);
    (void)snprintf(key, sizeof(key), "TLS_KEY=%s", key_a);
    assert_rejected(load(ENV(cert, key), NO_ARGS), "TLS_CERT", "directory as cert");
    (void)snprintf(cert, sizeof(cert), "TLS_CERT=%s", cert_a);
    (void)snprintf(key, sizeof(key), "TLS_KEY=%s/missing.pem", dir_path);
    assert_rejected(load(ENV(cert, key), NO_ARGS), "TLS_KEY", "missing key");
}

Test(config, secrets_never_in_messages)
{
    /* Unknown flags written with '=' show only the name. */
    assert_rejected(load(NO_ENV, ARGS("--jwt-secrt=" SECRET_MARK)), "--jwt-secrt", "typo");
    /* URLs are never quoted: a key may sit in the query. */
    assert_rejected(load(NO_ENV, ARGS("--ai-summary-url=https://a.example/?key=" SECRET_MARK " x")),
                    "--ai-summary-url", "url");
    assert_rejected(load(ENV("LIVEKIT_URL=ftp://" SECRET_MARK "@h"), NO_ARGS), "LIVEKIT_URL",
                    "url");
}

/* ---- commands ---------------------------------------------------------- */

Test(config, commands)
{
    cr_assert_eq(load(NO_ENV, ARGS("serve")), 0);
    cr_assert_eq(cfg.command, GW_CMD_SERVE);
    cr_assert_eq(load(NO_ENV, ARGS("migrate")), 0);
    cr_assert_eq(cfg.command, GW_CMD_MIGRATE);
    cr_assert_eq(load(NO_ENV, ARGS("--listen", "127.0.0.1:1", "migrate", "--no-migrate")), 0);
    cr_assert_eq(cfg.command, GW_CMD_MIGRATE);
    cr_assert_eq(cfg.listen_port, 1);
    cr_assert_eq(load(NO_ENV, ARGS("--help")), 0);
    cr_assert_eq(cfg.command, GW_CMD_HELP);
    cr_assert_eq(load(NO_ENV, ARGS("-h")), 0);
    cr_assert_eq(cfg.command, GW_CMD_HELP);
    cr_assert_eq(load(NO_ENV, ARGS("--version")), 0);
    cr_assert_eq(cfg.command, GW_CMD_VERSION);
    cr_assert_eq(load(NO_ENV, ARGS("migrate", "--help")), 0);
    cr_assert_eq(cfg.command, GW_CMD_HELP);
    cr_assert_eq(load(NO_ENV, ARGS("serve", "--version", "extra")), 0);
    cr_assert_eq(cfg.command, GW_CMD_VERSION);
}

Test(config, help_and_version_ignore_bad_environment)
{
    cr_assert_eq(load(ENV("LISTEN=bad", "TLS_CERT=/nonexistent"), ARGS("--help")), 0, "%s",
                 err.msg);
    cr_assert_eq(cfg.command, GW_CMD_HELP);
    cr_assert_str_eq(cfg.listen_host, "127.0.0.1");
    cr_assert_eq(load(ENV("LOG_LEVEL=loud"), ARGS("--version")), 0, "%s", err.msg);
    cr_assert_eq(cfg.command, GW_CMD_VERSION);
}

Test(config, bad_arguments_rejected)
{
    assert_rejected(load(NO_ENV, ARGS("bogus")), "bogus", "unknown command");
    assert_rejected(load(NO_ENV, ARGS("-")), "'-'", "unknown command");
    assert_rejected(load(NO_ENV, ARGS("serve", "migrate")), "migrate", "extra argument");
    assert_rejected(load(NO_ENV, ARGS("migrate", "x")), "'x'", "extra argument");
    assert_rejected(load(NO_ENV, ARGS("--nope")), "--nope", "unknown flag");
    assert_rejected(load(NO_ENV, ARGS("--nope=1")), "--nope", "unknown flag");
    assert_rejected(load(NO_ENV, ARGS("-x")), "-x", "unknown short flag");
    assert_rejected(load(NO_ENV, ARGS("--")), "--", "bare --");
    assert_rejected(load(NO_ENV, ARGS("--LISTEN=127.0.0.1:1")), "--LISTEN", "case");
    assert_rejected(load(NO_ENV, ARGS("--help=yes")), "--help", "value on --help");
    assert_rejected(load(NO_ENV, ARGS("--version=1")), "--version", "value on --version");
    assert_rejected(load(NO_ENV, ARGS("--bogus", "--help")), "--bogus", "before --help");
    for (size_t i = 0; i < N_ROWS; i++) {
        assert_rejected(load(NO_ENV, ARGS((char *)rows[i].flag)), rows[i].flag, "missing value");
        cr_assert(strstr(err.msg, "missing value") != NULL, "%s", err.msg);
    }
}

/* ---- help -------------------------------------------------------------- */

static char *help_text(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert(f != NULL);
    gw_config_print_help(f);
    (void)fclose(f);
    return buf;
}

Test(config, help_lists_every_setting_flag_and_default)
{
    char *h = help_text();
    for (size_t i = 0; i < N_ROWS; i++) {
        cr_assert(strstr(h, rows[i].env) != NULL, "help lacks %s", rows[i].env);
        cr_assert(strstr(h, rows[i].flag) != NULL, "help lacks %s", rows[i].flag);
        /* The default sits on the same line as the flag. */
        const char *line = strstr(h, rows[i].flag);
        size_t line_len = strcspn(line, "\n");
        if (rows[i].def != NULL) {
            char *l = strndup(line, line_len);
            cr_assert(strstr(l, rows[i].def) != NULL, "%s default %s missing: %s", rows[i].env,
                      rows[i].def, l);
            free(l);
        }
    }
    const char *more[] = {"--no-migrate", "--help", "-h", "--version", "serve", "migrate"};
    for (size_t i = 0; i < N_OF(more); i++) {
        cr_assert(strstr(h, more[i]) != NULL, "help lacks %s", more[i]);
    }
    size_t col = 0;
    for (const char *p = h; *p != '\0'; p++) {
        col = *p == '\n' ? 0 : col + 1;
        cr_assert(col <= 100, "help line longer than 100 columns");
    }
    free(h);
}

Test(config, help_defaults_match_loaded_defaults)
{
    cr_assert_eq(load(NO_ENV, NO_ARGS), 0);
    char *def = dump(&cfg);
    for (size_t i = 0; i < N_ROWS; i++) {
        if (rows[i].def == NULL) {
            continue;
        }
        struct built b;
        built_init(&b);
        add_env(&b, &rows[i], rows[i].def);
        char *got = load_dump(&b);
        cr_assert_str_eq(got, def, "%s=%s differs from the default", rows[i].env, rows[i].def);
        free(got);
        built_free(&b);
    }
    free(def);
}

/* ---- fini -------------------------------------------------------------- */

Test(config, fini_is_idempotent_and_null_safe)
{
    struct built b;
    built_init(&b);
    for (size_t i = 0; i < N_ROWS; i++) {
        add_env(&b, &rows[i], rows[i].a);
    }
    cr_assert_eq(load_built(&b), 0, "%s", err.msg);
    gw_config_fini(&cfg);
    cr_assert(is_zeroed(&cfg));
    gw_config_fini(&cfg);
    gw_config_fini(NULL);
    built_free(&b);
}

Test(config, livekit_key_and_secret_come_together)
{
    cr_assert_eq(load(ENV("LIVEKIT_API_KEY=k"), NO_ARGS), -EINVAL);
    cr_expect(strstr(err.msg, "LIVEKIT_API_KEY: requires LIVEKIT_API_SECRET") != NULL, "%s",
              err.msg);
    cr_assert_eq(load(ENV("LIVEKIT_API_SECRET=s"), NO_ARGS), -EINVAL);
    cr_expect(strstr(err.msg, "requires LIVEKIT_API_KEY") != NULL, "%s", err.msg);
    cr_assert_eq(load(ENV("LIVEKIT_URL=wss://lk.example.com"), NO_ARGS), -EINVAL);
    cr_expect(strstr(err.msg, "LIVEKIT_URL: requires") != NULL, "%s", err.msg);
    cr_assert_eq(load(ENV("LIVEKIT_API_KEY=k", "LIVEKIT_API_SECRET=s", "LIVEKIT_URL=ws://h:7880"),
                      NO_ARGS),
                 0, "%s", err.msg);
}

Test(config, node_settings)
{
    cr_assert_eq(load(ENV("X=1"), NO_ARGS), 0, "%s", err.msg);
    cr_expect_eq(cfg.node_heartbeat_sec, 2);
    cr_expect_eq(cfg.room_lease_sec, 6);
    cr_assert_not_null(cfg.node_id, "serve names the node");
    char want[96];
    snprintf(want, sizeof want, "-%ld", (long)getpid());
    cr_expect(strstr(cfg.node_id, want) != NULL, "host name and pid: %s", cfg.node_id);
    cr_assert_eq(load(ENV("NODE_ID=gw-1.eu:a_b"), NO_ARGS), 0, "%s", err.msg);
    cr_expect_str_eq(cfg.node_id, "gw-1.eu:a_b");
    cr_expect_eq(load(ENV("NODE_ID=has space"), NO_ARGS), -EINVAL);
    cr_expect(strstr(err.msg, "NODE_ID") != NULL, "%s", err.msg);
    cr_expect_eq(load(ENV("NODE_ID=semi;colon"), NO_ARGS), -EINVAL);
    /* the lease outlives two heartbeats */
    cr_expect_eq(load(ENV("NODE_HEARTBEAT_SEC=5", "ROOM_LEASE_SEC=9"), NO_ARGS), -EINVAL);
    cr_expect(strstr(err.msg, "ROOM_LEASE_SEC: must be at least twice NODE_HEARTBEAT_SEC") != NULL,
              "%s", err.msg);
    cr_expect_eq(load(ENV("NODE_HEARTBEAT_SEC=5", "ROOM_LEASE_SEC=10"), NO_ARGS), 0, "%s",
                 err.msg);
    cr_expect_eq(load(ENV("NODE_HEARTBEAT_SEC=0"), NO_ARGS), -EINVAL);
    cr_expect_eq(load(ENV("ROOM_LEASE_SEC=601"), NO_ARGS), -EINVAL);
}

Test(config, keepalive_settings)
{
    cr_assert_eq(load(ENV("X=1"), NO_ARGS), 0, "%s", err.msg);
    cr_expect_eq(cfg.ws_ping_sec, 25);
    cr_expect_eq(cfg.ws_idle_sec, 60);
    cr_assert_eq(load(ENV("WS_PING_SEC=1", "WS_IDLE_SEC=3"), NO_ARGS), 0, "%s", err.msg);
    cr_expect_eq(cfg.ws_ping_sec, 1);
    cr_expect_eq(cfg.ws_idle_sec, 3);
    /* a connection is pinged before it is dropped */
    cr_expect_eq(load(ENV("WS_PING_SEC=30", "WS_IDLE_SEC=30"), NO_ARGS), -EINVAL);
    cr_expect(strstr(err.msg, "WS_IDLE_SEC: must be more than WS_PING_SEC (30)") != NULL, "%s",
              err.msg);
    cr_expect_eq(load(ENV("WS_PING_SEC=0"), NO_ARGS), -EINVAL);
    cr_expect(strstr(err.msg, "WS_PING_SEC") != NULL, "%s", err.msg);
    cr_expect_eq(load(ENV("WS_IDLE_SEC=7201"), NO_ARGS), -EINVAL);
    cr_expect_eq(load(ENV("WS_PING_SEC=abc"), NO_ARGS), -EINVAL);
}

Test(config, store_queue_max)
{
    cr_assert_eq(load(ENV("X=1"), NO_ARGS), 0, "%s", err.msg);
    cr_expect_eq(cfg.store_queue_max, 4096);
    cr_assert_eq(load(ENV("STORE_QUEUE_MAX=8"), NO_ARGS), 0, "%s", err.msg);
    cr_expect_eq(cfg.store_queue_max, 8);
    cr_expect_eq(load(ENV("STORE_QUEUE_MAX=0"), NO_ARGS), -EINVAL);
    cr_expect(strstr(err.msg, "STORE_QUEUE_MAX") != NULL, "%s", err.msg);
    cr_expect_eq(load(ENV("STORE_QUEUE_MAX=lots"), NO_ARGS), -EINVAL);
}
