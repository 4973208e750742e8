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

#include <stdbool.h>
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
    STORE_E_CONFLICT = -1006,    /* a unique row exists already (a second rating) */
    STORE_E_FORBIDDEN = -1007, /* the caller may not do this (not the client, not a participant) */
    STORE_E_STATE = -1008,     /* not in a state that allows it (rating before the end) */
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
    STORE_OP_WARNING,      /* record a timer warning on the active Session rows */
    STORE_OP_END,          /* end a session: rows, transcript, appointment, AI job */
    STORE_OP_RATE,         /* the client's rating of an ended session */
    STORE_OP_SESSION_GET,  /* a session with transcript, summary and rating */
    STORE_OP_AI_CLAIM,     /* take due AI summary jobs, with their prompt inputs */
    STORE_OP_AI_RESULT,    /* record an AI attempt's outcome */
    STORE_OP_LIVE_ROOMS,   /* rooms whose session is running (to resume their clocks) */
    /* a Skool auth code, under the daily rate limit */
    STORE_OP_AUTH_CODE_ISSUE,
    /* use an auth code once: a new UserSession */
    STORE_OP_AUTH_CODE_REDEEM,
    /* delete expired UserSession rows and spent AuthCode rows */
    STORE_OP_MAINTENANCE,
    STORE_OP_LK_EVENT,        /* apply a LiveKit webhook event, once per event id */
    STORE_OP_LK_CLOSE_CLAIM,  /* take due LiveKit room-close jobs */
    STORE_OP_LK_CLOSE_RESULT, /* record a room-close attempt */
    STORE_OP_JOB_STATS,       /* how many durable jobs are in each state (for /metrics) */
    STORE_OP_NODE_BEAT,       /* this node's heartbeat, dead nodes, room clock leases */
    STORE_OP_NODE_LEAVE,      /* this node stops: its presence, leases and row go */
    STORE_OP_PRESENCE_SET,    /* a user's first connection here joined / last one left */
    STORE_OP_PRESENCE_GET,    /* who is connected to a room on the other nodes */
    STORE_OP_NOTIFY,          /* a notification only (typing) */
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
    int coach_media, client_media; /* out: has a LiveKit participant in the room (webhooks) */
    char end_reason[16];           /* out: coach|timer|idle|livekit|admin once ended, else "" */
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
 * observer, no text, an empty id), STORE_E_STATE when session_id is empty
 * and the sender has no Session row of the appointment, STORE_E_QUERY when
 * this chat's own row is refused; either way only this chat fails, the
 * rest of the batch commits. */
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

#define STORE_NODE_ID_MAX 128 /* bytes of a NODE_ID */

/* STORE_OP_WARNING: "warningsSent" = GREATEST("warningsSent", warnings_sent)
 * on the appointment's active Session rows, only when no Session row of
 * the appointment has that many yet and (node_id set) node_id holds the
 * room's clock lease; the rooms of every node are told (notify "<roomId>
 * s"). STORE_E_CONFLICT when it was not recorded for either reason: the
 * warning must not be sent. */
struct store_warning {
    char appointment_id[STORE_ID_MAX + 1]; /* in */
    int warnings_sent;                     /* in: the absolute count */
    char node_id[STORE_NODE_ID_MAX + 1];   /* in: "" skips the lease check */
};

/* STORE_OP_END, one transaction, idempotent: lock the appointment; when it
 * is already completed, change nothing and report already_ended with the
 * stored endedAt. Otherwise every Session row of the appointment gets
 * status 'completed', "endedAt" = ended_unix_ms and "transcript" (one line
 * per message in seq order: "[HH:MM:SS] <displayName> (<role>): <text>",
 * UTC, role coach/client by the appointment); the appointment becomes
 * 'completed'; and when the session has at least one message a
 * coach_ai_job row is created ('pending', due now) if ai_enabled, else
 * ('skipped'). */
