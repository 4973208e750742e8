/*
 * room.h: the rooms module's public header: the pure core of a live
 * coaching room.
 *
 * DESIGN
 * One struct room per appointment. The gateway loads the appointment and
 * its sessions from PostgreSQL, creates the room with room_new(), and from
 * then on reports every event to it: a connection joins, leaves or drops, a
 * chat frame arrives, the store committed a chat, a typing frame, the
 * clock, an `end` command, an end reported from outside (LiveKit, admin).
 * Each room_on_<event>() decides, updates the room, and appends effects to
 * a caller-provided bounded list (struct room_fx_list). The gateway then
 * executes the effects in list order: persist requests go to the store
 * queue, frames go to connection outboxes. The core does no I/O, reads no
 * clock, never prints, and allocates only in room_new().
 *
 * Time. Every time in this API is in unix epoch milliseconds, the same base
 * as the database's timestamps (scheduledFor, startedAt). `now_ms` is the
 * gateway's reading of that clock, read once per event and passed down;
 * the core tolerates a clock that steps backwards (token buckets simply do
 * not refill, deadlines are compared, never subtracted into unsigned).
 *
 * Results. Every room_on_*() returns 0 when the event was handled (the
 * effects appended say what to do, possibly nothing) or a negative code.
 * On a negative code nothing was appended and the room is unchanged; the
 * single, documented exception is the per-connection limiter (ROOM_E_RATE_LIMITED,
 * ROOM_E_FLOOD), which counts the refused frame in the caller's struct
 * room_conn. Refusals that the client must hear about (forbidden, closed,
 * not_open, rate_limited, ...) are such codes: the gateway replies
 * `error` with room_err_code(rc) and the frame's own `id`, `room` and
 * `clientMsgId`, which it holds.
 *
 * Connections. The gateway embeds one struct room_conn in each of its
 * WebSocket connections (room_conn_init()). It carries the connection's
 * token buckets (chat 10/s burst 20, typing 5/s) and the list of rooms the
 * connection is in (at most ROOM_CONN_MAX_ROOMS = 8, enforced by
 * room_on_join()). A room keeps pointers to its member connections and a
 * connection to its rooms; both sides are maintained by this module, so a
 * struct room_conn must not move in memory between room_conn_init() and
 * room_conn_fini().
 *
 * Recipients. Frame effects name their recipients by struct room_target:
 * one connection by id, or "every member connection of fx->room, except
 * one connection and/or every connection of one user". The gateway
 * serializes the frame once and calls room_fx_recipients() to list the
 * connections. Recipients are resolved when the effect is applied, so
 * apply the effects of one call before making the next call on that room.
 *
 * Threads: everything here runs on the gateway's loop thread only; there
 * are no locks.
 */
#ifndef COACH_ROOM_H
#define COACH_ROOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- limits -------------------------------------------------------------- */

#define ROOM_ID_MAX            128 /* bytes of a room id, appointment id, without NUL */
#define ROOM_USER_ID_MAX       64  /* bytes of a user id */
#define ROOM_NAME_MAX          128 /* bytes of a display name kept (longer: cut at a UTF-8 boundary) */
#define ROOM_CLIENT_MSG_ID_MAX 64 /* bytes of a clientMsgId */
#define ROOM_WARNINGS_MAX      8  /* thresholds in TIMER_WARNINGS */
#define ROOM_CONN_MAX_ROOMS    8  /* rooms one connection may be in at once */
#define ROOM_FX_MAX            40 /* effects one room_fx_list holds */

/* Per-connection limits (protocol "Limits"). */
#define ROOM_CHAT_PER_SEC    10    /* chat refill rate */
#define ROOM_CHAT_BURST      20    /* chat bucket size */
#define ROOM_TYPING_PER_SEC  5     /* typing refill rate and bucket size */
#define ROOM_FLOOD_REJECTS   20    /* refused chats tolerated per window... */
#define ROOM_FLOOD_WINDOW_MS 10000 /* ...the next one closes the connection (1008) */

/* Returned by room_next_deadline_ms() when the room needs no wake-up. */
#define ROOM_NO_DEADLINE INT64_MAX

/* ---- errors ------------------------------------------------------------------ */

