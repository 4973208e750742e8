/*
 * ws.c: the coachroom.v1 WebSocket protocol: upgrade checks, connection
 * lifecycle, authentication, frame assembly, the outbox writer.
 *
 * DESIGN: each connection is a struct gw_conn (lws per-session data, so it
 * never moves). Frames are assembled up to MAX_FRAME_BYTES, decoded by the
 * codec and dispatched: hello/ping here, room commands in wsroom.c. Store
 * requests never hold a pointer to a connection: they carry its id and
 * look it up on completion, so a connection may vanish at any time. A close
 * is queued behind the outbox (`error` first, then the close frame).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "gw_int.h"
#include "jwt.h"

#define HELLO_TIMEOUT_US (10 * LWS_USEC_PER_SEC)

/* ---- lookup and sending ------------------------------------------------------ */

struct gw_conn *gw_conn_find(struct gw_server *srv, uint64_t id)
{
    return gw_map_get(srv->conns_by_id, &id, sizeof(id));
}

int gw_conn_send(struct gw_conn *c, struct gw_frame *f)
{
    if (c->state == GW_CONN_CLOSING) {
        return -1;
    }
    if (gw_outbox_push(&c->out, f) != 0) {
        c->srv->stats.closes_slow++;
        gw_conn_close(c, 4008, "slow consumer");
        return -1;
    }
    lws_callback_on_writable(c->wsi);
    return 0;
}

int gw_conn_send_json(struct gw_conn *c, const json_t *obj)
{
    struct gw_frame *f = gw_frame_from_json(obj);
    if (f == NULL) {
        gw_conn_close(c, 1011, "internal error");
        return -1;
    }
    int rc = gw_conn_send(c, f);
    gw_frame_unref(f);
    return rc;
}

void gw_conn_close(struct gw_conn *c, int code, const char *reason)
{
    if (c->state == GW_CONN_CLOSING) {
        return;
    }
    c->state = GW_CONN_CLOSING;
    c->close_code = code;
    snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
    lws_callback_on_writable(c->wsi);
}

void gw_conn_error(struct gw_conn *c, const char *code, const char *message, const char *id,
                   const char *room, const char *client_msg_id, int close_code)
{
    json_t *o = json_pack("{s:s, s:s, s:s}", "type", "error", "code", code, "message", message);
    if (o != NULL) {
        if (id != NULL && id[0] != '\0') {
            json_object_set_new(o, "id", json_string(id));
        }
        if (room != NULL && room[0] != '\0') {
            json_object_set_new(o, "room", json_string(room));
        }
        if (client_msg_id != NULL && client_msg_id[0] != '\0') {
            json_object_set_new(o, "clientMsgId", json_string(client_msg_id));
        }
        gw_conn_send_json(c, o);
        json_decref(o);
    }
    gw_stats_error(&c->srv->stats, code);
    if (close_code != 0) {
        gw_conn_close(c, close_code, message);
    }
}

/* ---- upgrade ----------------------------------------------------------------- */

static int refuse_upgrade(struct lws *wsi, unsigned int status, const char *code, const char *msg)
{
    char body[256];
    int n =
        snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, msg);
    unsigned char buf[LWS_PRE + 768];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
    if (lws_add_http_common_headers(wsi, status, "application/json", (lws_filepos_t)n, &p, end) ||
        lws_finalize_http_header(wsi, &p, end) || (size_t)(end - p) < (size_t)n) {
        return -1;
    }
    memcpy(p, body, (size_t)n);
    p += n;
    if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_FINAL) < 0) {
        return -1;
    }
    return 1;
}

static bool origin_allowed(const struct gw_config *cfg, const char *origin)
{
    if (cfg->n_allowed_origins == 0) {
        return true;
    }
    for (size_t i = 0; i < cfg->n_allowed_origins; i++) {
        if (strcasecmp(cfg->allowed_origins[i], origin) == 0) {
            return true;
        }
    }
    return false;
}

