/*
 * wsroom.c: rooms in memory: loading them (on join, and the running ones at
 * start-up), joining, holding commands behind a loading room, and the
 * execution of the rooms core's effects. Chat, typing, leave and history
 * are in wscmd.c; the clock, ending and ratings in life.c.
 *
 * DESIGN: rooms are loaded on first join (concurrent joins wait on the
 * same load) and kept for the life of the process. A join runs as a chain
 * of store requests: room load, the participant's Session row when the
 * core asks for it, then the history page; `joined` goes out when the
 * history arrives. Until then the connection is "joining" in that room and
 * receives no room frames: the store runs requests in order, so every
 * message committed before the history read is in the history and every
 * later one is delivered after `joined`. Store requests carry ids and
 * copies, never pointers to connections.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "msgs.h"
#include "wsroom_int.h"

#define RECOVERY_LIMIT 1000
#define JOIN_HISTORY   50

/* ---- helpers -------------------------------------------------------------------------- */

struct gw_conn_room *gw__conn_slot(struct gw_conn *c, const struct gw_room *g)
{
    for (size_t i = 0; i < ROOM_CONN_MAX_ROOMS; i++) {
        if (c->rooms[i].room == g) {
            return &c->rooms[i];
        }
    }
    return NULL;
}

struct gw_conn_room *gw__conn_slot_core(struct gw_conn *c, const struct room *core)
{
    for (size_t i = 0; i < ROOM_CONN_MAX_ROOMS; i++) {
        if (c->rooms[i].room != NULL && c->rooms[i].room->core == core) {
            return &c->rooms[i];
        }
    }
    return NULL;
}

void gw__conn_slot_drop(struct gw_conn *c, const struct gw_room *g)
{
    struct gw_conn_room *s = gw__conn_slot(c, g);
    if (s != NULL) {
        gw__release_held(c, s, false);
        s->room = NULL;
        s->joining = false;
    }
}

const char *gw__id_of(const struct gw_join *j)
{
    return j->has_id ? j->id : NULL;
}

void gw__reply(struct gw_conn *c, json_t *o, const char *id)
{
    if (o == NULL) {
        gw_conn_close(c, 1011, "internal error");
        return;
    }
    if (id != NULL) {
        json_object_set_new(o, "id", json_string(id));
    }
    gw_conn_send_json(c, o);
    json_decref(o);
}

const char *gw__store_error_code(int rc)
{
    return rc == STORE_E_UNAVAILABLE || rc == STORE_E_FULL || rc == STORE_E_STOPPED ? "unavailable"
                                                                                    : "internal";
}

struct gw_wctx *gw__wctx_new(struct gw_server *srv, struct gw_room *g, const struct gw_join *j)
{
    struct gw_wctx *w = calloc(1, sizeof(*w));
    if (w != NULL) {
        w->srv = srv;
        w->room = g;
        w->join = *j;
        w->join.next = NULL;
    }
    return w;
}

/* Submit req with w as its context; on failure both are freed and the
 * connection (if any) hears `unavailable`. */
int gw__submit(struct gw_conn *c, struct store_req *req, struct gw_wctx *w)
{
    if (req == NULL || w == NULL) {
        store_req_free(req);
        free(w);
        if (c != NULL) {
            gw_conn_error(c, "internal", "out of memory", NULL, NULL, NULL, 0);
        }
        return -1;
    }
    req->arg = w;
    int rc = store_submit(w->srv->store, req, gw_now_ms());
    if (rc != 0) {
        if (c != NULL) {
            gw_conn_error(c, "unavailable", "server busy; retry", gw__id_of(&w->join),
                          w->join.room_id, w->client_msg_id, 0);
        }
        store_req_free(req);
        free(w);
    }
    return rc;
}

/* ---- effects ---------------------------------------------------------------------------- */