/* Besides these, -EINVAL (bad argument: a caller bug) and -ENOMEM. */
enum {
    ROOM_E_NOSPACE = -2000,      /* the effect list has no room for this call's effects */
    ROOM_E_FULL = -2001,         /* the room's member or connection cap is reached */
    ROOM_E_FORBIDDEN = -2002,    /* not allowed for this user or role */
    ROOM_E_NOT_MEMBER = -2003,   /* the connection has not joined this room */
    ROOM_E_CLOSED = -2004,       /* cancelled appointment, or the session has ended */
    ROOM_E_NOT_OPEN = -2005,     /* earlier than EARLY_JOIN_MIN before scheduledFor */
    ROOM_E_NOT_STARTED = -2006,  /* the session has not started */
    ROOM_E_TOO_MANY = -2007,     /* the connection is already in ROOM_CONN_MAX_ROOMS rooms */
    ROOM_E_RATE_LIMITED = -2008, /* the connection's chat bucket is empty */
    ROOM_E_FLOOD = -2009,        /* rate limited, and the connection keeps flooding: close it */
    ROOM_E_SEQ_OLD = -2010,      /* committed seq <= lastSeq */
    ROOM_E_SEQ_GAP = -2011,      /* committed seq > lastSeq + 1 */
    ROOM_E_IN_USE = -2012,       /* LiveKit end refused: a member is connected */
};

/* A static, human-readable description of rc (any code above, a negative
 * errno, or 0). Never NULL. Any thread. */
const char *room_strerror(int rc);

/* The protocol error code the client gets for rc: "forbidden" for
 * ROOM_E_FORBIDDEN and ROOM_E_NOT_MEMBER (chat/typing/end/leave in a room
 * the connection has not joined), "closed", "not_open" (also
 * ROOM_E_NOT_STARTED), "rate_limited" (also ROOM_E_FLOOD, ROOM_E_TOO_MANY),
 * "conflict" (ROOM_E_IN_USE, ROOM_E_SEQ_*), "unavailable" (ROOM_E_FULL),
 * "bad_request" (-EINVAL), "internal" otherwise. Static string. Any thread. */
const char *room_err_code(int rc);

/* ---- enums ------------------------------------------------------------------ */

/* Role of a member in a room. */
enum room_role {
    ROOM_ROLE_NONE = 0, /* not a member */
    ROOM_ROLE_COACH,
    ROOM_ROLE_CLIENT,
    ROOM_ROLE_OBSERVER, /* a user whose "User"."role" is admin */
};

/* "Appointment"."status" as loaded. */
enum room_appt_status {
    ROOM_APPT_SCHEDULED = 0,
    ROOM_APPT_ACTIVE,
    ROOM_APPT_COMPLETED,
    ROOM_APPT_CANCELLED,
};

/* Where the room's session is. */
enum room_state {
    ROOM_STATE_WAITING = 0, /* not started: nobody has joined as a participant yet */
    ROOM_STATE_RUNNING,     /* started, not ended */
    ROOM_STATE_ENDED,       /* ended (or the appointment was loaded completed) */
    ROOM_STATE_CANCELLED,   /* the appointment is cancelled: nobody may join */
};

/* Why a session ended; the protocol's `reason`. */
enum room_end_reason {
    ROOM_END_NONE = 0, /* not ended, or ended before this process loaded the room */
    ROOM_END_COACH,    /* `end` from the coach */
    ROOM_END_TIMER,    /* the clock reached endsAt */
    ROOM_END_IDLE,     /* no participant connected for IDLE_END_SEC */
    ROOM_END_LIVEKIT,  /* LiveKit room_finished */
    ROOM_END_ADMIN,    /* `end` from an observer, or an admin action */
};

/* Static names: "coach", "client", "observer" (NULL for NONE);
 * "coach", "timer", "idle", "livekit", "admin" (NULL for NONE). Any thread. */
const char *room_role_name(enum room_role role);
const char *room_end_reason_name(enum room_end_reason reason);

/* ---- configuration and load -------------------------------------------------- */

/* Gateway-wide settings, copied by room_new(). */
struct room_cfg {
    int early_join_min;                  /* EARLY_JOIN_MIN, >= 0 */
    int idle_end_sec;                    /* IDLE_END_SEC, >= 0; 0 disables the idle end */
    int warnings_sec[ROOM_WARNINGS_MAX]; /* TIMER_WARNINGS, each > 0, any order */
    size_t n_warnings;                   /* 0..ROOM_WARNINGS_MAX */
    size_t max_members;                  /* distinct users present at once, >= 2 */
    size_t max_conns;                    /* connections in the room at once, >= max_members */
};

