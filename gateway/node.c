/*
 * node.c: this gateway among several on one database (docs/operations.md):
 * its heartbeat, the room clock leases, presence and typing across nodes,
 * and bringing a room up to what another node changed.
 *
 * DESIGN
 * Every NODE_HEARTBEAT_SEC (sooner when a room needs its clock) one store
 * request (STORE_OP_NODE_BEAT) renews the node's row, removes dead nodes,
 * renews the leases it holds and asks for those it lacks: at once for a
 * running room with members here, only after a lease's expiry plus one
 * lease time for one without (a node with members takes it first). The
 * clock of a room (life.c) runs only while its lease is this node's: the
 * lease is trusted until the beat's start + ROOM_LEASE_SEC, and the store
 * fences each warning on the lease too, so two nodes never both send one.
 * What the holder does (start, warnings, end) reaches the others as a
 * "<roomId> s" note; they re-read the room and bring their core up to it
 * (room_on_sync), framing warnings and the end to their own members.
 * Presence: a user's first connection here and last one here become a
 * coach_presence row (STORE_OP_PRESENCE_SET, "<roomId> p"); the other
 * nodes read the room's rows again (room_on_remote_presence). Typing goes
 * over its own notify channel while other nodes are alive. A lost note is
 * repaired by the listener's resync: every room is read again.
 */
#include <stdlib.h>
#include <string.h>

#include "wsroom_int.h"

#define KICK_MS         100 /* a quick beat this soon when a room wants its clock */
#define LEASE_MARGIN_MS 250 /* trust a lease this much less than its life */

/* ---- leases -------------------------------------------------------------------------- */

bool gw_node_clock_mine(const struct gw_room *g)
{
    return g->lease_until_ms > gw_now_ms();
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The beat's lists, built from the rooms in memory. */
struct want {
    char **acquire, **adopt, **release;
    size_t n_acquire, n_adopt, n_release, cap;
    bool quick; /* a quick beat releases nothing */
    bool failed;
};

static void want_push(struct want *w, char ***v, size_t *n, const char *id)
{
    if (w->failed) {
        return;
    }
    if (*v == NULL && (*v = calloc(w->cap, sizeof(char *))) == NULL) {
        w->failed = true;
        return;
    }
    if (*n < w->cap && ((*v)[*n] = strdup(id)) != NULL) {
        (*n)++;
    } else {
        w->failed = true;
    }
}

static void want_room(void *value, void *arg)
{
    struct gw_room *g = value;
    struct want *w = arg;
    if (g->core == NULL) {
        return;
    }
    bool running = room_state(g->core) == ROOM_STATE_RUNNING && !g->srv->draining;
    const char *id = g->info.appointment_id;
    if (!running && g->lease_until_ms != 0) {
        if (w->quick) {
            return;
        }
        want_push(w, &w->release, &w->n_release, id);
        g->lease_until_ms = 0;
    } else if (running && !gw_node_clock_mine(g)) {
        if (room_conn_count(g->core) > 0) {
            want_push(w, &w->acquire, &w->n_acquire, id);
        } else {
            want_push(w, &w->adopt, &w->n_adopt, id);
        }
    }
}

/* Mark the rooms whose lease the beat (sent at sent_ms) says are ours. */
struct held {
    char **ids;
    size_t n;
    int64_t until_ms;
    bool quick; /* the answer lists only rooms asked for: leave the others as they are */
};

static void held_room(void *value, void *arg)
{
    struct gw_room *g = value;
    const struct held *h = arg;
    if (g->core == NULL) {
        return;
    }
    const char *key = g->info.appointment_id;
    bool mine = h->n > 0 && bsearch(&key, h->ids, h->n, sizeof(char *), cmp_str) != NULL;
    bool was = gw_node_clock_mine(g);
    if (!mine && h->quick) {
        return;
    }
    g->lease_until_ms = mine ? h->until_ms : 0;
    if (mine && !was) {
        gw_log(GW_LOG_INFO, "room.clock_lease", "room=%s node=%s", g->room_id,
               g->srv->cfg->node_id);
    }
    gw_life_rearm(g);
}

/* ---- the beat ---------------------------------------------------------------------------- */

static void beat_timer(lws_sorted_usec_list_t *sul);
static void publish_all(struct gw_server *srv);

static void schedule(struct gw_server *srv, int64_t delay_ms)
{
    if (srv->closing || srv->node.left) {
        return;
    }
    int64_t at = gw_now_ms() + delay_ms;
    if (srv->node.next_beat_ms != 0 && srv->node.next_beat_ms <= at) {
        return;
    }
    srv->node.next_beat_ms = at;
    lws_sul_schedule(srv->ctx, 0, &srv->node.timer, beat_timer,
                     (lws_usec_t)(delay_ms > 0 ? delay_ms : 1) * LWS_US_PER_MS);
}

void gw_node_kick(struct gw_server *srv)
{
    if (srv->node.beat_pending) {
        srv->node.kick_again = true;
        return;
    }
    schedule(srv, KICK_MS);
}

static void changed_rooms(struct gw_server *srv, char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct gw_room *g = gw_map_get(srv->rooms, ids[i], strlen(ids[i]));
        if (g != NULL) {
            gw_node_read_presence(g);
        }
    }
}

