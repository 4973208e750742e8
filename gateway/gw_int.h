/*
 * gw_int.h: declarations shared between the gateway's own files (server,
 * HTTP routes). Never included outside gateway/.
 */
#ifndef COACH_GW_INT_H
#define COACH_GW_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>
#include <libwebsockets.h>

#include "codec.h"
#include "config.h"
#include "frame.h"
#include "gw.h"
#include "map.h"
#include "room.h"
#include "store.h"

struct ai_client;
struct gw_http;
struct gw_static;

/* A one-shot timer on the server's libev loop (server.c). Per-connection
 * and per-room timers use these, not lws_sul: lws 4.1 keeps its suls in
 * one sorted list and inserts by walking it, so with a timer or two per
 * connection every connect, hello and pong walked all of them (with
 * 10 000 connections, most of the loop's time). libev keeps a heap.
 * Zeroed memory is a valid, unarmed timer. */
struct gw_timer {
    ev_timer w; /* first: the libev callback finds the gw_timer from it */
    void (*fire)(struct gw_timer *t);
};

struct gw_server;

/* Arm t to call fire after us microseconds (re-arming replaces the
 * previous deadline); cancel is a no-op on an unarmed timer. */
void gw_timer_arm(struct gw_server *srv, struct gw_timer *t, void (*fire)(struct gw_timer *t),
                  int64_t us);
void gw_timer_cancel(struct gw_server *srv, struct gw_timer *t);

/* One extra response header; name includes the colon ("etag:"). */
struct gw_http_header {
    const char *name;
    const char *value;
};

#define GW_HTTP_BODY_MAX 1024

/* Counters for /metrics. Loop thread only. */
struct gw_stats {
    uint64_t conns_total, frames_in, frames_out, msgs_in, msgs_out, bytes_out;
    uint64_t ws_writes; /* WebSocket writes: several frames queued together go in one */
    uint64_t errors[16];       /* by protocol error code, see gw_error_index() */
    uint64_t closes_slow;      /* 4008 */
    uint64_t persist_hist[16]; /* commit latency buckets, see metrics.c */
    uint64_t persist_count;
    uint64_t persist_sum_us;
    uint64_t maint_runs, maint_skipped, maint_failed; /* cleanup runs (maint.c) */
    uint64_t maint_deleted[3]; /* rows deleted: user sessions, auth codes, LiveKit event ids */
};

/* Frames queued on a connection go out together, up to this many bytes in
 * one write (ws.c: on_writeable). */
#define GW_WRITE_BATCH 16384

struct gw_server {
    const struct gw_config *cfg; /* borrowed from main */
    struct gw_map *conns_by_id;  /* uint64 id -> struct gw_conn (borrowed: lws owns) */
    struct gw_map *rooms;        /* roomId -> struct gw_room (owned) */
    struct gw_map *user_conns;   /* user id -> (uintptr_t) connection count */
    uint64_t next_conn_id;
    size_t n_conns; /* authenticated or not */
    struct room_cfg room_cfg;
    struct gw_stats stats;
    unsigned char *wbuf;         /* owned: LWS_PRE + GW_WRITE_BATCH, ws.c's batched writes */
    struct lws_context *ctx;     /* owned */
    struct ev_loop *loop;        /* owned: the libev loop lws runs on (server.c) */
    struct lws_vhost *vhost;     /* owned by ctx */
    struct store *store;         /* owned */
    lws_sorted_usec_list_t tick; /* housekeeping timer */
    volatile sig_atomic_t *stop; /* main's flag */
    bool draining;
    bool closing; /* the context is being destroyed: arm no more timers */
    int64_t drain_deadline_ms;
    int64_t next_sweep_ms;   /* monotonic: next gw_rooms_sweep */
    int64_t next_maint_ms;   /* monotonic: next cleanup run (maint.c); 0: not scheduled yet */
    struct ai_client *ai;    /* owned; NULL without AI_SUMMARY_URL */
    struct gw_static *web;   /* owned: the browser client's files (static.c) */
    int64_t ai_next_poll_ms; /* monotonic; 0: no poll scheduled */
    bool ai_claiming;
    int ai_running;
    struct ai_client *lk;    /* owned: DeleteRoom calls; NULL without LIVEKIT_URL (lkjobs.c) */
    struct store_listen *listen; /* owned: other nodes' commits (catchup.c) */
    int64_t lk_next_poll_ms; /* monotonic; 0: no poll scheduled */
    bool lk_claiming;
    int lk_running;
    uint64_t lk_hooks[6];    /* webhooks by result (webhook.c), for /metrics */
    struct store_job_stats job_stats; /* durable jobs by state, refreshed by the tick */
    bool job_stats_known, job_stats_pending;
    int64_t next_job_stats_ms; /* monotonic */
    int port;
    struct {                            /* this node among several (node.c) */
        lws_sorted_usec_list_t timer;   /* the next heartbeat */
        int64_t next_beat_ms;           /* monotonic; 0: none armed */
        int64_t beat_sent_ms;           /* monotonic: the last beat's start */
        int64_t last_full_ms;           /* monotonic: the last full beat's start; 0: none yet */
        bool beat_pending, kick_again, leaving, left;
        bool alive;                     /* a beat has written this node's row */
        int beat_failures;
        int peers;                      /* other live nodes, as of the last beat */
        size_t n_held;                  /* room clock leases held, as of the last beat */
    } node;
};