/* Fill cfg with the protocol defaults: early join 10 min, idle end 300 s,
 * warnings 300,60, 16 members, 64 connections. */
void room_cfg_default(struct room_cfg *cfg);

/* One appointment as loaded from the database. Strings are borrowed for the
 * call (room_new copies them); NULL names count as "". */
struct room_load {
    const char *room_id;                 /* "Appointment"."roomId", 1..ROOM_ID_MAX bytes */
    const char *appointment_id;          /* 1..ROOM_ID_MAX bytes */
    const char *coach_id, *coach_name;   /* user id 1..ROOM_USER_ID_MAX bytes */
    const char *client_id, *client_name; /* must differ from coach_id */
    int64_t scheduled_unix_ms;           /* "scheduledFor" */
    int duration_min;                    /* "durationMin"; <= 0 means 20 */
    enum room_appt_status status;
    int64_t started_unix_ms; /* earliest "Session"."startedAt"; 0 = not started */
    int64_t ended_unix_ms;   /* "Session"."endedAt"; 0 = not ended */
    bool coach_has_session;  /* the coach already has a Session row */
    bool client_has_session; /* the client already has a Session row */
    uint64_t last_seq;       /* highest committed seq, 0 = none */
    unsigned warnings_sent;  /* max "Session"."warningsSent" of the appointment */
};

/* ---- connections ---------------------------------------------------------------- */

/* A token bucket in thousandths of a token. Private to rooms. */
struct room_bucket {
    int64_t milli;
    int64_t last_ms;
};

struct room;

/* Per-connection state, embedded by the gateway in its connection object.
 * Fields after `user` are private to rooms (read them with the accessors).
 * Must stay at one address from room_conn_init() to room_conn_fini(). */
struct room_conn {
    uint64_t id; /* the gateway's connection id: nonzero, unique in the process */
    void *user;  /* the gateway's pointer back to its connection (rooms never reads it) */
    struct room_bucket chat, typing;
    int64_t flood_window_start_ms;
    unsigned flood_rejects;
    struct room *rooms[ROOM_CONN_MAX_ROOMS]; /* rooms joined, borrowed (the gateway owns rooms) */
    size_t n_rooms;
};

/* Initialize c with full buckets at now_ms and no rooms. id must be nonzero.
 * Loop thread. */
void room_conn_init(struct room_conn *c, uint64_t id, void *user, int64_t now_ms);

/* Detach c from every room it is in WITHOUT effects (no presence leave):
 * for shutdown only. Use room_on_disconnect() when a connection closes.
 * NULL-safe. Loop thread. */
void room_conn_fini(struct room_conn *c, int64_t now_ms);

/* Number of rooms c is in, and the i-th (borrowed; i < count). Loop thread. */
size_t room_conn_room_count(const struct room_conn *c);
struct room *room_conn_room_at(const struct room_conn *c, size_t i);

/* ---- effects ------------------------------------------------------------------------ */

enum room_fx_kind {
    /* Persist: the first participant started the session. Create or
     * reactivate fx->user's Session row (status active, startedAt =
     * started_unix_ms, durationMinutes = duration_min, roomId, endedAt
     * NULL, warningsSent 0); set the appointment's status to active. The
     * room clock now runs: endsAt = ends_unix_ms. No frame. */
    ROOM_FX_SESSION_START = 1,
    /* Persist: a participant without a Session row joined the running
     * session (or joined LiveKit): create or reactivate fx->user's Session
     * row (startedAt = at_unix_ms, durationMinutes = duration_min). No frame. */
    ROOM_FX_SESSION_JOIN,
    /* Frame `presence` {event: join|leave, member: fx->user, members: the
     * room's member list (room_member_at) when applied} to fx->to. */
    ROOM_FX_PRESENCE,
    /* Frame `typing` {userId: fx->user.id, state: fx->state} to fx->to
     * (every member connection except fx->user's own). */
    ROOM_FX_TYPING,
    /* Persist: send the chat to the store: room, conn_id (for the
     * completion), fx->user, client_msg_id, text/text_len. No frame; the
     * store's completion comes back as room_on_chat_committed(). */
    ROOM_FX_PERSIST_CHAT,
    /* Frame `ack` {clientMsgId, seq, messageId, createdAt} to fx->to (the
     * sender's connection by id; skip it if that connection is gone). The
     * gateway takes messageId/createdAt from its store completion. */
    ROOM_FX_ACK,
    /* Frame `message` with seq fx->seq to fx->to (every member connection,
     * the sender's included); content from the store completion. */
    ROOM_FX_DELIVER,
    /* Persist + frame: set warningsSent = GREATEST(warningsSent,
     * warnings_sent) on the appointment's active Session rows, then `timer`
     * {kind: warning, remainingSec: remaining_sec, endsAt: ends_unix_ms} to fx->to. */
    ROOM_FX_WARNING,
    /* Persist + frame, exactly once per session: complete the Session rows
     * (endedAt = ended_unix_ms, transcript), the appointment, queue the AI
     * summary (and the LiveKit room deletion unless reason is LIVEKIT);
     * then `session.ended` {reason, endedAt} to fx->to (rateable: true for
     * recipients whose role is client, while no rating exists). */
    ROOM_FX_END,
    /* Persist: fx->user's first connection on this node joined (is_join)
     * or its last one here left. Publish it to the other gateway nodes
     * (their members see presence through it; the room's clock counts
     * participants on every node). No frame. */
    ROOM_FX_LOCAL_PRESENCE,
};