/* The leases the beat (sent at beat_sent_ms) says are this node's. */
static void mark_held(struct gw_server *srv, struct store_node_beat *b)
{
    if (b->n_held > 1) {
        qsort(b->held, b->n_held, sizeof(char *), cmp_str);
    }
    struct held h = {.ids = b->held,
                     .n = b->n_held,
                     .quick = b->quick != 0,
                     .until_ms = srv->node.beat_sent_ms + (int64_t)srv->cfg->room_lease_sec * 1000 -
                                 LEASE_MARGIN_MS};
    gw_map_each(srv->rooms, held_room, &h);
}

static void beat_done(struct store_req *req)
{
    struct gw_server *srv = req->arg;
    struct store_node_beat *b = &req->u.beat;
    srv->node.beat_pending = false;
    if (req->rc != 0) {
        srv->node.beat_failures++;
        gw_log(GW_LOG_WARN, "node.beat_failed", "rc=%d", req->rc);
        if (!b->quick) {
            srv->node.last_full_ms = srv->node.beat_sent_ms; /* the next one a period later */
        }
    } else if (b->quick) {
        mark_held(srv, b);
    } else {
        srv->node.last_full_ms = srv->node.beat_sent_ms;
        int peers_before = srv->node.peers;
        srv->node.peers = b->peers;
        srv->node.beat_failures = 0;
        mark_held(srv, b);
        srv->node.n_held = b->n_held;
        changed_rooms(srv, b->changed_rooms, b->n_changed_rooms);
        if (b->created) {
            /* New row (first beat, or others took this node for dead): what
             * it published may be gone. */
            publish_all(srv);
        }
        if (peers_before != b->peers) {
            gw_log(GW_LOG_NOTICE, "node.peers", "node=%s peers=%d", srv->cfg->node_id, b->peers);
        }
        if (!srv->node.alive || b->peers < peers_before) {
            /* First beat, or a node gone: its running jobs are free now. */
            srv->node.alive = true;
            gw_ai_kick(srv);
            gw_lk_kick(srv);
        }
    }
    store_req_free(req);
    bool again = srv->node.kick_again;
    srv->node.kick_again = false;
    srv->node.next_beat_ms = 0;
    int64_t full_in =
        srv->node.last_full_ms + (int64_t)srv->cfg->node_heartbeat_sec * 1000 - gw_now_ms();
    schedule(srv, again && KICK_MS < full_in ? KICK_MS : full_in);
}

/* A full beat (heartbeat, renewals, reaping) every NODE_HEARTBEAT_SEC; in
 * between, kicked beats only take the leases rooms want now. */
