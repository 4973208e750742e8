/*
 * store_int.h: declarations shared between the store module's files.
 * Never included outside store/.
 */
#ifndef COACH_STORE_INT_H
#define COACH_STORE_INT_H

#include <stdarg.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "store.h"

/* Monotonic clock in milliseconds. */
int64_t store__now_ms(void);

/* Fill err (NULL-safe) with code and a printf-style message. */
void store__err_set(struct store_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Connect with the gateway's connection options (timeout, application
 * name). NULL with err filled (STORE_E_UNAVAILABLE) on failure. */
PGconn *store__connect(const char *conninfo, struct store_err *err);

/* Free a vector of n malloc'd strings, and the vector. NULL-safe. */
void store__free_strv(char **v, size_t n);
/* Free n claimed AI jobs and what they own, and the array. NULL-safe. */
void store__free_ai_jobs(struct store_ai_job *jobs, size_t n);

/* The operations, run on the store thread with its live connection. Each
 * sets req->rc (0, STORE_E_NOTFOUND, STORE_E_QUERY, ...) and req->err, and
 * its outputs on success. When the connection broke meanwhile the caller
 * turns the failure into STORE_E_UNAVAILABLE, so an operation must leave
 * no transaction open behind it (ROLLBACK on every failure path). */
void store__op_auth_session(PGconn *c, struct store_req *req);
/* Several STORE_OP_AUTH_SESSION requests (at most STORE__SIGNIN_BATCH_MAX)
 * in one statement, each completed as store__op_auth_session would. */
void store__op_auth_session_batch(PGconn *c, struct store_req **reqs, size_t n);
#define STORE__SIGNIN_BATCH_MAX 256
void store__op_auth_user(PGconn *c, struct store_req *req);
void store__op_room_load(PGconn *c, struct store_req *req);
void store__op_session_join(PGconn *c, struct store_req *req);
void store__op_history(PGconn *c, struct store_req *req);
void store__op_warning(PGconn *c, struct store_req *req);
void store__op_end(PGconn *c, struct store_req *req);
void store__op_rate(PGconn *c, struct store_req *req);
void store__op_session_get(PGconn *c, struct store_req *req);
void store__op_ai_claim(PGconn *c, struct store_req *req);
void store__op_ai_result(PGconn *c, struct store_req *req);
void store__op_live_rooms(PGconn *c, struct store_req *req);
void store__op_auth_code_issue(PGconn *c, struct store_req *req);
void store__op_auth_code_redeem(PGconn *c, struct store_req *req);
void store__op_maintenance(PGconn *c, struct store_req *req);
void store__op_lk_event(PGconn *c, struct store_req *req);
/* listen.c: a notification on channel -> note; 0 or -1 (malformed). */
int store__note_parse(const char *channel, const char *payload, struct store_note *note);
void store__op_lk_close_claim(PGconn *c, struct store_req *req);
void store__op_lk_close_result(PGconn *c, struct store_req *req);
void store__op_job_stats(PGconn *c, struct store_req *req);
void store__op_node_beat(PGconn *c, struct store_req *req);
void store__op_node_leave(PGconn *c, struct store_req *req);
void store__op_presence_set(PGconn *c, struct store_req *req);
void store__op_presence_get(PGconn *c, struct store_req *req);
void store__op_notify(PGconn *c, struct store_req *req);
/* ANALYZE those of the tables the chat path writes (coach_message,
 * "Message", coach_room, "Session") whose live row count has outgrown
 * their statistics (more than twice the rows they were last analyzed
 * with, plus 500), so that generic plans made while they were small are
 * made again (see ops_queries.c, "Generic plans"). Returns how many were
 * analyzed; a failure is ignored (autovacuum gets there too). */
int store__ops_refresh_stats(PGconn *c);

/* Store n (1..256) chat requests in one transaction: the group commit.
 * Each request completes on its own: one that fails (e.g. its Session row
 * is gone) must not make the others fail, so a failed batch is retried
 * one by one. */
void store__op_chat_batch(PGconn *c, struct store_req **reqs, size_t n);

#endif
