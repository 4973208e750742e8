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
 * `message` frames, to each connection that does not have it yet (a
 * connection that joined with `since`, or whose `joined` history went
 * further, has a floor). One read at a time per room; a trigger that comes
 * while one is in flight asks for another after it, a page with more
 * behind it asks for the next, and a failed read is retried with backoff.
 * Seqs deleted from the database (with their "Message" rows) are skipped. The read runs on the store thread after every request
 * queued before it, so a join's history and a catch-up never both deliver
 * one message to the same connection: whichever the store answers first
 * covers it (wsroom.c caps `joined`'s history at lastSeq).
 */
#include <string.h>

#include "msgs.h"
#include "wsroom_int.h"

#define CATCH_UP_PAGE 1000

/* `message` m to every member connection that lacks it. */
static void deliver(struct gw_server *srv, struct gw_room *g, const struct store_message *m)
{
    struct room_fx_list fx;
    room_fx_reset(&fx);
    if (room_on_chat_committed(g->core, (uint64_t)m->seq, 0, gw_unix_ms(), &fx) != 0) {
        return; /* old (delivered already) */
    }
    json_t *o = gw_msg_message(g->room_id, m, 0);
    struct gw_frame *f = o != NULL ? gw_frame_from_json(o) : NULL;
    json_decref(o);
    for (size_t i = 0; f != NULL && i < fx.len; i++) {
        struct room_conn *rcs[256];
        size_t n = fx.v[i].kind == ROOM_FX_DELIVER ? room_fx_recipients(&fx.v[i], rcs, 256) : 0;
        for (size_t k = 0; k < n && k < 256; k++) {
            struct gw_conn *c = rcs[k]->user;
            struct gw_conn_room *s = gw__conn_slot_core(c, g->core);
            if (s != NULL && s->floor_seq < (uint64_t)m->seq) {
                srv->stats.msgs_out += (uint64_t)gw__room_send(c, s, f, false);
            }
        }
    }
    gw_frame_unref(f);
}

static void retry_fired(struct gw_timer *t)
{
    gw_room_catch_up(lws_container_of(t, struct gw_room, catch_retry));
}

/* A failed read: try again after a backoff (up to 10 s), so that acked
 * messages reach this node's members even in a room that stays quiet. */
static void schedule_retry(struct gw_room *g)
{
    if (g->srv->closing) {
        return;
    }
    int64_t ms = 250LL << (g->catch_failures < 6 ? g->catch_failures : 6);
    ms = ms < 10000 ? ms : 10000;
    g->catch_failures++;
    gw_timer_arm(g->srv, &g->catch_retry, retry_fired, ms * 1000);
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
        schedule_retry(g);
    } else if (g->core != NULL) {
        g->catch_failures = 0;
        for (size_t i = 0; i < h->n_msgs; i++) {
            uint64_t seq = (uint64_t)h->msgs[i].seq;
            /* Seqs are given out under the room's lock in commit order, so
             * a seq missing below one that is read was deleted. */
            if (room_skip_seq(g->core, seq) > 0) {
                gw_log(GW_LOG_WARN, "room.seq_skipped", "room=%s next=%llu", g->room_id,
                       (unsigned long long)seq);
            }
            deliver(srv, g, &h->msgs[i]);
        }
        again = again || h->has_more;
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
        g->catching_up = false;
        schedule_retry(g);
    }
}

/* Notes may have been missed: every room's messages, session and
 * presence are read again. */
static void resync_each(void *value, void *arg)
{
    (void)arg;
    struct gw_room *g = value;
    gw_room_catch_up(g);
    gw_node_sync(g);
    gw_node_read_presence(g);
}

void gw_rooms_note(void *arg, const struct store_note *note)
{
    struct gw_server *srv = arg;
    if (note == NULL) {
        gw_map_each(srv->rooms, resync_each, NULL);
        return;
    }
    struct gw_room *g = gw_map_get(srv->rooms, note->room_id, strlen(note->room_id));
    if (g == NULL || g->core == NULL) {
        return; /* not loaded here: its load reads everything */
    }
    if (note->kind != STORE_NOTE_CHAT) {
        gw_node_note(srv, g, note);
    } else if ((uint64_t)note->seq > room_last_seq(g->core)) {
        gw_room_catch_up(g);
    }
}