static bool offers_subprotocol(struct lws *wsi)
{
    char protos[256];
    if (lws_hdr_copy(wsi, protos, sizeof(protos), WSI_TOKEN_PROTOCOL) <= 0) {
        return false;
    }
    for (char *p = protos; *p != '\0';) {
        p += strspn(p, " ,");
        size_t n = strcspn(p, " ,");
        if (n == strlen("coachroom.v1") && strncmp(p, "coachroom.v1", n) == 0) {
            return true;
        }
        p += n;
    }
    return false;
}

int gw_ws_confirm_upgrade(struct gw_server *srv, struct lws *wsi)
{
    char path[64], origin[256];
    if (srv->draining) {
        return refuse_upgrade(wsi, 503, "unavailable", "server is shutting down");
    }
    if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) <= 0 || strcmp(path, "/ws") != 0) {
        return refuse_upgrade(wsi, 404, "not_found", "WebSocket endpoint is /ws");
    }
    if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) > 0) {
        if (lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) <= 0 ||
            !origin_allowed(srv->cfg, origin)) {
            return refuse_upgrade(wsi, 403, "forbidden", "origin not allowed");
        }
    }
    if (!offers_subprotocol(wsi)) {
        return refuse_upgrade(wsi, 400, "bad_request", "subprotocol coachroom.v1 required");
    }
    return 0;
}

/* ---- authentication -------------------------------------------------------------- */

static void send_welcome(struct gw_conn *c, const char *id)
{
    char now[32];
    gw_iso8601(gw_unix_ms(), now, sizeof(now));
    json_t *o = json_pack("{s:s, s:{s:s, s:s, s:s}, s:s, s:i}", "type", "welcome", "user", "id",
                          c->user.id, "displayName", c->user.display_name, "role", c->user.role,
                          "serverTime", now, "heartbeatSec", c->srv->cfg->ws_ping_sec);
    if (o != NULL && id != NULL && id[0] != '\0') {
        json_object_set_new(o, "id", json_string(id));
    }
    if (o != NULL) {
        gw_conn_send_json(c, o);
        json_decref(o);
    }
}

static void auth_timer(struct gw_timer *t);

static void arm_auth_timer(struct gw_conn *c)
{
    int64_t now = gw_unix_ms();
    int64_t next = c->token_expires_unix_ms;
    int64_t recheck_ms = (int64_t)c->srv->cfg->token_recheck_sec * 1000;
    if (c->is_session_token && now + recheck_ms < next) {
        next = now + recheck_ms;
    }
    int64_t us = (next - now) * 1000;
    gw_timer_arm(c->srv, &c->auth_timer, auth_timer, us > 0 ? us : 1);
}

/* Count c against MAX_CONN_PER_USER. false when the user is at the limit. */
static bool count_user_conn(struct gw_conn *c)
{
    struct gw_map *m = c->srv->user_conns;
    size_t len = strlen(c->user.id);
    uintptr_t n = (uintptr_t)gw_map_get(m, c->user.id, len);
    if (n >= (uintptr_t)c->srv->cfg->max_conn_per_user) {
        return false;
    }
    if (gw_map_put(m, c->user.id, len, (void *)(n + 1)) != 0) {
        return false;
    }
    c->counted = true;
    return true;
}

static void uncount_user_conn(struct gw_conn *c)
{
    if (!c->counted) {
        return;
    }
    struct gw_map *m = c->srv->user_conns;
    size_t len = strlen(c->user.id);
    uintptr_t n = (uintptr_t)gw_map_get(m, c->user.id, len);
    if (n <= 1) {
        gw_map_del(m, c->user.id, len);
    } else {
        gw_map_put(m, c->user.id, len, (void *)(n - 1));
    }
    c->counted = false;
}

/* What travels with an auth request: never a pointer to the connection. */
struct auth_ctx {
    struct gw_server *srv;
    uint64_t conn_id;
    bool revalidate; /* a periodic re-check of a session token */
    char hello_id[GW_ID_MAX + 1];
};