int gw__room_send(struct gw_conn *c, struct gw_conn_room *s, struct gw_frame *f, bool hold)
{
    if (s == NULL || !s->joining) {
        return gw_conn_send(c, f) == 0;
    }
    if (!hold || s->n_held == sizeof(s->held) / sizeof(s->held[0])) {
        return 0;
    }
    gw_frame_ref(f);
    s->held[s->n_held++] = f;
    return 1;
}

void gw__release_held(struct gw_conn *c, struct gw_conn_room *s, bool send)
{
    for (size_t i = 0; i < s->n_held; i++) {
        if (send) {
            gw_conn_send(c, s->held[i]);
        }
        gw_frame_unref(s->held[i]);
        s->held[i] = NULL;
    }
    s->n_held = 0;
}

size_t gw__send_to_targets(struct gw_server *srv, const struct room_fx *fx, struct gw_frame *f,
                           bool hold)
{
    size_t sent = 0;
    if (fx->to.kind == ROOM_TO_CONN) {
        struct gw_conn *c = gw_conn_find(srv, fx->to.conn_id);
        if (c != NULL && gw_conn_send(c, f) == 0) {
            sent++;
        }
        return sent;
    }
    struct room_conn *rcs[256];
    size_t n = room_fx_recipients(fx, rcs, 256);
    for (size_t i = 0; i < n && i < 256; i++) {
        struct gw_conn *c = rcs[i]->user;
        sent += (size_t)gw__room_send(c, gw__conn_slot_core(c, fx->room), f, hold);
    }
    return sent;
}

void gw__send_fx_json(struct gw_server *srv, const struct room_fx *fx, json_t *o, bool hold)
{
    if (o == NULL) {
        return;
    }
    struct gw_frame *f = gw_frame_from_json(o);
    json_decref(o);
    if (f != NULL) {
        gw__send_to_targets(srv, fx, f, hold);
        gw_frame_unref(f);
    }
}

static void apply_presence(struct gw_server *srv, const struct room_fx *fx)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:o}", "type", "presence", "room",
                          room_id(fx->room), "event", fx->is_join ? "join" : "leave", "member",
                          gw_msg_member(&fx->user), "members", gw_msg_members(fx->room));
    gw__send_fx_json(srv, fx, o, false);
}

static void apply_typing(struct gw_server *srv, const struct room_fx *fx)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:b}", "type", "typing", "room", room_id(fx->room),
                          "userId", fx->user.id, "state", fx->state);
    gw__send_fx_json(srv, fx, o, false);
}

static void session_done(struct store_req *req);

/* SESSION_START / SESSION_JOIN: the participant's Session row. When join
 * is set, the join continues (history) once the row exists. */
static void apply_session(struct gw_server *srv, struct gw_room *g, const struct room_fx *fx,
                          const struct gw_join *join)
{
    struct gw_join none = {0};
    struct gw_wctx *w = gw__wctx_new(srv, g, join != NULL ? join : &none);
    struct store_req *req = store_req_new(STORE_OP_SESSION_JOIN, session_done, NULL);
    if (req != NULL) {
        struct store_session_join *sj = &req->u.join;
        snprintf(sj->appointment_id, sizeof(sj->appointment_id), "%s", g->info.appointment_id);
        snprintf(sj->room_id, sizeof(sj->room_id), "%s", g->room_id);
        snprintf(sj->user_id, sizeof(sj->user_id), "%s", fx->user.id);
        sj->at_unix_ms = fx->kind == ROOM_FX_SESSION_START ? fx->started_unix_ms : fx->at_unix_ms;
        sj->duration_minutes = fx->duration_min;
    }
    if (gw__submit(join != NULL ? gw_conn_find(srv, join->conn_id) : NULL, req, w) != 0) {
        /* refused (the store is full): the next join asks for the row again */
        room_on_session_failed(g->core, fx->user.role);
    }
}

