/*
 * migrate.c: store_migrate(), which brings a database up to the schema the
 * gateway needs.
 *
 * DESIGN
 * One call, on one connection of its own:
 *  1. Connect (a malformed conninfo is -EINVAL, an unreachable server
 *     STORE_E_UNAVAILABLE; messages never quote the conninfo). Server notices
 *     are swallowed: the store never prints.
 *  2. Take the session-level advisory lock MIGRATE_LOCK_KEY with
 *     pg_try_advisory_lock, polled every LOCK_POLL_MS for at most
 *     LOCK_WAIT_S. Not pg_advisory_lock: a backend blocked inside it holds
 *     a snapshot, and CREATE INDEX CONCURRENTLY in the lock holder waits for
 *     every older snapshot of the database, so the two would deadlock.
 *     Between polls the waiting session is idle and holds nothing.
 *  3. Look at the application's tables (the Prisma models of
 *     prisma-baseline.sql) on the search_path: none of them, and no
 *     "_prisma_migrations" either, means an empty database and the baseline
 *     is created in one transaction (never a row in "_prisma_migrations");
 *     all of them means the application's database, left alone; anything
 *     else is refused with STORE_E_SCHEMA.
 *  4. Create coach_schema_migrations if missing and apply, in version
 *     order, every compiled-in migration it does not record. A migration
 *     runs in one transaction together with its row, unless its first line
 *     is NO_TX_MARK: then it runs statement by statement in autocommit mode
 *     (CREATE INDEX CONCURRENTLY cannot run in a transaction), every
 *     statement must be idempotent, and its row is written only after all
 *     of them succeeded, so an interrupted run is simply run again.
 *     CREATE INDEX CONCURRENTLY IF NOT EXISTS would skip an INVALID index
 *     left by an interrupted build; the runner drops such a leftover first.
 *  5. Disconnect, which also releases the advisory lock.
 * Values only ever travel as PQexecParams parameters; the SQL text is
 * static and compiled in (migrate_int.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "migrate_int.h"
#include "store.h"

#define MIGRATE_LOCK_KEY "7165052611750489447" /* "coach_mg" as a big-endian int64 */
#define LOCK_POLL_MS     75
#define LOCK_WAIT_S      300
#define CONNECT_TIMEOUT  "10" /* seconds, unless the conninfo says otherwise */
#define NO_TX_MARK       "-- coach:no-transaction"
#define INDEX_NAME_MAX   63 /* NAMEDATALEN - 1 */

/* The application's tables; "_prisma_migrations" is looked at apart. */
static const char *const app_tables[] = {
    "User",          "Profile",     "Appointment",        "Session",
    "SessionRating", "Message",     "SkoolMonitoringLog", "MembershipStatusHistory",
    "AuthCode",      "UserSession", "RateLimit",
};
#define N_APP_TABLES (sizeof app_tables / sizeof app_tables[0])
#define PRISMA_TABLE "_prisma_migrations"

/* Which of the tables named in $1 resolve on the search_path, the way the
 * gateway's and the migrations' unqualified names do. */
static const char tables_present_sql[] =
    "SELECT c.relname FROM pg_catalog.unnest($1::text[]) AS t(name)"
    " JOIN pg_catalog.pg_class c"
    "  ON c.oid = pg_catalog.to_regclass(pg_catalog.quote_ident(t.name))"
    " WHERE c.relkind IN ('r', 'p')";

static const char history_table_sql[] = "CREATE TABLE IF NOT EXISTS coach_schema_migrations ("
                                        " version integer PRIMARY KEY,"
                                        " name text NOT NULL,"
                                        " applied_at timestamptz NOT NULL DEFAULT now())";

static const char is_applied_sql[] =
    "SELECT EXISTS (SELECT 1 FROM coach_schema_migrations WHERE version = $1::integer)";
static const char record_sql[] =
    "INSERT INTO coach_schema_migrations (version, name) VALUES ($1::integer, $2)";
static const char latest_sql[] = "SELECT coalesce(max(version), 0) FROM coach_schema_migrations";
static const char index_valid_sql[] =
    "SELECT i.indisvalid FROM pg_catalog.pg_index i"
    " WHERE i.indexrelid = pg_catalog.to_regclass(pg_catalog.quote_ident($1))";

/* ---- errors and small helpers ----------------------------------------------- */

