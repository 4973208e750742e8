/*
 * migrate_int.h: private declarations of the store's migration runner.
 *
 * The SQL texts are generated at build time by store/embed-sql.cmake into
 * migrations_sql.c (in the build directory) from
 * store/schema/prisma-baseline.sql and store/migrations/NNN_name.sql.
 * Only store/ includes this header.
 */
#ifndef COACH_MIGRATE_INT_H
#define COACH_MIGRATE_INT_H

#include <stddef.h>

/* One gateway migration, compiled in. */
struct store__migration {
    int version;      /* NNN of the file name: 1, 2, 3, ... without gaps */
    const char *name; /* "NNN_snake_name", recorded in coach_schema_migrations */
    const char *sql;  /* the file's text, NUL-terminated */
};

/* The application's schema as Prisma creates it (prisma-baseline.sql). */
extern const char *const store__baseline_sql;

/* The gateway's migrations in version order; store__n_migrations of them
 * (when there are none, the array holds one unused placeholder). */
extern const struct store__migration store__migrations[];
extern const size_t store__n_migrations;

#endif
