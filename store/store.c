/*
 * store.c: the store thread.
 *
 * DESIGN: one thread owns one PGconn. The loop thread submits requests into
 * a bounded FIFO (store_submit never blocks); the store thread runs them in
 * order and moves each finished request onto a done list, then calls the
 * wake callback (lws_cancel_service in the gateway). The loop thread swaps
 * the done list out under the lock and runs the callbacks unlocked
 * (store_run_done), like libuv's uv__work_done.
 *
 * The connection is made in the background and remade with exponential
 * backoff and jitter whenever it is lost. While it is down, a request waits
 * for it until its deadline (STORE_TIMEOUT_MS), then completes with
 * STORE_E_UNAVAILABLE; health probes never wait. "In flight" counts queued,
 * running and done-but-not-collected requests, so the done list is bounded
 * by the same cap as the queue.
 */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "store_int.h"

#define BACKOFF_MIN_MS    100
#define BACKOFF_MAX_MS    5000
#define CONNECT_TIMEOUT_S "3"
#define STORE_BATCH_MAX   256 /* chats in one group commit */
#define STATS_CHECK_FIRST 500                 /* chats written before the first check */
#define STATS_CHECK_LAST  ((uint64_t)2000000) /* no checks after this many */

struct shard {
    char *conninfo; /* owned; never logged */
    int64_t timeout_ms;
    size_t queue_cap;
    void (*wake)(void *arg);
    void *wake_arg;
    store_log_fn log;
    void *log_arg;

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct store_req *q_head, *q_tail;       /* {mu} */
    struct store_req *q_prio;                /* {mu} the last sign-in queued, or NULL */
    struct store_req *done_head, *done_tail; /* {mu} */
    bool stopping;                           /* {mu} */
    atomic_size_t in_flight;
    atomic_int backend_pid; /* of the store's connection, 0 while there is none */

    /* Store thread only. */
    PGconn *conn;
    int64_t next_connect_ms;
    int64_t backoff_ms;
    bool was_connected;
    uint64_t chats_written;    /* since the store started */
    uint64_t next_stats_check; /* at this many: store__ops_refresh_stats */

    /* The statistics refresh runs on the background connection, so that
     * an ANALYZE of the chat tables (a few hundred ms) never holds up a
     * room's chats: a room connection sets stats_due there and wakes it. */
    _Atomic(struct shard *) stats_to; /* room connections: the background one */
    atomic_bool stats_due;            /* background connection: a refresh is wanted */
};

/* The store: requests go to one of its shards (each a thread with its own
 * PostgreSQL connection, queue and group commit), a room's to the same one
 * always, so they run in order. */
struct store {
    struct shard *shards[STORE_CONNECTIONS_MAX + 1]; /* the rooms', then the background one */
    size_t n;                                        /* room shards */
    size_t n_open;                                   /* all shards opened */
    atomic_size_t next_rr;
};

int64_t store__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void store__err_set(struct store_err *err, int code, const char *fmt, ...)
{
    if (err == NULL) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
}

static void slog(struct shard *st, int level, const char *event, const char *msg)
{
    if (st->log != NULL) {
        st->log(st->log_arg, level, event, msg);
    }
}

/* ---- connection management (store thread) -------------------------------- */

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

PGconn *store__connect(const char *conninfo, struct store_err *err)
{
    const char *const keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *const vals[] = {conninfo, CONNECT_TIMEOUT_S, "coach-gateway", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c == NULL) {
        store__err_set(err, -ENOMEM, "out of memory connecting to PostgreSQL");
        return NULL;
    }
    /* libpq prints server notices to stderr by default: the store never prints. */
    PQsetNoticeProcessor(c, ignore_notice, NULL);
    if (PQstatus(c) != CONNECTION_OK) {
        /* libpq's message names host and port, never the password. */
        char msg[200];
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c));
        msg[strcspn(msg, "\n")] = '\0';
        store__err_set(err, STORE_E_UNAVAILABLE, "cannot connect to PostgreSQL: %s", msg);
        PQfinish(c);
        return NULL;
    }
    return c;
}