static int set_err(struct store_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int set_err(struct store_err *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    (void)vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

/* The length of the first line of s (libpq messages end with '\n'). */
static int first_line_len(const char *s)
{
    size_t n = strcspn(s, "\r\n");
    return n > 200 ? 200 : (int)n;
}

/* Fill err from a failed statement: "<what>: <SQLSTATE> <primary message>".
 * A lost connection is STORE_E_UNAVAILABLE, anything else STORE_E_QUERY. */
static int fail_result(PGconn *conn, const PGresult *res, const char *what, struct store_err *err)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    int code = PQstatus(conn) == CONNECTION_BAD ? STORE_E_UNAVAILABLE : STORE_E_QUERY;

    if (primary == NULL) {
        primary = PQerrorMessage(conn);
    }
    return set_err(err, code, "%s: %s %.*s", what, state != NULL ? state : "-----",
                   first_line_len(primary), primary);
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Run one statement without parameters; 0 or a negative code. */
static int exec_cmd(PGconn *conn, const char *sql, const char *what, struct store_err *err)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = 0;

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        rc = fail_result(conn, res, what, err);
    }
    PQclear(res);
    return rc;
}

static void rollback(PGconn *conn)
{
    PQclear(PQexec(conn, "ROLLBACK"));
}

/* Run a parameterized query and copy the first column of its first row into
 * out (NUL-terminated, truncated to cap). 1 with a row, 0 without, or a
 * negative code. */
static int query_value(PGconn *conn, const char *sql, int n_params, const char *const *params,
                       const char *what, struct store_err *err, char *out, size_t cap)
{
    PGresult *res = PQexecParams(conn, sql, n_params, NULL, params, NULL, NULL, 0);
    int rc = 0;

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = fail_result(conn, res, what, err);
    } else if (PQntuples(res) > 0 && PQnfields(res) > 0) {
        (void)snprintf(out, cap, "%s", PQgetvalue(res, 0, 0));
        rc = 1;
    }
    PQclear(res);
    return rc;
}

/* 1 when the query's first value is true, 0 when false or absent, or a
 * negative code. */
static int query_flag(PGconn *conn, const char *sql, int n_params, const char *const *params,
                      const char *what, struct store_err *err)
{
    char v[8] = "";
    int rc = query_value(conn, sql, n_params, params, what, err, v, sizeof v);
    if (rc < 0) {
        return rc;
    }
    return rc == 1 && strcmp(v, "t") == 0;
}

/* ---- connection and lock ---------------------------------------------------- */

/* Connect with a default connect_timeout and application_name (both
 * overridden by the conninfo's own). The error message comes from libpq,
 * which does not echo passwords; it is dropped anyway if it would. */
static int connect_db(const char *conninfo, PGconn **out, struct store_err *err)
{
    static const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {CONNECT_TIMEOUT, "coach-gateway-migrate", conninfo, NULL};
    char *parse_err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &parse_err);
    const char *password = NULL;

    if (opts == NULL) {
        PQfreemem(parse_err); /* it may quote the conninfo */
        return set_err(err, -EINVAL, "the database connection string cannot be parsed");
    }
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (strcmp(o->keyword, "password") == 0 && o->val != NULL && o->val[0] != '\0') {
            password = o->val;
        }
    }
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    int rc = 0;
    if (conn == NULL) {
        rc = set_err(err, -ENOMEM, "out of memory connecting to the database");
    } else if (PQstatus(conn) != CONNECTION_OK) {
        const char *m = PQerrorMessage(conn);
        if (password != NULL && strstr(m, password) != NULL) {
            rc = set_err(err, STORE_E_UNAVAILABLE, "cannot connect to the database");
        } else {
            rc = set_err(err, STORE_E_UNAVAILABLE, "cannot connect to the database: %.*s",
                         first_line_len(m), m);
        }
        PQfinish(conn);
    } else {
        PQsetNoticeProcessor(conn, ignore_notice, NULL);
        *out = conn;
    }
    PQconninfoFree(opts);
    return rc;
}

/* Poll pg_try_advisory_lock until it is ours; see DESIGN for why it is not
 * pg_advisory_lock. The lock is released when the session ends. */
static int lock_acquire(PGconn *conn, struct store_err *err)
{
    const char *const params[] = {MIGRATE_LOCK_KEY};
    int64_t deadline_ms = monotonic_ms() + (int64_t)LOCK_WAIT_S * 1000;

    for (;;) {
        int got = query_flag(conn, "SELECT pg_catalog.pg_try_advisory_lock($1::bigint)", 1, params,
                             "migration lock", err);
        if (got < 0) {
            return got;
        }
        if (got == 1) {
            return 0;
        }
        if (monotonic_ms() >= deadline_ms) {
            return set_err(err, STORE_E_UNAVAILABLE,
                           "another migration held the migration lock for %d s", LOCK_WAIT_S);
        }
        sleep_ms(LOCK_POLL_MS);
    }
}

