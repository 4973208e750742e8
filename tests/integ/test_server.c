/*
 * test_server.c: the real coach-gateway binary against a real PostgreSQL:
 * health and readiness across a database outage, drain on SIGTERM, and the
 * start-up errors a person sees (bad settings, port in use, no database),
 * and the open-files limit it raises for itself.
 */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gwproc.h"
#include "pgtest.h"

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Poll path until it answers `want` or the deadline passes. */
static int wait_status(int port, const char *path, long want, long long within_ms)
{
    long long deadline = mono_ms() + within_ms;
    long status = 0;
    char body[256];
    while (mono_ms() < deadline) {
        if (http_get(port, path, &status, body, sizeof(body)) == 0 && status == want) {
            return 0;
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return -1;
}

static void replace_dbname(char *conninfo, size_t cap, const char *base, const char *db)
{
    const char *p = strstr(base, "dbname=");
    cr_assert_not_null(p, "conninfo has a dbname");
    snprintf(conninfo, cap, "%.*sdbname=%s%s", (int)(p - base), base, db, p + strcspn(p, " "));
}

Test(server, readiness_follows_the_database, .timeout = 120)
{
    struct pgserver pg = {0};
    cr_assert_eq(pgserver_start(&pg), 0);
    cr_assert_eq(pgtest_exec(pg.conninfo, "CREATE DATABASE coach"), 0);
    char db[512], env_db[600];
    replace_dbname(db, sizeof(db), pg.conninfo, "coach");
    /* trust auth ignores the password: it is here to prove it is never logged */
    snprintf(env_db, sizeof(env_db), "DATABASE_URL=%s password=sekrit-pw", db);
    const char *env[] = {env_db, "STORE_TIMEOUT_MS=1000", "LOG_LEVEL=info", NULL};
    struct gwproc gp = {0};
    cr_assert_eq(gwproc_start(&gp, env, NULL), 0, "gateway starts");

    long status = 0;
    char body[256];
    cr_assert_eq(http_get(gp.port, "/healthz", &status, body, sizeof(body)), 0);
    cr_expect_eq(status, 200);
    cr_expect_str_eq(body, "{\"status\":\"ok\"}");
    cr_expect_eq(wait_status(gp.port, "/readyz", 200, 10000), 0, "ready after migrate");
    cr_assert_eq(http_get(gp.port, "/nope", &status, body, sizeof(body)), 0);
    cr_expect_eq(status, 404);
    cr_expect(strstr(body, "\"not_found\"") != NULL, "JSON error body: %s", body);

    cr_assert_eq(pgserver_stop(&pg), 0);
    cr_expect_eq(wait_status(gp.port, "/readyz", 503, 10000), 0, "503 while PostgreSQL is down");
    cr_assert_eq(http_get(gp.port, "/healthz", &status, body, sizeof(body)), 0);
    cr_expect_eq(status, 200, "the process still serves");

    cr_assert_eq(pgserver_start(&pg), 0);
    cr_expect_eq(wait_status(gp.port, "/readyz", 200, 20000), 0, "ready again, no restart");

    cr_expect_eq(gwproc_stop(&gp, SIGTERM), 0, "SIGTERM drains and exits 0");
    char *log = gwproc_log(&gp);
    cr_assert_not_null(log);
    cr_expect(strstr(log, "gw.stopped") != NULL, "log: %s", log);
    cr_expect(strstr(log, "store.disconnected") != NULL || strstr(log, "store.connect_failed"),
              "the outage is logged: %s", log);
    cr_expect(strstr(log, "sekrit") == NULL, "no secret in the log");
    free(log);
    unlink(gp.log_path);
    pgserver_destroy(&pg);
}

static void expect_start_error(const char *const env[], const char *const args[], int code,
                               const char *needle)
{
    struct gwproc gp = {0};
    int rc = gwproc_run(&gp, env, args);
    char *log = gwproc_log(&gp);
    cr_assert_not_null(log);
    cr_expect_eq(rc, code, "exit %d, want %d: %s", rc, code, log);
    cr_expect(strstr(log, needle) != NULL, "'%s' in: %s", needle, log);
    cr_expect(strchr(log, '\n') == strrchr(log, '\n'), "one line: %s", log);
    free(log);
    unlink(gp.log_path);
}

Test(server, malformed_settings_stop_startup)
{
    const char *db = "DATABASE_URL=postgresql://u:pw@127.0.0.1:1/x";
    const char *e1[] = {db, "LISTEN=127.0.0.1:99999", NULL};
    expect_start_error(e1, NULL, 2, "LISTEN");
    const char *e2[] = {db, "STORE_TIMEOUT_MS=soon", NULL};
    expect_start_error(e2, NULL, 2, "STORE_TIMEOUT_MS");
    const char *e3[] = {db, "TIMER_WARNINGS=300,abc", NULL};
    expect_start_error(e3, NULL, 2, "TIMER_WARNINGS");
    const char *e4[] = {db, "AI_SUMMARY_URL=not a url", NULL};
    expect_start_error(e4, NULL, 2, "AI_SUMMARY_URL");
    const char *a5[] = {"--max-frame-bytes", "lots", NULL};
    expect_start_error(NULL, a5, 2, "--max-frame-bytes");
}

Test(server, no_database_url_is_a_clear_error)
{
    const char *env[] = {"DATABASE_URL=", NULL};
    expect_start_error(env, NULL, 2, "DATABASE_URL");
}

Test(server, port_in_use_is_a_clear_error)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(fd, 1), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char listen_arg[64];
    snprintf(listen_arg, sizeof(listen_arg), "127.0.0.1:%d", ntohs(a.sin_port));
    const char *env[] = {"DATABASE_URL=postgresql://127.0.0.1:1/x", NULL};
    const char *args[] = {"serve", "--no-migrate", "--listen", listen_arg, NULL};
    expect_start_error(env, args, 1, "in use");
    close(fd);
}

Test(server, migrate_command_is_idempotent, .timeout = 120)
{
    char name[64], conninfo[512], env_db[600];
    cr_assert_eq(pgtest_db_create(0, name, sizeof(name), conninfo, sizeof(conninfo)), 0);
    snprintf(env_db, sizeof(env_db), "DATABASE_URL=%s", conninfo);
    const char *env[] = {env_db, NULL};
    const char *args[] = {"migrate", NULL};
    struct gwproc gp = {0};
    cr_expect_eq(gwproc_run(&gp, env, args), 0, "first migrate");
    char *log = gwproc_log(&gp);
    cr_expect(log != NULL && strstr(log, "baseline_created=1") != NULL, "log: %s", log);
    free(log);
    cr_expect_eq(gwproc_run(&gp, env, args), 0, "second migrate");
    log = gwproc_log(&gp);
    cr_expect(log != NULL && strstr(log, "applied=0") != NULL, "log: %s", log);
    free(log);
    unlink(gp.log_path);
    pgtest_db_drop(name);
}

/* The soft open-files limit of a running process, from /proc/<pid>/limits. */
static long long soft_nofile_of(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    long long soft = -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "Max open files", 14) == 0) {
            soft = strtoll(line + 14, NULL, 10);
        }
    }
    fclose(f);
    return soft;
}