static int fill_beat(struct gw_server *srv, struct store_node_beat *b)
{
    int64_t period = (int64_t)srv->cfg->node_heartbeat_sec * 1000;
    b->quick = srv->node.last_full_ms != 0 && gw_now_ms() - srv->node.last_full_ms < period;
    struct want w = {.cap = gw_map_count(srv->rooms) + 1, .quick = b->quick != 0};
    gw_map_each(srv->rooms, want_room, &w);
    b->acquire = w.acquire;
    b->n_acquire = w.n_acquire;
    b->adopt = w.adopt;
    b->n_adopt = w.n_adopt;
    b->release = w.release;
    b->n_release = w.n_release;
    snprintf(b->node_id, sizeof(b->node_id), "%s", srv->cfg->node_id);
    b->ttl_ms = 3 * srv->cfg->node_heartbeat_sec * 1000;
    b->lease_ms = srv->cfg->room_lease_sec * 1000;
    return w.failed ? -1 : 0;
}

static void beat_timer(lws_sorted_usec_list_t *sul)
{
    struct gw_server *srv = lws_container_of(sul, struct gw_server, node.timer);
    srv->node.next_beat_ms = 0;
    if (srv->node.beat_pending || srv->node.leaving) {
        return;
    }
    struct store_req *req = store_req_new(STORE_OP_NODE_BEAT, beat_done, srv);
    if (req == NULL || fill_beat(srv, &req->u.beat) != 0) {
        store_req_free(req);
        schedule(srv, 1000);
        return;
    }
    srv->node.beat_sent_ms = gw_now_ms();
    if (store_submit(srv->store, req, gw_now_ms()) != 0) {
        store_req_free(req);
        schedule(srv, 1000);
        return;
    }
    srv->node.beat_pending = true;
}

void gw_node_start(struct gw_server *srv)
{
    schedule(srv, 0);
}

/* ---- leaving ------------------------------------------------------------------------------- */

static void leave_done(struct store_req *req)
{
    struct gw_server *srv = req->arg;
    if (req->rc != 0) {
        gw_log(GW_LOG_WARN, "node.leave_failed", "rc=%d (the others take it for dead)", req->rc);
    }
    srv->node.left = true;
    store_req_free(req);
}

bool gw_node_drained(struct gw_server *srv)
{
    if (srv->node.left) {
        return true;
    }
    if (srv->node.leaving || srv->node.beat_pending) {
        return false;
    }
    srv->node.leaving = true;
    lws_sul_cancel(&srv->node.timer);
    struct store_req *req = store_req_new(STORE_OP_NODE_LEAVE, leave_done, srv);
    if (req != NULL) {
        snprintf(req->u.leave.node_id, sizeof(req->u.leave.node_id), "%s", srv->cfg->node_id);
    }
    if (req == NULL || store_submit(srv->store, req, gw_now_ms()) != 0) {
        store_req_free(req);
        srv->node.left = true;
    }
    return srv->node.left;
}

void gw_node_stop(struct gw_server *srv)
{
    lws_sul_cancel(&srv->node.timer);
}

/* ---- presence ------------------------------------------------------------------------------ */

static void presence_set_done(struct store_req *req)
{
    if (req->rc != 0) {
        gw_log(GW_LOG_WARN, "node.presence_failed", "room=%s rc=%d", req->u.presence_set.room_id,
               req->rc);
    }
    store_req_free(req);
}

