/*
 * test_migrate.c: store_migrate() against a real PostgreSQL.
 *
 * Every test works on databases of its own, created empty
 * (pgtest_db_create(0, ...)) and dropped in .fini. Schemas are compared as
 * catalogs, not as SQL text: columns (type via format_type, nullability,
 * default), indexes (pg_get_indexdef, validity), constraints
 * (pg_get_constraintdef, convalidated) and relations, one sorted line each.
 * The reference is store/schema/prisma-baseline.sql loaded verbatim into
 * another database (read from COACH_SOURCE_DIR, set by ctest); a migrated
 * database must equal it plus exactly the additions listed below, plus
 * whatever the gateway's later migrations put in tables of its own
 * (coach_*, tested by their owners). Anything else touching the
 * application's tables must be added to the list (and to docs/database.md).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "pgtest.h"
#include "store.h"

#define MAX_DBS      4
#define CONNINFO_CAP 512

/* ---- per-test databases ------------------------------------------------------ */

static char db_names[MAX_DBS][64];
static size_t n_dbs;

/* A new database, empty or cloned from the migrated template; its conninfo
 * goes to conninfo (CONNINFO_CAP bytes). */
static void new_db_from(int migrated, char *conninfo)
{
    cr_assert_lt(n_dbs, (size_t)MAX_DBS);
    int rc =
        pgtest_db_create(migrated, db_names[n_dbs], sizeof db_names[n_dbs], conninfo, CONNINFO_CAP);
    cr_assert_eq(rc, 0, "cannot create a test database (is the pg fixture running?)");
    n_dbs++;
}

static void new_db(char *conninfo)
{
    new_db_from(0, conninfo);
}

static void drop_dbs(void)
{
    for (size_t i = 0; i < n_dbs; i++) {
        pgtest_db_drop(db_names[i]);
    }
    n_dbs = 0;
}

TestSuite(migrate, .fini = drop_dbs, .timeout = 120);

/* ---- the reference schema ------------------------------------------------------ */

/* store/schema/prisma-baseline.sql, malloc'd. From COACH_SOURCE_DIR, or
 * relative to this file when run by hand. */
static char *read_baseline_sql(void)
{
    char path[1024];
    const char *src = getenv("COACH_SOURCE_DIR"); /* NOLINT(concurrency-mt-unsafe) */
    if (src != NULL && src[0] != '\0') {
        (void)snprintf(path, sizeof path, "%s/store/schema/prisma-baseline.sql", src);
    } else {
        (void)snprintf(path, sizeof path, "%s/../../store/schema/prisma-baseline.sql", __FILE__);
    }
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    char *buf = malloc(1 << 16);
    cr_assert_not_null(buf);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    (void)fclose(f);
    cr_assert(n > 0 && n < (1 << 16) - 1, "unexpected size of %s", path);
    buf[n] = '\0';
    return buf;
}

/* A new database holding exactly the baseline schema, as the application's
 * Prisma migrations leave it. */
static void new_baseline_db(char *conninfo)
{
    new_db(conninfo);
    char *sql = read_baseline_sql();
    int rc = pgtest_exec(conninfo, sql);
    free(sql);
    cr_assert_eq(rc, 0, "loading prisma-baseline.sql failed");
}