struct store_end {
    char appointment_id[STORE_ID_MAX + 1]; /* in */
    int64_t ended_unix_ms;                 /* in */
    char reason[16];                  /* in: coach|timer|idle|livekit|admin (recorded on the job) */
    int ai_enabled;                   /* in: AI_SUMMARY_URL is set */
    int livekit_close;                /* in: LIVEKIT_URL is set: unless reason is livekit, queue
                                         a coach_livekit_close job ('pending', due now) */
    int livekit_close_queued;         /* out: such a job was queued by this end */
    int already_ended;                /* out */
    int64_t stored_ended_unix_ms;     /* out: endedAt as stored (the first end's) */
    int n_messages;                   /* out */
    char ai_job_id[STORE_ID_MAX + 1]; /* out: "" when no job is due */
    int client_has_rating;            /* out: the client's Session row has a rating */
};

/* STORE_OP_RATE: insert the rating of the client's Session row. The
 * unique index on "SessionRating"."sessionId" decides races. Errors:
 * STORE_E_FORBIDDEN (user is not the appointment's client),
 * STORE_E_NOTFOUND (no such room or no Session row for the client),
 * STORE_E_STATE (the session has not ended), STORE_E_CONFLICT (rated). */
struct store_rate {
    char room_id[STORE_ROOM_MAX + 1];  /* in: by room (WebSocket) ... */
    char session_id[STORE_ID_MAX + 1]; /* in: ... or by Session id (HTTP); out: the rated row */
    char user_id[STORE_ID_MAX + 1];    /* in: the caller */
    int rating;                        /* in: 1..5 */
    int tip;                           /* in: 0 (none), 1, 3 or 5 -> "tipAmount" NULL or that */
    char *comment;                     /* in: NULL or owned text (freed with the request) */
    char rating_id[STORE_ID_MAX + 1];  /* out */
    int64_t created_unix_ms;           /* out */
};

/* STORE_OP_SESSION_GET: a Session row for a participant of its
 * appointment (coach, client) or an admin; STORE_E_NOTFOUND,
 * STORE_E_FORBIDDEN otherwise. Strings owned by the request. */
struct store_session_get {
    char session_id[STORE_ID_MAX + 1];      /* in */
    char user_id[STORE_ID_MAX + 1];         /* in: the caller */
    char appointment_id[STORE_ID_MAX + 1];  /* out */
    char room_id[STORE_ROOM_MAX + 1];       /* out */
    char owner_id[STORE_ID_MAX + 1];        /* out: the row's "userId" */
    char status[32];                        /* out */
    int64_t started_unix_ms, ended_unix_ms; /* out: 0 = NULL */
    int duration_minutes, warnings_sent;    /* out */
    char *transcript;                       /* out: NULL when NULL */
    char *ai_summary;                       /* out: NULL when NULL */
    char ai_status[16];    /* out: pending|running|done|failed|skipped|"" (no job) */
    int has_rating;        /* out: the appointment's client rating, if any */
    int rating, tip;       /* out */
    char *rating_comment;  /* out */
    int64_t rated_unix_ms; /* out */
};

/* One due AI job with everything its prompt needs (strings owned). */
struct store_ai_job {
    char job_id[STORE_ID_MAX + 1];
    char appointment_id[STORE_ID_MAX + 1];
    char room_id[STORE_ROOM_MAX + 1];
    char coach_id[STORE_ID_MAX + 1];
    int attempt; /* 1 for the first try */
    char coach_name[STORE_NAME_MAX + 1];
    char client_name[STORE_NAME_MAX + 1];
    char **client_facts; /* "Profile"."clientFacts" (n_client_facts entries) */
    size_t n_client_facts;
    char **challenges;
    size_t n_challenges;
    char *goals;        /* "intakeCoachingGoals", NULL when NULL */
    char *symptoms;     /* "intakeSymptoms" */
    char *last_summary; /* "lastSummary" */
    char *transcript;   /* the Session rows' transcript */
};

/* STORE_OP_AI_CLAIM: up to max_jobs jobs that are due ('pending' or
 * 'retry' with next_at <= now, or 'running' whose lease expired: a crash),
 * FOR UPDATE SKIP LOCKED, marked 'running' with attempts + 1 and a lease
 * of lease_ms. */
