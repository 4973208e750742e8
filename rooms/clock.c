/*
 * clock.c: the session's life: opening, start, timer warnings, and the
 * four ways to end (clock, idle, `end` command, LiveKit/admin).
 *
 * DESIGN
 * A session is WAITING until its first participant (coach or client)
 * arrives, RUNNING until it ends, then ENDED for good; a cancelled
 * appointment stays CANCELLED. The clock is three deadlines, all derived
 * from the state and never stored: the next warning
 * (endsAt − threshold[warnings_sent]), endsAt, and the idle end
 * (idle_since + IDLE_END_SEC while no participant is connected).
 * room_next_deadline_ms() is their minimum; room_on_tick() acts on what is
 * due. The end always wins over a warning due at the same moment, and a
 * late tick sends only the smallest due warning (the only one still
 * telling the truth about the time left); the skipped ones count as sent,
 * so a restart with the persisted count neither repeats nor resends them.
 * Ending happens once: every end path goes through room__end(), which
 * requires RUNNING and leaves ENDED.
 */
#include <errno.h>

#include "room.h"
#include "room_int.h"

int room__check_open(const struct room *r, int64_t now_ms)
{
    if (r->state == ROOM_STATE_CANCELLED) {
        return ROOM_E_CLOSED;
    }
    if (now_ms < r->scheduled_unix_ms - (int64_t)r->cfg.early_join_min * 60000) {
        return ROOM_E_NOT_OPEN;
    }
    return 0;
}

void room__participant_arrives(struct room *r, enum room_role role,
                               const struct room_member_info *who, int64_t now_ms,
                               struct room_fx_list *fx)
{
    int p = role == ROOM_ROLE_COACH ? ROOM__COACH : ROOM__CLIENT;
    enum room_fx_kind kind;
    if (r->state == ROOM_STATE_WAITING) {
        r->state = ROOM_STATE_RUNNING;
        r->started_unix_ms = now_ms;
        r->ends_unix_ms = now_ms + (int64_t)r->duration_min * 60000;
        r->warnings_sent = 0;
        r->idle_since_ms = now_ms;
        kind = ROOM_FX_SESSION_START;
    } else if (r->state == ROOM_STATE_RUNNING && !r->has_session[p]) {
        kind = ROOM_FX_SESSION_JOIN;
    } else {
        return;
    }
    r->has_session[p] = true;
    struct room_fx *e = room__fx_push(fx, kind, r);
    e->user = *who;
    e->at_unix_ms = now_ms;
    e->started_unix_ms = r->started_unix_ms;
    e->ends_unix_ms = r->ends_unix_ms;
    e->duration_min = r->duration_min;
}

void room_on_session_failed(struct room *r, enum room_role role)
{
    if (r != NULL && (role == ROOM_ROLE_COACH || role == ROOM_ROLE_CLIENT)) {
        r->has_session[role == ROOM_ROLE_COACH ? ROOM__COACH : ROOM__CLIENT] = false;
    }
}

bool room_has_session(const struct room *r, enum room_role role)
{
    return r != NULL && (role == ROOM_ROLE_COACH || role == ROOM_ROLE_CLIENT) &&
           r->has_session[role == ROOM_ROLE_COACH ? ROOM__COACH : ROOM__CLIENT];
}

/* The idle deadline, or ROOM_NO_DEADLINE while a participant is connected
 * (on any node) or the rule is off. */
static int64_t idle_deadline(const struct room *r)
{
    if (r->cfg.idle_end_sec == 0 || room__has_participants(r)) {
        return ROOM_NO_DEADLINE;
    }
    return r->idle_since_ms + (int64_t)r->cfg.idle_end_sec * 1000;
}

/* When threshold number i (0 = biggest) is due. */
static int64_t warning_at(const struct room *r, size_t i)
{
    return r->ends_unix_ms - (int64_t)r->cfg.warnings_sec[i] * 1000;
}