enum room_to {
    ROOM_TO_NONE = 0, /* persist-only effect: no frame */
    ROOM_TO_CONN,     /* the one connection whose id is conn_id (may have left the room) */
    ROOM_TO_MEMBERS,  /* every member connection of the room, minus the skips */
};

struct room_target {
    enum room_to kind;
    uint64_t conn_id; /* ROOM_TO_CONN: the recipient; ROOM_TO_MEMBERS: one to skip (0: none) */
    bool skip_user;   /* ROOM_TO_MEMBERS: also skip every connection of fx->user.id */
};

/* A member as carried by value in effects and returned by room_member_at(). */
struct room_member_info {
    char id[ROOM_USER_ID_MAX + 1];
    char display_name[ROOM_NAME_MAX + 1];
    enum room_role role;
};

/* One effect. Which fields are set depends on kind (see enum room_fx_kind);
 * the others are zero. */
struct room_fx {
    enum room_fx_kind kind;
    struct room *room; /* the room concerned, borrowed */
    struct room_target to;
    struct room_member_info user;                   /* the member the effect is about */
    bool is_join;                                   /* PRESENCE: join (true) or leave */
    bool state;                                     /* TYPING */
    uint64_t conn_id;                               /* PERSIST_CHAT: the sending connection */
    char client_msg_id[ROOM_CLIENT_MSG_ID_MAX + 1]; /* PERSIST_CHAT */
    const char *text; /* PERSIST_CHAT: borrowed from the caller's room_chat_in */
    size_t text_len;
    uint64_t seq;                /* ACK, DELIVER */
    int64_t at_unix_ms;          /* SESSION_JOIN: the participant's startedAt */
    int64_t started_unix_ms;     /* SESSION_START, SESSION_JOIN, END: the room's startedAt */
    int64_t ends_unix_ms;        /* SESSION_START, SESSION_JOIN, WARNING, END: endsAt */
    int64_t ended_unix_ms;       /* END */
    int duration_min;            /* SESSION_START, SESSION_JOIN */
    int threshold_sec;           /* WARNING: the TIMER_WARNINGS entry */
    int remaining_sec;           /* WARNING: whole seconds left, rounded up */
    unsigned warnings_sent;      /* WARNING: the new count to persist */
    bool recorded;               /* WARNING: persisted already (by another node): frame only */
    enum room_end_reason reason; /* END */
};

/* A bounded effect list, caller-owned (usually on the stack). Set len = 0
 * before use (or room_fx_reset); calls append. */
struct room_fx_list {
    struct room_fx v[ROOM_FX_MAX];
    size_t len;
};

/* Empty fx. */
void room_fx_reset(struct room_fx_list *fx);

/* The member connections fx designates, resolved now: writes up to cap
 * pointers (borrowed, valid until the next room call) to out and returns
 * how many there are (may exceed cap, as snprintf does). Returns 0 for
 * ROOM_TO_NONE and ROOM_TO_CONN (the gateway looks that id up itself).
 * Loop thread. */
size_t room_fx_recipients(const struct room_fx *fx, struct room_conn **out, size_t cap);