struct store_ai_claim {
    int max_jobs;              /* in: 1..16 */
    int64_t lease_ms;          /* in */
    char node_id[STORE_NODE_ID_MAX + 1]; /* in: the claiming node ("": none); a running job
                                            whose node is dead is claimed again at once */
    struct store_ai_job *jobs; /* out: owned */
    size_t n_jobs;             /* out */
    int64_t next_due_unix_ms;  /* out: earliest next_at of pending/retry jobs or lease end
                                  of running ones (a crashed worker's), 0 if none */
};

enum store_ai_outcome {
    STORE_AI_DONE,   /* summary: write it to every Session row's "aiSummary"
                        and the client's "Profile"."lastSummary" (created if missing) */
    STORE_AI_RETRY,  /* due again at next_unix_ms */
    STORE_AI_FAILED, /* permanent */
};

/* STORE_OP_AI_RESULT: record one attempt, in one transaction. */
struct store_ai_result {
    char job_id[STORE_ID_MAX + 1]; /* in */
    int attempt; /* in: the claim's attempt (0 skips the check). A result for an attempt that
                    is no longer current (the lease expired, another worker took the job) gets
                    STORE_E_STATE: leases must outlast AI_TIMEOUT_MS. */
    enum store_ai_outcome outcome;         /* in */
    char *summary;                         /* in: DONE, owned */
    int64_t next_unix_ms;                  /* in: RETRY */
    char error[256];                       /* in: last error text (never secrets) */
    char appointment_id[STORE_ID_MAX + 1]; /* out */
    char room_id[STORE_ROOM_MAX + 1];      /* out: for the `summary` event */
    char session_id[STORE_ID_MAX + 1];     /* out: the coach's Session row */
};

/* STORE_OP_LIVE_ROOMS: the roomIds of appointments whose status is
 * 'active' (a session started and not ended), at most max_rooms of them,
 * oldest first, except those whose clock another live node drives (a
 * lease). Strings owned by the request. */
struct store_live_rooms {
    int max_rooms;   /* in */
    char node_id[STORE_NODE_ID_MAX + 1]; /* in: leave out rooms whose live lease another
                                            node holds ("": none is left out) */
    char **room_ids; /* out */
    size_t n_rooms;  /* out */
};

#define STORE_SKOOL_ID_MAX    128 /* "skoolUserId" */
#define STORE_AUTH_CODE_MAX   128 /* "AuthCode".code */
#define STORE_IP_MAX          64  /* a peer's address as text */
#define STORE_UA_MAX          512 /* User-Agent, bytes */
#define STORE_FINGERPRINT_MAX 512 /* deviceFingerprint, bytes */

/* STORE_OP_AUTH_CODE_ISSUE, one statement (so one transaction): count the
 * request in "RateLimit" (one row per skoolUserId and UTC day, created with
 * a new cuid, "requestCount" + 1 and "lastRequestAt") unless the day already
 * has max_per_day, and insert the "AuthCode" row (new cuid, isActive,
 * generatedAt = now_unix_ms). At the limit nothing is written and
 * limited = 1 (rc 0): refused requests are not counted, so "requestCount"
 * is the number of codes issued that day. Concurrent requests serialize on
 * the RateLimit row. -EINVAL: an empty field or now_unix_ms not positive.
 * The code is a secret: wiped when the request is freed, never in err. */
struct store_auth_code_issue {
    char skool_user_id[STORE_SKOOL_ID_MAX + 1]; /* in */
    char skool_username[STORE_NAME_MAX + 1];    /* in */
    char code[STORE_AUTH_CODE_MAX + 1];         /* in: the new code */
    int64_t now_unix_ms;                        /* in: generatedAt; its UTC day is counted */
    int64_t expires_unix_ms;                    /* in: expiresAt */
    int max_per_day;                            /* in: codes per skoolUserId and UTC day */
    int limited;                                /* out: 1 when refused by the limit */
    int request_count;                          /* out: the day's count after this one */
};

