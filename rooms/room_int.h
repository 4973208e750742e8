/*
 * room_int.h: declarations shared by the rooms module's files only.
 * Never included outside rooms/.
 *
 * DESIGN
 * struct room holds the appointment (copied at load), the session clock,
 * the present members in join order and the member connections. Both
 * arrays are allocated once by room_new() at their caps (cfg.max_members,
 * cfg.max_conns); nothing else allocates. A connection slot points at the
 * gateway's struct room_conn and names its member by index; removing a
 * member shifts the later ones down and renumbers the slots, which keeps
 * the member list in join order at the cost of O(n) on a leave (n is a
 * handful of users).
 */
#ifndef COACH_ROOM_INT_H
#define COACH_ROOM_INT_H

#include "room.h"

/* A present member: a user with at least one connection in the room,
 * here (n_conns) or on other gateway nodes (remote: how many nodes). */
struct room__member {
    struct room_member_info info;
    size_t n_conns;
    unsigned remote;
};

/* A connection in the room. */
struct room__slot {
    struct room_conn *c; /* borrowed: owned by the gateway, unlinked on leave */
    size_t member;       /* index into room.members */
};

/* Index of a participant in room.participants / room.has_session. */
enum { ROOM__COACH = 0, ROOM__CLIENT = 1 };

struct room {
    struct room_cfg cfg; /* warnings sorted descending, no duplicates */
    char id[ROOM_ID_MAX + 1];
    char appointment_id[ROOM_ID_MAX + 1];
    struct room_member_info participants[2]; /* coach, client, as loaded */
    bool has_session[2];                     /* Session row known to exist */

    int64_t scheduled_unix_ms;
    int duration_min; /* effective, > 0 */
    enum room_state state;
    enum room_end_reason end_reason;
    int64_t started_unix_ms; /* 0 until started */
    int64_t ends_unix_ms;    /* 0 until started */
    int64_t ended_unix_ms;   /* 0 until ended (or unknown) */
    uint64_t last_seq;
    unsigned warnings_sent; /* thresholds done, counted from the biggest */

    int64_t idle_since_ms;      /* last time participant connections dropped to 0 */
    size_t n_participant_conns; /* connections of the coach and the client */

    struct room__member *members; /* [cfg.max_members], owned */
    size_t n_members;
    struct room__slot *slots; /* [cfg.max_conns], owned */
    size_t n_slots;
};

#define ROOM__NOT_FOUND ((size_t)-1)

/* True when fx has at least n free entries. */
bool room__fx_has_space(const struct room_fx_list *fx, size_t n);

/* Append a zeroed effect of kind about r; the caller checked the space. */
struct room_fx *room__fx_push(struct room_fx_list *fx, enum room_fx_kind kind, struct room *r);

/* Bounded copy of src (NULL: "") into dst[cap]; truncates at a UTF-8
 * character boundary. Returns the length copied. */
size_t room__copy_str(char *dst, size_t cap, const char *src);

/* Slot index of c in r, or ROOM__NOT_FOUND. */
size_t room__slot_of(const struct room *r, const struct room_conn *c);

/* Remove r from c's room list (order not kept); no-op if absent. */
void room__conn_unlink(struct room_conn *c, const struct room *r);

/* Role of user_id in r's appointment (admin only matters when the user is
 * neither the coach nor the client). */
enum room_role room__role_of(const struct room *r, const char *user_id, bool is_admin);

/* Refusals shared by join and media join: cancelled, too early. */
int room__check_open(const struct room *r, int64_t now_ms);

/* For a coach or client arriving at now_ms: start the session (appends
 * SESSION_START) or add their Session row (SESSION_JOIN), or nothing.
 * Needs one free slot. */
void room__participant_arrives(struct room *r, enum room_role role,
                               const struct room_member_info *who, int64_t now_ms,
                               struct room_fx_list *fx);

/* Whether the clock or the idle rule has ended the running session by
 * now_ms; if so its reason and time. */
bool room__end_due(const struct room *r, int64_t now_ms, enum room_end_reason *reason,
                   int64_t *at_ms);

/* End the running session: state, reason, time; appends END. Needs one
 * free slot. */
void room__end(struct room *r, enum room_end_reason reason, int64_t at_ms, struct room_fx_list *fx);

/* Whether a coach or client is connected here or on another node. */
bool room__has_participants(const struct room *r);

/* Index of user_id's member in r, or ROOM__NOT_FOUND. */
size_t room__member_of(const struct room *r, const char *user_id);

/* Take one token from b (rate per_sec tokens a second, at most burst). */
bool room__bucket_take(struct room_bucket *b, int64_t now_ms, int64_t per_sec, int64_t burst);

#endif
