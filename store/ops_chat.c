/*
 * ops_chat.c: store__op_chat_batch, the group commit of chat messages.
 *
 * DESIGN
 * All the chats of a batch go into ONE transaction, sent as two pipelines
 * (two network round trips, whatever the batch size and however many rooms
 * it touches):
 *
 *  1. BEGIN;
 *     make sure each room of the batch has its coach_room row (INSERT ...
 *     ON CONFLICT DO NOTHING, in appointment order);
 *     lock those rows (SELECT last_seq ... ORDER BY appointment_id FOR
 *     UPDATE): the lock serializes the writers of a room, on this node and
 *     on any other, and the fixed order keeps two batches from deadlocking;
 *     read the clock once (clock_timestamp() after the locks, so createdAt
 *     never goes backwards along a room's seqs);
 *     look the batch's (appointment, user, clientMsgId) keys up in
 *     coach_message (after the locks: a new snapshot that sees every
 *     message committed before them);
 *     find the requests without a sessionId whose sender has no Session
 *     row: they fail alone (STORE_E_STATE) instead of failing the batch.
 *  2. Here, in C: a key found in the database is a duplicate and completes
 *     with the original seq, id and time; a key seen earlier in the same
 *     batch completes like that earlier request; every other request gets
 *     the room's next seq, in batch order, a fresh cuid and the batch's
 *     time.
 *  3. One statement inserts every new "Message" row and its coach_message
 *     row and moves each room's last_seq; then COMMIT.
 *
 * Parameters travel as binary PostgreSQL arrays (text[], int8[]): no
 * quoting, no escaping, any byte sequence the server accepts as text. The
 * server still checks each text (UTF-8, no NUL), so a bad message fails
 * its batch at bind time.
 *
 * Failure: the transaction is rolled back, so nothing of the batch is
 * written. When the connection is still up and the batch held more than
 * one request, each request is then run again alone, so one bad request
 * (its Session row deleted: a foreign-key violation) fails only itself.
 * When the connection is gone, every request fails and store.c reports
 * STORE_E_UNAVAILABLE; a client may resend safely, since the
 * clientMsgId makes a resend of a message that did commit a duplicate.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "ops_int.h"
#include "store_int.h"

#define BATCH_MAX  256
#define HASH_SLOTS 512 /* a power of two, at least 2 * BATCH_MAX */
#define TEXT_MAX   (1 << 24)

static_assert((HASH_SLOTS & (HASH_SLOTS - 1)) == 0 && HASH_SLOTS >= 2 * BATCH_MAX, "slots");

/* ---- binary array parameters ------------------------------------------------------ */

#define OID_INT8 20 /* pg_type.h */
#define OID_TEXT 25

static void put_u32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

/* The array header of PostgreSQL's binary format: one dimension of n
 * elements of type oid, no NULLs, lower bound 1. */
static char *array_header(char *p, size_t n, uint32_t oid)
{
    put_u32(p, 1);
    put_u32(p + 4, 0);
    put_u32(p + 8, oid);
    put_u32(p + 12, (uint32_t)n);
    put_u32(p + 16, 1);
    return p + 20;
}

int store__text_array(struct store__param *out, const char *const *v, const size_t *lens, size_t n)
{
    size_t size = 20;
    for (size_t i = 0; i < n; i++) {
        size += 4 + (lens != NULL ? lens[i] : strlen(v[i]));
    }
    if (size > INT_MAX || (out->data = malloc(size)) == NULL) {
        return -ENOMEM;
    }
    char *p = array_header(out->data, n, OID_TEXT);
    for (size_t i = 0; i < n; i++) {
        size_t len = lens != NULL ? lens[i] : strlen(v[i]);
        put_u32(p, (uint32_t)len);
        memcpy(p + 4, v[i], len);
        p += 4 + len;
    }
    out->len = (int)size;
    return 0;
}

/* An int8[] of the n values v[i]. 0 or -ENOMEM. */
static int int8_array(struct store__param *out, const int64_t *v, size_t n)
{
    size_t size = 20 + n * 12;
    if ((out->data = malloc(size)) == NULL) {
        return -ENOMEM;
    }
    char *p = array_header(out->data, n, OID_INT8);
    for (size_t i = 0; i < n; i++) {
        uint64_t x = (uint64_t)v[i];
        put_u32(p, 8);
        put_u32(p + 4, (uint32_t)(x >> 32));
        put_u32(p + 8, (uint32_t)x);
        p += 12;
    }
    out->len = (int)size;
    return 0;
}