/* ---- the application's schema ----------------------------------------------- */

/* Set *is_empty to 1 for a database without the application's tables, 0 for
 * one with all of them; STORE_E_SCHEMA for anything in between. */
static int inspect_tables(PGconn *conn, int *is_empty, struct store_err *err)
{
    char names[512];
    size_t len = (size_t)snprintf(names, sizeof names, "{\"%s\"", PRISMA_TABLE);
    for (size_t i = 0; i < N_APP_TABLES && len < sizeof names; i++) {
        len += (size_t)snprintf(names + len, sizeof names - len, ",\"%s\"", app_tables[i]);
    }
    if (len + 2 > sizeof names) {
        return set_err(err, -ENOMEM, "table list too long"); /* cannot happen */
    }
    names[len++] = '}';
    names[len] = '\0';

    const char *const params[] = {names};
    PGresult *res = PQexecParams(conn, tables_present_sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        int rc = fail_result(conn, res, "schema check", err);
        PQclear(res);
        return rc;
    }
    bool present[N_APP_TABLES] = {false};
    bool has_prisma = false;
    size_t n_present = 0;
    for (int r = 0; r < PQntuples(res); r++) {
        const char *name = PQgetvalue(res, r, 0);
        has_prisma = has_prisma || strcmp(name, PRISMA_TABLE) == 0;
        for (size_t i = 0; i < N_APP_TABLES; i++) {
            if (!present[i] && strcmp(name, app_tables[i]) == 0) {
                present[i] = true;
                n_present++;
            }
        }
    }
    PQclear(res);

    if (n_present == N_APP_TABLES || (n_present == 0 && !has_prisma)) {
        *is_empty = n_present == 0;
        return 0;
    }
    if (n_present == 0) {
        return set_err(err, STORE_E_SCHEMA,
                       "\"%s\" exists but none of the application's tables: finish or undo "
                       "the application's Prisma migrations first",
                       PRISMA_TABLE);
    }
    char missing[160] = "";
    size_t m = 0;
    for (size_t i = 0; i < N_APP_TABLES && m < sizeof missing; i++) {
        if (!present[i]) {
            m += (size_t)snprintf(missing + m, sizeof missing - m, "%s\"%s\"", m ? ", " : "",
                                  app_tables[i]);
        }
    }
    return set_err(err, STORE_E_SCHEMA,
                   "the database has %zu of the application's %zu tables (missing %s): "
                   "refusing to migrate a partial schema",
                   n_present, (size_t)N_APP_TABLES, missing);
}

/* Create the application's schema in one transaction. */
static int create_baseline(PGconn *conn, struct store_err *err)
{
    int rc = exec_cmd(conn, "BEGIN", "baseline schema", err);
    if (rc != 0) {
        return rc;
    }
    rc = exec_cmd(conn, store__baseline_sql, "baseline schema", err);
    if (rc == 0) {
        rc = exec_cmd(conn, "COMMIT", "baseline schema", err);
    }
    if (rc != 0) {
        rollback(conn);
    }
    return rc;
}

