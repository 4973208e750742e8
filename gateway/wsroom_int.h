/*
 * wsroom_int.h: helpers shared by the room files of the gateway (wsroom.c:
 * joins and effects; wscmd.c: chat, typing, leave, history; life.c: the
 * clock, ending, ratings). Loop thread only. Never included outside
 * gateway/.
 */
#ifndef COACH_GW_WSROOM_INT_H
#define COACH_GW_WSROOM_INT_H

#include "gw_int.h"

/* A join, or a command, on its way through the store: ids and copies,
 * never a pointer to a connection. */
struct gw_wctx {
    struct gw_server *srv;
    struct gw_room *room; /* borrowed: rooms live until shutdown */
    struct gw_join join;  /* conn id, request id, since, room id */
    char client_msg_id[GW_ID_MAX + 1];
    int remaining_sec;    /* a timer warning's, sent once it is recorded (life.c) */
    int64_t ends_unix_ms; /* likewise */
    void (*then)(struct gw_room *g); /* node.c: what follows a presence read */
};

/* c's slot for room g (or for the room whose core is given), or NULL. */
struct gw_conn_room *gw__conn_slot(struct gw_conn *c, const struct gw_room *g);
struct gw_conn_room *gw__conn_slot_core(struct gw_conn *c, const struct room *core);
void gw__conn_slot_drop(struct gw_conn *c, const struct gw_room *g);

/* The request id to echo, or NULL. */
const char *gw__id_of(const struct gw_join *j);

/* Send o (taken) to c with "id" set when id is not NULL. */
void gw__reply(struct gw_conn *c, json_t *o, const char *id);

/* The protocol error code for a store failure. */
const char *gw__store_error_code(int rc);

/* A context for a store request (copies j), or NULL. */
struct gw_wctx *gw__wctx_new(struct gw_server *srv, struct gw_room *g, const struct gw_join *j);

/* Submit req with w as its context. On failure both are freed and c (if
 * not NULL) hears `unavailable`. 0 or the store's error. */
int gw__submit(struct gw_conn *c, struct store_req *req, struct gw_wctx *w);

/* Send f to c, a member of the room of slot s. While c's join is in
 * progress the frame is held until `joined` (hold: timer, session.ended)
 * or dropped (the `joined` snapshot covers it: messages, presence,
 * typing). Returns 1 when sent or held. */
int gw__room_send(struct gw_conn *c, struct gw_conn_room *s, struct gw_frame *f, bool hold);

/* Send `joined`'s held frames, or drop them (send false). */
void gw__release_held(struct gw_conn *c, struct gw_conn_room *s, bool send);

/* Queue f to the connections fx designates (see gw__room_send for joining
 * ones); returns how many got it. */
size_t gw__send_to_targets(struct gw_server *srv, const struct room_fx *fx, struct gw_frame *f,
                           bool hold);

/* Serialize o (taken) once and send it as gw__send_to_targets does. */
void gw__send_fx_json(struct gw_server *srv, const struct room_fx *fx, json_t *o, bool hold);

/* Execute the effects in order. join: the join they belong to, if any. */
void gw__apply_fx(struct gw_server *srv, struct gw_room *g, const struct room_fx_list *fx,
                  const struct gw_join *join);

/* wscmd.c: the commands of a joined connection. */
void gw__cmd_chat(struct gw_conn *c, struct gw_room *g, const struct gw_cmd *cmd);
void gw__cmd_typing(struct gw_conn *c, struct gw_room *g, const struct gw_cmd *cmd);
void gw__cmd_leave(struct gw_conn *c, struct gw_room *g, const struct gw_cmd *cmd);
void gw__cmd_history(struct gw_conn *c, struct gw_room *g, const struct gw_cmd *cmd);

#endif
