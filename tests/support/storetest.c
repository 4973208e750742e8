/*
 * storetest.c: see storetest.h.
 */
#include "storetest.h"

#include <criterion/criterion.h>
#include <stdlib.h>

#include "pgtest.h"

static void quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

PGconn *storetest_connect(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) == CONNECTION_OK) {
        PQsetNoticeProcessor(c, quiet, NULL);
    }
    return c;
}

void storetest_sql(const char *conninfo, const char *s)
{
    cr_assert_eq(pgtest_exec(conninfo, s), 0, "%s", s);
}

void storetest_expect_value(const char *conninfo, const char *q, const char *want)
{
    char *v = pgtest_query_value(conninfo, q);
    cr_expect_str_eq(v != NULL ? v : "NULL", want, "%s", q);
    free(v);
}

int64_t storetest_query_i64(const char *conninfo, const char *q)
{
    char *v = pgtest_query_value(conninfo, q);
    cr_assert_not_null(v, "%s", q);
    int64_t x = strtoll(v, NULL, 10);
    free(v);
    return x;
}

struct store_req *storetest_req(enum store_op op)
{
    struct store_req *r = store_req_new(op, NULL, NULL);
    cr_assert_not_null(r);
    if (r == NULL) {
        abort(); /* not reached: tells the analyzer so */
    }
    return r;
}
