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
    STORE_E_NOTFOUND = -1005,    /* no such row (token, user, room) */
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
    STORE_OP_HEALTH,       /* is the database reachable and the schema current? */
    STORE_OP_AUTH_SESSION, /* resolve a UserSession token to its User */
    STORE_OP_AUTH_USER,    /* load a User by id (JWT sub) */
    STORE_OP_ROOM_LOAD,    /* an appointment by roomId, with its room state */
    STORE_OP_SESSION_JOIN, /* a participant's Session row: create or reactivate */
    STORE_OP_CHAT,         /* store one chat message (batched: group commit) */
    STORE_OP_HISTORY,      /* a page of a room's messages */
};

#define STORE_ID_MAX    64  /* user, appointment, session and message ids */
#define STORE_NAME_MAX  256 /* display names, bytes */
#define STORE_ROOM_MAX  128 /* roomId */
#define STORE_TOKEN_MAX 512 /* session tokens */
#define STORE_CMID_MAX  64  /* clientMsgId */

/* Roles a member has in a room (from the appointment and "User".role). */
enum store_role {
    STORE_ROLE_NONE,
    STORE_ROLE_COACH,
    STORE_ROLE_CLIENT,
    STORE_ROLE_OBSERVER,
};

struct store_user {
    char id[STORE_ID_MAX + 1];
    char display_name[STORE_NAME_MAX + 1];
    char role[32]; /* "User".role: client, coach, admin ... */
};

/* STORE_OP_AUTH_SESSION. Fails with STORE_E_NOTFOUND when the token is
 * unknown, inactive, expired, or names no User (via "skoolUserId"). On
 * success "lastActive" was updated if it was older than a minute. */
struct store_auth_session {
    char token[STORE_TOKEN_MAX + 1];        /* in */
    struct store_user user;                 /* out */
    char user_session_id[STORE_ID_MAX + 1]; /* out: "UserSession".id */
    int64_t expires_unix_ms;                /* out */
};

/* STORE_OP_AUTH_USER. STORE_E_NOTFOUND when no such user. */
struct store_auth_user {
    struct store_user user; /* in: user.id; out: the rest */
};

/* STORE_OP_ROOM_LOAD. STORE_E_NOTFOUND when no appointment has that roomId.
 * The session fields describe the room clock: started_unix_ms is the
 * earliest "Session"."startedAt" (0 before anyone joined), ended_unix_ms
 * the "endedAt" once the session completed (0 before). */
struct store_room {
    char room_id[STORE_ROOM_MAX + 1];         /* in */
    char appointment_id[STORE_ID_MAX + 1];    /* out */
    int64_t scheduled_unix_ms;                /* out */
    int duration_min;                         /* out: "durationMin" as stored */
    char status[32];                          /* out: appointment status */
    char coach_id[STORE_ID_MAX + 1];          /* out */
    char coach_name[STORE_NAME_MAX + 1];      /* out */
    char client_id[STORE_ID_MAX + 1];         /* out */
    char client_name[STORE_NAME_MAX + 1];     /* out */
    int64_t last_seq;                         /* out: newest message seq, 0 if none */
    int64_t started_unix_ms;                  /* out */
    int64_t ended_unix_ms;                    /* out */
    int duration_minutes;                     /* out: the session's, 20 when durationMin <= 0 */
    int warnings_sent;                        /* out: max "warningsSent" of its Session rows */
    char coach_session_id[STORE_ID_MAX + 1];  /* out: the coach's Session row, "" if none */
    char client_session_id[STORE_ID_MAX + 1]; /* out: the client's Session row, "" if none */
};

/* STORE_OP_SESSION_JOIN (STORE_E_NOTFOUND: unknown appointment or user;
 * -EINVAL: at_unix_ms or duration_minutes not positive): for a coach or
 * client, create (or reactivate,
 * unless completed) the participant's Session row (status active,
 * startedAt, durationMinutes, roomId), mark a scheduled appointment active,
 * and make sure the room's seq row exists, in one transaction. */