/* Execute fx in order. join: the join these effects belong to, if any. */
void gw__apply_fx(struct gw_server *srv, struct gw_room *g, const struct room_fx_list *fx,
                  const struct gw_join *join)
{
    for (size_t i = 0; i < fx->len; i++) {
        const struct room_fx *e = &fx->v[i];
        struct gw_room *rg =
            g != NULL ? g : gw_map_get(srv->rooms, room_id(e->room), strlen(room_id(e->room)));
        switch (e->kind) {
        case ROOM_FX_SESSION_START:
            apply_session(srv, rg, e, join);
            gw_node_kick(srv); /* the clock needs its lease */
            break;
        case ROOM_FX_SESSION_JOIN:
            apply_session(srv, rg, e, join);
            break;
        case ROOM_FX_LOCAL_PRESENCE:
            gw_node_local_presence(srv, rg, e);
            break;
        case ROOM_FX_PRESENCE:
            apply_presence(srv, e);
            break;
        case ROOM_FX_TYPING:
            apply_typing(srv, e);
            break;
        case ROOM_FX_PERSIST_CHAT:
        case ROOM_FX_ACK:
        case ROOM_FX_DELIVER:
            /* handled where the chat's data is at hand (cmd_chat, chat_done) */
            break;
        case ROOM_FX_WARNING:
            gw_life_warning(srv, rg, e);
            break;
        case ROOM_FX_END:
            gw_life_end(srv, rg, e);
            break;
        }
    }
    gw_life_rearm(g);
}

/* ---- join ----------------------------------------------------------------------------------- */

static void history_for_join(struct gw_server *srv, struct gw_room *g, const struct gw_join *j);

/* Undo a join that could not complete: leave the core (presence leave to
 * the others if they saw the join) and free the connection's slot. */
static void abort_join(struct gw_conn *c, struct gw_room *g)
{
    struct room_fx_list fx;
    room_fx_reset(&fx);
    if (room_on_leave(g->core, &c->rc, gw_unix_ms(), &fx) == 0) {
        gw__apply_fx(c->srv, g, &fx, NULL);
    }
    gw__conn_slot_drop(c, g);
}

static bool has_session_fx(const struct room_fx_list *fx)
{
    for (size_t i = 0; i < fx->len; i++) {
        if (fx->v[i].kind == ROOM_FX_SESSION_START || fx->v[i].kind == ROOM_FX_SESSION_JOIN) {
            return true;
        }
    }
    return false;
}

static bool take_slot(struct gw_conn *c, struct gw_room *g)
{
    struct gw_conn_room *s = gw__conn_slot(c, g);
    if (s == NULL) {
        s = gw__conn_slot(c, NULL);
    }
    if (s == NULL) {
        return false;
    }
    s->room = g;
    s->joining = true;
    s->floor_seq = 0;
    return true;
}

static void do_join(struct gw_conn *c, struct gw_room *g, const struct gw_join *j)
{
    struct room_fx_list fx;
    room_fx_reset(&fx);
    struct room_join_in in = {
        .user_id = c->user.id, .display_name = c->user.display_name, .is_admin = c->is_admin};
    int rc = room_on_join(g->core, &c->rc, &in, gw_unix_ms(), &fx);
    if (rc != 0 || !take_slot(c, g)) {
        gw_conn_error(c, rc != 0 ? room_err_code(rc) : "rate_limited",
                      rc != 0 ? room_strerror(rc) : "too many rooms", gw__id_of(j), g->room_id,
                      NULL, 0);
        return;
    }
    bool wait_session = has_session_fx(&fx);
    gw__apply_fx(c->srv, g, &fx, j);
    if (wait_session && !room_has_session(g->core, room_conn_role(g->core, &c->rc))) {
        /* the Session row was refused at once (c heard `unavailable`) */
        abort_join(c, g);
        return;
    }
    if (room_state(g->core) == ROOM_STATE_RUNNING && !gw_node_clock_mine(g)) {
        gw_node_kick(c->srv); /* members here: this node may take the clock at once */
    }
    if (!wait_session) {
        history_for_join(c->srv, g, j);
    }
}

