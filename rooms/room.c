/*
 * room.c: a room's life (room_new from the database state, room_free), its
 * accessors, effect-list helpers and error strings.
 *
 * DESIGN
 * room_new() validates everything it is given and copies it, so the
 * event functions can trust the room: ids are bounded and distinct,
 * thresholds are positive and sorted descending, caps are sane. The state
 * is derived from the load once: cancelled, ended (completed or endedAt),
 * running (startedAt), else waiting.
 */
#include "room.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "room_int.h"

const char *room_strerror(int rc)
{
    switch (rc) {
    case 0:
        return "ok";
    case -EINVAL:
        return "invalid argument";
    case -ENOMEM:
        return "out of memory";
    case ROOM_E_NOSPACE:
        return "effect list full";
    case ROOM_E_FULL:
        return "room full";
    case ROOM_E_FORBIDDEN:
        return "not allowed";
    case ROOM_E_NOT_MEMBER:
        return "not in this room";
    case ROOM_E_CLOSED:
        return "session closed";
    case ROOM_E_NOT_OPEN:
        return "room not open yet";
    case ROOM_E_NOT_STARTED:
        return "session not started";
    case ROOM_E_TOO_MANY:
        return "too many rooms on this connection";
    case ROOM_E_RATE_LIMITED:
        return "rate limited";
    case ROOM_E_FLOOD:
        return "flooding";
    case ROOM_E_SEQ_OLD:
        return "seq already committed";
    case ROOM_E_SEQ_GAP:
        return "seq gap";
    case ROOM_E_IN_USE:
        return "room in use";
    default:
        return "unknown error";
    }
}

const char *room_err_code(int rc)
{
    switch (rc) {
    case ROOM_E_FORBIDDEN:
    case ROOM_E_NOT_MEMBER:
        return "forbidden";
    case ROOM_E_CLOSED:
        return "closed";
    case ROOM_E_NOT_OPEN:
    case ROOM_E_NOT_STARTED:
        return "not_open";
    case ROOM_E_RATE_LIMITED:
    case ROOM_E_FLOOD:
    case ROOM_E_TOO_MANY:
        return "rate_limited";
    case ROOM_E_IN_USE:
    case ROOM_E_SEQ_OLD:
    case ROOM_E_SEQ_GAP:
        return "conflict";
    case ROOM_E_FULL:
        return "unavailable";
    case -EINVAL:
        return "bad_request";
    default:
        return "internal";
    }
}

const char *room_role_name(enum room_role role)
{
    switch (role) {
    case ROOM_ROLE_COACH:
        return "coach";
    case ROOM_ROLE_CLIENT:
        return "client";
    case ROOM_ROLE_OBSERVER:
        return "observer";
    case ROOM_ROLE_NONE:
    default:
        return NULL;
    }
}

const char *room_end_reason_name(enum room_end_reason reason)
{
    switch (reason) {
    case ROOM_END_COACH:
        return "coach";
    case ROOM_END_TIMER:
        return "timer";
    case ROOM_END_IDLE:
        return "idle";
    case ROOM_END_LIVEKIT:
        return "livekit";
    case ROOM_END_ADMIN:
        return "admin";
    case ROOM_END_NONE:
    default:
        return NULL;
    }
}

void room_cfg_default(struct room_cfg *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->early_join_min = 10;
    cfg->idle_end_sec = 300;
    cfg->warnings_sec[0] = 300;
    cfg->warnings_sec[1] = 60;
    cfg->n_warnings = 2;
    cfg->max_members = 16;
    cfg->max_conns = 64;
}

/* ---- effect lists -------------------------------------------------------- */

void room_fx_reset(struct room_fx_list *fx)
{
    fx->len = 0;
}

bool room__fx_has_space(const struct room_fx_list *fx, size_t n)
{
    return fx->len <= ROOM_FX_MAX && ROOM_FX_MAX - fx->len >= n;
}

struct room_fx *room__fx_push(struct room_fx_list *fx, enum room_fx_kind kind, struct room *r)
{
    struct room_fx *e = &fx->v[fx->len++];
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    e->room = r;
    return e;
}

size_t room_fx_recipients(const struct room_fx *fx, struct room_conn **out, size_t cap)
{
    const struct room *r = fx->room;
    size_t n = 0;
    if (r == NULL || fx->to.kind != ROOM_TO_MEMBERS) {
        return 0;
    }
    for (size_t i = 0; i < r->n_slots; i++) {
        const struct room__slot *s = &r->slots[i];
        if (fx->to.conn_id != 0 && s->c->id == fx->to.conn_id) {
            continue;
        }
        if (fx->to.skip_user && strcmp(r->members[s->member].info.id, fx->user.id) == 0) {
            continue;
        }
        if (n < cap) {
            out[n] = s->c;
        }
        n++;
    }
    return n;
}

/* ---- helpers ---------------------------------------------------------------- */