#define GW_API_BODY_MAX 16384

/* The /api routes (api.c dispatches; each runs once its body is in). */
enum gw_api_route {
    GW_API_NONE = 0,
    GW_API_SESSION_GET,    /* GET /api/sessions/{id} */
    GW_API_SESSION_RATING, /* POST /api/sessions/{id}/rating */
    GW_API_AUTH_CODES,     /* POST /api/auth/codes (api_auth.c) */
    GW_API_AUTH_REDEEM,    /* POST /api/auth/redeem (api_auth.c) */
    GW_API_LIVEKIT_TOKEN,  /* GET /api/rooms/{roomId}/livekit-token (api_livekit.c) */
    GW_API_LIVEKIT_HOOK,   /* POST /webhooks/livekit (webhook.c) */
};

/* POST /webhooks/livekit (webhook.c): the raw body is collected like an
 * /api body (at most GW_WEBHOOK_BODY_MAX), then verified and applied. */
void gw_webhook_begin(struct gw_server *srv, struct gw_http *h, bool get);

/* Every other path: the browser client's static files from WEB_ROOT
 * (static.c): GET and HEAD, 404 when there is no such file, 405 for other
 * methods. Loop thread; reads only memory. */
void gw_static_route(struct gw_server *srv, struct gw_http *h, const char *path, bool get);

/* static.c: resolve the web root (configured: WEB_ROOT, NULL: the default
 * beside the executable) and load its files into memory. Main thread, at
 * start-up. A configured root that is not a directory fails with a message
 * naming WEB_ROOT; a missing default only logs a WARN (nothing is served).
 * *out is owned by the caller (gw_static_free). */
int gw_static_open(const char *configured, struct gw_static **out, struct gw_err *err);
void gw_static_free(struct gw_static *st);

/* static.c: true when path is plain enough to look up: "/" then
 * [A-Za-z0-9._-] segments, no "..", "//", hidden names, '%', '\\' or
 * control bytes, at most 255 bytes. */
bool gw_static_path_ok(const char *path);

/* Per-HTTP-connection state (lws per_session_data). Loop thread only. */
struct gw_http {
    struct lws *wsi;
    struct gw_server *srv;
    struct store_req *pending; /* owned by the store until its done callback */
    /* An /api request in progress (api.c, api_auth.c). */
    enum gw_api_route api_route;
    bool api_post;
    char api_session_id[STORE_ID_MAX + 1];
    char api_room_id[STORE_ROOM_MAX + 1]; /* GW_API_LIVEKIT_TOKEN */
    char *api_token; /* the Bearer token, owned, wiped */
    char *api_body;  /* POST body, owned, at most api_body_cap */
    size_t api_body_len;
    size_t api_body_cap; /* GW_API_BODY_MAX, or GW_LK_BODY_MAX for the webhook */
    bool hook_json;      /* the webhook's Content-Type is (webhook+)json */
    bool api_too_large;
    struct store_user api_user;
    bool has_response;
    unsigned int status;
    const char *content_type;
    /* Reset after each response: extra headers (borrowed; they must outlive
     * the connection: static strings or srv->web), Cache-Control (NULL:
     * no-store), and for HEAD the Content-Length of the body not sent. */
    const struct gw_http_header *headers;
    size_t n_headers;
    const char *cache_control;
    size_t head_len;
    size_t body_len;
    char *body; /* owned, malloc'd */
};