static void session_done(struct store_req *req)
{
    struct gw_wctx *w = req->arg;
    struct gw_room *g = w->room;
    if (req->rc == 0) {
        const struct room_member_info *coach = room_participant(g->core, ROOM_ROLE_COACH);
        char *dst = coach != NULL && strcmp(coach->id, req->u.join.user_id) == 0
                        ? g->info.coach_session_id
                        : g->info.client_session_id;
        snprintf(dst, sizeof(g->info.coach_session_id), "%s", req->u.join.session_id);
        /* Another node may have started the session a moment earlier: its
         * start (the earliest) is the room's. */
        struct room_sync s = {.started_unix_ms = req->u.join.started_unix_ms};
        struct room_fx_list fx;
        room_fx_reset(&fx);
        if (s.started_unix_ms > 0 && room_on_sync(g->core, &s, gw_unix_ms(), &fx) == 0) {
            gw__apply_fx(w->srv, g, &fx, NULL);
        }
    } else {
        gw_log(GW_LOG_WARN, "room.session_row_failed", "room=%s rc=%d", g->room_id, req->rc);
        const struct room_member_info *coach = room_participant(g->core, ROOM_ROLE_COACH);
        bool is_coach = coach != NULL && strcmp(coach->id, req->u.join.user_id) == 0;
        /* the participant's next join asks for the row again */
        room_on_session_failed(g->core, is_coach ? ROOM_ROLE_COACH : ROOM_ROLE_CLIENT);
    }
    if (w->join.conn_id != 0) {
        struct gw_conn *c = gw_conn_find(w->srv, w->join.conn_id);
        if (c != NULL && req->rc != 0) {
            abort_join(c, g);
            gw_conn_error(c, gw__store_error_code(req->rc), "cannot start the session; retry",
                          gw__id_of(&w->join), g->room_id, NULL, 0);
        } else if (c != NULL) {
            history_for_join(w->srv, g, &w->join);
        }
    }
    store_req_free(req);
    free(w);
}

static json_t *appointment_json(const struct gw_room *g)
{
    const struct store_room *i = &g->info;
    return json_pack("{s:s, s:o, s:i, s:{s:s, s:s}, s:{s:s, s:s}}", "id", i->appointment_id,
                     "scheduledFor", gw_msg_time(i->scheduled_unix_ms), "durationMin",
                     i->duration_min, "coach", "id", i->coach_id, "displayName", i->coach_name,
                     "client", "id", i->client_id, "displayName", i->client_name);
}

static json_t *session_json(const struct gw_room *g, enum room_role role)
{
    const char *sid = role == ROOM_ROLE_COACH    ? g->info.coach_session_id
                      : role == ROOM_ROLE_CLIENT ? g->info.client_session_id
                                                 : "";
    return json_pack("{s:o, s:s, s:o, s:o, s:o}", "id",
                     sid[0] != '\0' ? json_string(sid) : json_null(), "status",
                     gw_msg_session_status(g->core), "startedAt",
                     gw_msg_time(room_started_unix_ms(g->core)), "endsAt",
                     gw_msg_time(room_ends_unix_ms(g->core)), "endedAt",
                     gw_msg_time(room_ended_unix_ms(g->core)));
}

