/*
 * members.c: who is in a room: join, leave, disconnect, presence, typing,
 * and LiveKit participants arriving.
 *
 * DESIGN
 * Presence is per user, connections are per tab: a member exists while
 * its user has at least one connection in the room. `presence join` goes
 * out when the first connection of a user joins (to everyone else),
 * `presence leave` when the last one goes (to everyone left). The member
 * list stays in the order of first joins. Coach and client connections
 * are counted apart (n_participant_conns): when that count drops to zero
 * in a running session the idle clock starts (clock.c ends the session
 * IDLE_END_SEC later unless a participant comes back).
 */
#include <errno.h>
#include <string.h>

#include "room.h"
#include "room_int.h"

static bool is_participant(enum room_role role)
{
    return role == ROOM_ROLE_COACH || role == ROOM_ROLE_CLIENT;
}

size_t room__member_of(const struct room *r, const char *user_id)
{
    for (size_t i = 0; i < r->n_members; i++) {
        if (strcmp(r->members[i].info.id, user_id) == 0) {
            return i;
        }
    }
    return ROOM__NOT_FOUND;
}

/* Remove member m (no connections left): later members move down one. */
static void member_remove(struct room *r, size_t m)
{
    memmove(&r->members[m], &r->members[m + 1], (r->n_members - m - 1) * sizeof(r->members[0]));
    r->n_members--;
    for (size_t i = 0; i < r->n_slots; i++) {
        if (r->slots[i].member > m) {
            r->slots[i].member--;
        }
    }
}

/* Tell the other nodes that who's first connection here joined, or its
 * last one here left. Needs one free slot. */
static void local_presence(struct room *r, const struct room_member_info *who, bool is_join,
                           struct room_fx_list *fx)
{
    struct room_fx *e = room__fx_push(fx, ROOM_FX_LOCAL_PRESENCE, r);
    e->user = *who;
    e->is_join = is_join;
}

/* Take slot i out of r and unlink both sides. When that was its user's
 * last connection here, copy the member to *gone; when the user is on no
 * other node either, drop the member and return true. */
static bool conn_remove(struct room *r, size_t i, int64_t now_ms, struct room_member_info *gone,
                        bool *last_here)
{
    struct room__slot s = r->slots[i];
    r->slots[i] = r->slots[r->n_slots - 1];
    r->n_slots--;
    room__conn_unlink(s.c, r);
    struct room__member *m = &r->members[s.member];
    m->n_conns--;
    if (is_participant(m->info.role)) {
        r->n_participant_conns--;
        if (r->n_participant_conns == 0) {
            r->idle_since_ms = now_ms;
        }
    }
    *last_here = m->n_conns == 0;
    if (m->n_conns > 0) {
        return false;
    }
    *gone = m->info;
    if (m->remote > 0) {
        return false;
    }
    member_remove(r, s.member);
    return true;
}

void room_conn_fini(struct room_conn *c, int64_t now_ms)
{
    if (c == NULL) {
        return;
    }
    while (c->n_rooms > 0) {
        struct room *r = c->rooms[c->n_rooms - 1];
        size_t i = room__slot_of(r, c);
        struct room_member_info gone;
        bool last_here;
        if (i == ROOM__NOT_FOUND) {
            room__conn_unlink(c, r); /* cannot happen: both sides move together */
            continue;
        }
        (void)conn_remove(r, i, now_ms, &gone, &last_here);
    }
}

/* The refusals of a join, in the documented order, before any change. */
static int join_check(const struct room *r, const struct room_conn *c,
                      const struct room_join_in *in, int64_t now_ms, enum room_role *role)
{
    *role = room__role_of(r, in->user_id, in->is_admin);
    if (*role == ROOM_ROLE_NONE) {
        return ROOM_E_FORBIDDEN;
    }
    int rc = room__check_open(r, now_ms);
    if (rc < 0) {
        return rc;
    }
    size_t i = room__slot_of(r, c);
    if (i != ROOM__NOT_FOUND) {
        /* already in: fine for the same user, a caller bug otherwise */
        return strcmp(r->members[r->slots[i].member].info.id, in->user_id) == 0 ? 1 : -EINVAL;
    }
    if (c->n_rooms >= ROOM_CONN_MAX_ROOMS) {
        return ROOM_E_TOO_MANY;
    }
    if (r->n_slots >= r->cfg.max_conns || (room__member_of(r, in->user_id) == ROOM__NOT_FOUND &&
                                           r->n_members >= r->cfg.max_members)) {
        return ROOM_E_FULL;
    }
    return 0;
}