static void disconnect(struct shard *st, const char *why)
{
    if (st->conn != NULL) {
        PQfinish(st->conn);
        st->conn = NULL;
    }
    atomic_store(&st->backend_pid, 0);
    if (st->was_connected) {
        slog(st, 4, "store.disconnected", why);
        st->was_connected = false;
    }
    st->next_connect_ms = store__now_ms();
}

static void schedule_reconnect(struct shard *st, int64_t now_ms)
{
    st->backoff_ms = st->backoff_ms == 0 ? BACKOFF_MIN_MS : st->backoff_ms * 2;
    if (st->backoff_ms > BACKOFF_MAX_MS) {
        st->backoff_ms = BACKOFF_MAX_MS;
    }
    /* Full jitter on the upper half: spreads many gateways apart. */
    int64_t half = st->backoff_ms / 2;
    st->next_connect_ms = now_ms + half + (int64_t)randombytes_uniform((uint32_t)half + 1);
}

/* Connect when due. Returns true when a connection is up. */
static bool ensure_connected(struct shard *st)
{
    if (st->conn != NULL) {
        return true;
    }
    int64_t now = store__now_ms();
    if (now < st->next_connect_ms) {
        return false;
    }
    struct store_err err = {0};
    st->conn = store__connect(st->conninfo, &err);
    if (st->conn == NULL) {
        if (st->backoff_ms == 0 || st->was_connected) {
            slog(st, 4, "store.connect_failed", err.msg);
        }
        schedule_reconnect(st, store__now_ms());
        return false;
    }
    st->backoff_ms = 0;
    st->was_connected = true;
    atomic_store(&st->backend_pid, PQbackendPID(st->conn));
    slog(st, 5, "store.connected", "");
    return true;
}

/* ---- request execution (store thread) ------------------------------------- */

/* Nonzero when the last failure means the connection itself is gone. */
static bool conn_lost(const struct shard *st)
{
    return st->conn == NULL || PQstatus(st->conn) != CONNECTION_OK;
}

static void run_health(struct shard *st, struct store_req *req)
{
    PGresult *res =
        PQexecParams(st->conn, "SELECT coalesce(max(version), 0) FROM coach_schema_migrations", 0,
                     NULL, NULL, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        if (conn_lost(st)) {
            req->rc = STORE_E_UNAVAILABLE;
            store__err_set(&req->err, req->rc, "database connection lost");
        } else {
            req->rc = STORE_E_SCHEMA;
            const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            store__err_set(&req->err, req->rc, "migrations table unreadable (SQLSTATE %s)",
                           state != NULL ? state : "?");
        }
        PQclear(res);
        return;
    }
    req->u.health.schema_version = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (req->u.health.schema_version < store_migrations_latest()) {
        req->rc = STORE_E_SCHEMA;
        store__err_set(&req->err, req->rc, "schema at migration %d, binary needs %d",
                       req->u.health.schema_version, store_migrations_latest());
        return;
    }
    req->rc = 0;
}

static void execute_one(struct shard *st, struct store_req *req)
{
    switch (req->op) {
    case STORE_OP_HEALTH:
        run_health(st, req);
        break;
    case STORE_OP_AUTH_SESSION:
        store__op_auth_session(st->conn, req);
        break;
    case STORE_OP_AUTH_USER:
        store__op_auth_user(st->conn, req);
        break;
    case STORE_OP_ROOM_LOAD:
        store__op_room_load(st->conn, req);
        break;
    case STORE_OP_SESSION_JOIN:
        store__op_session_join(st->conn, req);
        break;
    case STORE_OP_HISTORY:
        store__op_history(st->conn, req);
        break;
    case STORE_OP_CHAT:
        store__op_chat_batch(st->conn, &req, 1);
        break;
    case STORE_OP_WARNING:
        store__op_warning(st->conn, req);
        break;
    case STORE_OP_END:
        store__op_end(st->conn, req);
        break;
    case STORE_OP_RATE:
        store__op_rate(st->conn, req);
        break;
    case STORE_OP_SESSION_GET:
        store__op_session_get(st->conn, req);
        break;
    case STORE_OP_AI_CLAIM:
        store__op_ai_claim(st->conn, req);
        break;
    case STORE_OP_AI_RESULT:
        store__op_ai_result(st->conn, req);
        break;
    case STORE_OP_LIVE_ROOMS:
        store__op_live_rooms(st->conn, req);
        break;
    case STORE_OP_AUTH_CODE_ISSUE:
        store__op_auth_code_issue(st->conn, req);
        break;
    case STORE_OP_AUTH_CODE_REDEEM:
        store__op_auth_code_redeem(st->conn, req);
        break;
    case STORE_OP_MAINTENANCE:
        store__op_maintenance(st->conn, req);
        break;
    case STORE_OP_LK_EVENT:
        store__op_lk_event(st->conn, req);
        break;
    case STORE_OP_LK_CLOSE_CLAIM:
        store__op_lk_close_claim(st->conn, req);
        break;
    case STORE_OP_LK_CLOSE_RESULT:
        store__op_lk_close_result(st->conn, req);
        break;
    case STORE_OP_JOB_STATS:
        store__op_job_stats(st->conn, req);
        break;
    case STORE_OP_NODE_BEAT:
        store__op_node_beat(st->conn, req);
        break;
    case STORE_OP_NODE_LEAVE:
        store__op_node_leave(st->conn, req);
        break;
    case STORE_OP_PRESENCE_SET:
        store__op_presence_set(st->conn, req);
        break;
    case STORE_OP_PRESENCE_GET:
        store__op_presence_get(st->conn, req);
        break;
    case STORE_OP_NOTIFY:
        store__op_notify(st->conn, req);
        break;
    }
}