/* What the gateway's migrations add to the baseline, as catalog lines. */
static const char *const additions[] = {
    "column \"User\".\"skoolUserId\" text null default -",
    "column coach_schema_migrations.applied_at timestamp with time zone not null default now()",
    "column coach_schema_migrations.name text not null default -",
    "column coach_schema_migrations.version integer not null default -",
    "constraint \"Appointment\".\"Appointment_durationMin_check\" CHECK ((\"durationMin\" > 0))"
    " NOT VALID validated f",
    "constraint \"Session\".\"Session_durationMinutes_check\" CHECK ((\"durationMinutes\" > 0))"
    " NOT VALID validated f",
    "constraint \"SessionRating\".\"SessionRating_rating_check\""
    " CHECK (((rating >= 1) AND (rating <= 5))) NOT VALID validated f",
    "constraint coach_schema_migrations.coach_schema_migrations_pkey PRIMARY KEY (version)"
    " validated t",
    "index CREATE INDEX \"Appointment_clientId_scheduledFor_idx\" ON public.\"Appointment\""
    " USING btree (\"clientId\", \"scheduledFor\") valid t",
    "index CREATE INDEX \"Appointment_coachId_status_idx\" ON public.\"Appointment\""
    " USING btree (\"coachId\", status) valid t",
    "index CREATE INDEX \"Appointment_status_scheduledFor_idx\" ON public.\"Appointment\""
    " USING btree (status, \"scheduledFor\") valid t",
    "index CREATE INDEX \"Message_sessionId_createdAt_idx\" ON public.\"Message\""
    " USING btree (\"sessionId\", \"createdAt\") valid t",
    "index CREATE INDEX \"Profile_onboardingCompleted_idx\" ON public.\"Profile\""
    " USING btree (\"onboardingCompleted\") valid t",
    "index CREATE INDEX \"Session_status_startedAt_idx\" ON public.\"Session\""
    " USING btree (status, \"startedAt\") valid t",
    "index CREATE INDEX \"Session_userId_status_idx\" ON public.\"Session\""
    " USING btree (\"userId\", status) valid t",
    "index CREATE INDEX \"User_isAvailable_idx\" ON public.\"User\""
    " USING btree (\"isAvailable\") valid t",
    "index CREATE INDEX \"User_role_idx\" ON public.\"User\" USING btree (role) valid t",
    "index CREATE UNIQUE INDEX \"User_skoolUserId_key\" ON public.\"User\""
    " USING btree (\"skoolUserId\") valid t",
    "index CREATE UNIQUE INDEX coach_schema_migrations_pkey ON public.coach_schema_migrations"
    " USING btree (version) valid t",
    "relation coach_schema_migrations kind r",
};
#define N_ADDITIONS (sizeof additions / sizeof additions[0])

/* ---- catalogs ------------------------------------------------------------------ */

static const char catalog_sql[] =
    "SELECT string_agg(line, E'\\n' ORDER BY line COLLATE \"C\") FROM ("
    " SELECT format('column %I.%I %s %s default %s', c.relname, a.attname,"
    "  pg_catalog.format_type(a.atttypid, a.atttypmod),"
    "  CASE WHEN a.attnotnull THEN 'not null' ELSE 'null' END,"
    "  coalesce(pg_catalog.pg_get_expr(d.adbin, d.adrelid), '-')) AS line"
    " FROM pg_catalog.pg_attribute a"
    " JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
    " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"
    "  AND a.attnum > 0 AND NOT a.attisdropped"
    " UNION ALL"
    " SELECT format('index %s valid %s', pg_catalog.pg_get_indexdef(i.indexrelid), i.indisvalid)"
    " FROM pg_catalog.pg_index i"
    " JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = current_schema()"
    " UNION ALL"
    " SELECT format('constraint %I.%I %s validated %s', c.relname, co.conname,"
    "  pg_catalog.pg_get_constraintdef(co.oid), co.convalidated)"
    " FROM pg_catalog.pg_constraint co"
    " JOIN pg_catalog.pg_class c ON c.oid = co.conrelid"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = current_schema()"
    " UNION ALL"
    " SELECT format('relation %I kind %s', c.relname, c.relkind)"
    " FROM pg_catalog.pg_class c"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = current_schema() AND c.relkind <> 'i'"
    ") s";

static char *catalog(const char *conninfo)
{
    char *cat = pgtest_query_value(conninfo, catalog_sql);
    cr_assert_not_null(cat, "catalog query failed");
    return cat;
}

