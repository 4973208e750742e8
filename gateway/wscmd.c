/*
 * wscmd.c: the commands of a connection that joined a room: chat (durable:
 * acked and delivered only after the store's commit), typing, leave and
 * history. See wsroom.c for joins and the execution of effects.
 */
#include <stdlib.h>
#include <string.h>

#include "msgs.h"
#include "wsroom_int.h"

/* ---- chat ------------------------------------------------------------------------------------ */

static json_t *ack_json(const struct store_chat *ch)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:o}", "type", "ack", "clientMsgId", ch->client_msg_id,
                     "seq", (json_int_t)ch->seq, "messageId", ch->message_id, "createdAt",
                     gw_msg_time(ch->created_unix_ms));
}

/* The `message` frame of a committed chat, serialized once for everyone.
 * Only the coach and the client chat, so the sender's name is the
 * appointment's (the DELIVER effect does not carry the member). */
static struct gw_frame *message_frame(const struct gw_room *g, const struct store_chat *ch)
{
    struct store_message m = {
        .seq = ch->seq, .role = ch->role, .created_unix_ms = ch->created_unix_ms};
    memcpy(m.message_id, ch->message_id, sizeof(m.message_id));
    memcpy(m.client_msg_id, ch->client_msg_id, sizeof(m.client_msg_id));
    memcpy(m.user_id, ch->user_id, sizeof(m.user_id));
    snprintf(m.display_name, sizeof(m.display_name), "%s",
             ch->role == STORE_ROLE_COACH ? g->info.coach_name : g->info.client_name);
    m.text = ch->text;
    json_t *o = gw_msg_message(g->room_id, &m, 0);
    struct gw_frame *f = o != NULL ? gw_frame_from_json(o) : NULL;
    json_decref(o);
    return f;
}

static void record_persist(struct gw_stats *st, int64_t commit_us)
{
    st->persist_count++;
    st->persist_sum_us += (uint64_t)(commit_us > 0 ? commit_us : 0);
    gw_stats_persist(st, commit_us);
}

static void deliver_committed(struct gw_wctx *w, struct store_chat *ch)
{
    struct gw_server *srv = w->srv;
    struct room_fx_list fx;
    room_fx_reset(&fx);
    int rc = room_on_chat_committed(w->room->core, (uint64_t)ch->seq, w->join.conn_id, gw_unix_ms(),
                                    &fx);
    if (rc != 0 && rc != ROOM_E_SEQ_OLD && rc != ROOM_E_SEQ_GAP) {
        gw_log(GW_LOG_ERROR, "room.seq_out_of_order", "room=%s seq=%lld last=%llu rc=%d",
               w->room->room_id, (long long)ch->seq,
               (unsigned long long)room_last_seq(w->room->core), rc);
    }
    for (size_t i = 0; i < fx.len; i++) {
        const struct room_fx *e = &fx.v[i];
        if (e->kind == ROOM_FX_ACK) {
            struct gw_conn *c = gw_conn_find(srv, e->to.conn_id);
            if (c != NULL) {
                gw__reply(c, ack_json(ch), gw__id_of(&w->join));
            }
        } else if (e->kind == ROOM_FX_DELIVER) {
            struct gw_frame *f = message_frame(w->room, ch);
            if (f != NULL) {
                srv->stats.msgs_out += gw__send_to_targets(srv, e, f, false);
                gw_frame_unref(f);
            }
        }
    }
    if (rc == ROOM_E_SEQ_GAP) {
        gw_room_catch_up(w->room); /* another node's messages first; this one comes with them */
    }
    if (rc == ROOM_E_SEQ_OLD || rc == ROOM_E_SEQ_GAP) {
        /* stored all the same: the sender gets its ack now */
        struct gw_conn *c = gw_conn_find(srv, w->join.conn_id);
        if (c != NULL) {
            gw__reply(c, ack_json(ch), gw__id_of(&w->join));
        }
    }
}

static void chat_done(struct store_req *req)
{
    struct gw_wctx *w = req->arg;
    struct store_chat *ch = &req->u.chat;
    if (req->rc != 0) {
        if (strcmp(gw__store_error_code(req->rc), "internal") == 0) {
            gw_log(GW_LOG_WARN, "chat.not_stored", "room=%s rc=%d err=%s", w->room->room_id,
                   req->rc, req->err.msg);
        }
        struct gw_conn *c = gw_conn_find(w->srv, w->join.conn_id);
        if (c != NULL) {
            gw_conn_error(c, gw__store_error_code(req->rc),
                          req->rc == STORE_E_UNAVAILABLE ? "database unavailable; resend later"
                                                         : "message not stored",
                          gw__id_of(&w->join), w->room->room_id, ch->client_msg_id, 0);
        }
    } else if (ch->duplicate) {
        struct gw_conn *c = gw_conn_find(w->srv, w->join.conn_id);
        if (c != NULL) {
            gw__reply(c, ack_json(ch), gw__id_of(&w->join));
        }
    } else {
        record_persist(&w->srv->stats, ch->commit_us);
        deliver_committed(w, ch);
    }
    store_req_free(req);
    free(w);
}