/* ---- lifecycle ---------------------------------------------------------------------- */

/* Create a room from its configuration and database state. now_ms is the
 * load time: a running session with nobody connected is ended by the idle
 * rule IDLE_END_SEC after it (not after the last leave, unknown after a
 * restart). Warnings: see room_on_tick(). On success *out owns a new room
 * (free with room_free) and 0 is returned; -EINVAL for a bad cfg or load
 * (ids empty or too long, coach = client, bad thresholds, caps), -ENOMEM.
 * *out is untouched on error. Loop thread. */
int room_new(const struct room_cfg *cfg, const struct room_load *ld, int64_t now_ms,
             struct room **out);

/* Free r and detach it from its member connections (without effects).
 * NULL-safe. Loop thread. */
void room_free(struct room *r);

/* ---- events ------------------------------------------------------------------------- */

/* A connection asks to join. */
struct room_join_in {
    const char *user_id;      /* the authenticated user, 1..ROOM_USER_ID_MAX bytes */
    const char *display_name; /* NULL counts as "" */
    bool is_admin;            /* "User"."role" = 'admin' */
};

/* Join c to r as in->user_id. Checks, in order: the role (coach id →
 * coach, client id → client, admin → observer, else ROOM_E_FORBIDDEN);
 * cancelled → ROOM_E_CLOSED; now_ms < scheduledFor − EARLY_JOIN_MIN →
 * ROOM_E_NOT_OPEN (exactly at the limit is open); c already in 8 rooms →
 * ROOM_E_TOO_MANY; caps → ROOM_E_FULL; fewer than 2 free effect slots →
 * ROOM_E_NOSPACE. A connection already in the room: 0, no effects (the
 * gateway sends `joined` again). An ended session may be joined (to read
 * and rate). Appends, in order:
 *  - SESSION_START (first participant, session waiting: the room starts,
 *    endsAt = now_ms + duration) or SESSION_JOIN (a participant without a
 *    Session row joins a running session);
 *  - PRESENCE join to every other member connection, when this is the
 *    user's first connection in the room.
 * Members are listed in the order of their first connection's join.
 * On 0 the gateway replies `joined` (room accessors + history). */
int room_on_join(struct room *r, struct room_conn *c, const struct room_join_in *in, int64_t now_ms,
                 struct room_fx_list *fx);

/* The Session row that SESSION_START or SESSION_JOIN asked for, for the
 * participant of role, could not be written (the store refused or failed
 * it): the room forgets it, so that the participant's next join (or media
 * join) asks for it again with SESSION_JOIN. The session's start, endsAt
 * and state stay. Observers have no row: nothing happens. */
void room_on_session_failed(struct room *r, enum room_role role);

/* The participant of role has a Session row, or one asked for. */
bool room_has_session(const struct room *r, enum room_role role);

/* c leaves r (`leave`). ROOM_E_NOT_MEMBER if c is not in r; ROOM_E_NOSPACE
 * without 1 free slot. Appends PRESENCE leave to the remaining member
 * connections when c was its user's last connection. When the last
 * participant connection goes, the idle clock starts. */
int room_on_leave(struct room *r, struct room_conn *c, int64_t now_ms, struct room_fx_list *fx);

/* c closed: leave every room it is in, as room_on_leave() each (effects for
 * several rooms; fx->room tells which). ROOM_E_NOSPACE without one free
 * slot per room. Call before freeing c. */
int room_on_disconnect(struct room_conn *c, int64_t now_ms, struct room_fx_list *fx);

/* A `typing` frame. ROOM_E_NOT_MEMBER if c is not in r. Beyond 5 a second
 * per connection, or once the session has ended: 0 and nothing appended
 * (dropped silently). Else appends TYPING to the other members' connections. */
int room_on_typing(struct room *r, struct room_conn *c, bool state, int64_t now_ms,
                   struct room_fx_list *fx);

/* A chat frame, validated by the codec (text 1..4000 bytes, clientMsgId). */
struct room_chat_in {
    const char *client_msg_id; /* 1..ROOM_CLIENT_MSG_ID_MAX bytes, copied */
    const char *text;          /* borrowed: PERSIST_CHAT points at it */
    size_t text_len;
};

