/*
 * storetest.h: helpers for tests that call the store's operations
 * directly on a PGconn (test_store_ops, test_store_life). They assert
 * with Criterion. Test code only.
 */
#ifndef COACH_TEST_STORETEST_H
#define COACH_TEST_STORETEST_H

#include <stdint.h>

#include <libpq-fe.h>

#include "store.h"

/* A connection to conninfo whose server notices are not printed; the
 * caller checks PQstatus and PQfinishes it. */
PGconn *storetest_connect(const char *conninfo);

/* Run statement s on conninfo; assert it succeeded. */
void storetest_sql(const char *conninfo, const char *s);

/* Expect the first value of query q to be want ("NULL" for no row or SQL NULL). */
void storetest_expect_value(const char *conninfo, const char *q, const char *want);

/* The first value of query q as an integer; asserts there is one. */
int64_t storetest_query_i64(const char *conninfo, const char *q);

/* A new request for op (asserted, never NULL); free it with store_req_free. */
struct store_req *storetest_req(enum store_op op);

#endif