/* Submit the presence row write; false when the store refused it. */
static bool publish(struct gw_server *srv, const struct gw_room *g,
                    const struct room_member_info *who, bool online)
{
    struct store_req *req = store_req_new(STORE_OP_PRESENCE_SET, presence_set_done, NULL);
    if (req == NULL) {
        return false;
    }
    struct store_presence_set *p = &req->u.presence_set;
    snprintf(p->appointment_id, sizeof(p->appointment_id), "%s", g->info.appointment_id);
    snprintf(p->room_id, sizeof(p->room_id), "%s", g->room_id);
    snprintf(p->node_id, sizeof(p->node_id), "%s", srv->cfg->node_id);
    snprintf(p->user_id, sizeof(p->user_id), "%s", who->id);
    snprintf(p->display_name, sizeof(p->display_name), "%s", who->display_name);
    snprintf(p->role, sizeof(p->role), "%s", room_role_name(who->role));
    p->online = online;
    if (store_submit(srv->store, req, gw_now_ms()) != 0) {
        store_req_free(req);
        return false;
    }
    return true;
}

/* ---- presence writes that wait ----
 * A user's last connection here going away is written to the presence
 * rows only after PRESENCE_LEAVE_GRACE_MS: a reconnect within it (a
 * network blip, a reconnect storm of thousands) cancels it, and neither
 * the leave nor the join is written. Joins are written at once (the other
 * nodes' idle rule must see them). A write the store refuses (its queue
 * full) waits PRESENCE_RETRY_MS and is tried again, so a row is not left
 * stale for want of a queue slot. */
#define PRESENCE_LEAVE_GRACE_MS 3000
#define PRESENCE_RETRY_MS       1000

static struct gw_presence_due *due_find(struct gw_room *g, const char *user_id)
{
    for (size_t i = 0; i < g->n_pres_due; i++) {
        if (strcmp(g->pres_due[i].who.id, user_id) == 0) {
            return &g->pres_due[i];
        }
    }
    return NULL;
}

static void due_remove(struct gw_room *g, struct gw_presence_due *d)
{
    *d = g->pres_due[--g->n_pres_due];
}

static void due_fire(struct gw_timer *t);

static void due_rearm(struct gw_room *g)
{
    if (g->n_pres_due == 0 || g->srv->closing) {
        gw_timer_cancel(g->srv, &g->pres_timer);
        return;
    }
    int64_t first = g->pres_due[0].due_ms;
    for (size_t i = 1; i < g->n_pres_due; i++) {
        first = g->pres_due[i].due_ms < first ? g->pres_due[i].due_ms : first;
    }
    int64_t delay_ms = first - gw_now_ms();
    gw_timer_arm(g->srv, &g->pres_timer, due_fire, delay_ms > 0 ? delay_ms * 1000 : 1);
}

/* Remember a write for later; false when out of memory. */
static bool due_put(struct gw_room *g, const struct room_member_info *who, bool online,
                    int64_t due_ms)
{
    struct gw_presence_due *d = due_find(g, who->id);
    if (d == NULL) {
        if (g->n_pres_due == g->cap_pres_due) {
            size_t cap = g->cap_pres_due ? g->cap_pres_due * 2 : 4;
            struct gw_presence_due *v = realloc(g->pres_due, cap * sizeof(*v));
            if (v == NULL) {
                return false;
            }
            g->pres_due = v;
            g->cap_pres_due = cap;
        }
        d = &g->pres_due[g->n_pres_due++];
    }
    d->who = *who;
    d->online = online;
    d->due_ms = due_ms;
    return true;
}

static void due_fire(struct gw_timer *t)
{
    struct gw_room *g = lws_container_of(t, struct gw_room, pres_timer);
    struct gw_server *srv = g->srv;
    int64_t now = gw_now_ms();
    for (size_t i = 0; i < g->n_pres_due;) {
        struct gw_presence_due *d = &g->pres_due[i];
        if (d->due_ms > now) {
            i++;
        } else if (srv->node.left || publish(srv, g, &d->who, d->online)) {
            due_remove(g, d); /* index i holds the next one now */
        } else {
            d->due_ms = now + PRESENCE_RETRY_MS;
            i++;
        }
    }
    due_rearm(g);
}

void gw_node_presence_free(struct gw_room *g)
{
    gw_timer_cancel(g->srv, &g->pres_timer);
    free(g->pres_due);
    g->pres_due = NULL;
    g->n_pres_due = g->cap_pres_due = 0;
}

