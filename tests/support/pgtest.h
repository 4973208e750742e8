/*
 * pgtest.h: PostgreSQL helpers for the integration tests.
 *
 * The ctest fixture `pg` (tests/support/pg-fixture.sh) starts one private
 * server and writes a libpq conninfo for its maintenance database into the
 * file named by COACH_TEST_PG_FILE; COACH_TEST_PG, when set, gives that
 * conninfo directly and wins. The fixture also creates `coach_template`, a
 * database already migrated by `coach-gateway migrate`.
 *
 * Every test makes its own database (pgtest_db_create) and drops it at the
 * end (pgtest_db_drop), so tests run in parallel processes without sharing
 * rows. Typical use, with Criterion's .init/.fini:
 *
 *     static char db[64], conninfo[512];
 *     static void setup(void) { cr_assert(pgtest_db_create(1, db, sizeof db,
 *                                                          conninfo, sizeof conninfo) == 0); }
 *     static void teardown(void) { pgtest_db_drop(db); }
 *
 * All functions report failures as a return value plus one line on stderr
 * (tests may print); none aborts. They block on the database. Any thread,
 * though the helpers are meant for a test's main thread.
 */
#ifndef COACH_PGTEST_H
#define COACH_PGTEST_H

#include <stddef.h>

/* The name of the migrated template database the fixture creates. */
#define PGTEST_TEMPLATE_DB "coach_template"

/* The maintenance conninfo (dbname=postgres) from COACH_TEST_PG or the file
 * named by COACH_TEST_PG_FILE, or NULL (with a message on stderr) when
 * neither is usable. The string is static and lives until exit. */
const char *pgtest_admin_conninfo(void);

/* Write into out (cap bytes) a conninfo for database dbname on the same
 * server as pgtest_admin_conninfo(). 0, or -1 when there is no admin
 * conninfo or out is too small. */
int pgtest_conninfo_for(const char *dbname, char *out, size_t cap);

/* Create database dbname on the server of the conninfo admin (a private
 * server of a test's own, say) and write a conninfo for it into out. 0 or
 * -1. */
int pgtest_db_on(const char *admin, const char *dbname, char *out, size_t cap);

/* The coach, the client and the appointment (id cappt1, roomId room-1,
 * starting now, 20 minutes, scheduled) most suites start from. */
#define PGTEST_COACH  "ccoach0000000000000000001"
#define PGTEST_CLIENT "cclient000000000000000001"
extern const char pgtest_seed_room1[];

/* Create a fresh database with a name unique across parallel processes
 * (pid, counter and random bytes): empty (migrated = 0, from template0) or
 * cloned from coach_template (migrated = 1; retried for a while when the
 * template is busy, SQLSTATE 55006). Writes its name into dbname and a
 * conninfo for it into conninfo. 0 or -1. */
int pgtest_db_create(int migrated, char *dbname, size_t dbname_cap, char *conninfo,
                     size_t conninfo_cap);

/* Drop database dbname, disconnecting its sessions (WITH (FORCE)). Dropping
 * one that does not exist succeeds. 0 or -1. */
int pgtest_db_drop(const char *dbname);

/* Run sql (no parameters; several statements separated by ';' are allowed
 * and run as one implicit transaction) on a new connection to conninfo.
 * 0 or -1. */
int pgtest_exec(const char *conninfo, const char *sql);

/* Run sql on a new connection to conninfo and return the first column of its
 * first row as a string the caller frees with free(). NULL on error, when
 * there is no row, or when that value is SQL NULL. */
char *pgtest_query_value(const char *conninfo, const char *sql);

#endif