/* Bring the chat tables' statistics up to date (store__ops_refresh_stats). */
static void refresh_stats(struct shard *st)
{
    int analyzed = store__ops_refresh_stats(st->conn);
    if (analyzed > 0) {
        char msg[64];
        snprintf(msg, sizeof(msg), "tables=%d", analyzed);
        slog(st, 6, "store.analyzed", msg);
    }
}

/* Run a batch popped by pop_batch (one request, chats only, or token
 * checks only). */
static void execute(struct shard *st, struct store_req **batch, size_t n)
{
    if (batch[0]->op == STORE_OP_CHAT) {
        store__op_chat_batch(st->conn, batch, n);
        st->chats_written += n;
        /* Young chat tables: bring their statistics up to date now and
         * then, so the cached plans fit the tables as they grow (see
         * store__ops_refresh_stats); autovacuum takes over after that. */
        if (st->chats_written >= st->next_stats_check && st->next_stats_check <= STATS_CHECK_LAST) {
            struct shard *bg = atomic_load(&st->stats_to); /* set once the store is open */
            atomic_store(&bg->stats_due, true);
            pthread_mutex_lock(&bg->mu);
            pthread_cond_signal(&bg->cv);
            pthread_mutex_unlock(&bg->mu);
            st->next_stats_check = st->chats_written * 4;
        }
    } else if (n > 1) {
        store__op_auth_session_batch(st->conn, batch, n); /* pop_batch: token checks */
    } else {
        execute_one(st, batch[0]);
    }
    if (conn_lost(st)) {
        for (size_t i = 0; i < n; i++) {
            if (batch[i]->rc != 0) {
                batch[i]->rc = STORE_E_UNAVAILABLE;
                store__err_set(&batch[i]->err, STORE_E_UNAVAILABLE, "database connection lost");
            }
        }
        disconnect(st, "connection lost during a request");
    }
}

/* ---- queues ------------------------------------------------------------------ */

static void post_done(struct shard *st, struct store_req *req)
{
    req->next = NULL;
    pthread_mutex_lock(&st->mu);
    if (st->done_tail != NULL) {
        st->done_tail->next = req;
    } else {
        st->done_head = req;
    }
    st->done_tail = req;
    pthread_mutex_unlock(&st->mu);
    if (st->wake != NULL) {
        st->wake(st->wake_arg);
    }
}

static void fail(struct shard *st, struct store_req *req, int code, const char *msg)
{
    req->rc = code;
    store__err_set(&req->err, code, "%s", msg);
    post_done(st, req);
}

/* Wait (mu held) until there is work or the given monotonic time. */
static void wait_until(struct shard *st, int64_t until_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int64_t wait_ms = until_ms - now;
    if (wait_ms <= 0) {
        return;
    }
    ts.tv_sec += wait_ms / 1000;
    ts.tv_nsec += (wait_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&st->cv, &st->mu, &ts);
}