static void send_joined(struct gw_conn *c, struct gw_room *g, const struct store_history *h,
                        const struct gw_join *j)
{
    /* Messages another node committed that this room has not delivered
     * yet are left out: its catch-up delivers them to this connection too. */
    size_t n = h->n_msgs;
    while (n > 0 && (uint64_t)h->msgs[n - 1].seq > room_last_seq(g->core)) {
        n--;
    }
    if (n < h->n_msgs) {
        gw_room_catch_up(g);
    }
    /* What this connection has now (its `since`, then the history): a
     * catch-up delivers it nothing at or below that. */
    struct gw_conn_room *s = gw__conn_slot(c, g);
    if (s != NULL) {
        s->floor_seq = j->has_since && j->since > 0 ? (uint64_t)j->since : 0;
        if (n > 0 && (uint64_t)h->msgs[n - 1].seq > s->floor_seq) {
            s->floor_seq = (uint64_t)h->msgs[n - 1].seq;
        }
    }
    json_t *o =
        json_pack("{s:s, s:s, s:o, s:o, s:o, s:I, s:o, s:b}", "type", "joined", "room", g->room_id,
                  "appointment", appointment_json(g), "session",
                  session_json(g, room_conn_role(g->core, &c->rc)), "members",
                  gw_msg_members(g->core), "lastSeq", (json_int_t)room_last_seq(g->core), "history",
                  gw_msg_message_list(h->msgs, n), "truncated", h->has_more);
    gw__reply(c, o, gw__id_of(j));
    /* Who has video right now (LiveKit webhooks): as the `media` events
     * the other members got. */
    for (int who = 0; who < 2; who++) {
        if (g->media[who]) {
            json_t *m = json_pack("{s:s, s:s, s:s, s:s}", "type", "media", "room", g->room_id,
                                  "userId", who == 0 ? g->info.coach_id : g->info.client_id,
                                  "state", "joined");
            gw__reply(c, m, NULL);
        }
    }
}

static void history_join_done(struct store_req *req)
{
    struct gw_wctx *w = req->arg;
    struct gw_conn *c = gw_conn_find(w->srv, w->join.conn_id);
    struct gw_conn_room *s = c != NULL ? gw__conn_slot(c, w->room) : NULL;
    if (s == NULL) {
        /* the connection left or closed meanwhile */
    } else if (req->rc != 0) {
        abort_join(c, w->room);
        gw_conn_error(c, gw__store_error_code(req->rc), "cannot load the room's history; retry",
                      gw__id_of(&w->join), w->room->room_id, NULL, 0);
    } else {
        send_joined(c, w->room, &req->u.history, &w->join);
        s->joining = false;
        gw__release_held(c, s, true);
    }
    store_req_free(req);
    free(w);
}

static void history_for_join(struct gw_server *srv, struct gw_room *g, const struct gw_join *j)
{
    struct gw_wctx *w = gw__wctx_new(srv, g, j);
    struct store_req *req = store_req_new(STORE_OP_HISTORY, history_join_done, NULL);
    if (req != NULL) {
        struct store_history *h = &req->u.history;
        snprintf(h->appointment_id, sizeof(h->appointment_id), "%s", g->info.appointment_id);
        snprintf(h->coach_id, sizeof(h->coach_id), "%s", g->info.coach_id);
        h->after_seq = j->has_since ? j->since : -1;
        h->before_seq = INT64_MAX;
        h->limit = j->has_since ? RECOVERY_LIMIT : JOIN_HISTORY;
    }
    struct gw_conn *c = gw_conn_find(srv, j->conn_id);
    if (gw__submit(c, req, w) != 0 && c != NULL) {
        abort_join(c, g);
    }
}

/* ---- commands behind a loading room ------------------------------------------------------ */

#define DEFERRED_MAX 64

static bool join_pending(const struct gw_room *g, uint64_t conn_id)
{
    for (const struct gw_join *j = g->pending; j != NULL; j = j->next) {
        if (j->conn_id == conn_id) {
            return true;
        }
    }
    return false;
}

/* Keep cmd for replay when c's join of g is waiting for the load. */
static int defer(struct gw_conn *c, struct gw_room *g, const struct gw_cmd *cmd)
{
    if (!join_pending(g, c->id) || g->n_deferred >= DEFERRED_MAX) {
        return -1;
    }
    struct gw_deferred *d = calloc(1, sizeof(*d));
    if (d == NULL || gw_cmd_copy(&d->cmd, cmd) != 0) {
        free(d);
        return -1;
    }
    d->conn_id = c->id;
    struct gw_deferred **tail = &g->deferred;
    while (*tail != NULL) {
        tail = &(*tail)->next;
    }
    *tail = d;
    g->n_deferred++;
    return 0;
}