/* STORE_OP_AUTH_CODE_REDEEM, one statement (so one transaction): the
 * code's "AuthCode" row, if unused, active and expiresAt > now_unix_ms,
 * becomes used (usedAt, isActive false, usedIpAddress, userAgent,
 * deviceFingerprint: an UPDATE whose WHERE decides between concurrent
 * redeems) and a "UserSession" row is inserted (new cuid, sessionId =
 * session_token, the code's skoolUserId and skoolUsername, authCodeUsed,
 * createdAt = lastActive = now_unix_ms, expiresAt =
 * session_expires_unix_ms, ipAddress, userAgent, deviceFingerprint).
 * Errors, nothing written: STORE_E_NOTFOUND (no such code),
 * STORE_E_CONFLICT (used or deactivated, including by a concurrent
 * redeem), STORE_E_STATE (expired), -EINVAL (no token, bad times). The
 * skoolUserId and skoolUsername returned are the code's, cut to fit. The
 * code and token are secrets: wiped when the request is freed, never in
 * err. */
struct store_auth_code_redeem {
    char code[STORE_AUTH_CODE_MAX + 1];          /* in */
    char session_token[STORE_TOKEN_MAX + 1];     /* in: the new "sessionId" */
    char ip[STORE_IP_MAX + 1];                   /* in */
    char user_agent[STORE_UA_MAX + 1];           /* in: "" when none */
    char fingerprint[STORE_FINGERPRINT_MAX + 1]; /* in: "" when none */
    int64_t now_unix_ms;                         /* in */
    int64_t session_expires_unix_ms;             /* in */
    char skool_user_id[STORE_SKOOL_ID_MAX + 1];  /* out */
    char skool_username[STORE_NAME_MAX + 1];     /* out */
    char user_session_id[STORE_ID_MAX + 1];      /* out: "UserSession".id */
};

/* Rows each statement of STORE_OP_MAINTENANCE deletes at most when
 * max_rows is 0. */
#define STORE_MAINT_BATCH_DEFAULT 10000
/* The transaction-level advisory lock that lets one node at a time run
 * STORE_OP_MAINTENANCE: "coach_mt" as a big-endian int64. */
#define STORE_MAINT_LOCK_KEY INT64_C(7165052611750489460)

/* STORE_OP_MAINTENANCE, one transaction: take the advisory lock
 * STORE_MAINT_LOCK_KEY with pg_try_advisory_xact_lock; when another node
 * holds it, nothing is done and skipped_locked = 1 (rc 0). Otherwise
 * delete, in this order and at most max_rows rows per statement (rows
 * locked by others are skipped, not waited for):
 *  - "UserSession" rows with "expiresAt" < now and NOT "isActive", and
 *    those expired more than 30 days ago whatever "isActive" says;
 *  - "AuthCode" rows that expired (< now) and are spent ("usedAt" set or
 *    NOT "isActive"), or that expired more than a day ago unused, unless
 *    a remaining "UserSession" names them in "authCodeUsed" (the foreign
 *    key is ON DELETE RESTRICT);
 *  - coach_livekit_event ids received more than 7 days ago.
 * A backlog larger than max_rows is left for the next run. Errors:
 * STORE_E_QUERY (rolled back: nothing deleted). */
struct store_maintenance {
    int max_rows;             /* in: per statement, 0: STORE_MAINT_BATCH_DEFAULT */
    int64_t sessions_deleted; /* out */
    int64_t codes_deleted;    /* out */
    int64_t events_deleted;   /* out: coach_livekit_event ids older than 7 days */
    int skipped_locked;       /* out: another node was running it */
};

/* ---- LiveKit (ops_livekit.c) ---------------------------------------------------- */

#define STORE_LK_ID_MAX 128 /* event ids, room and participant sids */

enum store_lk_kind {
    STORE_LK_OTHER = 0,  /* any other event: its id is recorded, nothing else */
    STORE_LK_JOINED,     /* participant_joined */
    STORE_LK_LEFT,       /* participant_left */
    STORE_LK_FINISHED,   /* room_finished */
};