static void params_free(struct store__param *ps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(ps[i].data);
        ps[i].data = NULL;
    }
}

/* ---- the batch ------------------------------------------------------------------------ */

struct batch {
    struct store_req **reqs; /* borrowed: the requests, in batch order */
    size_t n;
    const char *rooms[BATCH_MAX];    /* distinct appointment ids, borrowed from reqs */
    int64_t last_seq[BATCH_MAX];     /* per room */
    uint16_t room_of[BATCH_MAX];     /* per request: its index in rooms */
    uint16_t room_slots[HASH_SLOTS]; /* hash of rooms: index + 1, 0 = free */
    size_t n_rooms;
    int64_t now_ms;            /* createdAt of the batch's new messages */
    unsigned char no_session[BATCH_MAX]; /* per request: no Session row to write to */
    uint16_t fresh[BATCH_MAX]; /* indexes of the requests that store a message */
    size_t n_fresh;
    int64_t started_us;
};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint32_t hash_str(uint32_t h, const char *s)
{
    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 16777619u;
    }
    return (h ^ 0xffu) * 16777619u; /* the terminator, so "ab"+"c" != "a"+"bc" */
}

/* The slot of room aid in b->room_slots: holds its index + 1, or 0 when
 * aid is not (yet) one of b->rooms. */
static size_t room_slot(const struct batch *b, const char *aid)
{
    uint32_t h = hash_str(2166136261u, aid) & (HASH_SLOTS - 1);
    while (b->room_slots[h] != 0 && strcmp(b->rooms[b->room_slots[h] - 1], aid) != 0) {
        h = (h + 1) & (HASH_SLOTS - 1);
    }
    return h;
}

/* Fill b->rooms, b->room_slots and b->room_of. */
static void group_rooms(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        const char *aid = b->reqs[i]->u.chat.appointment_id;
        size_t h = room_slot(b, aid);
        if (b->room_slots[h] == 0) {
            b->rooms[b->n_rooms] = aid;
            b->room_slots[h] = (uint16_t)++b->n_rooms;
        }
        b->room_of[i] = (uint16_t)(b->room_slots[h] - 1);
    }
}

static int same_key(const struct store_chat *x, const struct store_chat *y)
{
    return strcmp(x->appointment_id, y->appointment_id) == 0 &&
           strcmp(x->user_id, y->user_id) == 0 && strcmp(x->client_msg_id, y->client_msg_id) == 0;
}

static void copy_outputs(struct store_chat *to, const struct store_chat *from)
{
    to->seq = from->seq;
    memcpy(to->message_id, from->message_id, sizeof to->message_id);
    to->created_unix_ms = from->created_unix_ms;
    to->duplicate = 1;
}

/* Step 2 of DESIGN: duplicates and seqs, in batch order. Requests already
 * marked duplicate (found in the database) keep their outputs. */
static void assign(struct batch *b)
{
    uint16_t slots[HASH_SLOTS] = {0}; /* request index + 1 */
    for (size_t i = 0; i < b->n; i++) {
        struct store_chat *ch = &b->reqs[i]->u.chat;
        uint32_t h = hash_str(hash_str(hash_str(2166136261u, ch->appointment_id), ch->user_id),
                              ch->client_msg_id) &
                     (HASH_SLOTS - 1);
        while (slots[h] != 0 && !same_key(&b->reqs[slots[h] - 1]->u.chat, ch)) {
            h = (h + 1) & (HASH_SLOTS - 1);
        }
        if (slots[h] != 0) {
            copy_outputs(ch, &b->reqs[slots[h] - 1]->u.chat);
            continue;
        }
        if (!ch->duplicate && b->no_session[i]) {
            continue; /* fails alone (run_batch); a later copy fails the same way */
        }
        slots[h] = (uint16_t)(i + 1);
        if (ch->duplicate) {
            continue;
        }
        ch->seq = ++b->last_seq[b->room_of[i]];
        store_cuid(ch->message_id);
        ch->created_unix_ms = b->now_ms;
        b->fresh[b->n_fresh++] = (uint16_t)i;
    }
}

/* ---- the two pipelines ------------------------------------------------------------------ */

/* A text[] of a char-array field of struct store_chat (at offset off) for
 * the requests idx[0..n) (all of them, in order, when idx is NULL). */