/* A token check: what a hello waits for (see enqueue_prio). */
static bool is_signin(const struct store_req *r)
{
    return r->op == STORE_OP_AUTH_SESSION || r->op == STORE_OP_AUTH_USER;
}

/* Unlink (mu held) every queued request that cannot wait for the
 * database any more: health probes and those past their deadline. */
static struct store_req *unlink_expired(struct shard *st, int64_t now_ms)
{
    struct store_req *expired = NULL, **tail = &expired;
    struct store_req **pp = &st->q_head;
    st->q_tail = NULL;
    st->q_prio = NULL;
    while (*pp != NULL) {
        struct store_req *r = *pp;
        if (r->op == STORE_OP_HEALTH || now_ms >= r->deadline_ms) {
            *pp = r->next;
            r->next = NULL;
            *tail = r;
            tail = &r->next;
        } else {
            st->q_tail = r;
            if (is_signin(r)) {
                st->q_prio = r;
            }
            pp = &r->next;
        }
    }
    return expired;
}

/* Requests of op that run together when queued one behind another. */
static bool batches(enum store_op op)
{
    return op == STORE_OP_CHAT || op == STORE_OP_AUTH_SESSION;
}

/* Pop (mu held) the head, and when it is a chat, the chats right behind
 * it (one group commit); when it is a token check, the token checks right
 * behind it (one statement). FIFO order with reads is kept. */
static size_t pop_batch(struct shard *st, struct store_req **batch)
{
    size_t n = 0;
    do {
        struct store_req *r = st->q_head;
        st->q_head = r->next;
        r->next = NULL;
        if (r == st->q_prio) {
            st->q_prio = NULL;
        }
        batch[n++] = r;
    } while (st->q_head != NULL && batches(batch[0]->op) && st->q_head->op == batch[0]->op &&
             n < STORE_BATCH_MAX);
    if (st->q_head == NULL) {
        st->q_tail = NULL;
    }
    return n;
}

/* Handle the queue head (mu held on entry and exit). */
static void handle_head(struct shard *st)
{
    pthread_mutex_unlock(&st->mu);
    bool up = ensure_connected(st);
    pthread_mutex_lock(&st->mu);
    if (!up) {
        struct store_req *expired = unlink_expired(st, store__now_ms());
        pthread_mutex_unlock(&st->mu);
        while (expired != NULL) {
            struct store_req *next = expired->next;
            fail(st, expired, STORE_E_UNAVAILABLE, "database unavailable");
            expired = next;
        }
        pthread_mutex_lock(&st->mu);
        if (st->q_head != NULL) {
            /* Sleep until the next attempt or the head's deadline. */
            int64_t dl = st->q_head->deadline_ms;
            wait_until(st, st->next_connect_ms < dl ? st->next_connect_ms : dl);
        }
        return;
    }
    struct store_req *batch[STORE_BATCH_MAX];
    size_t n = pop_batch(st, batch);
    pthread_mutex_unlock(&st->mu);
    execute(st, batch, n);
    for (size_t i = 0; i < n; i++) {
        post_done(st, batch[i]);
    }
    pthread_mutex_lock(&st->mu);
}

static void *thread_main(void *arg)
{
    struct shard *st = arg;
    pthread_mutex_lock(&st->mu);
    for (;;) {
        if (atomic_exchange(&st->stats_due, false)) {
            pthread_mutex_unlock(&st->mu);
            if (ensure_connected(st)) {
                refresh_stats(st);
            }
            pthread_mutex_lock(&st->mu);
            continue;
        }
        if (st->q_head != NULL) {
            handle_head(st);
            continue;
        }
        if (st->stopping) {
            break;
        }
        if (st->conn == NULL) {
            /* Reconnect in the background so readiness comes back by itself. */
            pthread_mutex_unlock(&st->mu);
            bool up = ensure_connected(st);
            pthread_mutex_lock(&st->mu);
            if (!up && st->q_head == NULL && !st->stopping) {
                wait_until(st, st->next_connect_ms);
            }
            continue;
        }
        pthread_cond_wait(&st->cv, &st->mu);
    }
    pthread_mutex_unlock(&st->mu);
    if (st->conn != NULL) {
        PQfinish(st->conn);
        st->conn = NULL;
    }
    return NULL;
}