/* Connection states. */
enum gw_conn_state {
    GW_CONN_NEW,     /* upgraded; waiting for hello (or the header's auth) */
    GW_CONN_AUTHING, /* a token is being checked */
    GW_CONN_READY,   /* authenticated */
    GW_CONN_CLOSING, /* a close is queued behind the outbox */
};

/* A connection's view of one room it joined. */
struct gw_conn_room {
    struct gw_room *room;     /* borrowed (rooms live until shutdown) */
    bool joining;             /* `joined` not sent yet: deliveries are in its history */
    uint64_t floor_seq;       /* the connection has every message up to this seq (since,
                                 joined's history): catch-ups skip them (catchup.c) */
    struct gw_frame *held[4]; /* timer / session.ended that came while joining */
    size_t n_held;
};

/* Per-WebSocket-connection state: lws's per_session_data for coachroom.v1.
 * It never moves while the connection lives (struct room_conn needs that). */
struct gw_conn {
    struct lws *wsi;
    struct gw_server *srv;
    uint64_t id;
    enum gw_conn_state state;
    struct store_user user;
    bool is_admin;
    bool counted;                    /* counted in srv->user_conns */
    char *token; /* session token, for revocation checks: owned, wiped; NULL for a JWT */
    bool is_session_token;
    int64_t token_expires_unix_ms;
    struct room_conn rc;
    struct gw_conn_room rooms[ROOM_CONN_MAX_ROOMS];
    struct gw_outbox out;
    unsigned char *rx; /* frame being assembled, max_frame_bytes */
    size_t rx_len;
    int close_code;
    char close_reason[64];
    struct gw_timer auth_timer; /* hello deadline, then token expiry/revocation */
    struct gw_timer idle_timer; /* keepalive: ping after WS_PING_SEC silent, drop after WS_IDLE_SEC */
    int64_t last_rx_ms;         /* monotonic: the last frame or pong received */
    bool ping_due;              /* a ping is to be written before the next frame */
};

/* A loaded room: the pure core plus what the gateway keeps beside it. */
struct gw_room {
    char room_id[STORE_ROOM_MAX + 1];
    struct gw_server *srv;
    struct room *core;            /* NULL while loading */
    struct gw_timer timer;        /* the room clock: room_next_deadline_ms() */
    int64_t timer_at_unix_ms;     /* armed deadline, ROOM_NO_DEADLINE when none */
    struct gw_timer end_retry;
    struct room_fx end_fx; /* the END being persisted (kept for retries) */
    bool end_pending;      /* END submitted, not yet committed */
    int end_attempts;
    struct store_room info;
    struct gw_join *pending;      /* joins waiting for the load */
    struct gw_deferred *deferred; /* their connections' next commands, in order */
    bool media[2];                /* coach, client: has a LiveKit participant (webhooks) */
    bool catching_up;             /* a catch-up read is in flight (catchup.c) */
    bool catch_again;             /* and another one is wanted after it */
    struct gw_timer catch_retry;  /* a failed catch-up, tried again */
    int catch_failures;
    size_t n_deferred;
    int64_t lease_until_ms; /* monotonic: the room's clock is this node's until then (node.c) */
    bool loading_presence;  /* joins wait for the presence on other nodes (node.c) */
    struct gw_presence_due *pres_due; /* owned: presence writes waiting (node.c) */
    size_t n_pres_due, cap_pres_due;
    struct gw_timer pres_timer; /* the earliest of them */
};

/* A presence row write that waits: a leave for its grace (a reconnect
 * within it cancels it), or a write the store refused, for its retry. */
struct gw_presence_due {
    struct room_member_info who;
    bool online;
    int64_t due_ms; /* monotonic */
};

/* A command that arrived while its room was loading (bounded per room). */
struct gw_deferred {
    struct gw_deferred *next;
    uint64_t conn_id;
    struct gw_cmd cmd; /* owned */
};

/* A join waiting on the store (room load, session row, history). */
struct gw_join {
    struct gw_join *next;
    uint64_t conn_id;
    bool has_id;
    char id[65];
    bool has_since;
    int64_t since;
    char room_id[STORE_ROOM_MAX + 1];
};

/* Monotonic milliseconds: the loop's "now", read once per event. */
int64_t gw_now_ms(void);

/* Wall-clock unix milliseconds (the rooms core's time base). */
int64_t gw_unix_ms(void);

/* "2026-11-25T08:33:49.974Z" into out (at least 32 bytes). */
void gw_iso8601(int64_t unix_ms, char *out, size_t cap);