void gw_node_local_presence(struct gw_server *srv, struct gw_room *g, const struct room_fx *fx)
{
    if (g == NULL || srv->node.left) {
        return;
    }
    /* A waiting write of the other kind and this change cancel out: a join
     * within a leave's grace (the row never went), a leave of a join never
     * written (nothing to take back). */
    struct gw_presence_due *d = due_find(g, fx->user.id);
    bool cancels = d != NULL && d->online != fx->is_join;
    if (d != NULL) {
        due_remove(g, d);
    }
    if (cancels) {
        /* nothing to write */
    } else if (fx->is_join) {
        if (!publish(srv, g, &fx->user, true)) {
            (void)due_put(g, &fx->user, true, gw_now_ms() + PRESENCE_RETRY_MS);
        }
    } else if (!due_put(g, &fx->user, false, gw_now_ms() + PRESENCE_LEAVE_GRACE_MS)) {
        (void)publish(srv, g, &fx->user, false); /* out of memory: at once */
    }
    due_rearm(g);
}

/* Every member with a connection here, again (the node's row was made anew). */
static void publish_room(void *value, void *arg)
{
    struct gw_room *g = value;
    (void)arg;
    if (g->core == NULL) {
        return;
    }
    for (size_t i = 0; i < room_member_count(g->core); i++) {
        const struct room_member_info *m = room_member_at(g->core, i);
        if (room_member_here(g->core, m->id)) {
            (void)publish(g->srv, g, m, true);
        }
    }
}

static void publish_all(struct gw_server *srv)
{
    gw_map_each(srv->rooms, publish_room, NULL);
}

static void presence_get_done(struct store_req *req)
{
    struct gw_wctx *w = req->arg;
    struct gw_room *g = w->room;
    const struct store_presence_get *p = &req->u.presence_get;
    if (req->rc != 0) {
        gw_log(GW_LOG_WARN, "node.presence_read_failed", "room=%s rc=%d", g->room_id, req->rc);
    } else if (g->core != NULL) {
        struct room_remote_member v[STORE_PRESENCE_MAX];
        for (size_t i = 0; i < p->n_users; i++) {
            v[i] =
                (struct room_remote_member){.user_id = p->users[i].user_id,
                                            .display_name = p->users[i].display_name,
                                            .is_admin = strcmp(p->users[i].role, "observer") == 0,
                                            .nodes = (unsigned)p->users[i].nodes};
        }
        struct room_fx_list fx;
        room_fx_reset(&fx);
        if (room_on_remote_presence(g->core, v, p->n_users, gw_unix_ms(), &fx) == 0) {
            gw__apply_fx(w->srv, g, &fx, NULL);
        }
    }
    if (w->then != NULL) {
        w->then(g);
    }
    store_req_free(req);
    free(w);
}

int gw_node_read_presence_then(struct gw_room *g, void (*then)(struct gw_room *g))
{
    struct gw_join none = {0};
    struct gw_wctx *w = gw__wctx_new(g->srv, g, &none);
    struct store_req *req = store_req_new(STORE_OP_PRESENCE_GET, presence_get_done, NULL);
    if (req != NULL) {
        snprintf(req->u.presence_get.appointment_id, sizeof(req->u.presence_get.appointment_id),
                 "%s", g->info.appointment_id);
        snprintf(req->u.presence_get.node_id, sizeof(req->u.presence_get.node_id), "%s",
                 g->srv->cfg->node_id);
    }
    if (w != NULL) {
        w->then = then;
    }
    return gw__submit(NULL, req, w);
}

void gw_node_read_presence(struct gw_room *g)
{
    if (g->core != NULL) {
        (void)gw_node_read_presence_then(g, NULL);
    }
}

/* ---- typing -------------------------------------------------------------------------------- */

static void notify_done(struct store_req *req)
{
    store_req_free(req);
}