size_t room__copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = src != NULL ? strlen(src) : 0;
    if (n >= cap) {
        n = cap - 1;
        /* src[n] is the first byte left out: never cut inside a character */
        while (n > 0 && ((unsigned char)src[n] & 0xC0u) == 0x80u) {
            n--;
        }
    }
    if (n > 0) {
        memcpy(dst, src, n);
    }
    dst[n] = '\0';
    return n;
}

size_t room__slot_of(const struct room *r, const struct room_conn *c)
{
    for (size_t i = 0; i < r->n_slots; i++) {
        if (r->slots[i].c == c) {
            return i;
        }
    }
    return ROOM__NOT_FOUND;
}

enum room_role room__role_of(const struct room *r, const char *user_id, bool is_admin)
{
    if (strcmp(user_id, r->participants[ROOM__COACH].id) == 0) {
        return ROOM_ROLE_COACH;
    }
    if (strcmp(user_id, r->participants[ROOM__CLIENT].id) == 0) {
        return ROOM_ROLE_CLIENT;
    }
    return is_admin ? ROOM_ROLE_OBSERVER : ROOM_ROLE_NONE;
}

/* ---- lifecycle ------------------------------------------------------------------- */

static bool id_ok(const char *s, size_t max)
{
    if (s == NULL) {
        return false;
    }
    size_t n = strlen(s);
    return n > 0 && n <= max;
}

static int cmp_desc(const void *a, const void *b)
{
    int x = *(const int *)a;
    int y = *(const int *)b;
    return (x < y) - (x > y);
}

/* Validate cfg and copy it to out with thresholds sorted descending and
 * duplicates removed. */
static int cfg_copy(const struct room_cfg *cfg, struct room_cfg *out)
{
    if (cfg->early_join_min < 0 || cfg->idle_end_sec < 0 || cfg->n_warnings > ROOM_WARNINGS_MAX ||
        cfg->max_members < 2 || cfg->max_conns < cfg->max_members) {
        return -EINVAL;
    }
    *out = *cfg;
    for (size_t i = 0; i < out->n_warnings; i++) {
        if (out->warnings_sec[i] <= 0) {
            return -EINVAL;
        }
    }
    qsort(out->warnings_sec, out->n_warnings, sizeof(out->warnings_sec[0]), cmp_desc);
    size_t n = 0;
    for (size_t i = 0; i < out->n_warnings; i++) {
        if (n == 0 || out->warnings_sec[n - 1] != out->warnings_sec[i]) {
            out->warnings_sec[n++] = out->warnings_sec[i];
        }
    }
    for (size_t i = n; i < ROOM_WARNINGS_MAX; i++) {
        out->warnings_sec[i] = 0;
    }
    out->n_warnings = n;
    return 0;
}

static bool load_ok(const struct room_load *ld)
{
    return id_ok(ld->room_id, ROOM_ID_MAX) && id_ok(ld->appointment_id, ROOM_ID_MAX) &&
           id_ok(ld->coach_id, ROOM_USER_ID_MAX) && id_ok(ld->client_id, ROOM_USER_ID_MAX) &&
           strcmp(ld->coach_id, ld->client_id) != 0 && ld->status >= ROOM_APPT_SCHEDULED &&
           ld->status <= ROOM_APPT_CANCELLED && ld->started_unix_ms >= 0 &&
           ld->ended_unix_ms >= 0 && ld->duration_min <= 7 * 24 * 60;
}

/* Derive the session state from the load. */
static void load_state(struct room *r, const struct room_load *ld, int64_t now_ms)
{
    r->started_unix_ms = ld->started_unix_ms;
    if (ld->started_unix_ms > 0) {
        r->ends_unix_ms = ld->started_unix_ms + (int64_t)r->duration_min * 60000;
    }
    if (ld->status == ROOM_APPT_CANCELLED) {
        r->state = ROOM_STATE_CANCELLED;
    } else if (ld->status == ROOM_APPT_COMPLETED || ld->ended_unix_ms > 0) {
        r->state = ROOM_STATE_ENDED;
        r->ended_unix_ms = ld->ended_unix_ms;
    } else if (ld->started_unix_ms > 0) {
        r->state = ROOM_STATE_RUNNING;
    } else {
        r->state = ROOM_STATE_WAITING;
    }
    r->warnings_sent = ld->warnings_sent;
    if (r->warnings_sent > r->cfg.n_warnings) {
        r->warnings_sent = (unsigned)r->cfg.n_warnings;
    }
    r->idle_since_ms = now_ms;
}