/* ---- public API ------------------------------------------------------------- */

static int shard_open(const struct store_cfg *cfg, struct shard **out, struct store_err *err)
{
    if (cfg->conninfo == NULL || cfg->queue_cap == 0 || cfg->timeout_ms <= 0) {
        store__err_set(err, -EINVAL, "store: conninfo, queue_cap and timeout_ms are required");
        return -EINVAL;
    }
    struct shard *st = calloc(1, sizeof(*st));
    if (st != NULL) {
        st->next_stats_check = STATS_CHECK_FIRST;
    }
    if (st == NULL || (st->conninfo = strdup(cfg->conninfo)) == NULL) {
        free(st);
        store__err_set(err, -ENOMEM, "store: out of memory");
        return -ENOMEM;
    }
    st->timeout_ms = cfg->timeout_ms;
    st->queue_cap = cfg->queue_cap;
    st->wake = cfg->wake;
    st->wake_arg = cfg->wake_arg;
    st->log = cfg->log;
    st->log_arg = cfg->log_arg;
    atomic_init(&st->in_flight, 0);
    pthread_mutex_init(&st->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st->cv, &ca);
    pthread_condattr_destroy(&ca);
    /* The store thread takes no signals: they belong to the loop thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&st->thread, NULL, thread_main, st);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&st->cv);
        pthread_mutex_destroy(&st->mu);
        free(st->conninfo);
        free(st);
        store__err_set(err, -rc, "store: cannot start thread");
        return -rc;
    }
    *out = st;
    return 0;
}

/* The bytes a request of op needs: the union's largest member is a rare
 * job claim (3.4 KiB); a chat needs a tenth of that, and thousands of them
 * may be queued. Only op's member of u is ever used. */
static size_t req_size(enum store_op op)
{
    size_t head = offsetof(struct store_req, u);
    switch (op) {
    case STORE_OP_CHAT:
        return head + sizeof(struct store_chat);
    case STORE_OP_AUTH_SESSION:
        return head + sizeof(struct store_auth_session);
    case STORE_OP_AUTH_USER:
        return head + sizeof(struct store_auth_user);
    case STORE_OP_SESSION_JOIN:
        return head + sizeof(struct store_session_join);
    case STORE_OP_HISTORY:
        return head + sizeof(struct store_history);
    case STORE_OP_ROOM_LOAD:
        return head + sizeof(struct store_room);
    case STORE_OP_PRESENCE_SET:
        return head + sizeof(struct store_presence_set);
    case STORE_OP_PRESENCE_GET:
        return head + sizeof(struct store_presence_get);
    default:
        return sizeof(struct store_req);
    }
}

struct store_req *store_req_new(enum store_op op, store_done_fn done, void *arg)
{
    struct store_req *req = calloc(1, req_size(op));
    if (req != NULL) {
        req->op = op;
        req->done = done;
        req->arg = arg;
    }
    return req;
}

void store__free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

void store__free_ai_jobs(struct store_ai_job *jobs, size_t n)
{
    for (size_t i = 0; jobs != NULL && i < n; i++) {
        store__free_strv(jobs[i].client_facts, jobs[i].n_client_facts);
        store__free_strv(jobs[i].challenges, jobs[i].n_challenges);
        free(jobs[i].goals);
        free(jobs[i].symptoms);
        free(jobs[i].last_summary);
        free(jobs[i].transcript);
    }
    free(jobs);
}

/* Free the strings a request owns (by op). */
static void free_owned(struct store_req *req)
{
    switch (req->op) {
    case STORE_OP_RATE:
        free(req->u.rate.comment);
        break;
    case STORE_OP_SESSION_GET:
        free(req->u.session_get.transcript);
        free(req->u.session_get.ai_summary);
        free(req->u.session_get.rating_comment);
        break;
    case STORE_OP_AI_CLAIM:
        store__free_ai_jobs(req->u.ai_claim.jobs, req->u.ai_claim.n_jobs);
        break;
    case STORE_OP_AI_RESULT:
        free(req->u.ai_result.summary);
        break;
    case STORE_OP_LIVE_ROOMS:
        store__free_strv(req->u.live_rooms.room_ids, req->u.live_rooms.n_rooms);
        break;
    case STORE_OP_PRESENCE_GET:
        free(req->u.presence_get.users);
        break;
    case STORE_OP_NODE_BEAT:
        store__free_strv(req->u.beat.acquire, req->u.beat.n_acquire);
        store__free_strv(req->u.beat.adopt, req->u.beat.n_adopt);
        store__free_strv(req->u.beat.release, req->u.beat.n_release);
        store__free_strv(req->u.beat.held, req->u.beat.n_held);
        store__free_strv(req->u.beat.changed_rooms, req->u.beat.n_changed_rooms);
        break;
    case STORE_OP_AUTH_CODE_ISSUE:
        sodium_memzero(req->u.code_issue.code, sizeof(req->u.code_issue.code));
        break;
    case STORE_OP_AUTH_CODE_REDEEM:
        sodium_memzero(req->u.code_redeem.code, sizeof(req->u.code_redeem.code));
        sodium_memzero(req->u.code_redeem.session_token, sizeof(req->u.code_redeem.session_token));
        break;
    default:
        break;
    }
}

void store_req_free(struct store_req *req)
{
    if (req == NULL) {
        return;
    }
    free_owned(req);
    if (req->op == STORE_OP_CHAT) {
        free(req->u.chat.text);
    } else if (req->op == STORE_OP_HISTORY) {
        for (size_t i = 0; i < req->u.history.n_msgs; i++) {
            free(req->u.history.msgs[i].text);
        }
        free(req->u.history.msgs);
    } else if (req->op == STORE_OP_AUTH_SESSION) {
        sodium_memzero(req->u.auth_session.token, sizeof(req->u.auth_session.token));
    }
    free(req);
}

/* A sign-in goes ahead of the queued room work, behind the sign-ins
 * already waiting (mu held). It has no order to keep with a room's
 * requests, and a connection can do nothing until it is answered: after a
 * reconnect storm, thousands of them would otherwise wait behind the
 * rooms' chat batches and pass STORE_TIMEOUT_MS. */
static void enqueue_prio(struct shard *st, struct store_req *req)
{
    struct store_req **at = st->q_prio != NULL ? &st->q_prio->next : &st->q_head;
    req->next = *at;
    *at = req;
    if (req->next == NULL) {
        st->q_tail = req;
    }
    st->q_prio = req;
}

static int shard_submit(struct shard *st, struct store_req *req, int64_t now_ms)
{
    pthread_mutex_lock(&st->mu);
    if (st->stopping) {
        pthread_mutex_unlock(&st->mu);
        return STORE_E_STOPPED;
    }
    if (atomic_load(&st->in_flight) >= st->queue_cap) {
        pthread_mutex_unlock(&st->mu);
        return STORE_E_FULL;
    }
    atomic_fetch_add(&st->in_flight, 1);
    req->deadline_ms = now_ms + st->timeout_ms;
    req->rc = 0;
    if (is_signin(req)) {
        enqueue_prio(st, req);
    } else {
        req->next = NULL;
        if (st->q_tail != NULL) {
            st->q_tail->next = req;
        } else {
            st->q_head = req;
        }
        st->q_tail = req;
    }
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
    return 0;
}

static void shard_run_done(struct shard *st)
{
    pthread_mutex_lock(&st->mu);
    struct store_req *list = st->done_head;
    st->done_head = st->done_tail = NULL;
    pthread_mutex_unlock(&st->mu);
    while (list != NULL) {
        struct store_req *next = list->next;
        list->next = NULL;
        atomic_fetch_sub(&st->in_flight, 1);
        list->done(list);
        list = next;
    }
}

static size_t shard_in_flight(const struct shard *st)
{
    return atomic_load(&((struct shard *)st)->in_flight);
}

static void shard_close(struct shard *st)
{
    if (st == NULL) {
        return;
    }
    pthread_mutex_lock(&st->mu);
    st->stopping = true;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
    pthread_join(st->thread, NULL);
    shard_run_done(st);
    pthread_cond_destroy(&st->cv);
    pthread_mutex_destroy(&st->mu);
    sodium_memzero(st->conninfo, strlen(st->conninfo));
    free(st->conninfo);
    free(st);
}

/* ---- the store: its shards ---------------------------------------------------------- */

/* The key that keeps a room's requests on one shard, in order: the
 * appointment (or, before it is known, the room); NULL for the rest. */
static const char *req_key(const struct store_req *r)
{
    switch (r->op) {
    case STORE_OP_CHAT:
        return r->u.chat.appointment_id;
    case STORE_OP_HISTORY:
        return r->u.history.appointment_id;
    case STORE_OP_SESSION_JOIN:
        return r->u.join.appointment_id;
    case STORE_OP_WARNING:
        return r->u.warning.appointment_id;
    case STORE_OP_END:
        return r->u.end.appointment_id;
    case STORE_OP_ROOM_LOAD:
        return r->u.room.room_id;
    case STORE_OP_LK_EVENT:
        return r->u.lk_event.room_id;
    case STORE_OP_PRESENCE_SET:
        return r->u.presence_set.appointment_id;
    case STORE_OP_PRESENCE_GET:
        return r->u.presence_get.appointment_id;
    case STORE_OP_NOTIFY:
        return r->u.notify.key[0] != '\0' ? r->u.notify.key : NULL;
    default:
        return NULL;
    }
}

/* Work that no member waits for: heartbeats, job claims and results,
 * cleanup, counts. It runs on a connection of its own, so that a long
 * heartbeat or cleanup transaction never holds up a room's chats. */
static bool background(const struct store_req *r)
{
    switch (r->op) {
    case STORE_OP_NODE_BEAT:
    case STORE_OP_NODE_LEAVE:
    case STORE_OP_MAINTENANCE:
    case STORE_OP_JOB_STATS:
    case STORE_OP_AI_CLAIM:
    case STORE_OP_AI_RESULT:
    case STORE_OP_LK_CLOSE_CLAIM:
    case STORE_OP_LK_CLOSE_RESULT:
    case STORE_OP_LIVE_ROOMS:
        return true;
    default:
        return false;
    }
}

static size_t pick(struct store *st, const struct store_req *req)
{
    if (background(req)) {
        return st->n; /* the background shard */
    }
    const char *key = req_key(req);
    if (st->n == 1) {
        return 0;
    }
    if (key == NULL || key[0] == '\0') {
        return atomic_fetch_add(&st->next_rr, 1) % st->n;
    }
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
        h = (h ^ *p) * 16777619u;
    }
    return h % st->n;
}

