/*
 * life.c: the session lifecycle on the loop thread: each room's clock
 * timer (warnings, the end by clock or idleness), ending (by the clock,
 * `end`, or from outside), and ratings over WebSocket.
 *
 * DESIGN: the rooms core decides when (room_next_deadline_ms, room_on_tick)
 * and emits WARNING and END effects exactly once; this file persists them
 * and tells the members. `session.ended` goes out only after the ending
 * transaction committed; if the database is away the END is retried with
 * backoff until it commits (the transaction is idempotent).
 */
#include <stdlib.h>
#include <string.h>

#include "msgs.h"
#include "wsroom_int.h"

#define END_RETRY_MAX_MS 30000

/* ---- the clock -------------------------------------------------------------------------- */

static void room_tick(struct gw_timer *t)
{
    struct gw_room *g = lws_container_of(t, struct gw_room, timer);
    g->timer_at_unix_ms = ROOM_NO_DEADLINE;
    if (!gw_node_clock_mine(g)) {
        return; /* another node drives it; re-armed when the lease is ours */
    }
    struct room_fx_list fx;
    room_fx_reset(&fx);
    if (g->core != NULL && room_on_tick(g->core, gw_unix_ms(), &fx) == 0) {
        gw__apply_fx(g->srv, g, &fx, NULL);
    }
    gw_life_rearm(g);
}

void gw_life_rearm(struct gw_room *g)
{
    if (g == NULL || g->core == NULL || g->srv->closing) {
        return;
    }
    int64_t at = gw_node_clock_mine(g) ? room_next_deadline_ms(g->core) : ROOM_NO_DEADLINE;
    if (at == g->timer_at_unix_ms) {
        return;
    }
    g->timer_at_unix_ms = at;
    if (at == ROOM_NO_DEADLINE) {
        gw_timer_cancel(g->srv, &g->timer);
        return;
    }
    int64_t delay_ms = at - gw_unix_ms();
    gw_timer_arm(g->srv, &g->timer, room_tick, delay_ms > 0 ? delay_ms * 1000 : 1);
}

void gw_life_stop(struct gw_room *g)
{
    gw_timer_cancel(g->srv, &g->timer);
    gw_timer_cancel(g->srv, &g->end_retry);
    gw_timer_cancel(g->srv, &g->catch_retry);
    g->timer_at_unix_ms = ROOM_NO_DEADLINE;
}

/* ---- warnings ------------------------------------------------------------------------------ */

/* `timer` to the room's members (and, held, to those joining). */
static void send_warning(struct gw_server *srv, struct gw_room *g, int remaining_sec,
                         int64_t ends_unix_ms)
{
    if (g->core == NULL) {
        return;
    }
    struct room_fx all = {.room = g->core, .to = {.kind = ROOM_TO_MEMBERS}};
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:o}", "type", "timer", "room", g->room_id, "kind",
                          "warning", "remainingSec", remaining_sec, "endsAt",
                          gw_msg_time(ends_unix_ms));
    gw__send_fx_json(srv, &all, o, true);
    gw_log(GW_LOG_INFO, "room.warning", "room=%s remaining_sec=%d", g->room_id, remaining_sec);
}

/* The warning is recorded first, then sent: a crash in between may lose
 * it, never repeat it. Refused (recorded already, or this node no longer
 * holds the room's clock lease): not sent. Not recorded (the database is
 * down): sent all the same, since a late warning helps nobody; a restart
 * may then repeat it. */
static void warning_done(struct store_req *req)
{
    struct gw_wctx *w = req->arg;
    if (req->rc == STORE_E_CONFLICT) {
        /* Sent already, or the clock moved to another node meanwhile. */
        gw_log(GW_LOG_INFO, "room.warning_skipped", "room=%s", w->room->room_id);
    } else {
        if (req->rc != 0) {
            gw_log(GW_LOG_WARN, "room.warning_not_recorded", "room=%s rc=%d", w->room->room_id,
                   req->rc);
        }
        send_warning(w->srv, w->room, w->remaining_sec, w->ends_unix_ms);
    }
    store_req_free(req);
    free(w);
}