/* Replay (room loaded: code NULL) or refuse (load failed) deferred commands. */
static void flush_deferred(struct gw_server *srv, struct gw_deferred *list, const char *code,
                           const char *msg)
{
    while (list != NULL) {
        struct gw_deferred *next = list->next;
        struct gw_conn *c = srv != NULL ? gw_conn_find(srv, list->conn_id) : NULL;
        if (c != NULL && c->state == GW_CONN_READY) {
            if (code == NULL) {
                gw_room_cmd(c, &list->cmd);
            } else {
                gw_conn_error(c, code, msg, list->cmd.has_id ? list->cmd.id : NULL, list->cmd.room,
                              list->cmd.client_msg_id, 0);
            }
        }
        gw_cmd_fini(&list->cmd);
        free(list);
        list = next;
    }
}

/* ---- room load ------------------------------------------------------------------------------ */

static enum room_appt_status appt_status(const char *s)
{
    if (strcmp(s, "active") == 0) {
        return ROOM_APPT_ACTIVE;
    }
    if (strcmp(s, "completed") == 0) {
        return ROOM_APPT_COMPLETED;
    }
    if (strcmp(s, "cancelled") == 0) {
        return ROOM_APPT_CANCELLED;
    }
    return ROOM_APPT_SCHEDULED;
}

static int make_core(struct gw_server *srv, struct gw_room *g)
{
    const struct store_room *i = &g->info;
    struct room_load ld = {
        .room_id = g->room_id,
        .appointment_id = i->appointment_id,
        .coach_id = i->coach_id,
        .coach_name = i->coach_name,
        .client_id = i->client_id,
        .client_name = i->client_name,
        .scheduled_unix_ms = i->scheduled_unix_ms,
        .duration_min = i->duration_min,
        .status = appt_status(i->status),
        .started_unix_ms = i->started_unix_ms,
        .ended_unix_ms = i->ended_unix_ms,
        .coach_has_session = i->coach_session_id[0] != '\0',
        .client_has_session = i->client_session_id[0] != '\0',
        .last_seq = i->last_seq > 0 ? (uint64_t)i->last_seq : 0,
        .warnings_sent = i->warnings_sent > 0 ? (unsigned)i->warnings_sent : 0,
    };
    return room_new(&srv->room_cfg, &ld, gw_unix_ms(), &g->core);
}

static void fail_pending(struct gw_server *srv, struct gw_join *list, const char *code,
                         const char *msg)
{
    while (list != NULL) {
        struct gw_join *next = list->next;
        struct gw_conn *c = gw_conn_find(srv, list->conn_id);
        if (c != NULL) {
            gw_conn_error(c, code, msg, gw__id_of(list), list->room_id, NULL, 0);
        }
        free(list);
        list = next;
    }
}

static void run_joins(struct gw_server *srv, struct gw_room *g, struct gw_join *pending,
                      struct gw_deferred *deferred)
{
    while (pending != NULL) {
        struct gw_join *next = pending->next;
        struct gw_conn *c = gw_conn_find(srv, pending->conn_id);
        if (c != NULL && c->state == GW_CONN_READY) {
            do_join(c, g, pending);
        }
        free(pending);
        pending = next;
    }
    flush_deferred(srv, deferred, NULL, NULL);
}

/* The joins (and their commands) that waited for the load and, with
 * other nodes alive, for the room's presence on them. */
static void run_pending(struct gw_room *g)
{
    struct gw_join *pending = g->pending;
    struct gw_deferred *deferred = g->deferred;
    g->pending = NULL;
    g->deferred = NULL;
    g->n_deferred = 0;
    g->loading_presence = false;
    run_joins(g->srv, g, pending, deferred);
}