void gw_node_typing(struct gw_server *srv, const struct gw_room *g, const struct room_fx *fx)
{
    if (srv->node.peers == 0) {
        return; /* nobody else to tell */
    }
    struct store_req *req = store_req_new(STORE_OP_NOTIFY, notify_done, NULL);
    if (req == NULL) {
        return;
    }
    struct store_notify *n = &req->u.notify;
    snprintf(n->key, sizeof(n->key), "%s", g->info.appointment_id);
    snprintf(n->channel, sizeof(n->channel), "%s", STORE_TYPING_CHANNEL);
    if (store_typing_payload(n->payload, sizeof(n->payload), g->room_id, fx->user.id, fx->state) !=
            0 ||
        store_submit(srv->store, req, gw_now_ms()) != 0) {
        store_req_free(req);
    }
}

/* ---- the session as the database holds it --------------------------------------------------- */

static enum room_end_reason reason_of(const char *s)
{
    for (int r = ROOM_END_COACH; r <= ROOM_END_ADMIN; r++) {
        const char *name = room_end_reason_name((enum room_end_reason)r);
        if (name != NULL && strcmp(name, s) == 0) {
            return (enum room_end_reason)r;
        }
    }
    return ROOM_END_NONE;
}

static void sync_done(struct store_req *req)
{
    struct gw_wctx *w = req->arg;
    struct gw_room *g = w->room;
    const struct store_room *i = &req->u.room;
    if (req->rc != 0) {
        gw_log(GW_LOG_WARN, "room.sync_failed", "room=%s rc=%d", g->room_id, req->rc);
    } else if (g->core != NULL) {
        if (i->coach_session_id[0] != '\0') {
            snprintf(g->info.coach_session_id, sizeof(g->info.coach_session_id), "%s",
                     i->coach_session_id);
        }
        if (i->client_session_id[0] != '\0') {
            snprintf(g->info.client_session_id, sizeof(g->info.client_session_id), "%s",
                     i->client_session_id);
        }
        bool ended = strcmp(i->status, "completed") == 0 && i->ended_unix_ms > 0;
        struct room_sync s = {
            .started_unix_ms = i->started_unix_ms,
            .warnings_sent = i->warnings_sent > 0 ? (unsigned)i->warnings_sent : 0,
            .ended_unix_ms = ended ? i->ended_unix_ms : 0,
            .reason = reason_of(i->end_reason),
            .coach_has_session = i->coach_session_id[0] != '\0',
            .client_has_session = i->client_session_id[0] != '\0',
        };
        struct room_fx_list fx;
        room_fx_reset(&fx);
        if (room_on_sync(g->core, &s, gw_unix_ms(), &fx) == 0) {
            gw__apply_fx(w->srv, g, &fx, NULL);
        }
    }
    store_req_free(req);
    free(w);
}

void gw_node_sync(struct gw_room *g)
{
    if (g->core == NULL) {
        return;
    }
    struct gw_join none = {0};
    struct store_req *req = store_req_new(STORE_OP_ROOM_LOAD, sync_done, NULL);
    if (req != NULL) {
        snprintf(req->u.room.room_id, sizeof(req->u.room.room_id), "%s", g->room_id);
    }
    (void)gw__submit(NULL, req, gw__wctx_new(g->srv, g, &none));
}

/* ---- notes from the other nodes -------------------------------------------------------------- */

void gw_node_note(struct gw_server *srv, struct gw_room *g, const struct store_note *note)
{
    struct room_fx_list fx;
    switch (note->kind) {
    case STORE_NOTE_STATE:
        gw_node_sync(g);
        break;
    case STORE_NOTE_PRESENCE:
        gw_node_read_presence(g);
        break;
    case STORE_NOTE_TYPING:
        room_fx_reset(&fx);
        if (room_on_remote_typing(g->core, note->user_id, note->state != 0, &fx) == 0) {
            gw__apply_fx(srv, g, &fx, NULL);
        }
        break;
    case STORE_NOTE_CHAT:
        break;
    }
}