void gw_life_warning(struct gw_server *srv, struct gw_room *g, const struct room_fx *fx)
{
    if (fx->recorded) {
        send_warning(srv, g, fx->remaining_sec, fx->ends_unix_ms); /* by the clock's node */
        return;
    }
    struct gw_join none = {0};
    struct gw_wctx *w = gw__wctx_new(srv, g, &none);
    struct store_req *req = store_req_new(STORE_OP_WARNING, warning_done, NULL);
    if (req != NULL) {
        snprintf(req->u.warning.appointment_id, sizeof(req->u.warning.appointment_id), "%s",
                 g->info.appointment_id);
        req->u.warning.warnings_sent = (int)fx->warnings_sent;
        snprintf(req->u.warning.node_id, sizeof(req->u.warning.node_id), "%s",
                 srv->cfg->node_id);
    }
    if (w != NULL) {
        w->remaining_sec = fx->remaining_sec;
        w->ends_unix_ms = fx->ends_unix_ms;
    }
    if (gw__submit(NULL, req, w) != 0) {
        send_warning(srv, g, fx->remaining_sec, fx->ends_unix_ms);
    }
}

/* ---- ending ------------------------------------------------------------------------------------
 */

static void submit_end(struct gw_room *g);

static void end_retry(struct gw_timer *t)
{
    submit_end(lws_container_of(t, struct gw_room, end_retry));
}

/* session.ended to every member connection; rateable for the client while
 * no rating exists. At most two serializations. */
static void broadcast_ended(struct gw_room *g, const struct store_end *e)
{
    struct room_conn *rcs[256];
    size_t n = room_fx_recipients(&g->end_fx, rcs, 256);
    struct gw_frame *frames[2] = {NULL, NULL};
    for (size_t i = 0; i < n && i < 256; i++) {
        struct gw_conn *c = rcs[i]->user;
        int rateable = room_conn_role(g->core, rcs[i]) == ROOM_ROLE_CLIENT && !e->client_has_rating;
        if (frames[rateable] == NULL) {
            json_t *o =
                json_pack("{s:s, s:s, s:s, s:o, s:b}", "type", "session.ended", "room", g->room_id,
                          "reason", room_end_reason_name(g->end_fx.reason), "endedAt",
                          gw_msg_time(e->stored_ended_unix_ms), "rateable", rateable);
            frames[rateable] = o != NULL ? gw_frame_from_json(o) : NULL;
            json_decref(o);
        }
        if (frames[rateable] != NULL) {
            gw__room_send(c, gw__conn_slot(c, g), frames[rateable], true);
        }
    }
    gw_frame_unref(frames[0]);
    gw_frame_unref(frames[1]);
}

static void end_done(struct store_req *req)
{
    struct gw_wctx *w = req->arg;
    struct gw_room *g = w->room;
    if (req->rc != 0) {
        int64_t backoff = 500LL << (g->end_attempts < 6 ? g->end_attempts : 6);
        backoff = backoff < END_RETRY_MAX_MS ? backoff : END_RETRY_MAX_MS;
        gw_log(GW_LOG_WARN, "room.end_retry", "room=%s rc=%d retry_ms=%lld", g->room_id, req->rc,
               (long long)backoff);
        g->end_attempts++;
        if (!g->srv->closing) {
            gw_timer_arm(g->srv, &g->end_retry, end_retry, backoff * 1000);
        }
    } else {
        g->end_pending = false;
        broadcast_ended(g, &req->u.end);
        gw_log(GW_LOG_NOTICE, "room.ended", "room=%s reason=%s messages=%d ai_job=%s", g->room_id,
               room_end_reason_name(g->end_fx.reason), req->u.end.n_messages,
               req->u.end.ai_job_id[0] != '\0' ? req->u.end.ai_job_id : "none");
        if (req->u.end.ai_job_id[0] != '\0') {
            gw_ai_kick(g->srv);
        }
        if (req->u.end.livekit_close_queued) {
            gw_lk_kick(g->srv);
        }
    }
    store_req_free(req);
    free(w);
}