/* Admit a chat. Checks, in order: c in r, else ROOM_E_NOT_MEMBER; session
 * waiting → ROOM_E_NOT_STARTED; ended, or now_ms >= endsAt →
 * ROOM_E_CLOSED; no free effect slot → ROOM_E_NOSPACE (these four change
 * nothing at all); then c's chat bucket (10/s, burst 20): empty →
 * ROOM_E_RATE_LIMITED (reply `error rate_limited`, nothing stored), or
 * ROOM_E_FLOOD when this is more than ROOM_FLOOD_REJECTS refusals within
 * ROOM_FLOOD_WINDOW_MS (reply the same error, then close with 1008). Both
 * count the refusal in c, nothing else. On 0 appends PERSIST_CHAT, whose
 * text points into *in: copy it while applying the effect. */
int room_on_chat(struct room *r, struct room_conn *c, const struct room_chat_in *in, int64_t now_ms,
                 struct room_fx_list *fx);

/* The store committed a chat of r with seq, sent by connection conn_id.
 * seq must be lastSeq + 1: ROOM_E_SEQ_OLD for seq <= lastSeq (a duplicate:
 * the gateway acks the sender itself and delivers nothing), ROOM_E_SEQ_GAP
 * for seq > lastSeq + 1 (messages committed elsewhere: the gateway fetches
 * lastSeq+1 .. seq-1 from the store and reports them here first, in order).
 * Accepted even after the session ended (it was admitted before). Appends
 * ACK to conn_id (none when conn_id is 0: a sender unknown here), then
 * DELIVER to every member connection. ROOM_E_NOSPACE without 2 free slots.
 * now_ms is unused (kept for the uniform signature). */
int room_on_chat_committed(struct room *r, uint64_t seq, uint64_t conn_id, int64_t now_ms,
                           struct room_fx_list *fx);

/* The store found no message between lastSeq and seq (the first one after
 * lastSeq is seq: the ones before were deleted, e.g. with their "Message"
 * rows): move lastSeq to seq - 1 so that seq is next. 1 when it moved, 0
 * when nothing was missing (seq <= lastSeq + 1), -EINVAL for seq 0. */
int room_skip_seq(struct room *r, uint64_t seq);

/* The clock: call at room_next_deadline_ms() (early or late calls are
 * harmless). Appends at most one effect:
 *  - END reason TIMER (endedAt = endsAt) when now_ms >= endsAt, or reason
 *    IDLE (endedAt = the idle deadline) when no participant has been
 *    connected for IDLE_END_SEC, whichever deadline came first; no warning
 *    is sent once the end is due;
 *  - else WARNING when thresholds are due: thresholds are taken in
 *    descending order and counted by warnings_sent (loaded, then advanced
 *    here); when several are due at once (a late tick, a restart) only the
 *    smallest one is sent and the bigger ones are counted as done: the
 *    warning still relevant. Never repeats a threshold.
 * ROOM_E_NOSPACE without 1 free slot. */
int room_on_tick(struct room *r, int64_t now_ms, struct room_fx_list *fx);

/* The `end` command from c. ROOM_E_NOT_MEMBER if c is not in r;
 * ROOM_E_FORBIDDEN for a client; ROOM_E_NOT_STARTED before the session
 * started; ROOM_E_CLOSED once it ended (ending is idempotent: nothing is
 * repeated). Appends END, reason COACH (coach) or ADMIN (observer), endedAt
 * = now_ms, to every member connection. ROOM_E_NOSPACE without 1 slot. */
int room_on_end(struct room *r, struct room_conn *c, int64_t now_ms, struct room_fx_list *fx);

/* An end from outside: reason ROOM_END_LIVEKIT (room_finished of the
 * current LiveKit instance) or ROOM_END_ADMIN; anything else -EINVAL.
 * ROOM_E_NOT_STARTED, ROOM_E_CLOSED as room_on_end(); LIVEKIT while any
 * member connection is in the room → ROOM_E_IN_USE (the session goes on;
 * the gateway sends `media left`). Appends END as room_on_end(). */
int room_on_external_end(struct room *r, enum room_end_reason reason, int64_t now_ms,
                         struct room_fx_list *fx);

/* LiveKit participant_joined for user_id: starts the session or adds the
 * participant's Session row exactly as room_on_join() does (SESSION_START
 * or SESSION_JOIN, or nothing), without presence. Refusals as
 * room_on_join(); an observer or stranger → ROOM_E_FORBIDDEN; ended →
 * ROOM_E_CLOSED. Media presence does not count for the idle rule. */
