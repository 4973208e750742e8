/*
 * ops_history.c: store__op_history, a page of a room's messages.
 *
 * Forward (after_seq >= 0): the first `limit` messages with seq > after_seq
 * (recovery after a reconnect). Backward (after_seq < 0): the newest `limit`
 * messages with seq < before_seq (scrolling up; before_seq = INT64_MAX for
 * the latest). Either way the page is returned in ascending seq order, and
 * one row more than asked for is fetched to tell whether more exist beyond
 * it. Both walk the (appointment_id, seq) unique index of coach_message.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "ops_int.h"
#include "store_int.h"

#define HISTORY_LIMIT_MAX 1000

/* The columns of both history statements (ops_queries.c). */
enum { H_SEQ, H_ID, H_CMID, H_USER, H_NAME, H_TEXT, H_CREATED };

/* Fill m from row `row`. 0, -1 for an oversized id, -ENOMEM. */
static int copy_message(struct store_message *m, const PGresult *res, int row, const char *coach_id)
{
    if (store__ops_copy(m->message_id, sizeof m->message_id, res, row, H_ID) != 0 ||
        store__ops_copy(m->client_msg_id, sizeof m->client_msg_id, res, row, H_CMID) != 0 ||
        store__ops_copy(m->user_id, sizeof m->user_id, res, row, H_USER) != 0) {
        return -1;
    }
    store__ops_copy_text(m->display_name, sizeof m->display_name, res, row, H_NAME);
    size_t len = (size_t)PQgetlength(res, row, H_TEXT);
    m->text = malloc(len + 1);
    if (m->text == NULL) {
        return -ENOMEM;
    }
    memcpy(m->text, PQgetvalue(res, row, H_TEXT), len);
    m->text[len] = '\0';
    m->seq = store__ops_i64(res, row, H_SEQ);
    m->created_unix_ms = store__ops_i64(res, row, H_CREATED);
    m->role = strcmp(m->user_id, coach_id) == 0 ? STORE_ROLE_COACH : STORE_ROLE_CLIENT;
    return 0;
}

static void free_messages(struct store_message *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(msgs[i].text);
    }
    free(msgs);
}

/* Turn the result into h->msgs (ascending). 0, -1 or -ENOMEM; on error
 * h is left without messages. */
static int fill_page(struct store_history *h, const PGresult *res, int backward)
{
    size_t rows = (size_t)PQntuples(res);
    size_t n = rows > (size_t)h->limit ? (size_t)h->limit : rows;
    h->has_more = rows > n;
    if (n == 0) {
        return 0;
    }
    struct store_message *msgs = calloc(n, sizeof *msgs);
    if (msgs == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        /* Backward pages come newest first: store them reversed. */
        size_t at = backward ? n - 1 - i : i;
        int rc = copy_message(&msgs[at], res, (int)i, h->coach_id);
        if (rc != 0) {
            free_messages(msgs, n);
            return rc;
        }
    }
    h->msgs = msgs;
    h->n_msgs = n;
    return 0;
}

void store__op_history(PGconn *c, struct store_req *req)
{
    struct store_history *h = &req->u.history;
    h->appointment_id[sizeof h->appointment_id - 1] = '\0';
    h->coach_id[sizeof h->coach_id - 1] = '\0';
    h->msgs = NULL;
    h->n_msgs = 0;
    h->has_more = 0;
    if (h->limit < 1 || h->limit > HISTORY_LIMIT_MAX) {
        req->rc = -EINVAL;
        store__err_set(&req->err, req->rc, "history: limit %d is outside 1..%d", h->limit,
                       HISTORY_LIMIT_MAX);
        return;
    }
    req->rc = store__ops_ready(c, &req->err);
    if (req->rc != 0) {
        return;
    }
    int backward = h->after_seq < 0;
    char bound[24], rows[16];
    (void)snprintf(bound, sizeof bound, "%" PRId64, backward ? h->before_seq : h->after_seq);
    (void)snprintf(rows, sizeof rows, "%d", h->limit + 1);
    const char *vals[] = {h->appointment_id, bound, rows};
    PGresult *res =
        store__ops_exec(c, backward ? STORE_Q_HISTORY_BEFORE : STORE_Q_HISTORY_AFTER, 3, vals);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        req->rc = store__ops_fail(c, res, "history", &req->err);
    } else {
        int rc = fill_page(h, res, backward);
        req->rc = rc == 0 ? 0 : rc == -ENOMEM ? -ENOMEM : STORE_E_QUERY;
        if (rc != 0) {
            h->has_more = 0;
            store__err_set(&req->err, req->rc, "history: %s",
                           rc == -ENOMEM ? "out of memory" : "an id is too long");
        }
    }
    PQclear(res);
}