static void room_load_done(struct store_req *req)
{
    struct gw_wctx *w = req->arg;
    struct gw_server *srv = w->srv;
    struct gw_room *g = w->room;
    struct gw_join *pending = g->pending;
    struct gw_deferred *deferred = g->deferred;
    g->pending = NULL;
    g->deferred = NULL;
    g->n_deferred = 0;
    int rc = req->rc;
    if (rc == 0) {
        g->info = req->u.room;
        g->media[0] = g->info.coach_media != 0;
        g->media[1] = g->info.client_media != 0;
        rc = make_core(srv, g);
    }
    if (rc != 0) {
        gw_map_del(srv->rooms, g->room_id, strlen(g->room_id));
        free(g);
        const char *code = rc == STORE_E_NOTFOUND ? "not_found" : gw__store_error_code(rc);
        const char *msg = rc == STORE_E_NOTFOUND ? "no such room" : "cannot load the room; retry";
        fail_pending(srv, pending, code, msg);
        flush_deferred(srv, deferred, code, msg);
    } else {
        gw_life_rearm(g);
        gw_log(GW_LOG_INFO, "room.loaded", "room=%s appointment=%s last_seq=%lld", g->room_id,
               g->info.appointment_id, (long long)g->info.last_seq);
        if (g->srv->node.peers > 0) {
            /* Members on other nodes belong in the first `joined`. */
            g->pending = pending;
            g->deferred = deferred;
            g->loading_presence = true;
            if (gw_node_read_presence_then(g, run_pending) != 0) {
                run_pending(g);
            }
        } else {
            run_joins(srv, g, pending, deferred);
        }
        if (room_state(g->core) == ROOM_STATE_RUNNING) {
            gw_node_kick(srv);
        }
    }
    store_req_free(req);
    free(w);
}

static struct gw_room *start_load(struct gw_server *srv, const char *room_id)
{
    struct gw_room *g = calloc(1, sizeof(*g));
    struct gw_join none = {0};
    struct gw_wctx *w = g != NULL ? gw__wctx_new(srv, g, &none) : NULL;
    struct store_req *req = store_req_new(STORE_OP_ROOM_LOAD, room_load_done, NULL);
    if (g == NULL || w == NULL || req == NULL) {
        free(g);
        free(w);
        store_req_free(req);
        return NULL;
    }
    snprintf(g->room_id, sizeof(g->room_id), "%s", room_id);
    g->srv = srv;
    g->timer_at_unix_ms = ROOM_NO_DEADLINE;
    snprintf(req->u.room.room_id, sizeof(req->u.room.room_id), "%s", room_id);
    req->arg = w;
    if (gw_map_put(srv->rooms, g->room_id, strlen(g->room_id), g) != 0 ||
        store_submit(srv->store, req, gw_now_ms()) != 0) {
        gw_map_del(srv->rooms, g->room_id, strlen(g->room_id));
        free(g);
        free(w);
        store_req_free(req);
        return NULL;
    }
    return g;
}

static void live_rooms_done(struct store_req *req)
{
    struct gw_server *srv = req->arg;
    const struct store_live_rooms *lr = &req->u.live_rooms;
    size_t loaded = 0;
    for (size_t i = 0; req->rc == 0 && i < lr->n_rooms; i++) {
        const char *id = lr->room_ids[i];
        if (gw_map_get(srv->rooms, id, strlen(id)) == NULL && start_load(srv, id) != NULL) {
            loaded++;
        }
    }
    if (loaded > 0) {
        gw_log(GW_LOG_NOTICE, "room.resumed", "rooms=%zu", loaded);
    }
    store_req_free(req);
}

void gw_rooms_sweep(struct gw_server *srv)
{
    struct store_req *req = store_req_new(STORE_OP_LIVE_ROOMS, live_rooms_done, srv);
    if (req == NULL) {
        return;
    }
    req->u.live_rooms.max_rooms = 100000;
    snprintf(req->u.live_rooms.node_id, sizeof(req->u.live_rooms.node_id), "%s",
             srv->cfg->node_id);
    if (store_submit(srv->store, req, gw_now_ms()) != 0) {
        store_req_free(req);
    }
}