int room_on_media_join(struct room *r, const char *user_id, int64_t now_ms,
                       struct room_fx_list *fx);

/* ---- several gateway nodes ------------------------------------------------------------ */

/* A user connected to this room on other nodes, as their presence rows say. */
struct room_remote_member {
    const char *user_id;      /* 1..ROOM_USER_ID_MAX bytes */
    const char *display_name; /* cut at ROOM_NAME_MAX */
    bool is_admin;            /* the row's role is admin */
    unsigned nodes;           /* on how many other nodes (> 0) */
};

/* The whole remote presence of r (v[0..n), each user at most once; users
 * not in v have no connection elsewhere). A user who becomes a member
 * through it gets PRESENCE join to every member connection here; one who
 * stops being a member gets PRESENCE leave. Users who are not the coach,
 * the client or an admin are ignored, as are users beyond the member cap.
 * Participants on any node hold the idle clock. 0, -EINVAL, or
 * ROOM_E_NOSPACE (nothing changed) when fx cannot hold n + the members'
 * leaves. Loop thread. */
int room_on_remote_presence(struct room *r, const struct room_remote_member *v, size_t n,
                            int64_t now_ms, struct room_fx_list *fx);

/* user_id typed on another node: TYPING to every member connection here
 * except the user's own; nothing when the user is not a member or the
 * session has ended. 0, -EINVAL, ROOM_E_NOSPACE. Loop thread. */
int room_on_remote_typing(struct room *r, const char *user_id, bool state,
                          struct room_fx_list *fx);

/* The room's session as the database holds it (another node may have
 * changed it). Fields only move forward: 0/false means "not known here". */
struct room_sync {
    int64_t started_unix_ms;     /* > 0: started then (the earliest startedAt) */
    unsigned warnings_sent;      /* recorded warnings */
    int64_t ended_unix_ms;       /* > 0: ended then */
    enum room_end_reason reason; /* with ended_unix_ms; NONE when unknown (then ADMIN) */
    bool coach_has_session, client_has_session;
};

/* Bring r up to s. A waiting room starts (no effect: the Session rows
 * exist); a running one adopts the stored start. Warnings recorded beyond
 * r's count: one WARNING with recorded = true for the newest of them
 * (frame only), unless the end is due. Ended: END with the stored reason
 * and time (the store's end is idempotent). 0, -EINVAL, ROOM_E_NOSPACE.
 * Loop thread. */
int room_on_sync(struct room *r, const struct room_sync *s, int64_t now_ms,
                 struct room_fx_list *fx);

/* When room_on_tick() next has something to do (a warning, the end, the
 * idle end), in unix ms; ROOM_NO_DEADLINE when nothing (waiting, ended).
 * May be in the past: tick now. Re-read it after every call on r and
 * re-arm the room's timer when it changed. Loop thread. */
int64_t room_next_deadline_ms(const struct room *r);

/* ---- accessors (loop thread; strings valid until room_free) ----------------------- */

const char *room_id(const struct room *r);
const char *room_appointment_id(const struct room *r);
enum room_state room_state(const struct room *r);
enum room_end_reason room_end_reason(const struct room *r); /* NONE if not ended here */
uint64_t room_last_seq(const struct room *r);
unsigned room_warnings_sent(const struct room *r);
int64_t room_scheduled_unix_ms(const struct room *r);
int room_duration_min(const struct room *r);        /* effective: 20 when loaded <= 0 */
int64_t room_started_unix_ms(const struct room *r); /* 0 = not started */
int64_t room_ends_unix_ms(const struct room *r);    /* 0 = not started */
int64_t room_ended_unix_ms(const struct room *r);   /* 0 = not ended (or unknown) */
/* The appointment's coach or client (role COACH or CLIENT; else NULL). */
const struct room_member_info *room_participant(const struct room *r, enum room_role role);
/* Members present (with at least one connection), in join order. */
size_t room_member_count(const struct room *r);
/* Whether user_id has a connection in r on this node (not only elsewhere). */
bool room_member_here(const struct room *r, const char *user_id);
const struct room_member_info *room_member_at(const struct room *r, size_t i);
/* Connections in the room, all members together. */
size_t room_conn_count(const struct room *r);
/* c's role in r, ROOM_ROLE_NONE if c is not in r. */
enum room_role room_conn_role(const struct room *r, const struct room_conn *c);

#endif