static void auth_accept(struct gw_conn *c, struct store_req *req, const char *hello_id)
{
    if (req->op == STORE_OP_AUTH_SESSION) {
        c->user = req->u.auth_session.user;
        c->token_expires_unix_ms = req->u.auth_session.expires_unix_ms;
    } else {
        c->user = req->u.auth_user.user;
    }
    c->is_admin = strcmp(c->user.role, "admin") == 0;
    if (!count_user_conn(c)) {
        gw_conn_error(c, "rate_limited", "too many connections for this user", hello_id, NULL, NULL,
                      1008);
        return;
    }
    c->state = GW_CONN_READY;
    send_welcome(c, hello_id);
    arm_auth_timer(c);
    gw_log(GW_LOG_INFO, "ws.authenticated", "conn=%llu user=%s", (unsigned long long)c->id,
           c->user.id);
}

static void auth_done(struct store_req *req)
{
    struct auth_ctx *ax = req->arg;
    struct gw_conn *c = gw_conn_find(ax->srv, ax->conn_id);
    if (c == NULL || c->state == GW_CONN_CLOSING) {
        /* gone meanwhile */
    } else if (ax->revalidate) {
        if (req->rc == STORE_E_NOTFOUND) {
            gw_conn_close(c, 4001, "token expired");
        } else {
            arm_auth_timer(c); /* valid, or the database is away: check again later */
        }
    } else if (req->rc == 0) {
        auth_accept(c, req, ax->hello_id);
    } else if (req->rc == STORE_E_NOTFOUND) {
        gw_conn_error(c, "unauthorized", "invalid token", ax->hello_id, NULL, NULL, 1008);
    } else {
        gw_conn_error(c, "unavailable", "cannot check the token now; retry", ax->hello_id, NULL,
                      NULL, 1013);
    }
    store_req_free(req);
    free(ax);
}

static int submit_auth(struct gw_conn *c, struct store_req *req, struct auth_ctx *ax)
{
    req->done = auth_done;
    req->arg = ax;
    int rc = store_submit(c->srv->store, req, gw_now_ms());
    if (rc != 0) {
        store_req_free(req);
        free(ax);
    }
    return rc;
}

static void free_token(struct gw_conn *c)
{
    if (c->token != NULL) {
        sodium_memzero(c->token, strlen(c->token));
        free(c->token);
        c->token = NULL;
    }
}

/* Start checking token (header or hello). Errors are sent to c. */
static void start_auth(struct gw_conn *c, const char *token, size_t len, const char *hello_id)
{
    gw_timer_cancel(c->srv, &c->auth_timer);
    c->state = GW_CONN_AUTHING;
    int64_t jwt_exp = 0;
    struct store_req *req = gw_auth_request(c->srv->cfg, token, len, auth_done, NULL, &jwt_exp);
    if (req != NULL && req->op == STORE_OP_AUTH_SESSION) {
        /* kept for the periodic revocation checks (its own size, not the
         * store's maximum: a held connection's memory counts) */
        free_token(c);
        c->token = strdup(req->u.auth_session.token);
        c->is_session_token = true;
        if (c->token == NULL) {
            store_req_free(req);
            gw_conn_error(c, "unavailable", "out of memory", hello_id, NULL, NULL, 1013);
            return;
        }
    } else if (req != NULL) {
        c->token_expires_unix_ms = jwt_exp;
        c->is_session_token = false;
    }
    struct auth_ctx *ax = req != NULL ? calloc(1, sizeof(*ax)) : NULL;
    if (req == NULL || ax == NULL) {
        store_req_free(req);
        gw_conn_error(c, "unauthorized", "invalid token", hello_id, NULL, NULL, 1008);
        return;
    }
    ax->srv = c->srv;
    ax->conn_id = c->id;
    snprintf(ax->hello_id, sizeof(ax->hello_id), "%s", hello_id != NULL ? hello_id : "");
    if (submit_auth(c, req, ax) != 0) {
        gw_conn_error(c, "unavailable", "server busy; retry", hello_id, NULL, NULL, 1013);
    }
}