bool room__end_due(const struct room *r, int64_t now_ms, enum room_end_reason *reason,
                   int64_t *at_ms)
{
    if (r->state != ROOM_STATE_RUNNING) {
        return false;
    }
    int64_t idle = idle_deadline(r);
    if (r->ends_unix_ms <= idle) {
        *reason = ROOM_END_TIMER;
        *at_ms = r->ends_unix_ms;
    } else {
        *reason = ROOM_END_IDLE;
        *at_ms = idle;
    }
    return now_ms >= *at_ms;
}

void room__end(struct room *r, enum room_end_reason reason, int64_t at_ms, struct room_fx_list *fx)
{
    r->state = ROOM_STATE_ENDED;
    r->end_reason = reason;
    r->ended_unix_ms = at_ms;
    struct room_fx *e = room__fx_push(fx, ROOM_FX_END, r);
    e->to = (struct room_target){.kind = ROOM_TO_MEMBERS};
    e->reason = reason;
    e->started_unix_ms = r->started_unix_ms;
    e->ends_unix_ms = r->ends_unix_ms;
    e->ended_unix_ms = at_ms;
}

int64_t room_next_deadline_ms(const struct room *r)
{
    if (r == NULL || r->state != ROOM_STATE_RUNNING) {
        return ROOM_NO_DEADLINE;
    }
    int64_t next = r->ends_unix_ms;
    if (r->warnings_sent < r->cfg.n_warnings) {
        int64_t w = warning_at(r, r->warnings_sent);
        next = w < next ? w : next;
    }
    int64_t idle = idle_deadline(r);
    return idle < next ? idle : next;
}

int room_on_tick(struct room *r, int64_t now_ms, struct room_fx_list *fx)
{
    if (r == NULL || fx == NULL) {
        return -EINVAL;
    }
    if (!room__fx_has_space(fx, 1)) {
        return ROOM_E_NOSPACE;
    }
    enum room_end_reason reason;
    int64_t at_ms;
    if (r->state != ROOM_STATE_RUNNING) {
        return 0;
    }
    if (room__end_due(r, now_ms, &reason, &at_ms)) {
        room__end(r, reason, at_ms, fx);
        return 0;
    }
    size_t done = r->warnings_sent;
    size_t due = done;
    while (due < r->cfg.n_warnings && now_ms >= warning_at(r, due)) {
        due++;
    }
    if (due == done) {
        return 0;
    }
    int64_t left_ms = r->ends_unix_ms - now_ms; /* > 0: the end is not due */
    r->warnings_sent = (unsigned)due;
    struct room_fx *e = room__fx_push(fx, ROOM_FX_WARNING, r);
    e->to = (struct room_target){.kind = ROOM_TO_MEMBERS};
    e->threshold_sec = r->cfg.warnings_sec[due - 1];
    e->remaining_sec = (int)((left_ms + 999) / 1000);
    e->ends_unix_ms = r->ends_unix_ms;
    e->warnings_sent = r->warnings_sent;
    return 0;
}

/* Refusals common to every requested end; 0 when the session may end. */
static int end_check(const struct room *r)
{
    switch (r->state) {
    case ROOM_STATE_WAITING:
        return ROOM_E_NOT_STARTED;
    case ROOM_STATE_RUNNING:
        return 0;
    case ROOM_STATE_ENDED:
    case ROOM_STATE_CANCELLED:
    default:
        return ROOM_E_CLOSED;
    }
}

/* End now for reason, unless the clock or idle rule already ended the
 * session earlier (a tick not yet run): then that end, with its own time. */
static void end_now(struct room *r, enum room_end_reason reason, int64_t now_ms,
                    struct room_fx_list *fx)
{
    enum room_end_reason due_reason;
    int64_t at_ms;
    if (room__end_due(r, now_ms, &due_reason, &at_ms)) {
        room__end(r, due_reason, at_ms, fx);
    } else {
        room__end(r, reason, now_ms, fx);
    }
}

