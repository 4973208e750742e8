/*
 * api_livekit.c: GET /api/rooms/{roomId}/livekit-token (protocol.md
 * section 5): a LiveKit access token for a member of the room.
 *
 * DESIGN: api.c authenticates the caller; the room is then loaded through
 * the store (STORE_OP_ROOM_LOAD: the appointment, its people and its clock)
 * and the token is minted here on the loop thread. The coach and the
 * client get a publishing grant, an admin (an observer) a subscribe-only
 * one; anyone else is refused. The token lives until the session's end +
 * 15 minutes, at most 6 hours: the end is the running session's, or for a
 * session not started yet the planned one (from the later of now and the
 * scheduled time).
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "gw_int.h"
#include "livekit.h"
#include "msgs.h"

#define GRACE_MS    ((int64_t)15 * 60 * 1000)
#define MAX_TTL_MS  ((int64_t)6 * 60 * 60 * 1000)
#define DEFAULT_MIN 20

/* The session's end (ms): running, or planned. */
static int64_t session_end_ms(const struct store_room *r, int64_t now_ms)
{
    int64_t minutes = r->duration_minutes > 0 ? r->duration_minutes : DEFAULT_MIN;
    if (r->ended_unix_ms > 0) {
        return r->ended_unix_ms;
    }
    int64_t start = r->started_unix_ms;
    if (start == 0) {
        start = r->scheduled_unix_ms > now_ms ? r->scheduled_unix_ms : now_ms;
    }
    return start + minutes * 60000;
}

/* The caller's place in the room: "coach", "client", "observer", or NULL. */
static const char *role_in(const struct store_room *r, const struct store_user *u)
{
    if (strcmp(u->id, r->coach_id) == 0) {
        return "coach";
    }
    if (strcmp(u->id, r->client_id) == 0) {
        return "client";
    }
    return strcmp(u->role, "admin") == 0 ? "observer" : NULL;
}

static void reply(struct gw_http *h, const struct store_room *r, const char *role)
{
    const struct gw_config *cfg = h->srv->cfg;
    int64_t now_ms = gw_unix_ms();
    int64_t exp_ms = session_end_ms(r, now_ms) + GRACE_MS;
    if (exp_ms > now_ms + MAX_TTL_MS) {
        exp_ms = now_ms + MAX_TTL_MS;
    }
    if (exp_ms / 1000 <= now_ms / 1000) {
        gw_http_error(h, 409, "conflict", "the session is over");
        return;
    }
    const char *name = strcmp(role, "coach") == 0    ? r->coach_name
                       : strcmp(role, "client") == 0 ? r->client_name
                                                     : h->api_user.display_name;
    struct gw_lk_grant g = {
        .identity = h->api_user.id,
        .name = name,
        .room = r->room_id,
        .can_publish = strcmp(role, "observer") != 0,
        .nbf_unix = now_ms / 1000,
        .exp_unix = exp_ms / 1000,
    };
    char *token = gw_lk_access_token(cfg->livekit_api_key, cfg->livekit_api_secret, &g);
    json_t *o = token != NULL ? json_pack("{s:s, s:o, s:s, s:s, s:o}", "token", token, "url",
                                          cfg->livekit_url != NULL ? json_string(cfg->livekit_url)
                                                                   : json_null(),
                                          "identity", h->api_user.id, "room", r->room_id,
                                          "expiresAt", gw_msg_time(g.exp_unix * 1000))
                              : NULL;
    if (token != NULL) {
        sodium_memzero(token, strlen(token));
        free(token);
    }
    gw_log(GW_LOG_INFO, "livekit.token", "room=%s user=%s role=%s", r->room_id, h->api_user.id,
           role);
    gw_http_respond_json(h, 200, o);
}

static void room_done(struct store_req *req)
{
    struct gw_http *h = req->arg;
    if (h != NULL) {
        h->pending = NULL;
        const struct store_room *r = &req->u.room;
        const char *role = req->rc == 0 ? role_in(r, &h->api_user) : NULL;
        if (req->rc == STORE_E_NOTFOUND) {
            gw_http_error(h, 404, "not_found", "no such room");
        } else if (req->rc != 0) {
            const char *code = NULL;
            unsigned int status = gw_api_status(req->rc, &code);
            gw_http_error(h, status, code, "cannot load the room now");
        } else if (role == NULL) {
            gw_http_error(h, 403, "forbidden", "not a member of this room");
        } else if (strcmp(r->status, "cancelled") == 0 || strcmp(r->status, "completed") == 0) {
            gw_http_error(h, 409, "conflict", "the appointment is cancelled or completed");
        } else {
            reply(h, r, role);
        }
    }
    store_req_free(req);
}

void gw_api_livekit_token(struct gw_http *h)
{
    const struct gw_config *cfg = h->srv->cfg;
    if (cfg->livekit_api_key == NULL || cfg->livekit_api_secret == NULL) {
        gw_http_error(h, 503, "unavailable", "LiveKit is not configured");
        return;
    }
    struct store_req *req = store_req_new(STORE_OP_ROOM_LOAD, room_done, NULL);
    if (req != NULL) {
        snprintf(req->u.room.room_id, sizeof(req->u.room.room_id), "%s", h->api_room_id);
    }
    gw_api_submit(h, req);
}