/* What STORE_OP_LK_EVENT did. */
enum store_lk_result {
    STORE_LK_APPLIED = 0, /* the event's effects are committed */
    STORE_LK_DUPLICATE,   /* the id was recorded before: nothing changed */
    STORE_LK_NO_ROOM,     /* no appointment has that roomId: id recorded, ignored */
    STORE_LK_NOT_MEMBER,  /* the identity is neither the coach nor the client: ignored */
    STORE_LK_STALE,       /* room_finished of an instance older than the latest: ignored */
};

/*
 * STORE_OP_LK_EVENT, one transaction: insert event_id into
 * coach_livekit_event (a conflict means a redelivery: DUPLICATE, nothing
 * else happens), then the event's effects:
 *  - every kind: the room instance (room_sid, room_created_ms) becomes the
 *    latest of room_id unless a newer one was seen;
 *  - JOINED by the coach or the client of the appointment: the
 *    participant row (participant_sid) is recorded and, unless the
 *    appointment is cancelled or completed or opens later than
 *    at_unix_ms + early_join_ms, the user's Session row is created or
 *    reactivated as STORE_OP_SESSION_JOIN does (startedAt at_unix_ms);
 *    media_changed = it is the user's first participant in the room;
 *  - LEFT: the participant row goes; media_changed = the user has none left;
 *  - FINISHED of the latest instance (or of a room with no instance
 *    recorded): every participant row of the room goes; of an older
 *    instance: STALE.
 * Errors: STORE_E_QUERY / STORE_E_UNAVAILABLE (rolled back: the id is not
 * recorded, so a redelivery is applied).
 */
struct store_lk_event {
    char event_id[STORE_LK_ID_MAX + 1];        /* in */
    char event[40];                            /* in: the event's name, recorded */
    enum store_lk_kind kind;                   /* in */
    char room_id[STORE_ROOM_MAX + 1];          /* in: room.name ("" when none) */
    char room_sid[STORE_LK_ID_MAX + 1];        /* in: room.sid ("" when none) */
    int64_t room_created_ms;                   /* in: room.creationTime, 0 when unknown */
    char participant_sid[STORE_LK_ID_MAX + 1]; /* in: JOINED, LEFT */
    char user_id[STORE_ID_MAX + 1];            /* in: JOINED, LEFT: participant.identity */
    int64_t at_unix_ms;                        /* in: the gateway's clock */
    int64_t early_join_ms;                     /* in: EARLY_JOIN_MIN in ms */
    enum store_lk_result result;               /* out */
    char appointment_id[STORE_ID_MAX + 1];     /* out: when the room is known */
    int media_changed;                         /* out: JOINED, LEFT */
    int session_running;                       /* out: the appointment is 'active' */
};

/* One due LiveKit room-close job. */
struct store_lk_close_job {
    char appointment_id[STORE_ID_MAX + 1];
    char room_id[STORE_ROOM_MAX + 1];
    int attempt; /* 1 for the first try */
};

/* STORE_OP_LK_CLOSE_CLAIM: as STORE_OP_AI_CLAIM, for coach_livekit_close. */
struct store_lk_close_claim {
    int max_jobs;                    /* in: 1..16 */
    int64_t lease_ms;                /* in */
    char node_id[STORE_NODE_ID_MAX + 1]; /* in: as store_ai_claim's */
    struct store_lk_close_job jobs[16]; /* out */
    size_t n_jobs;                   /* out */
    int64_t next_due_unix_ms;        /* out: earliest due time of the rest, 0 if none */
};

enum store_lk_close_outcome {
    STORE_LK_CLOSE_DONE,
    STORE_LK_CLOSE_RETRY,
    STORE_LK_CLOSE_FAILED,
};

/* STORE_OP_LK_CLOSE_RESULT: record one attempt. A result for an attempt
 * that is no longer current gets STORE_E_STATE (as STORE_OP_AI_RESULT). */
struct store_lk_close_result {
    char appointment_id[STORE_ID_MAX + 1]; /* in */
    int attempt;                           /* in */
    enum store_lk_close_outcome outcome;   /* in */
    int64_t next_unix_ms;                  /* in: RETRY */
    char error[256];                       /* in: never secrets */
};