static int field_array(struct store__param *out, const struct batch *b, const uint16_t *idx,
                       size_t n, size_t off)
{
    const char *v[BATCH_MAX] = {NULL};
    size_t lens[BATCH_MAX] = {0};
    for (size_t k = 0; k < n; k++) {
        const struct store_req *r = b->reqs[idx != NULL ? idx[k] : k];
        v[k] = (const char *)&r->u.chat + off;
        lens[k] = strlen(v[k]);
    }
    return store__text_array(out, v, lens, n);
}

enum { P_BEGIN, P_ROOMS, P_LOCK, P_NOW, P_DEDUPE, P_NO_SESSION, P_N };

/* Read the locked rooms' last_seq, the clock and the stored duplicates. */
static int read_phase1(struct batch *b, PGresult **res, struct store_err *err)
{
    const PGresult *lock = res[P_LOCK], *dup = res[P_DEDUPE];
    if ((size_t)PQntuples(lock) != b->n_rooms || PQntuples(res[P_NOW]) != 1) {
        store__err_set(err, STORE_E_QUERY, "chat: a room row vanished");
        return STORE_E_QUERY;
    }
    for (int row = 0; row < PQntuples(lock); row++) {
        size_t i = b->room_slots[room_slot(b, PQgetvalue(lock, row, 0))];
        if (i == 0) {
            store__err_set(err, STORE_E_QUERY, "chat: unexpected room row");
            return STORE_E_QUERY;
        }
        b->last_seq[i - 1] = store__ops_i64(lock, row, 1);
    }
    b->now_ms = store__ops_i64(res[P_NOW], 0, 0);
    for (int row = 0; row < PQntuples(dup); row++) {
        int64_t i = store__ops_i64(dup, row, 0);
        if (i < 1 || (size_t)i > b->n) {
            store__err_set(err, STORE_E_QUERY, "chat: unexpected duplicate row");
            return STORE_E_QUERY;
        }
        struct store_chat *ch = &b->reqs[i - 1]->u.chat;
        ch->seq = store__ops_i64(dup, row, 1);
        (void)store__ops_copy(ch->message_id, sizeof ch->message_id, dup, row, 2);
        ch->created_unix_ms = store__ops_i64(dup, row, 3);
        ch->duplicate = 1;
    }
    const PGresult *nos = res[P_NO_SESSION];
    for (int row = 0; row < PQntuples(nos); row++) {
        int64_t i = store__ops_i64(nos, row, 0);
        if (i < 1 || (size_t)i > b->n) {
            store__err_set(err, STORE_E_QUERY, "chat: unexpected session row");
            return STORE_E_QUERY;
        }
        b->no_session[i - 1] = 1;
    }
    return 0;
}

/* Step 1 of DESIGN: BEGIN, create and lock the rooms, read the clock and
 * the duplicates. On failure the transaction may be left open. */
static int phase1(PGconn *c, struct batch *b, struct store_err *err)
{
    struct store__param ps[5] = {{0}};
    size_t lens[BATCH_MAX] = {0};
    for (size_t k = 0; k < b->n_rooms; k++) {
        lens[k] = strlen(b->rooms[k]);
    }
    if (store__text_array(&ps[0], b->rooms, lens, b->n_rooms) != 0 ||
        field_array(&ps[1], b, NULL, b->n, offsetof(struct store_chat, appointment_id)) != 0 ||
        field_array(&ps[2], b, NULL, b->n, offsetof(struct store_chat, user_id)) != 0 ||
        field_array(&ps[3], b, NULL, b->n, offsetof(struct store_chat, client_msg_id)) != 0 ||
        field_array(&ps[4], b, NULL, b->n, offsetof(struct store_chat, session_id)) != 0) {
        params_free(ps, 5);
        store__err_set(err, -ENOMEM, "chat: out of memory");
        return -ENOMEM;
    }
    static const int fmts[] = {1, 1, 1};
    const char *rooms_v[] = {ps[0].data};
    const int rooms_l[] = {ps[0].len};
    const char *keys_v[] = {ps[1].data, ps[2].data, ps[3].data};
    const int keys_l[] = {ps[1].len, ps[2].len, ps[3].len};
    const char *sess_v[] = {ps[1].data, ps[2].data, ps[4].data};
    const int sess_l[] = {ps[1].len, ps[2].len, ps[4].len};
    const struct store__ops_stmt stmts[P_N] = {
        [P_BEGIN] = {STORE_Q_BEGIN, 0, NULL, NULL, NULL},
        [P_ROOMS] = {STORE_Q_CHAT_ROOMS, 1, rooms_v, rooms_l, fmts},
        [P_LOCK] = {STORE_Q_CHAT_LOCK, 1, rooms_v, rooms_l, fmts},
        [P_NOW] = {STORE_Q_CHAT_NOW, 0, NULL, NULL, NULL},
        [P_DEDUPE] = {STORE_Q_CHAT_DEDUPE, 3, keys_v, keys_l, fmts},
        [P_NO_SESSION] = {STORE_Q_CHAT_NO_SESSION, 3, sess_v, sess_l, fmts},
    };
    PGresult *res[P_N];
    size_t bad = store__ops_pipeline(c, stmts, P_N, res);
    int rc = bad < P_N ? store__ops_fail(c, res[bad], "chat", err) : read_phase1(b, res, err);
    store__ops_clear(res, P_N);
    params_free(ps, 5);
    return rc;
}