/* The lws protocol callback for coachroom.v1 (ws.c). */
int gw_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len);

/* Upgrade checks (path, subprotocol, Origin): 0 to allow, 1 after writing
 * a refusal. Called from the HTTP protocol's CONFIRM_UPGRADE. */
int gw_ws_confirm_upgrade(struct gw_server *srv, struct lws *wsi);

/* auth.c: the store request that resolves a bearer token's user (done and
 * arg set): STORE_OP_AUTH_USER for a valid JWT (*jwt_exp_unix_ms = its
 * exp), STORE_OP_AUTH_SESSION for anything shaped like a session token,
 * NULL for an invalid token (or out of memory). token need not be
 * NUL-terminated. */
struct store_req *gw_auth_request(const struct gw_config *cfg, const char *token, size_t len,
                                  store_done_fn done, void *arg, int64_t *jwt_exp_unix_ms);

/* ws.c: the connection with this id, or NULL when it is gone. */
struct gw_conn *gw_conn_find(struct gw_server *srv, uint64_t id);

/* ws.c: queue a frame (a new reference) to c; a full outbox closes c with
 * 4008. Returns 0 or -1 when c is closing/closed. */
int gw_conn_send(struct gw_conn *c, struct gw_frame *f);

/* ws.c: queue obj (borrowed) to c as one frame. */
int gw_conn_send_json(struct gw_conn *c, const json_t *obj);

/* ws.c: send `error` then close with code after it (code 0: stay open). */
void gw_conn_error(struct gw_conn *c, const char *code, const char *message, const char *id,
                   const char *room, const char *client_msg_id, int close_code);

/* ws.c: close c with code and reason once what is queued is written. */
void gw_conn_close(struct gw_conn *c, int code, const char *reason);

/* wsroom.c: the room commands of a ready connection. */
void gw_room_cmd(struct gw_conn *c, const struct gw_cmd *cmd);
/* wsroom.c: c is closing: leave its rooms with presence effects. */
void gw_room_disconnect(struct gw_conn *c);
/* life.c: re-arm g's clock timer after anything that may move its deadline. */
void gw_life_rearm(struct gw_room *g);
/* life.c: execute a WARNING or END effect of g. */
void gw_life_warning(struct gw_server *srv, struct gw_room *g, const struct room_fx *fx);
void gw_life_end(struct gw_server *srv, struct gw_room *g, const struct room_fx *fx);
/* life.c: the `end` and `rate` commands of a joined connection. */
void gw_life_cmd_end(struct gw_conn *c, struct gw_room *g, const struct gw_cmd *cmd);
void gw_life_cmd_rate(struct gw_conn *c, struct gw_room *g, const struct gw_cmd *cmd);
/* aijobs.c: look for due AI summary jobs now (an ending just queued one). */
void gw_ai_kick(struct gw_server *srv);
/* aijobs.c: claim due jobs when a poll is due (called by the housekeeping tick). */
void gw_ai_poll(struct gw_server *srv);
/* maint.c: start the periodic cleanup of expired sessions and spent auth
 * codes when it is due (called by the housekeeping tick). */
void gw_maint_tick(struct gw_server *srv);
/* lkjobs.c: the durable LiveKit room-close jobs (RoomService/DeleteRoom),
 * driven like the AI jobs: look for due ones now; poll when due (tick);
 * start the HTTP client when LIVEKIT_URL and the API key and secret are
 * set (srv->lk), stop it. */
void gw_lk_kick(struct gw_server *srv);
void gw_lk_poll(struct gw_server *srv);
int gw_lk_open(struct gw_server *srv, struct gw_err *err);
void gw_lk_close(struct gw_server *srv);
/* webhook.c: the client of a webhook request went away (http.c). */
void gw_webhook_detach(struct gw_http *h);
/* aijobs.c: start the AI client when AI_SUMMARY_URL is set; stop it. */
int gw_ai_open(struct gw_server *srv, struct gw_err *err);
void gw_ai_close(struct gw_server *srv);

/* life.c: cancel g's timers (before freeing g). */
void gw_life_stop(struct gw_room *g);

/* wsroom.c: load the rooms whose session runs (status active) that are not
 * in memory, so their clocks run without anyone joining (start-up, then
 * periodically). */
void gw_rooms_sweep(struct gw_server *srv);

/* catchup.c: a store_note_fn: another node (or this one) committed up to
 * note->seq in a room; NULL: notes may have been lost, catch every room up. */
