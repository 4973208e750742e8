/*
 * pgtest.c: PostgreSQL helpers for the integration tests (see pgtest.h):
 * where the test server is, per-test databases, and one-shot statements.
 *
 * Each helper opens its own short-lived connection; tests are not
 * performance-critical and this keeps every call independent. Notices are
 * silenced so that IF NOT EXISTS chatter does not clutter test output.
 */
#include "pgtest.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sodium.h>

#define CONNINFO_MAX         1024
#define TEMPLATE_BUSY_STATE  "55006" /* object_in_use: someone is connected to the template */
#define TEMPLATE_RETRY_MS    100
#define TEMPLATE_DEADLINE_MS 30000

static char admin_conninfo[CONNINFO_MAX];
static int admin_ok;
static pthread_once_t admin_once = PTHREAD_ONCE_INIT;
static atomic_uint db_counter;

static void trim_trailing_space(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) {
        s[--n] = '\0';
    }
}

static void load_admin_conninfo(void)
{
    /* NOLINTNEXTLINE(concurrency-mt-unsafe): called once, under pthread_once */
    const char *env = getenv("COACH_TEST_PG");
    if (env != NULL && env[0] != '\0') {
        if ((size_t)snprintf(admin_conninfo, sizeof admin_conninfo, "%s", env) >=
            sizeof admin_conninfo) {
            (void)fprintf(stderr, "pgtest: COACH_TEST_PG is too long\n");
            return;
        }
        admin_ok = 1;
        return;
    }
    /* NOLINTNEXTLINE(concurrency-mt-unsafe): as above */
    const char *path = getenv("COACH_TEST_PG_FILE");
    if (path == NULL || path[0] == '\0') {
        (void)fprintf(stderr, "pgtest: neither COACH_TEST_PG nor COACH_TEST_PG_FILE is set "
                              "(run through ctest, or set COACH_TEST_PG)\n");
        return;
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        (void)fprintf(stderr, "pgtest: cannot open COACH_TEST_PG_FILE %s (errno %d)\n", path,
                      errno);
        return;
    }
    size_t n = fread(admin_conninfo, 1, sizeof admin_conninfo - 1, f);
    (void)fclose(f);
    admin_conninfo[n] = '\0';
    trim_trailing_space(admin_conninfo);
    if (n == sizeof admin_conninfo - 1 || admin_conninfo[0] == '\0') {
        (void)fprintf(stderr, "pgtest: %s is empty or too long\n", path);
        return;
    }
    admin_ok = 1;
}

const char *pgtest_admin_conninfo(void)
{
    pthread_once(&admin_once, load_admin_conninfo);
    return admin_ok ? admin_conninfo : NULL;
}

/* Append " key='value'" to out, escaping ' and \ as libpq wants. */
static int append_option(char *out, size_t cap, size_t *len, const char *key, const char *val)
{
    int n = snprintf(out + *len, cap - *len, "%s%s='", *len > 0 ? " " : "", key);
    if (n < 0 || (size_t)n >= cap - *len) {
        return -1;
    }
    *len += (size_t)n;
    for (const char *p = val; *p != '\0'; p++) {
        if (*len + 3 >= cap) {
            return -1;
        }
        if (*p == '\'' || *p == '\\') {
            out[(*len)++] = '\\';
        }
        out[(*len)++] = *p;
    }
    if (*len + 2 > cap) {
        return -1;
    }
    out[(*len)++] = '\'';
    out[*len] = '\0';
    return 0;
}

/* A conninfo for dbname on the server of admin into out. 0 or -1. */
static int conninfo_on(const char *admin, const char *dbname, char *out, size_t cap)
{
    if (admin == NULL || cap == 0) {
        return -1;
    }
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(admin, &perr);
    if (opts == NULL) {
        (void)fprintf(stderr, "pgtest: cannot parse the test conninfo: %s",
                      perr ? perr : "no memory\n");
        PQfreemem(perr);
        return -1;
    }
    size_t len = 0;
    int rc = 0;
    out[0] = '\0';
    for (PQconninfoOption *o = opts; rc == 0 && o->keyword != NULL; o++) {
        if (o->val != NULL && o->val[0] != '\0' && strcmp(o->keyword, "dbname") != 0) {
            rc = append_option(out, cap, &len, o->keyword, o->val);
        }
    }
    if (rc == 0) {
        rc = append_option(out, cap, &len, "dbname", dbname);
    }
    PQconninfoFree(opts);
    if (rc != 0) {
        (void)fprintf(stderr, "pgtest: conninfo for %s does not fit in %zu bytes\n", dbname, cap);
    }
    return rc;
}

int pgtest_conninfo_for(const char *dbname, char *out, size_t cap)
{
    return conninfo_on(pgtest_admin_conninfo(), dbname, out, cap);
}

int pgtest_db_on(const char *admin, const char *dbname, char *out, size_t cap)
{
    char sql[160];
    (void)snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\"", dbname);
    if (strpbrk(dbname, "\"\\") != NULL || pgtest_exec(admin, sql) != 0) {
        return -1;
    }
    return conninfo_on(admin, dbname, out, cap);
}