enum { W_ID, W_SID, W_UID, W_SENDER, W_CONTENT, W_AID, W_CMID, W_SEQ, W_NOW, W_N };

/* The parameters of STORE_Q_CHAT_INSERT for the fresh requests. */
static int insert_params(struct store__param *ps, const struct batch *b)
{
    const char *v[BATCH_MAX] = {NULL};
    size_t lens[BATCH_MAX] = {0};
    int64_t seqs[BATCH_MAX] = {0};
    for (size_t k = 0; k < b->n_fresh; k++) {
        const struct store_chat *ch = &b->reqs[b->fresh[k]]->u.chat;
        v[k] = ch->role == STORE_ROLE_COACH ? "coach" : "client";
        lens[k] = strlen(v[k]);
        seqs[k] = ch->seq;
    }
    if (store__text_array(&ps[W_SENDER], v, lens, b->n_fresh) != 0 ||
        int8_array(&ps[W_SEQ], seqs, b->n_fresh) != 0) {
        return -ENOMEM;
    }
    for (size_t k = 0; k < b->n_fresh; k++) {
        const struct store_chat *ch = &b->reqs[b->fresh[k]]->u.chat;
        v[k] = ch->text;
        lens[k] = ch->text_len;
    }
    const size_t n = b->n_fresh;
    if (store__text_array(&ps[W_CONTENT], v, lens, n) != 0 ||
        field_array(&ps[W_ID], b, b->fresh, n, offsetof(struct store_chat, message_id)) != 0 ||
        field_array(&ps[W_SID], b, b->fresh, n, offsetof(struct store_chat, session_id)) != 0 ||
        field_array(&ps[W_UID], b, b->fresh, n, offsetof(struct store_chat, user_id)) != 0 ||
        field_array(&ps[W_AID], b, b->fresh, n, offsetof(struct store_chat, appointment_id)) != 0 ||
        field_array(&ps[W_CMID], b, b->fresh, n, offsetof(struct store_chat, client_msg_id)) != 0) {
        return -ENOMEM;
    }
    return 0;
}

/* Step 3 of DESIGN: insert the fresh messages, move last_seq, COMMIT. */
static int phase2(PGconn *c, const struct batch *b, struct store_err *err)
{
    struct store__param ps[W_N] = {{0}};
    char now[24];
    (void)snprintf(now, sizeof now, "%" PRId64, b->now_ms);
    if (b->n_fresh > 0 && insert_params(ps, b) != 0) {
        params_free(ps, W_N);
        store__err_set(err, -ENOMEM, "chat: out of memory");
        return -ENOMEM;
    }
    static const int fmts[W_N] = {1, 1, 1, 1, 1, 1, 1, 1, 0};
    const char *vals[W_N];
    int lens[W_N];
    for (size_t k = 0; k < W_NOW; k++) {
        vals[k] = ps[k].data;
        lens[k] = ps[k].len;
    }
    vals[W_NOW] = now;
    lens[W_NOW] = 0;
    const struct store__ops_stmt stmts[2] = {
        {STORE_Q_CHAT_INSERT, W_N, vals, lens, fmts},
        {STORE_Q_COMMIT, 0, NULL, NULL, NULL},
    };
    /* Without fresh messages there is nothing to insert: just COMMIT. */
    const struct store__ops_stmt *first = b->n_fresh > 0 ? &stmts[0] : &stmts[1];
    size_t n = b->n_fresh > 0 ? 2 : 1;
    PGresult *res[2];
    size_t bad = store__ops_pipeline(c, first, n, res);
    int rc = 0;
    if (bad < n) {
        rc = store__ops_fail(c, res[bad], "chat", err);
    } else if (strcmp(PQcmdStatus(res[n - 1]), "COMMIT") != 0) {
        rc = store__ops_fail(c, res[n - 1], "chat: commit", err);
    }
    store__ops_clear(res, n);
    params_free(ps, W_N);
    return rc;
}