/* STORE_OP_JOB_STATS: rows of coach_ai_job and coach_livekit_close by
 * status, in the order of store_job_states[] (a status not listed there
 * is not counted). */
#define STORE_JOB_STATES 6
extern const char *const store_job_states[STORE_JOB_STATES]; /* pending running retry done
                                                                 failed skipped */
struct store_job_stats {
    int64_t ai[STORE_JOB_STATES];      /* out */
    int64_t livekit[STORE_JOB_STATES]; /* out: never 'skipped' */
};

/* ---- several nodes (ops_node.c) --------------------------------------------------- */

/* STORE_OP_NODE_BEAT, one transaction: upsert this node's coach_node row
 * (expires in ttl_ms); delete the rows of dead nodes (expired) with their
 * presence rows and leases, notifying "<roomId> p" for each room whose
 * presence changed; renew this node's leases (lease_ms); release those
 * named; take those named in acquire when free, expired or ours, and
 * those in adopt only when free or expired for lease_ms already (a node
 * with no member in the room waits for one that has). Only active
 * appointments get a lease. String arrays are owned by the request. */
struct store_node_beat {
    char node_id[STORE_NODE_ID_MAX + 1]; /* in */
    int ttl_ms;                          /* in: > 0 */
    int lease_ms;                        /* in: > 0 */
    int quick;                           /* in: only take the leases in acquire and adopt (a
                                            room wants its clock now): no heartbeat, renewal,
                                            release or reaping; held then lists only those of
                                            acquire and adopt that are this node's now */
    char **acquire, **adopt, **release;  /* in: appointment ids */
    size_t n_acquire, n_adopt, n_release;
    int created;                         /* out: the node row was (re)created */
    int peers;                           /* out: other live nodes */
    char **held;                         /* out: appointment ids whose lease is this node's */
    size_t n_held;
    char **changed_rooms;                /* out: roomIds whose presence a dead node left */
    size_t n_changed_rooms;
};

/* STORE_OP_NODE_LEAVE: delete this node's presence rows (notifying their
 * rooms), leases and coach_node row, in one transaction. */
struct store_node_leave {
    char node_id[STORE_NODE_ID_MAX + 1]; /* in */
};

/* STORE_OP_PRESENCE_SET: insert (online) or delete this node's presence
 * row of a user in a room and notify "<roomId> p", one statement. */
struct store_presence_set {
    char appointment_id[STORE_ID_MAX + 1]; /* in */
    char room_id[STORE_ROOM_MAX + 1];      /* in */
    char node_id[STORE_NODE_ID_MAX + 1];   /* in */
    char user_id[STORE_ID_MAX + 1];        /* in */
    char display_name[STORE_NAME_MAX + 1]; /* in */
    char role[10];                         /* in: coach|client|observer (an admin) */
    int online;                            /* in */
};

#define STORE_PRESENCE_MAX 32

/* One user connected to a room on other nodes. */
struct store_presence_user {
    char user_id[STORE_ID_MAX + 1];
    char display_name[STORE_NAME_MAX + 1];
    char role[10];
    int nodes;
};

/* STORE_OP_PRESENCE_GET: the users connected to a room on live nodes
 * other than node_id, in order of arrival, at most STORE_PRESENCE_MAX.
 * users is owned by the request (every request is as big as the largest
 * of these structs: lists live on the heap). */
struct store_presence_get {
    char appointment_id[STORE_ID_MAX + 1]; /* in */
    char node_id[STORE_NODE_ID_MAX + 1];   /* in */
    struct store_presence_user *users;     /* out */
    size_t n_users;                        /* out */
};

/* STORE_OP_NOTIFY: pg_notify(channel, payload). key (optional) keeps it
 * in order with a room's other requests. */
struct store_notify {
    char key[STORE_ID_MAX + 1]; /* in: an appointment id, or "" */
    char channel[32];           /* in */
    char payload[512];          /* in */
};

/* ---- cross-node notifications (listen.c) -------------------------------------- */

/* Room notifications (pg_notify, delivered at commit to every listening
 * node): every committed chat batch sends "<roomId> <last seq>" per room;
 * a change of the session (start, warning, end) "<roomId> s"; of who is
 * connected on some node "<roomId> p". */
