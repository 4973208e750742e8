/*
 * api.c: the authenticated HTTP routes of protocol.md section 5 served so
 * far: GET /api/sessions/{id} and POST /api/sessions/{id}/rating.
 *
 * DESIGN: a request is a chain of store requests held in h->pending: the
 * Bearer token is checked first (a JWT locally, then its user; a session
 * token in the database), then the route's own operation runs. The body
 * of a POST is collected (bounded: 413 beyond GW_API_BODY_MAX) before
 * anything starts. If the client goes away, http.c detaches the pending
 * request (arg = NULL) and its completion only frees it.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "gw_int.h"
#include "jwt.h"
#include "msgs.h"

#define SESSIONS_PREFIX "/api/sessions/"

static void run_route(struct gw_http *h);

int gw_api_submit(struct gw_http *h, struct store_req *req)
{
    if (req == NULL) {
        gw_http_error(h, 503, "unavailable", "out of memory");
        return -1;
    }
    req->arg = h;
    if (store_submit(h->srv->store, req, gw_now_ms()) != 0) {
        store_req_free(req);
        gw_http_error(h, 503, "unavailable", "server busy; retry");
        return -1;
    }
    h->pending = req;
    return 0;
}

unsigned int gw_api_status(int rc, const char **code)
{
    switch (rc) {
    case STORE_E_NOTFOUND:
        *code = "not_found";
        return 404;
    case STORE_E_FORBIDDEN:
        *code = "forbidden";
        return 403;
    case STORE_E_CONFLICT:
    case STORE_E_STATE:
        *code = "conflict";
        return 409;
    case STORE_E_UNAVAILABLE:
    case STORE_E_FULL:
    case STORE_E_STOPPED:
        *code = "unavailable";
        return 503;
    default:
        *code = "internal";
        return 500;
    }
}

/* ---- authentication --------------------------------------------------------------------- */

static void auth_done(struct store_req *req)
{
    struct gw_http *h = req->arg;
    if (h != NULL) {
        h->pending = NULL;
        if (req->rc == 0) {
            h->api_user =
                req->op == STORE_OP_AUTH_SESSION ? req->u.auth_session.user : req->u.auth_user.user;
            run_route(h);
        } else if (req->rc == STORE_E_NOTFOUND) {
            gw_http_error(h, 401, "unauthorized", "invalid token");
        } else {
            const char *code = NULL;
            unsigned int status = gw_api_status(req->rc, &code);
            gw_http_error(h, status, code, "cannot check the token now");
        }
    }
    store_req_free(req);
}

static void start_auth(struct gw_http *h)
{
    const char *t = h->api_token;
    if (t == NULL) {
        gw_http_error(h, 401, "unauthorized", "Authorization: Bearer <token> required");
        return;
    }
    int64_t exp = 0;
    struct store_req *req = gw_auth_request(h->srv->cfg, t, strlen(t), auth_done, NULL, &exp);
    if (req == NULL) {
        gw_http_error(h, 401, "unauthorized", "invalid token");
        return;
    }
    gw_api_submit(h, req);
}

/* ---- GET /api/sessions/{id} --------------------------------------------------------------- */