/* Split text (modified in place) into lines; *lines is malloc'd. */
static size_t split_lines(char *text, char ***lines)
{
    size_t n = 1;
    for (const char *p = text; *p != '\0'; p++) {
        n += *p == '\n';
    }
    *lines = calloc(n, sizeof **lines);
    cr_assert_not_null(*lines);
    size_t i = 0;
    for (char *p = text; p != NULL && i < n;) {
        (*lines)[i++] = p;
        char *nl = strchr(p, '\n');
        if (nl != NULL) {
            *nl = '\0';
            nl++;
        }
        p = nl;
    }
    return i;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Lines that describe a table of the gateway's own (coach_...), which later
 * migrations may add freely. */
static bool is_gateway_owned(const char *line)
{
    static const char *const prefixes[] = {"column coach_", "constraint coach_", "relation coach_"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        if (strncmp(line, prefixes[i], strlen(prefixes[i])) == 0) {
            return true;
        }
    }
    return strncmp(line, "index ", 6) == 0 && strstr(line, " ON public.coach_") != NULL;
}

/* Assert that catalog `after` equals catalog `before` plus exactly
 * `additions`, plus lines about the gateway's own tables (is_gateway_owned).
 * Both are sorted by the C collation (catalog_sql), i.e. by strcmp. Frees
 * both. */
static void assert_catalog_adds(char *before, char *after)
{
    char **b, **a;
    size_t nb = split_lines(before, &b), na = split_lines(after, &a);
    size_t i = 0, j = 0;

    while (i < nb || j < na) {
        int c = i == nb ? 1 : j == na ? -1 : strcmp(b[i], a[j]);
        if (c == 0) {
            i++;
            j++;
        } else if (c < 0) {
            cr_expect(0, "missing after migration: %s", b[i]);
            i++;
        } else {
            bool listed = false;
            for (size_t k = 0; k < N_ADDITIONS && !listed; k++) {
                listed = strcmp(additions[k], a[j]) == 0;
            }
            cr_expect(listed || is_gateway_owned(a[j]),
                      "unexpected change to the application's schema: %s", a[j]);
            j++;
        }
    }
    for (size_t k = 0; k < N_ADDITIONS; k++) {
        const char *key = additions[k];
        cr_expect_not_null(bsearch(&key, a, na, sizeof a[0], cmp_str), "addition missing: %s", key);
    }
    free(b);
    free(a);
    free(before);
    free(after);
}

static void migrate_ok(const char *conninfo, struct store_migrate_result *res)
{
    struct store_err err = {0, ""};
    int rc = store_migrate(conninfo, res, &err);
    cr_assert_eq(rc, 0, "store_migrate: %d %s", rc, err.msg);
    cr_assert_eq(err.code, 0);
    cr_assert_eq(res->latest, store_migrations_latest());
}

static void assert_value(const char *conninfo, const char *sql, const char *want)
{
    char *v = pgtest_query_value(conninfo, sql);
    cr_assert_not_null(v, "no value for %s", sql);
    cr_expect_str_eq(v, want, "%s\n  got:  %s\n  want: %s", sql, v, want);
    free(v);
}

/* Run sql and expect it to fail with SQLSTATE want. */
static void assert_sqlstate(const char *conninfo, const char *sql, const char *want)
{
    PGconn *conn = PQconnectdb(conninfo);
    cr_assert_eq(PQstatus(conn), CONNECTION_OK, "%s", PQerrorMessage(conn));
    PGresult *res = PQexec(conn, sql);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    cr_expect_str_eq(state != NULL ? state : "00000", want, "%s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
    PQfinish(conn);
}

static const char history_sql[] =
    "SELECT string_agg(version || ':' || name || ':' || applied_at, ',' ORDER BY version)"
    " FROM coach_schema_migrations";

/* ---- tests ------------------------------------------------------------------------ */

Test(migrate, empty_database_gets_baseline_plus_additions)
{
    char ref[CONNINFO_CAP], db[CONNINFO_CAP];
    struct store_migrate_result res = {-1, -1, -1};

    new_baseline_db(ref);
    new_db(db);
    migrate_ok(db, &res);
    cr_expect_eq(res.baseline_created, 1);
    cr_expect_eq(res.applied, store_migrations_latest());
    cr_expect_geq(store_migrations_latest(), 3);

    assert_catalog_adds(catalog(ref), catalog(db));
    assert_value(db, "SELECT count(*) FROM \"_prisma_migrations\"", "0");
    assert_value(db,
                 "SELECT string_agg(version || ':' || name, ',' ORDER BY version)"
                 " FROM coach_schema_migrations WHERE version <= 3",
                 "1:001_user_skool_user_id,2:002_recommended_indexes,3:003_check_constraints");
}

/* Sample rows in the application's tables, some of them breaking the new
 * CHECK constraints (old data the gateway must leave alone). */
static const char sample_rows_sql[] =
    "INSERT INTO \"_prisma_migrations\" (id, checksum, migration_name, finished_at,"
    " applied_steps_count) VALUES ('m1', 'abc', '20251214082136_add_onboarding_fields',"
    " '2025-12-14 08:21:36+00', 1);"
    "INSERT INTO \"User\" (id, email, \"displayName\", role, \"isAvailable\", \"updatedAt\")"
    " VALUES ('cuser000000000000000000001', 'ann@example.com', 'Ann', 'client', false,"
    " '2025-06-01 10:00:00'),"
    " ('ccoach00000000000000000001', 'bo@example.com', 'Bo', 'coach', true,"
    " '2025-06-01 10:00:00');"
    "INSERT INTO \"Profile\" (id, \"userId\", \"clientFacts\", \"onboardingCompleted\")"
    " VALUES ('cprof000000000000000000001', 'cuser000000000000000000001',"
    " ARRAY['likes tea'], true);"
    "INSERT INTO \"Appointment\" (id, \"scheduledFor\", \"durationMin\", \"clientId\","
    " \"coachId\", \"roomId\", status) VALUES"
    " ('cappt000000000000000000001', '2025-06-02 09:00', 30, 'cuser000000000000000000001',"
    " 'ccoach00000000000000000001', 'room-1', 'scheduled'),"
    " ('cappt000000000000000000000', '2025-05-01 09:00', 0, 'cuser000000000000000000001',"
    " 'ccoach00000000000000000001', 'room-0', 'completed');"
    "INSERT INTO \"Session\" (id, \"roomId\", \"appointmentId\", \"userId\","
    " \"durationMinutes\", status, \"startedAt\") VALUES"
    " ('csess000000000000000000001', 'room-1', 'cappt000000000000000000001',"
    " 'cuser000000000000000000001', 20, 'ended', '2025-06-02 09:00'),"
    " ('csess000000000000000000000', 'room-0', 'cappt000000000000000000000',"
    " 'cuser000000000000000000001', 0, 'ended', '2025-05-01 09:00');"
    "INSERT INTO \"SessionRating\" (id, \"sessionId\", rating, \"tipAmount\") VALUES"
    " ('crate000000000000000000001', 'csess000000000000000000001', 5, 2.5),"
    " ('crate000000000000000000000', 'csess000000000000000000000', 9, NULL);"
    "INSERT INTO \"Message\" (id, \"sessionId\", \"userId\", sender, content) VALUES"
    " ('cmsg0000000000000000000001', 'csess000000000000000000001',"
    " 'cuser000000000000000000001', 'user', 'hello; it''s me'),"
    " ('cmsg0000000000000000000002', 'csess000000000000000000001',"
    " 'ccoach00000000000000000001', 'coach', 'hi');"
    "INSERT INTO \"SkoolMonitoringLog\" (community, \"membersFound\", \"newMembers\","
    " \"cancelledMembers\", \"syncDurationMs\", success) VALUES ('ultra', 10, 1, 0, 1200, true);"
    "INSERT INTO \"MembershipStatusHistory\" (id, \"userId\", community, \"newStatus\")"
    " VALUES ('cmsh000000000000000000001x', 'cuser000000000000000000001', 'ultra', 'active');"
    "INSERT INTO \"AuthCode\" (id, code, \"skoolUserId\", \"skoolUsername\", \"expiresAt\")"
    " VALUES ('cauth000000000000000000001', 'ABC123', 'sk1', 'ann', '2025-06-01 11:00');"
    "INSERT INTO \"UserSession\" (id, \"sessionId\", \"skoolUserId\", \"skoolUsername\","
    " \"authCodeUsed\", \"expiresAt\", \"ipAddress\", \"userAgent\", \"deviceFingerprint\")"
    " VALUES ('cus00000000000000000000001', 'sess-1', 'sk1', 'ann', 'ABC123',"
    " '2025-07-01 00:00', '192.0.2.1', 'test', 'fp');"
    "INSERT INTO \"RateLimit\" (id, \"skoolUserId\", \"requestDate\", \"requestCount\")"
    " VALUES ('crl00000000000000000000001', 'sk1', '2025-06-01', 3);";

/* Every row of every application table as JSON, without the columns the
 * gateway adds. */
static const char rows_sql[] =
    "SELECT string_agg(t || ' ' || r, E'\\n' ORDER BY t, r) FROM ("
    " SELECT '_prisma_migrations' t, to_jsonb(x)::text r FROM \"_prisma_migrations\" x"
    " UNION ALL SELECT 'User', (to_jsonb(x) - 'skoolUserId')::text FROM \"User\" x"
    " UNION ALL SELECT 'Profile', to_jsonb(x)::text FROM \"Profile\" x"
    " UNION ALL SELECT 'Appointment', to_jsonb(x)::text FROM \"Appointment\" x"
    " UNION ALL SELECT 'Session', to_jsonb(x)::text FROM \"Session\" x"
    " UNION ALL SELECT 'SessionRating', to_jsonb(x)::text FROM \"SessionRating\" x"
    " UNION ALL SELECT 'Message', to_jsonb(x)::text FROM \"Message\" x"
    " UNION ALL SELECT 'SkoolMonitoringLog', to_jsonb(x)::text FROM \"SkoolMonitoringLog\" x"
    " UNION ALL SELECT 'MembershipStatusHistory', to_jsonb(x)::text"
    "  FROM \"MembershipStatusHistory\" x"
    " UNION ALL SELECT 'AuthCode', to_jsonb(x)::text FROM \"AuthCode\" x"
    " UNION ALL SELECT 'UserSession', to_jsonb(x)::text FROM \"UserSession\" x"
    " UNION ALL SELECT 'RateLimit', to_jsonb(x)::text FROM \"RateLimit\" x"
    ") s";

Test(migrate, prefilled_database_keeps_its_rows)
{
    char db[CONNINFO_CAP];
    struct store_migrate_result res = {-1, -1, -1};

    new_baseline_db(db);
    cr_assert_eq(pgtest_exec(db, sample_rows_sql), 0);
    char *cat_before = catalog(db);
    char *rows_before = pgtest_query_value(db, rows_sql);
    cr_assert_not_null(rows_before);

    migrate_ok(db, &res);
    cr_expect_eq(res.baseline_created, 0);
    cr_expect_eq(res.applied, store_migrations_latest());

    char *rows_after = pgtest_query_value(db, rows_sql);
    cr_assert_not_null(rows_after);
    cr_expect_str_eq(rows_after, rows_before);
    assert_catalog_adds(cat_before, catalog(db));
    assert_value(db,
                 "SELECT string_agg(conname || '=' || convalidated, ','"
                 " ORDER BY conname COLLATE \"C\")"
                 " FROM pg_constraint WHERE contype = 'c'"
                 " AND connamespace = 'public'::regnamespace"
                 " AND conrelid::regclass::text !~ '^coach_'",
                 "Appointment_durationMin_check=false,SessionRating_rating_check=false,"
                 "Session_durationMinutes_check=false");
    assert_value(db, "SELECT count(*) FROM \"_prisma_migrations\"", "1");
    /* New and updated rows are checked. */
    assert_sqlstate(db,
                    "UPDATE \"SessionRating\" SET rating = 0"
                    " WHERE id = 'crate000000000000000000001'",
                    "23514");
    free(rows_before);
    free(rows_after);
}

Test(migrate, second_run_is_a_no_op)
{
    char db[CONNINFO_CAP];
    struct store_migrate_result res = {-1, -1, -1};

    new_db(db);
    migrate_ok(db, &res);
    cr_expect_eq(res.applied, store_migrations_latest());
    char *cat1 = catalog(db);
    char *hist1 = pgtest_query_value(db, history_sql);
    cr_assert_not_null(hist1);

    migrate_ok(db, &res);
    cr_expect_eq(res.baseline_created, 0);
    cr_expect_eq(res.applied, 0);
    char *cat2 = catalog(db);
    char *hist2 = pgtest_query_value(db, history_sql);
    cr_assert_not_null(hist2);
    cr_expect_str_eq(cat2, cat1);
    cr_expect_str_eq(hist2, hist1);
    free(cat1);
    free(cat2);
    free(hist1);
    free(hist2);
}

struct racer {
    const char *conninfo;
    pthread_barrier_t *start;
    int rc;
    struct store_migrate_result res;
    struct store_err err;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    pthread_barrier_wait(r->start);
    r->rc = store_migrate(r->conninfo, &r->res, &r->err);
    return NULL;
}

#define N_RACERS 4

Test(migrate, concurrent_runs_both_succeed)
{
    char ref[CONNINFO_CAP], db[CONNINFO_CAP];
    pthread_barrier_t start;
    pthread_t th[N_RACERS];
    struct racer racers[N_RACERS];

    new_baseline_db(ref);
    new_db(db);
    cr_assert_eq(pthread_barrier_init(&start, NULL, N_RACERS), 0);
    for (int i = 0; i < N_RACERS; i++) {
        racers[i] = (struct racer){.conninfo = db, .start = &start, .rc = -1};
        cr_assert_eq(pthread_create(&th[i], NULL, race, &racers[i]), 0);
    }
    int created = 0, applied = 0;
    for (int i = 0; i < N_RACERS; i++) {
        pthread_join(th[i], NULL);
        cr_expect_eq(racers[i].rc, 0, "racer %d: %d %s", i, racers[i].rc, racers[i].err.msg);
        cr_expect_eq(racers[i].res.latest, store_migrations_latest());
        created += racers[i].res.baseline_created;
        applied += racers[i].res.applied;
    }
    pthread_barrier_destroy(&start);
    cr_expect_eq(created, 1);
    cr_expect_eq(applied, store_migrations_latest());
    assert_catalog_adds(catalog(ref), catalog(db));
    char latest[16];
    (void)snprintf(latest, sizeof latest, "%d", store_migrations_latest());
    assert_value(db, "SELECT count(*) FROM coach_schema_migrations", latest);
}

/* A CREATE INDEX CONCURRENTLY interrupted half-way leaves an INVALID index
 * under its name, and the migration unrecorded. */
Test(migrate, interrupted_index_build_is_repaired)
{
    char db[CONNINFO_CAP];
    struct store_migrate_result res = {-1, -1, -1};
    static const char oid_sql[] = "SELECT '\"Session_userId_status_idx\"'::regclass::oid";
    static const char valid_sql[] = "SELECT indisvalid FROM pg_index WHERE indexrelid = "
                                    "'\"Session_userId_status_idx\"'::regclass";

    new_db(db);
    migrate_ok(db, &res);
    char *cat1 = catalog(db);
    char *oid1 = pgtest_query_value(db, oid_sql);
    cr_assert_not_null(oid1);
    cr_assert_eq(pgtest_exec(db, "UPDATE pg_index SET indisvalid = false"
                                 " WHERE indexrelid = '\"Session_userId_status_idx\"'::regclass;"
                                 "DELETE FROM coach_schema_migrations WHERE version = 2"),
                 0);
    assert_value(db, valid_sql, "f");

    migrate_ok(db, &res);
    cr_expect_eq(res.applied, 1);
    assert_value(db, valid_sql, "t");
    char *oid2 = pgtest_query_value(db, oid_sql);
    cr_assert_not_null(oid2);
    cr_expect_str_neq(oid2, oid1, "the invalid index was not rebuilt");
    char *cat2 = catalog(db);
    cr_expect_str_eq(cat2, cat1);
    free(cat1);
    free(cat2);
    free(oid1);
    free(oid2);
}

/* A migration that fails leaves nothing of itself behind and says which one
 * failed; the next run applies it. */
Test(migrate, failed_migration_rolls_back)
{
    char db[CONNINFO_CAP];
    struct store_migrate_result res = {-1, -1, -1};
    struct store_err err = {0, ""};

    new_db(db);
    cr_assert_eq(pgtest_exec(db, "CREATE TABLE coach_schema_migrations ("
                                 " version integer PRIMARY KEY, name text NOT NULL,"
                                 " applied_at timestamptz NOT NULL DEFAULT now());"
                                 "CREATE FUNCTION refuse_3() RETURNS trigger LANGUAGE plpgsql AS"
                                 " $$BEGIN IF NEW.version = 3 THEN RAISE EXCEPTION 'no 3';"
                                 " END IF; RETURN NEW; END$$;"
                                 "CREATE TRIGGER refuse_3 BEFORE INSERT ON coach_schema_migrations"
                                 " FOR EACH ROW EXECUTE FUNCTION refuse_3()"),
                 0);
    int rc = store_migrate(db, &res, &err);
    cr_assert_eq(rc, STORE_E_QUERY, "%d %s", rc, err.msg);
    cr_expect_eq(err.code, STORE_E_QUERY);
    cr_expect_eq(res.applied, -1, "res is untouched on error");
    cr_expect(strstr(err.msg, "003_check_constraints") != NULL, "%s", err.msg);
    cr_expect(strstr(err.msg, "P0001") != NULL && strstr(err.msg, "no 3") != NULL, "%s", err.msg);
    assert_value(db,
                 "SELECT count(*) FROM pg_constraint WHERE contype = 'c'"
                 " AND connamespace = 'public'::regnamespace"
                 " AND conrelid::regclass::text !~ '^coach_'",
                 "0");
    assert_value(db,
                 "SELECT string_agg(version::text, ',' ORDER BY version)"
                 " FROM coach_schema_migrations",
                 "1,2");

    cr_assert_eq(pgtest_exec(db, "DROP TRIGGER refuse_3 ON coach_schema_migrations"), 0);
    migrate_ok(db, &res);
    cr_expect_eq(res.applied, store_migrations_latest() - 2);
    assert_value(db,
                 "SELECT count(*) FROM pg_constraint WHERE contype = 'c'"
                 " AND connamespace = 'public'::regnamespace"
                 " AND conrelid::regclass::text !~ '^coach_'",
                 "3");
}

static void assert_refused(const char *conninfo, const char *needle)
{
    struct store_migrate_result res = {-1, -1, -1};
    struct store_err err = {0, ""};
    int rc = store_migrate(conninfo, &res, &err);
    cr_expect_eq(rc, STORE_E_SCHEMA, "%d %s", rc, err.msg);
    cr_expect_eq(err.code, STORE_E_SCHEMA);
    cr_expect(strstr(err.msg, needle) != NULL, "%s", err.msg);
    assert_value(conninfo, "SELECT to_regclass('coach_schema_migrations') IS NULL", "t");
}

Test(migrate, partial_schema_is_refused)
{
    char db[CONNINFO_CAP];

    new_db(db);
    cr_assert_eq(pgtest_exec(db, "CREATE TABLE \"User\" (id text PRIMARY KEY);"
                                 "CREATE TABLE \"Session\" (id text PRIMARY KEY)"),
                 0);
    assert_refused(db, "missing \"Profile\"");
    assert_value(db,
                 "SELECT count(*) FROM pg_class WHERE relkind = 'r'"
                 " AND relnamespace = 'public'::regnamespace",
                 "2");

    cr_assert_eq(pgtest_exec(db, "DROP TABLE \"User\", \"Session\";"
                                 "CREATE TABLE \"_prisma_migrations\" (id text)"),
                 0);
    assert_refused(db, "_prisma_migrations");
}

/* The application may already have made some of the same additions through
 * Prisma (same names): the migrations must take them as done. */
Test(migrate, additions_made_by_the_application_are_kept)
{
    char ref[CONNINFO_CAP], db[CONNINFO_CAP];
    struct store_migrate_result res = {-1, -1, -1};

    new_baseline_db(ref);
    new_baseline_db(db);
    cr_assert_eq(pgtest_exec(db, "ALTER TABLE \"User\" ADD COLUMN \"skoolUserId\" TEXT;"
                                 "CREATE UNIQUE INDEX \"User_skoolUserId_key\""
                                 " ON \"User\"(\"skoolUserId\");"
                                 "CREATE INDEX \"User_role_idx\" ON \"User\"(\"role\");"
                                 "ALTER TABLE \"Session\" ADD CONSTRAINT"
                                 " \"Session_durationMinutes_check\" CHECK"
                                 " (\"durationMinutes\" > 0) NOT VALID"),
                 0);
    migrate_ok(db, &res);
    cr_expect_eq(res.applied, store_migrations_latest());
    assert_catalog_adds(catalog(ref), catalog(db));
}

static void assert_unavailable(const char *conninfo, int want)
{
    struct store_migrate_result res = {-1, -1, -1};
    struct store_err err = {0, ""};
    int rc = store_migrate(conninfo, &res, &err);
    cr_expect_eq(rc, want, "%s: %d %s", conninfo, rc, err.msg);
    cr_expect_eq(err.code, want);
    cr_expect(err.msg[0] != '\0');
    cr_expect(strstr(err.msg, "sekrit") == NULL && strstr(err.msg, "sek") == NULL,
              "password leaked: %s", err.msg);
    cr_expect_eq(res.applied, -1);
}

Test(migrate, bad_conninfo_is_unavailable_without_secrets)
{
    char missing_db[CONNINFO_CAP + 32];
    char base[CONNINFO_CAP];

    assert_unavailable("host=/nonexistent-coach-dir port=1 user=nobody password=sekrit"
                       " dbname=x connect_timeout=2",
                       STORE_E_UNAVAILABLE);
    assert_unavailable("postgresql://nobody:sekrit@/x?host=/nonexistent-coach-dir",
                       STORE_E_UNAVAILABLE);
    cr_assert_eq(pgtest_conninfo_for("coach_no_such_database", base, sizeof base), 0);
    (void)snprintf(missing_db, sizeof missing_db, "%s password=sekrit", base);
    assert_unavailable(missing_db, STORE_E_UNAVAILABLE);
    /* Unparsable: libpq's message would quote a piece of it. */
    assert_unavailable("host=/tmp password=sek rit", -EINVAL);
    assert_unavailable("password='sekrit", -EINVAL);
}

/* The fixture's coach_template (what pgtest_db_create(1, ...) clones) is
 * fully migrated: migrating a clone changes nothing. */
Test(migrate, template_clone_is_current)
{
    char db[CONNINFO_CAP];
    struct store_migrate_result res = {-1, -1, -1};

    new_db_from(1, db);
    char *cat1 = catalog(db);
    migrate_ok(db, &res);
    cr_expect_eq(res.baseline_created, 0);
    cr_expect_eq(res.applied, 0);
    char *cat2 = catalog(db);
    cr_expect_str_eq(cat2, cat1);
    free(cat1);
    free(cat2);
}

static void *close_later(void *arg)
{
    struct timespec ts = {0, 300 * 1000000L};
    nanosleep(&ts, NULL);
    PQfinish(arg);
    return NULL;
}

/* CREATE DATABASE ... TEMPLATE fails while someone is connected to the
 * template (55006); pgtest_db_create retries until the template is free. */
Test(migrate, clone_waits_for_a_busy_template)
{
    char conninfo[CONNINFO_CAP], db[CONNINFO_CAP];
    pthread_t th;

    cr_assert_eq(pgtest_conninfo_for(PGTEST_TEMPLATE_DB, conninfo, sizeof conninfo), 0);
    PGconn *holder = PQconnectdb(conninfo);
    cr_assert_eq(PQstatus(holder), CONNECTION_OK, "%s", PQerrorMessage(holder));
    cr_assert_eq(pthread_create(&th, NULL, close_later, holder), 0);
    new_db_from(1, db);
    pthread_join(th, NULL);
    char latest[16];
    (void)snprintf(latest, sizeof latest, "%d", store_migrations_latest());
    assert_value(db, "SELECT max(version) FROM coach_schema_migrations", latest);
}