static void cmd_join(struct gw_conn *c, const struct gw_cmd *cmd)
{
    struct gw_join j = {
        .conn_id = c->id, .has_id = cmd->has_id, .has_since = cmd->has_since, .since = cmd->since};
    memcpy(j.id, cmd->id, sizeof(j.id));
    snprintf(j.room_id, sizeof(j.room_id), "%s", cmd->room);
    struct gw_room *g = gw_map_get(c->srv->rooms, cmd->room, strlen(cmd->room));
    if (g == NULL) {
        g = start_load(c->srv, cmd->room);
    }
    if (g == NULL) {
        gw_conn_error(c, "unavailable", "server busy; retry", gw__id_of(&j), cmd->room, NULL, 0);
        return;
    }
    if (g->core != NULL && !g->loading_presence) {
        do_join(c, g, &j);
        return;
    }
    struct gw_join *p = malloc(sizeof(*p));
    if (p == NULL) {
        gw_conn_error(c, "internal", "out of memory", gw__id_of(&j), cmd->room, NULL, 0);
        return;
    }
    *p = j;
    p->next = g->pending;
    g->pending = p;
}

/* ---- entry points
 * --------------------------------------------------------------------------------- */

void gw_room_cmd(struct gw_conn *c, const struct gw_cmd *cmd)
{
    const char *id = cmd->has_id ? cmd->id : NULL;
    if (cmd->type == GW_C_JOIN) {
        cmd_join(c, cmd);
        return;
    }
    struct gw_room *g = gw_map_get(c->srv->rooms, cmd->room, strlen(cmd->room));
    if (g != NULL && (g->core == NULL || g->loading_presence) && defer(c, g, cmd) == 0) {
        return; /* replayed once the room is loaded and the join done */
    }
    struct gw_conn_room *s = g != NULL ? gw__conn_slot(c, g) : NULL;
    if (s == NULL || g->core == NULL) {
        gw_conn_error(c, "forbidden", "join the room first", id, cmd->room, cmd->client_msg_id, 0);
        return;
    }
    switch (cmd->type) {
    case GW_C_CHAT:
        gw__cmd_chat(c, g, cmd);
        break;
    case GW_C_TYPING:
        gw__cmd_typing(c, g, cmd);
        break;
    case GW_C_LEAVE:
        gw__cmd_leave(c, g, cmd);
        break;
    case GW_C_HISTORY:
        gw__cmd_history(c, g, cmd);
        break;
    case GW_C_END:
        gw_life_cmd_end(c, g, cmd);
        break;
    case GW_C_RATE:
        gw_life_cmd_rate(c, g, cmd);
        break;
    case GW_C_HELLO:
    case GW_C_PING:
    case GW_C_JOIN:
        break;
    }
}

void gw_room_disconnect(struct gw_conn *c)
{
    struct room_fx_list fx;
    room_fx_reset(&fx);
    if (room_on_disconnect(&c->rc, gw_unix_ms(), &fx) == 0) {
        gw__apply_fx(c->srv, NULL, &fx, NULL);
    }
    /* The idle clock may start now in each room c was in. */
    for (size_t i = 0; i < ROOM_CONN_MAX_ROOMS; i++) {
        gw__release_held(c, &c->rooms[i], false);
        gw_life_rearm(c->rooms[i].room);
    }
    memset(c->rooms, 0, sizeof(c->rooms));
}

static void free_room(void *value, void *arg)
{
    (void)arg;
    struct gw_room *g = value;
    flush_deferred(NULL, g->deferred, NULL, NULL);
    while (g->pending != NULL) {
        struct gw_join *next = g->pending->next;
        free(g->pending);
        g->pending = next;
    }
    room_free(g->core);
    gw_node_presence_free(g);
    free(g);
}

static void stop_room(void *value, void *arg)
{
    (void)arg;
    gw_life_stop(value);
    gw_node_presence_free(value);
}

void gw_rooms_stop_timers(struct gw_server *srv)
{
    srv->closing = true;
    gw_map_each(srv->rooms, stop_room, NULL);
}

void gw_rooms_free(struct gw_server *srv)
{
    gw_map_each(srv->rooms, free_room, NULL);
}