int store_open(const struct store_cfg *cfg, struct store **out, struct store_err *err)
{
    size_t n = cfg->connections > 0 ? (size_t)cfg->connections : 1;
    if (n > STORE_CONNECTIONS_MAX) {
        store__err_set(err, -EINVAL, "store: at most %d connections", STORE_CONNECTIONS_MAX);
        return -EINVAL;
    }
    struct store *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        store__err_set(err, -ENOMEM, "store: out of memory");
        return -ENOMEM;
    }
    struct store_cfg one = *cfg;
    one.queue_cap = (cfg->queue_cap + n - 1) / n;
    for (size_t i = 0; i <= n; i++) {
        int rc = shard_open(&one, &st->shards[i], err);
        if (rc != 0) {
            store_close(st);
            return rc;
        }
        st->n_open++;
    }
    st->n = n;
    for (size_t i = 0; i < n; i++) {
        atomic_store(&st->shards[i]->stats_to, st->shards[n]);
    }
    *out = st;
    return 0;
}

int store_submit(struct store *st, struct store_req *req, int64_t now_ms)
{
    return shard_submit(st->shards[pick(st, req)], req, now_ms);
}

void store_run_done(struct store *st)
{
    for (size_t i = 0; i < st->n_open; i++) {
        shard_run_done(st->shards[i]);
    }
}

size_t store_in_flight(const struct store *st)
{
    size_t n = 0;
    for (size_t i = 0; i < st->n_open; i++) {
        n += shard_in_flight(st->shards[i]);
    }
    return n;
}

void store_close(struct store *st)
{
    if (st == NULL) {
        return;
    }
    for (size_t i = 0; i < st->n_open; i++) {
        shard_close(st->shards[i]);
    }
    free(st);
}

bool store_owns_backend(const struct store *st, int pid)
{
    for (size_t i = 0; st != NULL && pid != 0 && i < st->n_open; i++) {
        if (atomic_load(&st->shards[i]->backend_pid) == pid) {
            return true;
        }
    }
    return false;
}