static json_t *opt_string(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static json_t *session_body(const struct store_session_get *g)
{
    json_t *rating = json_null();
    if (g->has_rating) {
        rating =
            json_pack("{s:i, s:o, s:o, s:o}", "rating", g->rating, "tip",
                      g->tip > 0 ? json_integer(g->tip) : json_null(), "comment",
                      opt_string(g->rating_comment), "createdAt", gw_msg_time(g->rated_unix_ms));
    }
    return json_pack("{s:{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:i, s:i}, s:o, s:{s:s, s:o}, s:o}",
                     "session", "id", g->session_id, "appointmentId", g->appointment_id, "roomId",
                     g->room_id, "userId", g->owner_id, "status", g->status, "startedAt",
                     gw_msg_time(g->started_unix_ms), "endedAt", gw_msg_time(g->ended_unix_ms),
                     "durationMinutes", g->duration_minutes, "warningsSent", g->warnings_sent,
                     "transcript", opt_string(g->transcript), "summary", "status",
                     g->ai_status[0] != '\0' ? g->ai_status : "none", "text",
                     opt_string(g->ai_summary), "rating", rating);
}

static void session_get_done(struct store_req *req)
{
    struct gw_http *h = req->arg;
    if (h != NULL) {
        h->pending = NULL;
        const char *code = NULL;
        if (req->rc == 0) {
            gw_http_respond_json(h, 200, session_body(&req->u.session_get));
        } else {
            unsigned int status = gw_api_status(req->rc, &code);
            gw_http_error(h, status, code, store_strerror(req->rc));
        }
    }
    store_req_free(req);
}

/* ---- POST /api/sessions/{id}/rating -----------------------------------------------------------
 */

static void rating_done(struct store_req *req)
{
    struct gw_http *h = req->arg;
    if (h != NULL) {
        h->pending = NULL;
        const struct store_rate *r = &req->u.rate;
        const char *code = NULL;
        if (req->rc == 0) {
            gw_http_respond_json(
                h, 201,
                json_pack("{s:{s:s, s:s, s:i, s:o, s:o, s:o}}", "rating", "id", r->rating_id,
                          "sessionId", r->session_id, "rating", r->rating, "tip",
                          r->tip > 0 ? json_integer(r->tip) : json_null(), "comment",
                          opt_string(r->comment), "createdAt", gw_msg_time(r->created_unix_ms)));
        } else {
            unsigned int status = gw_api_status(req->rc, &code);
            gw_http_error(h, status, code,
                          req->rc == STORE_E_CONFLICT ? "already rated"
                          : req->rc == STORE_E_STATE  ? "the session has not ended"
                                                      : store_strerror(req->rc));
        }
    }
    store_req_free(req);
}

static void start_rating(struct gw_http *h)
{
    struct gw_cmd cmd;
    struct gw_codec_err err;
    if (h->api_body == NULL ||
        gw_codec_decode_rating(h->api_body, h->api_body_len, &cmd, &err) != 0) {
        gw_http_error(h, 422, "bad_request", h->api_body == NULL ? "body required" : err.message);
        return;
    }
    struct store_req *req = store_req_new(STORE_OP_RATE, rating_done, NULL);
    if (req != NULL) {
        struct store_rate *r = &req->u.rate;
        snprintf(r->session_id, sizeof(r->session_id), "%s", h->api_session_id);
        snprintf(r->user_id, sizeof(r->user_id), "%s", h->api_user.id);
        r->rating = cmd.rating;
        r->tip = cmd.tip;
        r->comment = cmd.comment; /* moved */
        cmd.comment = NULL;
    }
    gw_cmd_fini(&cmd);
    gw_api_submit(h, req);
}

static void run_route(struct gw_http *h)
{
    if (h->api_route == GW_API_LIVEKIT_TOKEN) {
        gw_api_livekit_token(h);
        return;
    }
    if (h->api_post) {
        start_rating(h);
        return;
    }
    struct store_req *req = store_req_new(STORE_OP_SESSION_GET, session_get_done, NULL);
    if (req != NULL) {
        snprintf(req->u.session_get.session_id, sizeof(req->u.session_get.session_id), "%s",
                 h->api_session_id);
        snprintf(req->u.session_get.user_id, sizeof(req->u.session_get.user_id), "%s",
                 h->api_user.id);
    }
    gw_api_submit(h, req);
}

/* ---- entry points ---------------------------------------------------------------------------- */

/* "/api/sessions/{id}" or ".../{id}/rating": copy the id, tell which. */
static int parse_path(struct gw_http *h, const char *path, bool *is_rating)
{
    if (strncmp(path, SESSIONS_PREFIX, strlen(SESSIONS_PREFIX)) != 0) {
        return -1;
    }
    const char *id = path + strlen(SESSIONS_PREFIX);
    size_t n = strcspn(id, "/");
    if (n == 0 || n > STORE_ID_MAX) {
        return -1;
    }
    if (id[n] == '\0') {
        *is_rating = false;
    } else if (strcmp(id + n, "/rating") == 0) {
        *is_rating = true;
    } else {
        return -1;
    }
    memcpy(h->api_session_id, id, n);
    h->api_session_id[n] = '\0';
    return 0;
}

/* "/api/rooms/{roomId}/livekit-token": copy the room id. */
static int parse_room_path(struct gw_http *h, const char *path)
{
    static const char prefix[] = "/api/rooms/", suffix[] = "/livekit-token";
    if (strncmp(path, prefix, sizeof(prefix) - 1) != 0) {
        return -1;
    }
    const char *id = path + sizeof(prefix) - 1;
    size_t n = strcspn(id, "/");
    if (n == 0 || n > STORE_ROOM_MAX || strcmp(id + n, suffix) != 0) {
        return -1;
    }
    memcpy(h->api_room_id, id, n);
    h->api_room_id[n] = '\0';
    return 0;
}

static void copy_token(struct gw_http *h)
{
    char auth[GW_JWT_MAX_BYTES + 16];
    int n = lws_hdr_copy(h->wsi, auth, sizeof(auth), WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n > 7 && strncasecmp(auth, "Bearer ", 7) == 0) {
        h->api_token = strdup(auth + 7);
    }
    sodium_memzero(auth, sizeof(auth));
}

/* The route of path, GW_API_NONE when there is none. */
static enum gw_api_route route_of(struct gw_http *h, const char *path)
{
    bool is_rating = false;
    if (strcmp(path, "/api/auth/codes") == 0) {
        return GW_API_AUTH_CODES;
    }
    if (strcmp(path, "/api/auth/redeem") == 0) {
        return GW_API_AUTH_REDEEM;
    }
    if (parse_room_path(h, path) == 0) {
        return GW_API_LIVEKIT_TOKEN;
    }
    if (parse_path(h, path, &is_rating) != 0) {
        return GW_API_NONE;
    }
    return is_rating ? GW_API_SESSION_RATING : GW_API_SESSION_GET;
}

void gw_api_begin(struct gw_server *srv, struct gw_http *h, const char *path, bool is_get)
{
    (void)srv;
    gw_api_fini(h);
    h->api_route = route_of(h, path);
    if (h->api_route == GW_API_NONE) {
        gw_http_error(h, 404, "not_found", "no such route");
        return;
    }
    bool is_post = lws_hdr_total_length(h->wsi, WSI_TOKEN_POST_URI) > 0;
    bool wants_body = h->api_route != GW_API_SESSION_GET && h->api_route != GW_API_LIVEKIT_TOKEN;
    if (wants_body ? !is_post : !is_get) {
        gw_http_error(h, 405, "bad_request", "method not allowed");
        return;
    }
    if (wants_body) {
        char cl[24] = "";
        lws_hdr_copy(h->wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH);
        long long n = strtoll(cl, NULL, 10);
        if (n <= 0) {
            gw_http_error(h, 422, "bad_request", "a JSON body is required");
            return;
        }
        if (n > GW_API_BODY_MAX) {
            gw_http_error(h, 413, "too_large", "body larger than 16384 bytes");
            return;
        }
    }
    copy_token(h);
    h->api_post = wants_body;
    h->api_body_cap = GW_API_BODY_MAX;
    if (!wants_body) {
        start_auth(h);
    }
    /* a POST starts when its body is complete (gw_api_body_done) */
}

void gw_api_body(struct gw_http *h, const void *in, size_t len)
{
    if (!h->api_post || h->api_too_large) {
        return;
    }
    if (h->api_body_len + len > h->api_body_cap) {
        h->api_too_large = true;
        return;
    }
    if (h->api_body == NULL && (h->api_body = malloc(h->api_body_cap)) == NULL) {
        h->api_too_large = true;
        return;
    }
    memcpy(h->api_body + h->api_body_len, in, len);
    h->api_body_len += len;
}

void gw_api_body_done(struct gw_http *h)
{
    if (!h->api_post || h->has_response || h->pending != NULL) {
        return;
    }
    if (h->api_route == GW_API_LIVEKIT_HOOK) {
        gw_webhook_run(h); /* signed by LiveKit, not by a user */
        return;
    }
    if (h->api_too_large) {
        gw_http_error(h, 413, "too_large", "body larger than 16384 bytes");
        return;
    }
    if (h->api_route == GW_API_AUTH_CODES || h->api_route == GW_API_AUTH_REDEEM) {
        gw_api_auth_run(h); /* its own authorization rules */
        return;
    }
    start_auth(h);
}

void gw_api_fini(struct gw_http *h)
{
    if (h->api_token != NULL) {
        sodium_memzero(h->api_token, strlen(h->api_token));
        free(h->api_token);
        h->api_token = NULL;
    }
    free(h->api_body);
    h->api_body = NULL;
    h->api_body_len = 0;
    h->api_too_large = false;
    h->api_post = false;
    h->api_route = GW_API_NONE;
}