static void submit_end(struct gw_room *g)
{
    struct gw_join none = {0};
    struct store_req *req = store_req_new(STORE_OP_END, end_done, NULL);
    if (req != NULL) {
        struct store_end *e = &req->u.end;
        snprintf(e->appointment_id, sizeof(e->appointment_id), "%s", g->info.appointment_id);
        e->ended_unix_ms = g->end_fx.ended_unix_ms;
        snprintf(e->reason, sizeof(e->reason), "%s", room_end_reason_name(g->end_fx.reason));
        e->ai_enabled = g->srv->cfg->ai_summary_url != NULL;
        e->livekit_close = g->srv->lk != NULL;
    }
    if (gw__submit(NULL, req, gw__wctx_new(g->srv, g, &none)) != 0 && !g->srv->closing) {
        g->end_attempts++;
        gw_timer_arm(g->srv, &g->end_retry, end_retry, LWS_US_PER_SEC);
    }
}

void gw_life_end(struct gw_server *srv, struct gw_room *g, const struct room_fx *fx)
{
    (void)srv;
    g->end_fx = *fx;
    g->end_pending = true;
    g->end_attempts = 0;
    submit_end(g);
}

/* ---- commands
 * ------------------------------------------------------------------------------------ */

void gw_life_cmd_end(struct gw_conn *c, struct gw_room *g, const struct gw_cmd *cmd)
{
    struct room_fx_list fx;
    room_fx_reset(&fx);
    int rc = room_on_end(g->core, &c->rc, gw_unix_ms(), &fx);
    if (rc != 0) {
        gw_conn_error(c, room_err_code(rc), room_strerror(rc), cmd->has_id ? cmd->id : NULL,
                      cmd->room, NULL, 0);
        return;
    }
    gw__apply_fx(c->srv, g, &fx, NULL);
}

static const char *rate_error_code(int rc)
{
    switch (rc) {
    case STORE_E_FORBIDDEN:
        return "forbidden";
    case STORE_E_NOTFOUND:
        return "not_found";
    case STORE_E_STATE:
    case STORE_E_CONFLICT:
        return "conflict";
    default:
        return gw__store_error_code(rc);
    }
}

static void rate_done(struct store_req *req)
{
    struct gw_wctx *w = req->arg;
    struct gw_conn *c = gw_conn_find(w->srv, w->join.conn_id);
    const struct store_rate *r = &req->u.rate;
    if (c != NULL && req->rc != 0) {
        gw_conn_error(c, rate_error_code(req->rc),
                      req->rc == STORE_E_STATE      ? "the session has not ended"
                      : req->rc == STORE_E_CONFLICT ? "already rated"
                                                    : store_strerror(req->rc),
                      gw__id_of(&w->join), w->room->room_id, NULL, 0);
    } else if (c != NULL) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:o}", "type", "rated", "room",
                              w->room->room_id, "sessionId", r->session_id, "rating", r->rating,
                              "tip", r->tip > 0 ? json_integer(r->tip) : json_null());
        gw__reply(c, o, gw__id_of(&w->join));
    }
    store_req_free(req);
    free(w);
}

void gw_life_cmd_rate(struct gw_conn *c, struct gw_room *g, const struct gw_cmd *cmd)
{
    struct gw_join j = {.conn_id = c->id, .has_id = cmd->has_id};
    memcpy(j.id, cmd->id, sizeof(j.id));
    snprintf(j.room_id, sizeof(j.room_id), "%s", g->room_id);
    struct store_req *req = store_req_new(STORE_OP_RATE, rate_done, NULL);
    if (req != NULL) {
        struct store_rate *r = &req->u.rate;
        snprintf(r->room_id, sizeof(r->room_id), "%s", g->room_id);
        snprintf(r->user_id, sizeof(r->user_id), "%s", c->user.id);
        r->rating = cmd->rating;
        r->tip = cmd->tip;
        if (cmd->comment != NULL && (r->comment = strdup(cmd->comment)) == NULL) {
            store_req_free(req);
            req = NULL;
        }
    }
    gw__submit(c, req, gw__wctx_new(c->srv, g, &j));
}