static struct store_req *chat_request(struct gw_conn *c, struct gw_room *g, const struct room_fx *e)
{
    struct store_req *req = store_req_new(STORE_OP_CHAT, chat_done, NULL);
    char *text = malloc(e->text_len + 1);
    if (req == NULL || text == NULL) {
        store_req_free(req);
        free(text);
        return NULL;
    }
    struct store_chat *ch = &req->u.chat;
    memcpy(text, e->text, e->text_len);
    text[e->text_len] = '\0';
    ch->text = text;
    ch->text_len = e->text_len;
    bool coach = e->user.role == ROOM_ROLE_COACH;
    ch->role = coach ? STORE_ROLE_COACH : STORE_ROLE_CLIENT;
    snprintf(ch->appointment_id, sizeof(ch->appointment_id), "%s", g->info.appointment_id);
    snprintf(ch->session_id, sizeof(ch->session_id), "%s",
             coach ? g->info.coach_session_id : g->info.client_session_id);
    snprintf(ch->user_id, sizeof(ch->user_id), "%s", c->user.id);
    snprintf(ch->client_msg_id, sizeof(ch->client_msg_id), "%s", e->client_msg_id);
    return req;
}

void gw__cmd_chat(struct gw_conn *c, struct gw_room *g, const struct gw_cmd *cmd)
{
    const char *id = cmd->has_id ? cmd->id : NULL;
    c->srv->stats.msgs_in++;
    if (room_conn_role(g->core, &c->rc) == ROOM_ROLE_OBSERVER) {
        gw_conn_error(c, "forbidden", "observers cannot chat", id, cmd->room, cmd->client_msg_id,
                      0);
        return;
    }
    struct room_fx_list fx;
    room_fx_reset(&fx);
    struct room_chat_in in = {
        .client_msg_id = cmd->client_msg_id, .text = cmd->text, .text_len = cmd->text_len};
    int rc = room_on_chat(g->core, &c->rc, &in, gw_unix_ms(), &fx);
    if (rc != 0) {
        gw_conn_error(c, room_err_code(rc), room_strerror(rc), id, cmd->room, cmd->client_msg_id,
                      rc == ROOM_E_FLOOD ? 1008 : 0);
        return;
    }
    for (size_t i = 0; i < fx.len; i++) {
        if (fx.v[i].kind != ROOM_FX_PERSIST_CHAT) {
            continue;
        }
        struct gw_join j = {.conn_id = c->id, .has_id = cmd->has_id};
        memcpy(j.id, cmd->id, sizeof(j.id));
        snprintf(j.room_id, sizeof(j.room_id), "%s", g->room_id);
        struct gw_wctx *w = gw__wctx_new(c->srv, g, &j);
        if (w != NULL) {
            snprintf(w->client_msg_id, sizeof(w->client_msg_id), "%s", cmd->client_msg_id);
        }
        gw__submit(c, chat_request(c, g, &fx.v[i]), w);
    }
}

/* ---- typing, leave, history --------------------------------------------------------------------
 */

void gw__cmd_typing(struct gw_conn *c, struct gw_room *g, const struct gw_cmd *cmd)
{
    struct room_fx_list fx;
    room_fx_reset(&fx);
    int rc = room_on_typing(g->core, &c->rc, cmd->typing, gw_unix_ms(), &fx);
    if (rc != 0) {
        gw_conn_error(c, room_err_code(rc), room_strerror(rc), cmd->has_id ? cmd->id : NULL,
                      cmd->room, NULL, 0);
        return;
    }
    if (fx.len == 1 && fx.v[0].kind == ROOM_FX_TYPING) {
        gw_node_typing(c->srv, g, &fx.v[0]);
    }
    gw__apply_fx(c->srv, g, &fx, NULL);
}

void gw__cmd_leave(struct gw_conn *c, struct gw_room *g, const struct gw_cmd *cmd)
{
    struct room_fx_list fx;
    room_fx_reset(&fx);
    int rc = room_on_leave(g->core, &c->rc, gw_unix_ms(), &fx);
    if (rc != 0) {
        gw_conn_error(c, room_err_code(rc), room_strerror(rc), cmd->has_id ? cmd->id : NULL,
                      cmd->room, NULL, 0);
        return;
    }
    gw__conn_slot_drop(c, g);
    gw__apply_fx(c->srv, g, &fx, NULL);
    gw__reply(c, json_pack("{s:s, s:s}", "type", "left", "room", g->room_id),
              cmd->has_id ? cmd->id : NULL);
}

static void history_done(struct store_req *req)
{
    struct gw_wctx *w = req->arg;
    struct gw_conn *c = gw_conn_find(w->srv, w->join.conn_id);
    if (c != NULL && req->rc != 0) {
        gw_conn_error(c, gw__store_error_code(req->rc), "cannot read the history; retry",
                      gw__id_of(&w->join), w->room->room_id, NULL, 0);
    } else if (c != NULL) {
        const struct store_history *h = &req->u.history;
        gw__reply(c,
                  json_pack("{s:s, s:s, s:o, s:b}", "type", "history", "room", w->room->room_id,
                            "messages", gw_msg_message_list(h->msgs, h->n_msgs), "hasMore",
                            h->has_more),
                  gw__id_of(&w->join));
    }
    store_req_free(req);
    free(w);
}

void gw__cmd_history(struct gw_conn *c, struct gw_room *g, const struct gw_cmd *cmd)
{
    struct gw_join j = {.conn_id = c->id, .has_id = cmd->has_id};
    memcpy(j.id, cmd->id, sizeof(j.id));
    snprintf(j.room_id, sizeof(j.room_id), "%s", g->room_id);
    struct store_req *req = store_req_new(STORE_OP_HISTORY, history_done, NULL);
    if (req != NULL) {
        struct store_history *h = &req->u.history;
        snprintf(h->appointment_id, sizeof(h->appointment_id), "%s", g->info.appointment_id);
        snprintf(h->coach_id, sizeof(h->coach_id), "%s", g->info.coach_id);
        h->after_seq = -1;
        h->before_seq = cmd->has_before ? cmd->before : INT64_MAX;
        h->limit = cmd->limit;
    }
    gw__submit(c, req, gw__wctx_new(c->srv, g, &j));
}