#define STORE_NOTIFY_CHANNEL "coach_room"
/* Typing, never stored: "<0|1> <length of roomId> <roomId><userId>". */
#define STORE_TYPING_CHANNEL "coach_typing"

enum store_note_kind {
    STORE_NOTE_CHAT = 0, /* seq: the room's newest committed seq */
    STORE_NOTE_STATE,    /* the session changed: read it again */
    STORE_NOTE_PRESENCE, /* presence on other nodes changed: read it again */
    STORE_NOTE_TYPING,   /* user_id typed (state) on another node */
};

/* One announcement about a room. */
struct store_note {
    enum store_note_kind kind;
    char room_id[STORE_ROOM_MAX + 1];
    int64_t seq;                     /* CHAT */
    char user_id[STORE_ID_MAX + 1];  /* TYPING */
    int state;                       /* TYPING */
};

/* The payload of a typing notification into out[cap]; -1 if it does not fit. */
int store_typing_payload(char *out, size_t cap, const char *room_id, const char *user_id,
                         bool state);

/* Loop thread, from store_listen_drain: note is one announcement, or NULL
 * when notes may have been missed (the listener connected or reconnected,
 * or its queue overflowed): then every room must be caught up. */
typedef void (*store_note_fn)(void *arg, const struct store_note *note);

struct store_listen_cfg {
    const char *conninfo;    /* copied (wiped on close); never logged */
    const struct store *self; /* optional: notes sent by this store's own connection
                                 are dropped (its commits are delivered locally) */
    void (*wake)(void *arg); /* called from the listener thread when notes wait */
    void *wake_arg;
    store_log_fn log; /* optional */
    void *log_arg;
};

struct store_listen;

/* Whether pid is the PostgreSQL backend of one of st's connections. Any
 * thread. */
bool store_owns_backend(const struct store *st, int pid);

/* Start the listener thread (its own connection, LISTEN, reconnect with
 * backoff). 0, -EINVAL, -ENOMEM or a negative errno with err filled. */
int store_listen_open(const struct store_listen_cfg *cfg, struct store_listen **out,
                      struct store_err *err);
/* Hand the queued notes (in arrival order) to fn. Loop thread. */
void store_listen_drain(struct store_listen *l, store_note_fn fn, void *arg);
/* Stop the thread (waits up to the connect timeout) and free. NULL-safe. */
void store_listen_close(struct store_listen *l);

struct store_req {
    enum store_op op;
    store_done_fn done;  /* loop thread */
    void *arg;           /* the submitter's, untouched by the store */
    int64_t deadline_ms; /* monotonic; set by store_submit from the timeout */
    int rc;              /* result: 0 or a negative code */
    struct store_err err;
    struct store_req *next; /* queue link, owned by the store while queued */
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
        struct store_warning warning;
        struct store_end end;
        struct store_rate rate;
        struct store_session_get session_get;
        struct store_ai_claim ai_claim;
        struct store_ai_result ai_result;
        struct store_live_rooms live_rooms;
        struct store_auth_code_issue code_issue;
        struct store_auth_code_redeem code_redeem;
        struct store_maintenance maint;
        struct store_lk_event lk_event;
        struct store_lk_close_claim lk_claim;
        struct store_lk_close_result lk_result;
        struct store_job_stats job_stats;
        struct store_node_beat beat;
        struct store_node_leave leave;
        struct store_presence_set presence_set;
        struct store_presence_get presence_get;
        struct store_notify notify;
    } u; /* last: store_req_new allocates only as much of it as op uses */
};

/* Connections (and threads) a store may have. */
#define STORE_CONNECTIONS_MAX 16

struct store_cfg {
    const char *conninfo;    /* copied; never logged */
    int connections;         /* 1..STORE_CONNECTIONS_MAX (0: 1): a room's requests always
                                use the same one, so they run in order; one more connection
                                serves background work (heartbeats, jobs, cleanup) */
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

/* A zeroed request for op, or NULL when out of memory. It holds only op's
 * member of u: never change its op, nor use another member. */
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
