/*
 * store.h: the store module's public header: PostgreSQL access for the
 * gateway.
 *
 * Two ways in:
 *  - store_migrate(): blocking, for `coach-gateway migrate` and start-up,
 *    called before the event loop runs;
 *  - a store thread (store_open) owning its own PGconn, fed by a bounded
 *    request queue; completions come back to the loop thread through
 *    store_run_done() after the wake callback fired.
 * No function here prints; errors travel as values (struct store_err).
 */
#ifndef COACH_STORE_H
#define COACH_STORE_H

#include <stddef.h>
#include <stdint.h>

/* Error codes beyond negative errno values. */
enum {
    STORE_E_UNAVAILABLE = -1000, /* database unreachable, or timed out waiting for it */
    STORE_E_FULL = -1001,        /* request queue full: back-pressure */
    STORE_E_SCHEMA = -1002,      /* schema state the gateway cannot work with */
    STORE_E_QUERY = -1003,       /* a statement failed */
    STORE_E_STOPPED = -1004,     /* the store is shutting down */
};

/* A caller-owned error value; msg never holds secrets (no conninfo). */
struct store_err {
    int code;
    char msg[256];
};

/* A static description of a store error code. Any thread. */
const char *store_strerror(int code);

/* Log sink the store may call from its own thread (must be thread-safe).
 * level uses syslog numbering (3 error .. 7 debug). */
typedef void (*store_log_fn)(void *arg, int level, const char *event, const char *msg);

/* ---- ids ---------------------------------------------------------------- */

#define STORE_CUID_LEN 25
/* Write a cuid-compatible id ('c' then 24 of [a-z0-9], NUL-terminated) into
 * out, which must hold STORE_CUID_LEN + 1 bytes. Randomness from libsodium
 * (sodium_init() must have succeeded). Any thread. */
void store_cuid(char out[STORE_CUID_LEN + 1]);

/* ---- migrations ------------------------------------------------------------ */

struct store_migrate_result {
    int baseline_created; /* 1 when the application's schema was created */
    int applied;          /* gateway migrations applied by this call */
    int latest;           /* the newest migration version now recorded */
};

/* Bring the database at conninfo up to date: create the application's
 * baseline schema when the database is empty, then apply the gateway's own
 * migrations not yet recorded. Serialized across processes by an advisory
 * lock; a second run is a no-op. Blocking; call from any one thread that
 * owns no PGconn of the store. 0 or a negative code with err filled. */
int store_migrate(const char *conninfo, struct store_migrate_result *res, struct store_err *err);

/* The newest migration version compiled into this binary. */
int store_migrations_latest(void);

/* ---- the store thread ------------------------------------------------------ */

struct store;
struct store_req;

/* Called on the loop thread (from store_run_done) when req completed.
 * The callback owns req from then on and frees it with store_req_free. */
typedef void (*store_done_fn)(struct store_req *req);

enum store_op {
    STORE_OP_HEALTH, /* is the database reachable and the schema current? */
};

struct store_req {
    enum store_op op;
    store_done_fn done; /* loop thread */
    void *arg;          /* the submitter's, untouched by the store */
    int64_t deadline_ms; /* monotonic; set by store_submit from the timeout */
    int rc;             /* result: 0 or a negative code */
    struct store_err err;
    union {
        struct {
            int schema_version; /* out: newest applied migration */
        } health;
    } u;
    struct store_req *next; /* queue link, owned by the store while queued */
};

struct store_cfg {
    const char *conninfo;  /* copied; never logged */
    int64_t timeout_ms;    /* how long a request may wait for the database */
    size_t queue_cap;      /* requests in flight at most (queued + running + done) */
    void (*wake)(void *arg); /* called from the store thread after completions were posted */
    void *wake_arg;
    store_log_fn log;      /* optional */
    void *log_arg;
};

/* Start the store thread; it connects in the background and reconnects
 * with backoff whenever the connection is lost. Loop thread. */
int store_open(const struct store_cfg *cfg, struct store **out, struct store_err *err);

/* A zeroed request for op, or NULL when out of memory. */
struct store_req *store_req_new(enum store_op op, store_done_fn done, void *arg);
void store_req_free(struct store_req *req);

/* Queue req (ownership passes to the store on success). Non-blocking: a full
 * queue returns STORE_E_FULL, a stopping store STORE_E_STOPPED, and the
 * caller keeps req. Loop thread. */
int store_submit(struct store *st, struct store_req *req, int64_t now_ms);

/* Run the done callbacks of every completed request. Loop thread. */
void store_run_done(struct store *st);

/* Requests queued, running or completed but not yet run_done. Any thread. */
size_t store_in_flight(const struct store *st);

/* Stop accepting requests, finish those queued (failing the ones that cannot
 * reach the database before their deadline), join the thread and free.
 * Completions still pending are run on the calling (loop) thread. NULL-safe. */
void store_close(struct store *st);

#endif