static void revalidate(struct gw_conn *c)
{
    struct store_req *req = store_req_new(STORE_OP_AUTH_SESSION, auth_done, NULL);
    struct auth_ctx *ax = req != NULL ? calloc(1, sizeof(*ax)) : NULL;
    if (req == NULL || ax == NULL) {
        store_req_free(req);
        arm_auth_timer(c);
        return;
    }
    snprintf(req->u.auth_session.token, sizeof(req->u.auth_session.token), "%s",
             c->token != NULL ? c->token : "");
    ax->srv = c->srv;
    ax->conn_id = c->id;
    ax->revalidate = true;
    if (submit_auth(c, req, ax) != 0) {
        arm_auth_timer(c);
    }
}

static void auth_timer(struct gw_timer *t)
{
    struct gw_conn *c = lws_container_of(t, struct gw_conn, auth_timer);
    if (c->state == GW_CONN_NEW) {
        gw_conn_error(c, "unauthorized", "no hello within 10 seconds", NULL, NULL, NULL, 1008);
    } else if (c->state == GW_CONN_READY) {
        if (gw_unix_ms() >= c->token_expires_unix_ms) {
            gw_conn_close(c, 4001, "token expired");
        } else {
            revalidate(c);
        }
    }
}

/* ---- frames -------------------------------------------------------------------------- */

static void send_pong(struct gw_conn *c, const char *id)
{
    char now[32];
    gw_iso8601(gw_unix_ms(), now, sizeof(now));
    json_t *o = json_pack("{s:s, s:s}", "type", "pong", "serverTime", now);
    if (o != NULL && id != NULL) {
        json_object_set_new(o, "id", json_string(id));
    }
    if (o != NULL) {
        gw_conn_send_json(c, o);
        json_decref(o);
    }
}

static void handle_frame(struct gw_conn *c, const char *buf, size_t len)
{
    struct gw_cmd cmd;
    struct gw_codec_err err;
    c->srv->stats.frames_in++;
    if (gw_codec_decode(buf, len, &cmd, &err) != 0) {
        gw_conn_error(c, err.code, err.message, err.id, err.room, err.client_msg_id, 0);
        return;
    }
    const char *id = cmd.has_id ? cmd.id : NULL;
    if (cmd.type == GW_C_PING) {
        send_pong(c, id);
    } else if (cmd.type == GW_C_HELLO) {
        if (c->state == GW_CONN_NEW) {
            start_auth(c, cmd.token, strlen(cmd.token), id);
        } else {
            gw_conn_error(c, "bad_request", "already authenticated", id, NULL, NULL, 0);
        }
    } else if (c->state != GW_CONN_READY) {
        gw_conn_error(c, "unauthorized", "authenticate first (hello)", id, cmd.room,
                      cmd.client_msg_id, 0);
    } else {
        gw_room_cmd(c, &cmd);
    }
    gw_cmd_fini(&cmd);
}

static int close_now(struct lws *wsi, int code, const char *reason)
{
    lws_close_reason(wsi, (enum lws_close_status)code, (unsigned char *)reason, strlen(reason));
    return -1;
}

/* LWS_CALLBACK_RECEIVE: assemble, enforce binary/size rules, dispatch. */
static int on_receive(struct gw_conn *c, const void *in, size_t len)
{
    size_t max = c->srv->cfg->max_frame_bytes;
    if (lws_frame_is_binary(c->wsi)) {
        return close_now(c->wsi, 1003, "binary frames not supported");
    }
    if (c->rx_len + len > max) {
        return close_now(c->wsi, 1009, "frame too large");
    }
    bool complete = lws_is_final_fragment(c->wsi) && lws_remaining_packet_payload(c->wsi) == 0;
    if (complete && c->rx_len == 0) {
        handle_frame(c, in, len); /* the common case: one piece, no copy */
        return 0;
    }
    if (c->rx == NULL && (c->rx = malloc(max)) == NULL) {
        return close_now(c->wsi, 1011, "out of memory");
    }
    memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    if (complete) {
        handle_frame(c, (const char *)c->rx, c->rx_len);
        free(c->rx);
        c->rx = NULL;
        c->rx_len = 0;
    }
    return 0;
}