struct store_session_join {
    char appointment_id[STORE_ID_MAX + 1]; /* in */
    char room_id[STORE_ROOM_MAX + 1];      /* in */
    char user_id[STORE_ID_MAX + 1];        /* in */
    int64_t at_unix_ms;                    /* in: this row's startedAt */
    int duration_minutes;                  /* in */
    char session_id[STORE_ID_MAX + 1];     /* out: the caller's Session row */
    char status[32];                       /* out: that row's status */
    int64_t started_unix_ms;               /* out: the room's start (earliest startedAt) */
    int64_t ended_unix_ms;                 /* out: 0 unless completed */
};

/* STORE_OP_CHAT. In one transaction with the other chats of its batch:
 * dedupe on (appointment, user, clientMsgId), take the room's next seq,
 * insert the "Message" row and its seq. A duplicate completes with
 * duplicate = 1 and the original seq, id and time. An empty session_id
 * means the sender's Session row of the appointment. Errors: -EINVAL (an
 * observer, no text, an empty id), STORE_E_QUERY when this chat's own row
 * is refused (only this chat fails; the rest of the batch commits). */
struct store_chat {
    char appointment_id[STORE_ID_MAX + 1];  /* in */
    char session_id[STORE_ID_MAX + 1];      /* in: the sender's Session row */
    char user_id[STORE_ID_MAX + 1];         /* in */
    enum store_role role;                   /* in: coach or client */
    char client_msg_id[STORE_CMID_MAX + 1]; /* in */
    char *text;                             /* in: owned by the request (freed with it) */
    size_t text_len;                        /* in */
    int64_t seq;                            /* out */
    char message_id[STORE_ID_MAX + 1];      /* out */
    int64_t created_unix_ms;                /* out */
    int duplicate;                          /* out */
    int64_t commit_us;                      /* out: time the batch's transaction took */
};

/* One stored message, as history and recovery return it. */
struct store_message {
    int64_t seq;
    char message_id[STORE_ID_MAX + 1];
    char client_msg_id[STORE_CMID_MAX + 1];
    char user_id[STORE_ID_MAX + 1];
    char display_name[STORE_NAME_MAX + 1];
    enum store_role role;
    char *text; /* owned by the request */
    int64_t created_unix_ms;
};

/* STORE_OP_HISTORY (-EINVAL for a limit outside 1..1000): messages in
 * ascending seq order, either those with
 * seq > after_seq (after_seq >= 0) or those before before_seq (the newest
 * `limit` of them; before_seq = INT64_MAX for the latest). */
struct store_history {
    char appointment_id[STORE_ID_MAX + 1]; /* in */
    char coach_id[STORE_ID_MAX + 1];       /* in: to tell roles apart */
    int64_t after_seq;                     /* in: -1 when paging backwards */
    int64_t before_seq;                    /* in */
    int limit;                             /* in: 1..1000 */
    struct store_message *msgs;            /* out: owned by the request */
    size_t n_msgs;                         /* out */
    int has_more;                          /* out: more exist beyond this page */
};

struct store_req {
    enum store_op op;
    store_done_fn done;  /* loop thread */
    void *arg;           /* the submitter's, untouched by the store */
    int64_t deadline_ms; /* monotonic; set by store_submit from the timeout */
    int rc;              /* result: 0 or a negative code */
    struct store_err err;
    union {
        struct {
            int schema_version; /* out: newest applied migration */
        } health;
        struct store_auth_session auth_session;
        struct store_auth_user auth_user;
        struct store_room room;
        struct store_session_join join;
        struct store_chat chat;
        struct store_history history;
    } u;
    struct store_req *next; /* queue link, owned by the store while queued */
};

struct store_cfg {
    const char *conninfo;    /* copied; never logged */
    int64_t timeout_ms;      /* how long a request may wait for the database */
    size_t queue_cap;        /* requests in flight at most (queued + running + done) */
    void (*wake)(void *arg); /* called from the store thread after completions were posted */
    void *wake_arg;
    store_log_fn log; /* optional */
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