int room_on_end(struct room *r, struct room_conn *c, int64_t now_ms, struct room_fx_list *fx)
{
    if (r == NULL || c == NULL || fx == NULL) {
        return -EINVAL;
    }
    enum room_role role = room_conn_role(r, c);
    if (role == ROOM_ROLE_NONE) {
        return ROOM_E_NOT_MEMBER;
    }
    if (role == ROOM_ROLE_CLIENT) {
        return ROOM_E_FORBIDDEN;
    }
    int rc = end_check(r);
    if (rc < 0) {
        return rc;
    }
    if (!room__fx_has_space(fx, 1)) {
        return ROOM_E_NOSPACE;
    }
    end_now(r, role == ROOM_ROLE_COACH ? ROOM_END_COACH : ROOM_END_ADMIN, now_ms, fx);
    return 0;
}

int room_on_external_end(struct room *r, enum room_end_reason reason, int64_t now_ms,
                         struct room_fx_list *fx)
{
    if (r == NULL || fx == NULL || (reason != ROOM_END_LIVEKIT && reason != ROOM_END_ADMIN)) {
        return -EINVAL;
    }
    int rc = end_check(r);
    if (rc < 0) {
        return rc;
    }
    if (reason == ROOM_END_LIVEKIT && r->n_slots > 0) {
        return ROOM_E_IN_USE;
    }
    if (!room__fx_has_space(fx, 1)) {
        return ROOM_E_NOSPACE;
    }
    end_now(r, reason, now_ms, fx);
    return 0;
}

/* ---- the database's view (another node changed the session) ------------------------ */

/* Start r (waiting) or move its start to the stored one (running). */
static void sync_start(struct room *r, int64_t started_ms, int64_t now_ms)
{
    if (r->state == ROOM_STATE_WAITING) {
        r->state = ROOM_STATE_RUNNING;
        r->warnings_sent = 0;
        r->idle_since_ms = now_ms;
    }
    r->started_unix_ms = started_ms;
    r->ends_unix_ms = started_ms + (int64_t)r->duration_min * 60000;
}

/* Warnings recorded elsewhere: count them, frame the newest (if the end
 * is not due: then the end tells the truth). Needs one free slot. */
static void sync_warnings(struct room *r, unsigned stored, int64_t now_ms, struct room_fx_list *fx)
{
    unsigned n = stored < r->cfg.n_warnings ? stored : (unsigned)r->cfg.n_warnings;
    if (n <= r->warnings_sent) {
        return;
    }
    r->warnings_sent = n;
    int64_t left_ms = r->ends_unix_ms - now_ms;
    if (left_ms <= 0) {
        return;
    }
    struct room_fx *e = room__fx_push(fx, ROOM_FX_WARNING, r);
    e->to = (struct room_target){.kind = ROOM_TO_MEMBERS};
    e->threshold_sec = r->cfg.warnings_sec[n - 1];
    e->remaining_sec = (int)((left_ms + 999) / 1000);
    e->ends_unix_ms = r->ends_unix_ms;
    e->warnings_sent = n;
    e->recorded = true;
}

int room_on_sync(struct room *r, const struct room_sync *s, int64_t now_ms, struct room_fx_list *fx)
{
    if (r == NULL || s == NULL || fx == NULL) {
        return -EINVAL;
    }
    if (!room__fx_has_space(fx, 1)) {
        return ROOM_E_NOSPACE;
    }
    if (r->state == ROOM_STATE_CANCELLED || r->state == ROOM_STATE_ENDED) {
        return 0;
    }
    r->has_session[ROOM__COACH] = r->has_session[ROOM__COACH] || s->coach_has_session;
    r->has_session[ROOM__CLIENT] = r->has_session[ROOM__CLIENT] || s->client_has_session;
    if (s->started_unix_ms > 0 && s->started_unix_ms != r->started_unix_ms) {
        sync_start(r, s->started_unix_ms, now_ms);
    }
    if (r->state != ROOM_STATE_RUNNING) {
        return 0;
    }
    if (s->ended_unix_ms > 0) {
        room__end(r, s->reason != ROOM_END_NONE ? s->reason : ROOM_END_ADMIN, s->ended_unix_ms, fx);
        return 0;
    }
    sync_warnings(r, s->warnings_sent, now_ms, fx);
    return 0;
}