/* Started with a soft limit far below the hard one (as a service manager
 * leaves it), serve raises it to the hard limit before lws sizes its
 * tables, and says so. */
Test(server, serve_raises_the_open_files_limit, .timeout = 60)
{
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    cr_assert(rl.rlim_max > 256, "hard limit %llu", (unsigned long long)rl.rlim_max);
    rlim_t hard = rl.rlim_max;
    rl.rlim_cur = 256; /* inherited by the gateway */
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    /* the database need not answer for this: the gateway serves without it */
    const char *env[] = {"DATABASE_URL=postgresql://127.0.0.1:1/x", "MIGRATE_ON_START=0",
                         "LOG_LEVEL=notice", "STORE_TIMEOUT_MS=1000", NULL};
    struct gwproc gp = {0};
    cr_assert_eq(gwproc_start(&gp, env, NULL), 0, "gateway starts");
    long long soft = soft_nofile_of(gp.pid);
    cr_expect_eq(soft, hard < 10000000 ? (long long)hard : 10000000LL, "soft limit %lld", soft);
    cr_expect_eq(gwproc_stop(&gp, SIGTERM), 0);
    char *log = gwproc_log(&gp);
    cr_assert_not_null(log);
    cr_expect(strstr(log, "gw.nofile") != NULL && strstr(log, "was=256") != NULL, "log: %s", log);
    free(log);
    unlink(gp.log_path);
}

/* The local address of the socket listening on port, as /proc/net/tcp
 * (IPv4: "0100007F" for 127.0.0.1) or /proc/net/tcp6 writes it; "" when
 * none listens there. */
static void listen_addr(const char *table, int port, char *out, size_t cap)
{
    out[0] = '\0';
    FILE *f = fopen(table, "r");
    cr_assert_not_null(f, "%s", table);
    char line[512], addr[64];
    unsigned lport = 0, st = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, " %*d: %63[0-9A-F]:%X %*[0-9A-F]:%*X %X", addr, &lport, &st) == 3 &&
            (int)lport == port && st == 0x0A) {
            snprintf(out, cap, "%s", addr);
        }
    }
    fclose(f);
}

/* LISTEN=127.0.0.1:port listens there only: not on [::] (every interface,
 * IPv4 too through the dual stack), which lws 4.1 does when left to make
 * an IPv6 socket for an IPv4 address. */
Test(server, listen_binds_only_the_address_given, .timeout = 60)
{
    const char *env[] = {"DATABASE_URL=postgresql://127.0.0.1:1/x", "MIGRATE_ON_START=0",
                         "STORE_TIMEOUT_MS=1000", NULL};
    struct gwproc gp = {0};
    cr_assert_eq(gwproc_start(&gp, env, NULL), 0, "gateway starts");
    char v4[64], v6[64];
    listen_addr("/proc/net/tcp", gp.port, v4, sizeof(v4));
    listen_addr("/proc/net/tcp6", gp.port, v6, sizeof(v6));
    cr_expect_str_eq(v4, "0100007F", "listening on 127.0.0.1");
    cr_expect_str_eq(v6, "", "no IPv6 socket on that port: %s", v6);
    cr_expect_eq(gwproc_stop(&gp, SIGTERM), 0);
    unlink(gp.log_path);
}
