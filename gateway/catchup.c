/*
 * catchup.c: messages committed by other gateway nodes reach this node's
 * member connections, in seq order, once each.
 *
 * DESIGN: a room's core knows the last seq delivered here (lastSeq). Every
 * commit, on any node, notifies "<roomId> <seq>" (store listen.c); a note
 * for a loaded room beyond its lastSeq, or a local commit that finds a gap
 * before its own seq (wscmd.c), starts a catch-up: one read of the room's
 * messages after lastSeq (STORE_OP_HISTORY, up to 1000), delivered in
 * order through the core (room_on_chat_committed with no sender here) as
 * `message` frames. One read at a time per room; a trigger that comes
 * while one is in flight asks for another after it, and a full page asks
 * for the next. The read runs on the store thread after every request
 * queued before it, so a join's history and a catch-up never both deliver
 * one message to the same connection: whichever the store answers first
 * covers it (wsroom.c caps `joined`'s history at lastSeq).
 */
#include <string.h>

#include "msgs.h"
#include "wsroom_int.h"

#define CATCH_UP_PAGE 1000

static void deliver(struct gw_server *srv, struct gw_room *g, const struct store_message *m)
{
    struct room_fx_list fx;
    room_fx_reset(&fx);
    if (room_on_chat_committed(g->core, (uint64_t)m->seq, 0, gw_unix_ms(), &fx) != 0) {
        return; /* old (delivered already) */
    }
    for (size_t i = 0; i < fx.len; i++) {
        const struct room_fx *e = &fx.v[i];
        if (e->kind != ROOM_FX_DELIVER) {
            continue;
        }
        json_t *o = gw_msg_message(g->room_id, m, 0);
        struct gw_frame *f = o != NULL ? gw_frame_from_json(o) : NULL;
        json_decref(o);
        if (f != NULL) {
            srv->stats.msgs_out += gw__send_to_targets(srv, e, f, false);
            gw_frame_unref(f);
        }
    }
}

static void catch_up_done(struct store_req *req)
{
    struct gw_wctx *w = req->arg;
    struct gw_server *srv = w->srv;
    struct gw_room *g = w->room;
    const struct store_history *h = &req->u.history;
    g->catching_up = false;
    bool again = g->catch_again;
    g->catch_again = false;
    if (req->rc != 0) {
        gw_log(GW_LOG_WARN, "room.catch_up_failed", "room=%s rc=%d", g->room_id, req->rc);
    } else if (g->core != NULL) {
        for (size_t i = 0; i < h->n_msgs; i++) {
            if (h->msgs[i].seq == (int64_t)room_last_seq(g->core) + 1) {
                deliver(srv, g, &h->msgs[i]);
            }
        }
        again = again || h->n_msgs == CATCH_UP_PAGE;
        if (h->n_msgs > 0) {
            gw_log(GW_LOG_DEBUG, "room.caught_up", "room=%s messages=%zu last=%llu", g->room_id,
                   h->n_msgs, (unsigned long long)room_last_seq(g->core));
        }
    }
    store_req_free(req);
    free(w);
    if (again && !srv->closing) {
        gw_room_catch_up(g);
    }
}

void gw_room_catch_up(struct gw_room *g)
{
    if (g->core == NULL || g->srv->closing) {
        return; /* a room being loaded reads its lastSeq from the database */
    }
    if (g->catching_up) {
        g->catch_again = true;
        return;
    }
    struct gw_join none = {0};
    struct store_req *req = store_req_new(STORE_OP_HISTORY, catch_up_done, NULL);
    if (req != NULL) {
        struct store_history *h = &req->u.history;
        snprintf(h->appointment_id, sizeof(h->appointment_id), "%s", g->info.appointment_id);
        snprintf(h->coach_id, sizeof(h->coach_id), "%s", g->info.coach_id);
        h->after_seq = (int64_t)room_last_seq(g->core);
        h->before_seq = INT64_MAX;
        h->limit = CATCH_UP_PAGE;
    }
    g->catching_up = true;
    if (gw__submit(NULL, req, gw__wctx_new(g->srv, g, &none)) != 0) {
        g->catching_up = false; /* the next note, or the next local commit, tries again */
    }
}

static void catch_up_each(void *value, void *arg)
{
    (void)arg;
    gw_room_catch_up(value);
}

void gw_rooms_note(void *arg, const struct store_note *note)
{
    struct gw_server *srv = arg;
    if (note == NULL) {
        gw_map_each(srv->rooms, catch_up_each, NULL);
        return;
    }
    struct gw_room *g = gw_map_get(srv->rooms, note->room_id, strlen(note->room_id));
    if (g != NULL && g->core != NULL && (uint64_t)note->seq > room_last_seq(g->core)) {
        gw_room_catch_up(g);
    }
}