/* One write per writeable callback (lws 4.1 allows no second before the
 * first is flushed): ask for the next while frames or a close remain. */
static void want_more(struct gw_conn *c)
{
    if (c->out.len > 0 || c->state == GW_CONN_CLOSING) {
        lws_callback_on_writable(c->wsi);
    }
}

/* Several frames queued (a chat's ack and its message reach the sender
 * together): as many whole frames as fit in GW_WRITE_BATCH bytes go out
 * in one send, each framed here as a server's text frame (FIN, no mask,
 * no extension in use). lws 4.1 sends an LWS_WRITE_HTTP buffer on a
 * WebSocket connection as it is (roles/ws/ops-ws.c: send_raw), with the
 * same buffering of what the socket does not take. Leaves the frames
 * that did not fit (or a first one larger than the batch) queued, with
 * the next writeable asked for. 1 when it wrote, 0 when there was not
 * more than one frame to write, -1 when the write failed. */
/* The k oldest frames went out in one write: count them and drop them. */
static void sent(struct gw_conn *c, size_t k)
{
    c->srv->stats.ws_writes++;
    for (size_t i = 0; i < k; i++) {
        c->srv->stats.frames_out++;
        c->srv->stats.bytes_out += gw_outbox_peek(&c->out)->len;
        gw_outbox_pop(&c->out);
    }
    want_more(c);
}

static int write_batch(struct gw_conn *c)
{
    unsigned char *buf = c->srv->wbuf + LWS_PRE;
    size_t used = 0, k = 0;
    struct gw_frame *f;
    while ((f = gw_outbox_at(&c->out, k)) != NULL &&
           used + GW_WS_HEADER_MAX + f->len <= GW_WRITE_BATCH) {
        used += gw_ws_text_header(buf + used, f->len);
        memcpy(buf + used, gw_frame_payload(f), f->len);
        used += f->len;
        k++;
    }
    if (k < 2) {
        return 0; /* one frame: written as usual, without the copy */
    }
    int n = lws_write(c->wsi, buf, used, LWS_WRITE_HTTP);
    if (n < 0 || (size_t)n < used) {
        return -1;
    }
    sent(c, k);
    return 1;
}

static int on_writeable(struct gw_conn *c)
{
    if (c->ping_due) {
        /* not empty: lws 4.1 hands no empty pong to the protocol */
        unsigned char ping[LWS_PRE + 1] = {[LWS_PRE] = 'k'};
        c->ping_due = false;
        if (lws_write(c->wsi, ping + LWS_PRE, 1, LWS_WRITE_PING) < 0) {
            return -1;
        }
        want_more(c);
        return 0;
    }
    int batched = c->out.len > 1 ? write_batch(c) : 0;
    if (batched != 0) {
        return batched < 0 ? -1 : 0;
    }
    struct gw_frame *f = gw_outbox_peek(&c->out);
    if (f != NULL) {
        int n = lws_write(c->wsi, gw_frame_payload(f), f->len, LWS_WRITE_TEXT);
        if (n < 0 || (size_t)n < f->len) {
            return -1;
        }
        sent(c, 1);
        return 0;
    }
    if (c->state == GW_CONN_CLOSING) {
        return close_now(c->wsi, c->close_code, c->close_reason);
    }
    return 0;
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static void auth_from_header(struct gw_conn *c, struct lws *wsi)
{
    char auth[GW_JWT_MAX_BYTES + 16];
    int n = lws_hdr_copy(wsi, auth, sizeof(auth), WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n > 7 && strncasecmp(auth, "Bearer ", 7) == 0) {
        start_auth(c, auth + 7, (size_t)n - 7, NULL);
    } else if (n != 0 || lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION) > 0) {
        gw_conn_error(c, "unauthorized", "Authorization must be a Bearer token", NULL, NULL, NULL,
                      1008);
    } else {
        gw_timer_arm(c->srv, &c->auth_timer, auth_timer, HELLO_TIMEOUT_US);
    }
    sodium_memzero(auth, sizeof(auth));
}