/* ---- entry point ------------------------------------------------------------------------ */

static void reset_outputs(struct store_req *req)
{
    struct store_chat *ch = &req->u.chat;
    ch->seq = 0;
    ch->message_id[0] = '\0';
    ch->created_unix_ms = 0;
    ch->duplicate = 0;
    ch->commit_us = 0;
    req->rc = 0;
    req->err.code = 0;
    req->err.msg[0] = '\0';
}

static void fail_req(struct store_req *req, int code, const struct store_err *err)
{
    reset_outputs(req);
    req->rc = code;
    req->err = *err;
    req->err.code = code;
}

/* 0 when req can go into a batch; else it is failed with -EINVAL. */
static int validate(struct store_req *req)
{
    struct store_chat *ch = &req->u.chat;
    ch->appointment_id[sizeof ch->appointment_id - 1] = '\0';
    ch->session_id[sizeof ch->session_id - 1] = '\0';
    ch->user_id[sizeof ch->user_id - 1] = '\0';
    ch->client_msg_id[sizeof ch->client_msg_id - 1] = '\0';
    const char *why = NULL;
    if (ch->role != STORE_ROLE_COACH && ch->role != STORE_ROLE_CLIENT) {
        why = "only a coach or a client chats";
    } else if (ch->text == NULL || ch->text_len > TEXT_MAX) {
        why = "no text, or too long";
    } else if (ch->appointment_id[0] == '\0' || ch->user_id[0] == '\0' ||
               ch->client_msg_id[0] == '\0') {
        why = "an id is missing";
    }
    if (why != NULL) {
        req->rc = -EINVAL;
        store__err_set(&req->err, req->rc, "chat: %s", why);
        return -1;
    }
    return 0;
}

/* One transaction for reqs[0..n). 0 with every request completed, or a
 * negative code with err set and the transaction rolled back. */
static int run_batch(PGconn *c, struct store_req **reqs, size_t n, struct store_err *err)
{
    struct batch b;
    memset(&b, 0, sizeof b);
    b.reqs = reqs;
    b.n = n;
    b.started_us = mono_us();
    group_rooms(&b);
    int rc = phase1(c, &b, err);
    if (rc == 0) {
        assign(&b);
        rc = phase2(c, &b, err);
    }
    if (rc != 0) {
        store__ops_rollback(c);
        return rc;
    }
    int64_t took_us = mono_us() - b.started_us;
    for (size_t i = 0; i < n; i++) {
        struct store_chat *ch = &reqs[i]->u.chat;
        if (b.no_session[i] && !ch->duplicate) { /* not stored (assign) */
            reqs[i]->rc = STORE_E_STATE;
            store__err_set(&reqs[i]->err, STORE_E_STATE, "chat: the sender has no Session row");
            continue;
        }
        ch->commit_us = took_us;
        reqs[i]->rc = 0;
    }
    return 0;
}

/* Up to BATCH_MAX requests: the batch, then one by one if it failed. */
static void run_chunk(PGconn *c, struct store_req **reqs, size_t n)
{
    struct store_req *ok[BATCH_MAX];
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        reset_outputs(reqs[i]);
        if (validate(reqs[i]) == 0) {
            ok[m++] = reqs[i];
        }
    }
    if (m == 0) {
        return;
    }
    struct store_err err = {0};
    int rc = store__ops_ready(c, &err);
    int ran = rc == 0;
    if (ran) {
        rc = run_batch(c, ok, m, &err);
    }
    if (rc == 0) {
        return;
    }
    for (size_t i = 0; i < m; i++) {
        reset_outputs(ok[i]);
        if (ran && m > 1 && rc != -ENOMEM && PQstatus(c) == CONNECTION_OK) {
            struct store_err one = {0};
            int rc1 = store__ops_ready(c, &one); /* again, if the statements were lost */
            if (rc1 == 0) {
                rc1 = run_batch(c, &ok[i], 1, &one);
            }
            if (rc1 != 0) {
                fail_req(ok[i], rc1, &one);
            }
        } else {
            fail_req(ok[i], rc, &err);
        }
    }
}

void store__op_chat_batch(PGconn *c, struct store_req **reqs, size_t n)
{
    store__ops_chunks(c, reqs, n, BATCH_MAX, run_chunk);
}