/* ---- the gateway's migrations ------------------------------------------------ */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Copy the next statement of a no-transaction migration from sql + *pos into
 * out, whose cap must be at least strlen(sql) + 2. The rule: a statement ends on the
 * first line whose last non-blank character is ';' (so such files must have
 * no ';' inside a statement and no comment after a statement's ';');
 * blank lines and lines starting with "--" are dropped. Returns 1 with a
 * statement, 0 at the end of the text. */
static int next_statement(const char *sql, size_t *pos, char *out, size_t cap)
{
    size_t len = 0;
    const char *p = sql + *pos;

    out[0] = '\0';
    while (*p != '\0') {
        const char *line = p;
        size_t line_len = strcspn(p, "\n");
        const char *next = p + line_len + (p[line_len] == '\n');
        size_t lead = 0;
        while (lead < line_len && is_space(p[lead])) {
            lead++;
        }
        size_t end = line_len;
        while (end > lead && is_space(p[end - 1])) {
            end--;
        }
        bool skip = end == lead || (end - lead >= 2 && p[lead] == '-' && p[lead + 1] == '-');
        if (!skip && len + end + 2 <= cap) {
            memcpy(out + len, p, end);
            len += end;
            out[len++] = '\n';
            out[len] = '\0';
        }
        p = next;
        if (!skip && line[end - 1] == ';') {
            break;
        }
    }
    *pos = (size_t)(p - sql);
    return len > 0;
}

/* The next whitespace-separated word of s: *word and *len (0 at the end).
 * Returns the position after it. */
static const char *next_word(const char *s, const char **word, size_t *len)
{
    while (is_space(*s)) {
        s++;
    }
    *word = s;
    while (*s != '\0' && !is_space(*s)) {
        s++;
    }
    *len = (size_t)(s - *word);
    return s;
}

static char ascii_lower(char c)
{
    static const char lower[] = "abcdefghijklmnopqrstuvwxyz";
    if (c >= 'A' && c <= 'Z') {
        return lower[c - 'A'];
    }
    return c;
}

static bool word_is(const char *w, size_t len, const char *upper)
{
    size_t n = strlen(upper);
    if (len != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (ascii_lower(w[i]) != ascii_lower(upper[i])) {
            return false;
        }
    }
    return true;
}

/* If stmt is "CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS <name> ...",
 * copy the index name into name (without quotes; an unquoted name folded to
 * lower case as PostgreSQL does) and return 1; 0 for any other statement;
 * -EINVAL for a name this runner cannot handle. */
static int cic_index_name(const char *stmt, char name[INDEX_NAME_MAX + 1])
{
    static const char *const words[] = {"CREATE", "INDEX", "CONCURRENTLY", "IF", "NOT", "EXISTS"};
    const char *p = stmt;
    size_t w = 0;

    while (w < sizeof words / sizeof words[0]) {
        const char *tok;
        size_t len;
        p = next_word(p, &tok, &len);
        if (w == 1 && word_is(tok, len, "UNIQUE")) {
            continue;
        }
        if (!word_is(tok, len, words[w])) {
            return 0;
        }
        w++;
    }
    while (is_space(*p)) {
        p++;
    }
    size_t n = 0;
    if (*p == '"') {
        n = strcspn(p + 1, "\"");
        if (p[1 + n] != '"' || n == 0 || n > INDEX_NAME_MAX) {
            return -EINVAL;
        }
        memcpy(name, p + 1, n);
    } else {
        while (n < INDEX_NAME_MAX &&
               (p[n] == '_' || (p[n] >= 'a' && p[n] <= 'z') || (p[n] >= 'A' && p[n] <= 'Z') ||
                (p[n] >= '0' && p[n] <= '9'))) {
            name[n] = ascii_lower(p[n]);
            n++;
        }
        if (n == 0 || (p[n] != '\0' && !is_space(p[n]))) {
            return -EINVAL;
        }
    }
    name[n] = '\0';
    return 1;
}

/* Drop index name when it exists but is INVALID (a CREATE INDEX
 * CONCURRENTLY that was interrupted), so that the CREATE ... IF NOT EXISTS
 * that follows builds it again instead of skipping it. The DROP names the
 * index in SQL text: it comes from the compiled-in migration, was checked by
 * cic_index_name (no '"' inside) and DROP INDEX CONCURRENTLY cannot run in
 * a function, so there is no parameterized form. */
static int repair_invalid_index(PGconn *conn, const char *name, const char *what,
                                struct store_err *err)
{
    const char *const params[] = {name};
    char valid[8] = "";
    int rc = query_value(conn, index_valid_sql, 1, params, what, err, valid, sizeof valid);
    if (rc <= 0 || strcmp(valid, "t") == 0) {
        return rc < 0 ? rc : 0;
    }
    char drop[64 + INDEX_NAME_MAX];
    (void)snprintf(drop, sizeof drop, "DROP INDEX CONCURRENTLY IF EXISTS \"%s\"", name);
    return exec_cmd(conn, drop, what, err);
}

static int record_migration(PGconn *conn, const struct store__migration *m, const char *what,
                            struct store_err *err)
{
    char version[16];
    (void)snprintf(version, sizeof version, "%d", m->version);
    const char *const params[] = {version, m->name};
    PGresult *res = PQexecParams(conn, record_sql, 2, NULL, params, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = fail_result(conn, res, what, err);
    }
    PQclear(res);
    return rc;
}

/* A migration and its row in one transaction. */
static int apply_in_transaction(PGconn *conn, const struct store__migration *m, const char *what,
                                struct store_err *err)
{
    int rc = exec_cmd(conn, "BEGIN", what, err);
    if (rc != 0) {
        return rc;
    }
    rc = exec_cmd(conn, m->sql, what, err);
    if (rc == 0) {
        rc = record_migration(conn, m, what, err);
    }
    if (rc == 0) {
        rc = exec_cmd(conn, "COMMIT", what, err);
    }
    if (rc != 0) {
        rollback(conn);
    }
    return rc;
}

/* A NO_TX_MARK migration: each statement on its own in autocommit mode, the
 * row only after all of them succeeded. */
static int apply_statements(PGconn *conn, const struct store__migration *m, const char *what,
                            struct store_err *err)
{
    size_t cap = strlen(m->sql) + 2;
    char *stmt = malloc(cap);
    if (stmt == NULL) {
        return set_err(err, -ENOMEM, "%s: out of memory", what);
    }
    size_t pos = 0;
    int rc = 0;
    while (rc == 0 && next_statement(m->sql, &pos, stmt, cap) == 1) {
        char index[INDEX_NAME_MAX + 1];
        int is_cic = cic_index_name(stmt, index);
        if (is_cic < 0) {
            rc =
                set_err(err, STORE_E_QUERY, "%s: cannot read the index name of: %.60s", what, stmt);
        } else if (is_cic == 1) {
            rc = repair_invalid_index(conn, index, what, err);
        }
        if (rc == 0) {
            rc = exec_cmd(conn, stmt, what, err);
        }
    }
    free(stmt);
    if (rc == 0) {
        rc = record_migration(conn, m, what, err);
    }
    return rc;
}

static bool is_no_transaction(const char *sql)
{
    size_t n = strlen(NO_TX_MARK);
    return strncmp(sql, NO_TX_MARK, n) == 0 && (sql[n] == '\n' || sql[n] == '\r' || sql[n] == '\0');
}

static int apply_pending(PGconn *conn, struct store_migrate_result *out, struct store_err *err)
{
    for (size_t i = 0; i < store__n_migrations; i++) {
        const struct store__migration *m = &store__migrations[i];
        char what[96];
        char version[16];
        (void)snprintf(what, sizeof what, "migration %s", m->name);
        (void)snprintf(version, sizeof version, "%d", m->version);
        const char *const params[] = {version};

        int done = query_flag(conn, is_applied_sql, 1, params, what, err);
        if (done < 0) {
            return done;
        }
        if (done == 1) {
            continue;
        }
        int rc = is_no_transaction(m->sql) ? apply_statements(conn, m, what, err)
                                           : apply_in_transaction(conn, m, what, err);
        if (rc != 0) {
            return rc;
        }
        out->applied++;
    }
    return 0;
}

/* Everything after the lock: baseline, history table, migrations. */
static int migrate_locked(PGconn *conn, struct store_migrate_result *out, struct store_err *err)
{
    int is_empty = 0;
    int rc = inspect_tables(conn, &is_empty, err);
    if (rc == 0 && is_empty) {
        rc = create_baseline(conn, err);
        out->baseline_created = rc == 0;
    }
    if (rc == 0) {
        rc = exec_cmd(conn, history_table_sql, "coach_schema_migrations", err);
    }
    if (rc == 0) {
        rc = apply_pending(conn, out, err);
    }
    if (rc == 0) {
        char latest[16] = "0";
        rc = query_value(conn, latest_sql, 0, NULL, "coach_schema_migrations", err, latest,
                         sizeof latest);
        if (rc >= 0) {
            char *end = NULL;
            long v = strtol(latest, &end, 10);
            out->latest = (end != latest && v >= 0 && v <= INT32_MAX) ? (int)v : 0;
            rc = 0;
        }
    }
    return rc;
}

/* ---- public ------------------------------------------------------------------ */

int store_migrate(const char *conninfo, struct store_migrate_result *res, struct store_err *err)
{
    struct store_err scratch;
    struct store_migrate_result out = {0, 0, 0};
    PGconn *conn = NULL;

    if (err == NULL) {
        err = &scratch;
    }
    err->code = 0;
    err->msg[0] = '\0';
    if (conninfo == NULL) {
        return set_err(err, -EINVAL, "no database connection string");
    }
    int rc = connect_db(conninfo, &conn, err);
    if (rc != 0) {
        return rc;
    }
    rc = lock_acquire(conn, err);
    if (rc == 0) {
        rc = migrate_locked(conn, &out, err);
    }
    PQfinish(conn); /* ends the session, which releases the advisory lock */
    if (rc == 0 && res != NULL) {
        *res = out;
    }
    return rc;
}

int store_migrations_latest(void)
{
    return store__n_migrations > 0 ? store__migrations[store__n_migrations - 1].version : 0;
}