/* ---- keepalive ------------------------------------------------------------------------ */

/* A received frame or pong only stamps last_rx_ms; the timer looks at the
 * stamp when it fires and re-arms from it, so a busy connection costs no
 * timer work per frame. */
static void idle_timer(struct gw_timer *t)
{
    struct gw_conn *c = lws_container_of(t, struct gw_conn, idle_timer);
    const struct gw_config *cfg = c->srv->cfg;
    int64_t silent = gw_now_ms() - c->last_rx_ms;
    int64_t ping_ms = (int64_t)cfg->ws_ping_sec * 1000, idle_ms = (int64_t)cfg->ws_idle_sec * 1000;
    if (silent >= idle_ms) {
        gw_log(GW_LOG_INFO, "ws.idle_drop", "conn=%llu silent_ms=%lld", (unsigned long long)c->id,
               (long long)silent);
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return;
    }
    if (silent >= ping_ms) {
        c->ping_due = true;
        lws_callback_on_writable(c->wsi);
        gw_timer_arm(c->srv, &c->idle_timer, idle_timer, (idle_ms - silent) * 1000);
    } else {
        gw_timer_arm(c->srv, &c->idle_timer, idle_timer, (ping_ms - silent) * 1000);
    }
}

static int on_established(struct gw_server *srv, struct gw_conn *c, struct lws *wsi)
{
    memset(c, 0, sizeof(*c));
    c->wsi = wsi;
    c->id = ++srv->next_conn_id;
    if (gw_map_put(srv->conns_by_id, &c->id, sizeof(c->id), c) != 0) {
        return -1;
    }
    c->srv = srv;
    srv->n_conns++;
    srv->stats.conns_total++;
    room_conn_init(&c->rc, c->id, c, gw_unix_ms());
    size_t cap = srv->cfg->max_frame_bytes * 64;
    gw_outbox_init(&c->out, cap > ((size_t)1 << 20) ? cap : ((size_t)1 << 20));
    c->last_rx_ms = gw_now_ms();
    gw_timer_arm(srv, &c->idle_timer, idle_timer, (int64_t)srv->cfg->ws_ping_sec * 1000000);
    auth_from_header(c, wsi);
    return 0;
}

static void on_closed(struct gw_server *srv, struct gw_conn *c)
{
    if (c->srv == NULL) {
        return; /* never established */
    }
    gw_timer_cancel(srv, &c->auth_timer);
    gw_timer_cancel(srv, &c->idle_timer);
    gw_room_disconnect(c);
    room_conn_fini(&c->rc, gw_unix_ms());
    uncount_user_conn(c);
    gw_map_del(srv->conns_by_id, &c->id, sizeof(c->id));
    srv->n_conns--;
    gw_outbox_fini(&c->out);
    free(c->rx);
    free_token(c);
    c->srv = NULL;
}

int gw_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
    struct gw_server *srv = lws_context_user(lws_get_context(wsi));
    struct gw_conn *c = user;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        return on_established(srv, c, wsi);
    case LWS_CALLBACK_RECEIVE:
        if (c->srv == NULL) {
            return -1;
        }
        c->last_rx_ms = gw_now_ms();
        return on_receive(c, in, len);
    case LWS_CALLBACK_RECEIVE_PONG:
        if (c->srv != NULL) {
            c->last_rx_ms = gw_now_ms();
        }
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return c->srv != NULL ? on_writeable(c) : -1;
    case LWS_CALLBACK_CLOSED:
        on_closed(srv, c);
        return 0;
    default:
        return 0;
    }
}