int room_on_join(struct room *r, struct room_conn *c, const struct room_join_in *in, int64_t now_ms,
                 struct room_fx_list *fx)
{
    if (r == NULL || c == NULL || in == NULL || fx == NULL || c->id == 0 || in->user_id == NULL ||
        in->user_id[0] == '\0' || strlen(in->user_id) > ROOM_USER_ID_MAX) {
        return -EINVAL;
    }
    enum room_role role;
    int rc = join_check(r, c, in, now_ms, &role);
    if (rc != 0) {
        return rc > 0 ? 0 : rc;
    }
    if (!room__fx_has_space(fx, 3)) {
        return ROOM_E_NOSPACE;
    }
    size_t m = room__member_of(r, in->user_id);
    bool first = m == ROOM__NOT_FOUND;
    if (first) {
        m = r->n_members++;
        struct room__member *nm = &r->members[m];
        memset(nm, 0, sizeof(*nm));
        room__copy_str(nm->info.id, sizeof(nm->info.id), in->user_id);
        room__copy_str(nm->info.display_name, sizeof(nm->info.display_name), in->display_name);
        nm->info.role = role;
    }
    if (is_participant(role)) {
        room__participant_arrives(r, role, &r->members[m].info, now_ms, fx);
        r->n_participant_conns++;
    }
    bool first_here = r->members[m].n_conns++ == 0;
    r->slots[r->n_slots++] = (struct room__slot){.c = c, .member = m};
    c->rooms[c->n_rooms++] = r;
    if (first) {
        struct room_fx *e = room__fx_push(fx, ROOM_FX_PRESENCE, r);
        e->to = (struct room_target){.kind = ROOM_TO_MEMBERS, .conn_id = c->id};
        e->user = r->members[m].info;
        e->is_join = true;
    }
    if (first_here) {
        local_presence(r, &r->members[m].info, true, fx);
    }
    return 0;
}

int room_on_leave(struct room *r, struct room_conn *c, int64_t now_ms, struct room_fx_list *fx)
{
    if (r == NULL || c == NULL || fx == NULL) {
        return -EINVAL;
    }
    size_t i = room__slot_of(r, c);
    if (i == ROOM__NOT_FOUND) {
        return ROOM_E_NOT_MEMBER;
    }
    if (!room__fx_has_space(fx, 2)) {
        return ROOM_E_NOSPACE;
    }
    struct room_member_info gone;
    bool last_here = false;
    if (conn_remove(r, i, now_ms, &gone, &last_here)) {
        struct room_fx *e = room__fx_push(fx, ROOM_FX_PRESENCE, r);
        e->to = (struct room_target){.kind = ROOM_TO_MEMBERS};
        e->user = gone;
        e->is_join = false;
    }
    if (last_here) {
        local_presence(r, &gone, false, fx);
    }
    return 0;
}

int room_on_disconnect(struct room_conn *c, int64_t now_ms, struct room_fx_list *fx)
{
    if (c == NULL || fx == NULL) {
        return -EINVAL;
    }
    if (!room__fx_has_space(fx, 2 * c->n_rooms)) {
        return ROOM_E_NOSPACE;
    }
    while (c->n_rooms > 0) {
        struct room *r = c->rooms[c->n_rooms - 1];
        if (room_on_leave(r, c, now_ms, fx) < 0) {
            room__conn_unlink(c, r); /* cannot happen: both sides move together */
        }
    }
    return 0;
}

int room_on_typing(struct room *r, struct room_conn *c, bool state, int64_t now_ms,
                   struct room_fx_list *fx)
{
    if (r == NULL || c == NULL || fx == NULL) {
        return -EINVAL;
    }
    size_t i = room__slot_of(r, c);
    if (i == ROOM__NOT_FOUND) {
        return ROOM_E_NOT_MEMBER;
    }
    if (!room__fx_has_space(fx, 1)) {
        return ROOM_E_NOSPACE;
    }
    if (r->state == ROOM_STATE_ENDED) {
        return 0;
    }
    if (!room__bucket_take(&c->typing, now_ms, ROOM_TYPING_PER_SEC, ROOM_TYPING_PER_SEC)) {
        return 0;
    }
    struct room_fx *e = room__fx_push(fx, ROOM_FX_TYPING, r);
    e->user = r->members[r->slots[i].member].info;
    e->to = (struct room_target){.kind = ROOM_TO_MEMBERS, .skip_user = true};
    e->state = state;
    return 0;
}

int room_on_media_join(struct room *r, const char *user_id, int64_t now_ms, struct room_fx_list *fx)
{
    if (r == NULL || user_id == NULL || fx == NULL) {
        return -EINVAL;
    }
    enum room_role role = room__role_of(r, user_id, false);
    if (role == ROOM_ROLE_NONE) {
        return ROOM_E_FORBIDDEN;
    }
    int rc = room__check_open(r, now_ms);
    if (rc < 0) {
        return rc;
    }
    if (r->state == ROOM_STATE_ENDED) {
        return ROOM_E_CLOSED;
    }
    if (!room__fx_has_space(fx, 1)) {
        return ROOM_E_NOSPACE;
    }
    const struct room_member_info *who = room_participant(r, role);
    size_t m = room__member_of(r, user_id);
    if (m != ROOM__NOT_FOUND) {
        who = &r->members[m].info; /* the name the user joined with */
    }
    room__participant_arrives(r, role, who, now_ms, fx);
    return 0;
}