int room_new(const struct room_cfg *cfg, const struct room_load *ld, int64_t now_ms,
             struct room **out)
{
    if (cfg == NULL || ld == NULL || out == NULL || !load_ok(ld)) {
        return -EINVAL;
    }
    struct room_cfg c;
    int rc = cfg_copy(cfg, &c);
    if (rc < 0) {
        return rc;
    }
    struct room *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return -ENOMEM;
    }
    r->members = calloc(c.max_members, sizeof(r->members[0]));
    r->slots = calloc(c.max_conns, sizeof(r->slots[0]));
    if (r->members == NULL || r->slots == NULL) {
        free(r->members);
        free(r->slots);
        free(r);
        return -ENOMEM;
    }
    r->cfg = c;
    room__copy_str(r->id, sizeof(r->id), ld->room_id);
    room__copy_str(r->appointment_id, sizeof(r->appointment_id), ld->appointment_id);
    struct room_member_info *p = r->participants;
    room__copy_str(p[ROOM__COACH].id, sizeof(p[0].id), ld->coach_id);
    room__copy_str(p[ROOM__COACH].display_name, sizeof(p[0].display_name), ld->coach_name);
    p[ROOM__COACH].role = ROOM_ROLE_COACH;
    room__copy_str(p[ROOM__CLIENT].id, sizeof(p[0].id), ld->client_id);
    room__copy_str(p[ROOM__CLIENT].display_name, sizeof(p[0].display_name), ld->client_name);
    p[ROOM__CLIENT].role = ROOM_ROLE_CLIENT;
    r->has_session[ROOM__COACH] = ld->coach_has_session;
    r->has_session[ROOM__CLIENT] = ld->client_has_session;
    r->scheduled_unix_ms = ld->scheduled_unix_ms;
    r->duration_min = ld->duration_min > 0 ? ld->duration_min : 20;
    r->last_seq = ld->last_seq;
    load_state(r, ld, now_ms);
    *out = r;
    return 0;
}

void room__conn_unlink(struct room_conn *c, const struct room *r)
{
    for (size_t i = 0; i < c->n_rooms; i++) {
        if (c->rooms[i] == r) {
            c->rooms[i] = c->rooms[c->n_rooms - 1];
            c->rooms[c->n_rooms - 1] = NULL;
            c->n_rooms--;
            return;
        }
    }
}

void room_free(struct room *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->n_slots; i++) {
        room__conn_unlink(r->slots[i].c, r);
    }
    free(r->members);
    free(r->slots);
    free(r);
}

/* ---- connections -------------------------------------------------------------- */

void room_conn_init(struct room_conn *c, uint64_t id, void *user, int64_t now_ms)
{
    memset(c, 0, sizeof(*c));
    c->id = id;
    c->user = user;
    c->chat.milli = (int64_t)ROOM_CHAT_BURST * 1000;
    c->chat.last_ms = now_ms;
    c->typing.milli = (int64_t)ROOM_TYPING_PER_SEC * 1000;
    c->typing.last_ms = now_ms;
    c->flood_window_start_ms = now_ms;
}

size_t room_conn_room_count(const struct room_conn *c)
{
    return c->n_rooms;
}

struct room *room_conn_room_at(const struct room_conn *c, size_t i)
{
    return i < c->n_rooms ? c->rooms[i] : NULL;
}

/* ---- accessors ----------------------------------------------------------------------- */

const char *room_id(const struct room *r)
{
    return r->id;
}

const char *room_appointment_id(const struct room *r)
{
    return r->appointment_id;
}

enum room_state room_state(const struct room *r)
{
    return r->state;
}

enum room_end_reason room_end_reason(const struct room *r)
{
    return r->end_reason;
}

uint64_t room_last_seq(const struct room *r)
{
    return r->last_seq;
}

unsigned room_warnings_sent(const struct room *r)
{
    return r->warnings_sent;
}

int64_t room_scheduled_unix_ms(const struct room *r)
{
    return r->scheduled_unix_ms;
}

int room_duration_min(const struct room *r)
{
    return r->duration_min;
}

int64_t room_started_unix_ms(const struct room *r)
{
    return r->started_unix_ms;
}

int64_t room_ends_unix_ms(const struct room *r)
{
    return r->ends_unix_ms;
}

int64_t room_ended_unix_ms(const struct room *r)
{
    return r->ended_unix_ms;
}

const struct room_member_info *room_participant(const struct room *r, enum room_role role)
{
    if (role == ROOM_ROLE_COACH) {
        return &r->participants[ROOM__COACH];
    }
    if (role == ROOM_ROLE_CLIENT) {
        return &r->participants[ROOM__CLIENT];
    }
    return NULL;
}

size_t room_member_count(const struct room *r)
{
    return r->n_members;
}

const struct room_member_info *room_member_at(const struct room *r, size_t i)
{
    return i < r->n_members ? &r->members[i].info : NULL;
}

size_t room_conn_count(const struct room *r)
{
    return r->n_slots;
}

enum room_role room_conn_role(const struct room *r, const struct room_conn *c)
{
    size_t i = room__slot_of(r, c);
    if (i == ROOM__NOT_FOUND) {
        return ROOM_ROLE_NONE;
    }
    return r->members[r->slots[i].member].info.role;
}