const char pgtest_seed_room1[] =
    "INSERT INTO \"User\"(id,email,\"displayName\",role,\"updatedAt\") VALUES"
    " ('" PGTEST_COACH "','coach@t','Dana Coach','coach',now()),"
    " ('" PGTEST_CLIENT "','client@t','Sam Client','client',now());"
    "INSERT INTO \"Appointment\"(id,\"scheduledFor\",\"durationMin\",\"clientId\",\"coachId\","
    "\"roomId\",status) VALUES"
    " ('cappt1',now() at time zone 'UTC',20,'" PGTEST_CLIENT "','" PGTEST_COACH
    "','room-1','scheduled');";

static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static PGconn *connect_quiet(const char *conninfo)
{
    if (conninfo == NULL) {
        return NULL;
    }
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        (void)fprintf(stderr, "pgtest: cannot connect: %s",
                      conn ? PQerrorMessage(conn) : "no memory\n");
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, quiet_notice, NULL);
    return conn;
}

/* Run sql on conn; 0, -1, or -2 when it failed with SQLSTATE busy_state. */
static int exec_on(PGconn *conn, const char *sql, const char *busy_state)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (busy_state != NULL && state != NULL && strcmp(state, busy_state) == 0) {
            rc = -2;
        } else {
            (void)fprintf(stderr, "pgtest: %.80s: %s", sql, PQerrorMessage(conn));
            rc = -1;
        }
    }
    PQclear(res);
    return rc;
}

int pgtest_exec(const char *conninfo, const char *sql)
{
    PGconn *conn = connect_quiet(conninfo);
    if (conn == NULL) {
        return -1;
    }
    int rc = exec_on(conn, sql, NULL);
    PQfinish(conn);
    return rc;
}

char *pgtest_query_value(const char *conninfo, const char *sql)
{
    PGconn *conn = connect_quiet(conninfo);
    if (conn == NULL) {
        return NULL;
    }
    char *value = NULL;
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        (void)fprintf(stderr, "pgtest: %.80s: %s", sql, PQerrorMessage(conn));
    } else if (PQntuples(res) > 0 && PQnfields(res) > 0 && !PQgetisnull(res, 0, 0)) {
        value = strdup(PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    PQfinish(conn);
    return value;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* "CREATE DATABASE <name> TEMPLATE <template>", the names quoted by libpq.
 * Database names cannot be parameters, hence the escaping. */
static int build_create_sql(PGconn *conn, const char *name, const char *template, char *out,
                            size_t cap)
{
    char *qname = PQescapeIdentifier(conn, name, strlen(name));
    char *qtemplate = PQescapeIdentifier(conn, template, strlen(template));
    int rc = -1;
    if (qname != NULL && qtemplate != NULL) {
        int n = snprintf(out, cap, "CREATE DATABASE %s TEMPLATE %s", qname, qtemplate);
        rc = n > 0 && (size_t)n < cap ? 0 : -1;
    }
    PQfreemem(qname);
    PQfreemem(qtemplate);
    return rc;
}

int pgtest_db_create(int migrated, char *dbname, size_t dbname_cap, char *conninfo,
                     size_t conninfo_cap)
{
    if (sodium_init() < 0) {
        (void)fprintf(stderr, "pgtest: sodium_init failed\n");
        return -1;
    }
    unsigned n = atomic_fetch_add(&db_counter, 1u);
    int len = snprintf(dbname, dbname_cap, "coach_t%ld_%u_%08x", (long)getpid(), n,
                       (unsigned)randombytes_random());
    if (len < 0 || (size_t)len >= dbname_cap) {
        (void)fprintf(stderr, "pgtest: dbname buffer too small\n");
        return -1;
    }
    if (pgtest_conninfo_for(dbname, conninfo, conninfo_cap) != 0) {
        return -1;
    }
    PGconn *conn = connect_quiet(pgtest_admin_conninfo());
    if (conn == NULL) {
        return -1;
    }
    char sql[256];
    int rc = build_create_sql(conn, dbname, migrated ? PGTEST_TEMPLATE_DB : "template0", sql,
                              sizeof sql);
    if (rc != 0) {
        (void)fprintf(stderr, "pgtest: cannot build CREATE DATABASE for %s\n", dbname);
    }
    /* Cloning fails while anyone is connected to the template: retry. */
    for (int waited_ms = 0; rc == 0;) {
        rc = exec_on(conn, sql, TEMPLATE_BUSY_STATE);
        if (rc != -2) {
            break;
        }
        if (waited_ms >= TEMPLATE_DEADLINE_MS) {
            (void)fprintf(stderr, "pgtest: %s stayed busy for %d ms\n", PGTEST_TEMPLATE_DB,
                          waited_ms);
            rc = -1;
            break;
        }
        sleep_ms(TEMPLATE_RETRY_MS);
        waited_ms += TEMPLATE_RETRY_MS;
        rc = 0;
    }
    PQfinish(conn);
    return rc == 0 ? 0 : -1;
}

int pgtest_db_drop(const char *dbname)
{
    PGconn *conn = connect_quiet(pgtest_admin_conninfo());
    if (conn == NULL) {
        return -1;
    }
    char sql[256];
    int rc = -1;
    char *qname = PQescapeIdentifier(conn, dbname, strlen(dbname));
    if (qname != NULL) {
        int n = snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", qname);
        rc = n > 0 && (size_t)n < sizeof sql ? exec_on(conn, sql, NULL) : -1;
    }
    PQfreemem(qname);
    PQfinish(conn);
    return rc;
}