void gw_rooms_note(void *arg, const struct store_note *note);
/* catchup.c: read g's messages after its lastSeq from the database and
 * deliver them in seq order (messages committed by other nodes). */
void gw_room_catch_up(struct gw_room *g);

/* ---- several nodes (node.c) ---- */

/* First heartbeat now, then every NODE_HEARTBEAT_SEC. */
void gw_node_start(struct gw_server *srv);
/* A room wants its clock: a heartbeat (lease request) soon. */
void gw_node_kick(struct gw_server *srv);
/* Whether g's clock lease is this node's now. */
bool gw_node_clock_mine(const struct gw_room *g);
/* Draining, everything else done: remove this node's rows; true once gone. */
bool gw_node_drained(struct gw_server *srv);
void gw_node_stop(struct gw_server *srv);
/* ROOM_FX_LOCAL_PRESENCE: publish fx->user here (or gone from here). */
void gw_node_local_presence(struct gw_server *srv, struct gw_room *g, const struct room_fx *fx);
/* g is going away: its waiting presence writes are dropped (the node's
 * rows go with the node at shutdown). */
void gw_node_presence_free(struct gw_room *g);
/* A TYPING of a member here: tell the other nodes (when there are any). */
void gw_node_typing(struct gw_server *srv, const struct gw_room *g, const struct room_fx *fx);
/* Read who is connected to g on the other nodes (then call then, if set). */
void gw_node_read_presence(struct gw_room *g);
int gw_node_read_presence_then(struct gw_room *g, void (*then)(struct gw_room *g));
/* Read g's session from the database and bring the core up to it. */
void gw_node_sync(struct gw_room *g);
/* A state, presence or typing note about loaded room g. */
void gw_node_note(struct gw_server *srv, struct gw_room *g, const struct store_note *note);

/* wsroom.c: cancel every room's timers and arm no more (before the lws
 * context is destroyed: the timers live in it). */
void gw_rooms_stop_timers(struct gw_server *srv);

/* wsroom.c: free every room (shutdown, after the context). */
void gw_rooms_free(struct gw_server *srv);

/* metrics.c: count an `error` sent, by its protocol code. */
void gw_stats_error(struct gw_stats *st, const char *code);
/* metrics.c: one commit latency observation. */
void gw_stats_persist(struct gw_stats *st, int64_t commit_us);
/* metrics.c: the Prometheus text exposition into a malloc'd string. */
char *gw_metrics_render(const struct gw_server *srv, size_t *len);

/* http.c: answer h with status and a JSON body (copied). */
void gw_http_respond(struct gw_http *h, unsigned int status, const char *body);
/* Respond with body (malloc'd, taken; freed wiped) of the given type. */
void gw_http_respond_take(struct gw_http *h, unsigned int status, const char *type, char *body,
                          size_t len);
/* http.c: answer h with {"error":{"code","message"}}. */
void gw_http_error(struct gw_http *h, unsigned int status, const char *code, const char *message);
/* http.c: answer h with obj (taken) serialized. */
void gw_http_respond_json(struct gw_http *h, unsigned int status, json_t *obj);

/* api.c: an /api/ request arrived (LWS_CALLBACK_HTTP). */
void gw_api_begin(struct gw_server *srv, struct gw_http *h, const char *path, bool is_get);
/* api.c: a piece of its body, and its end. */
void gw_api_body(struct gw_http *h, const void *in, size_t len);
void gw_api_body_done(struct gw_http *h);
/* api_auth.c: run POST /api/auth/codes or /api/auth/redeem once the body
 * is complete (h->api_body, h->api_body_len; h->api_route says which). */
void gw_api_auth_run(struct gw_http *h);
/* api.c: submit req for h (req->arg = h, h->pending = req); on failure req
 * is freed and a 503 is the response. 0 or -1. */
int gw_api_submit(struct gw_http *h, struct store_req *req);
/* api.c: the HTTP status and error code of a store failure rc. */
unsigned int gw_api_status(int rc, const char **code);
/* api_livekit.c: GET /api/rooms/{roomId}/livekit-token, once authenticated. */
void gw_api_livekit_token(struct gw_http *h);
/* webhook.c: POST /webhooks/livekit, once its body is in. */
void gw_webhook_run(struct gw_http *h);

/* api.c: free what h's API request owns. */
void gw_api_fini(struct gw_http *h);

/* The lws protocol callback for plain HTTP (protocols[0]). */
int gw_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len);

#endif