/* ---- other gateway nodes ------------------------------------------------------------ */

bool room__has_participants(const struct room *r)
{
    if (r->n_participant_conns > 0) {
        return true;
    }
    for (size_t i = 0; i < r->n_members; i++) {
        if (r->members[i].remote > 0 && is_participant(r->members[i].info.role)) {
            return true;
        }
    }
    return false;
}

static const struct room_remote_member *remote_find(const struct room_remote_member *v, size_t n,
                                                    const char *user_id)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].user_id, user_id) == 0) {
            return &v[i];
        }
    }
    return NULL;
}

static void presence_fx(struct room *r, const struct room_member_info *who, bool is_join,
                        struct room_fx_list *fx)
{
    struct room_fx *e = room__fx_push(fx, ROOM_FX_PRESENCE, r);
    e->to = (struct room_target){.kind = ROOM_TO_MEMBERS};
    e->user = *who;
    e->is_join = is_join;
}

/* Members no longer connected anywhere leave (and are announced). */
static void remote_drop(struct room *r, const struct room_remote_member *v, size_t n,
                        struct room_fx_list *fx)
{
    size_t m = 0;
    while (m < r->n_members) {
        struct room__member *mb = &r->members[m];
        const struct room_remote_member *rm = remote_find(v, n, mb->info.id);
        mb->remote = rm != NULL ? rm->nodes : 0;
        if (mb->n_conns == 0 && mb->remote == 0) {
            struct room_member_info gone = mb->info;
            member_remove(r, m);
            presence_fx(r, &gone, false, fx);
            continue;
        }
        m++;
    }
}

/* Users connected elsewhere who are not members yet join (announced). */
static void remote_add(struct room *r, const struct room_remote_member *v, size_t n,
                       struct room_fx_list *fx)
{
    for (size_t i = 0; i < n; i++) {
        enum room_role role = room__role_of(r, v[i].user_id, v[i].is_admin);
        if (role == ROOM_ROLE_NONE || v[i].nodes == 0 ||
            room__member_of(r, v[i].user_id) != ROOM__NOT_FOUND ||
            r->n_members >= r->cfg.max_members) {
            continue;
        }
        struct room__member *nm = &r->members[r->n_members++];
        memset(nm, 0, sizeof(*nm));
        room__copy_str(nm->info.id, sizeof(nm->info.id), v[i].user_id);
        room__copy_str(nm->info.display_name, sizeof(nm->info.display_name), v[i].display_name);
        nm->info.role = role;
        nm->remote = v[i].nodes;
        presence_fx(r, &nm->info, true, fx);
    }
}

int room_on_remote_presence(struct room *r, const struct room_remote_member *v, size_t n,
                            int64_t now_ms, struct room_fx_list *fx)
{
    if (r == NULL || fx == NULL || (v == NULL && n > 0)) {
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i].user_id == NULL || v[i].user_id[0] == '\0' ||
            strlen(v[i].user_id) > ROOM_USER_ID_MAX) {
            return -EINVAL;
        }
    }
    size_t joins = n < r->cfg.max_members ? n : r->cfg.max_members;
    if (!room__fx_has_space(fx, joins + r->n_members)) {
        return ROOM_E_NOSPACE;
    }
    bool had = room__has_participants(r);
    remote_drop(r, v, n, fx);
    remote_add(r, v, n, fx);
    if (had && !room__has_participants(r)) {
        r->idle_since_ms = now_ms;
    }
    return 0;
}

int room_on_remote_typing(struct room *r, const char *user_id, bool state, struct room_fx_list *fx)
{
    if (r == NULL || user_id == NULL || fx == NULL) {
        return -EINVAL;
    }
    if (!room__fx_has_space(fx, 1)) {
        return ROOM_E_NOSPACE;
    }
    size_t m = room__member_of(r, user_id);
    if (m == ROOM__NOT_FOUND || r->state == ROOM_STATE_ENDED) {
        return 0;
    }
    struct room_fx *e = room__fx_push(fx, ROOM_FX_TYPING, r);
    e->user = r->members[m].info;
    e->to = (struct room_target){.kind = ROOM_TO_MEMBERS, .skip_user = true};
    e->state = state;
    return 0;
}

bool room_member_here(const struct room *r, const char *user_id)
{
    size_t m = r != NULL && user_id != NULL ? room__member_of(r, user_id) : ROOM__NOT_FOUND;
    return m != ROOM__NOT_FOUND && r->members[m].n_conns > 0;
}
