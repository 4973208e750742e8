/*
 * webhook.c: POST /webhooks/livekit, LiveKit's webhook receiver
 * (protocol.md section 5), and what a committed event does to a loaded room.
 *
 * DESIGN: the raw body is collected like an /api body (at most
 * GW_LK_BODY_MAX bytes: 413 above), then checked before anything is parsed
 * (livekit.c: the bare JWT in Authorization, the sha256 claim): any
 * failure is 401 and nothing is recorded. The parsed event goes to the
 * store (STORE_OP_LK_EVENT), which records its id and its effects in one
 * transaction; the reply waits for that commit, so a database outage is a
 * 503 and LiveKit delivers again. Once committed, the event is applied to
 * the room in memory (media presence, the clock started by a LiveKit join,
 * room_finished) even if LiveKit hung up meanwhile: the request's context
 * outlives the HTTP connection (gw_webhook_detach).
 *
 * Media presence: gw_room.media[] says which of the coach and the client
 * the room's members were last told has video; a `media` event goes out
 * only when that changes. A participant_left with DUPLICATE_IDENTITY (a
 * second tab replacing the first) does not turn it off: the replacement's
 * participant_joined follows.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "gw_int.h"
#include "jwt.h"
#include "livekit.h"
#include "msgs.h"
#include "wsroom_int.h"

/* Results counted for /metrics (srv->lk_hooks). */
enum { HOOK_OK, HOOK_DUPLICATE, HOOK_IGNORED, HOOK_UNAUTHORIZED, HOOK_BAD, HOOK_UNAVAILABLE };

/* A webhook on its way through the store. */
struct hook {
    struct gw_server *srv;
    struct gw_http *h; /* NULL once the client went away */
    bool replaced;     /* participant_left with DUPLICATE_IDENTITY */
};

static void count(struct gw_server *srv, int result)
{
    srv->lk_hooks[result]++;
}

static void reply(struct gw_server *srv, struct gw_http *h, int result, unsigned int status,
                  const char *code, const char *message)
{
    count(srv, result);
    if (h == NULL) {
        return;
    }
    if (code == NULL) {
        static const char *const names[] = {"ok", "duplicate", "ignored"};
        char body[64];
        snprintf(body, sizeof(body), "{\"status\":\"%s\"}", names[result]);
        gw_http_respond(h, status, body);
    } else {
        gw_http_error(h, status, code, message);
    }
}

/* ---- effects on the room in memory ------------------------------------------------------------ */

/* `media` to every member connection of g. */
static void send_media(struct gw_room *g, int who, bool joined)
{
    if (g->media[who] == joined) {
        return;
    }
    g->media[who] = joined;
    const char *user = who == 0 ? g->info.coach_id : g->info.client_id;
    gw_log(GW_LOG_INFO, "livekit.media", "room=%s user=%s state=%s", g->room_id, user,
           joined ? "joined" : "left");
    struct room_fx all = {.room = g->core, .to = {.kind = ROOM_TO_MEMBERS}};
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "type", "media", "room", g->room_id, "userId",
                          user, "state", joined ? "joined" : "left");
    gw__send_fx_json(g->srv, &all, o, false);
}

/* 0 coach, 1 client, -1 neither. */
static int who_of(const struct gw_room *g, const char *user_id)
{
    if (strcmp(user_id, g->info.coach_id) == 0) {
        return 0;
    }
    return strcmp(user_id, g->info.client_id) == 0 ? 1 : -1;
}

static void joined(struct gw_server *srv, struct gw_room *g, const struct store_lk_event *ev)
{
    struct room_fx_list fx;
    room_fx_reset(&fx);
    int rc = room_on_media_join(g->core, ev->user_id, gw_unix_ms(), &fx);
    if (rc == 0) {
        gw__apply_fx(srv, g, &fx, NULL); /* the clock starts; the Session row exists already */
    }
    int who = who_of(g, ev->user_id);
    if (who >= 0 && ev->media_changed) {
        send_media(g, who, true);
    }
}

/* No member connected: end the session in the database directly (nobody
 * to tell); the ending is idempotent and locks the appointment. */
static void end_unloaded_done(struct store_req *req)
{
    struct gw_server *srv = req->arg;
    if (req->rc != 0 && req->rc != STORE_E_STATE) {
        gw_log(GW_LOG_WARN, "livekit.end_failed", "appointment=%s rc=%d",
               req->u.end.appointment_id, req->rc);
    } else if (req->rc == 0 && !req->u.end.already_ended) {
        gw_log(GW_LOG_NOTICE, "room.ended", "appointment=%s reason=livekit messages=%d",
               req->u.end.appointment_id, req->u.end.n_messages);
        if (req->u.end.ai_job_id[0] != '\0') {
            gw_ai_kick(srv);
        }
    }
    store_req_free(req);
}

static void end_unloaded(struct gw_server *srv, const struct store_lk_event *ev)
{
    struct store_req *req = store_req_new(STORE_OP_END, end_unloaded_done, srv);
    if (req == NULL) {
        return;
    }
    struct store_end *e = &req->u.end;
    snprintf(e->appointment_id, sizeof(e->appointment_id), "%s", ev->appointment_id);
    e->ended_unix_ms = gw_unix_ms();
    snprintf(e->reason, sizeof(e->reason), "livekit");
    e->ai_enabled = srv->cfg->ai_summary_url != NULL;
    if (store_submit(srv->store, req, gw_now_ms()) != 0) {
        store_req_free(req); /* the clock and idle rules end it regardless */
    }
}

static void finished(struct gw_server *srv, struct gw_room *g, const struct store_lk_event *ev)
{
    if (g == NULL) {
        if (ev->session_running) {
            end_unloaded(srv, ev);
        }
        return;
    }
    if (g->core == NULL) {
        return; /* members are joining right now: the session goes on */
    }
    struct room_fx_list fx;
    room_fx_reset(&fx);
    int rc = room_on_external_end(g->core, ROOM_END_LIVEKIT, gw_unix_ms(), &fx);
    if (rc == 0) {
        gw__apply_fx(srv, g, &fx, NULL);
    }
    gw_log(GW_LOG_INFO, "livekit.room_finished", "room=%s outcome=%s", g->room_id,
           rc == 0 ? "ended" : rc == ROOM_E_IN_USE ? "members_connected" : "nothing_to_end");
    send_media(g, 0, false);
    send_media(g, 1, false);
}

/* A committed event, applied to the room in memory (when loaded). */
static void apply_event(struct gw_server *srv, const struct store_lk_event *ev, bool replaced)
{
    struct gw_room *g = gw_map_get(srv->rooms, ev->room_id, strlen(ev->room_id));
    switch (ev->kind) {
    case STORE_LK_JOINED:
        if (g != NULL && g->core != NULL) {
            joined(srv, g, ev);
        }
        break;
    case STORE_LK_LEFT:
        if (g != NULL && g->core != NULL && ev->media_changed && !replaced &&
            who_of(g, ev->user_id) >= 0) {
            send_media(g, who_of(g, ev->user_id), false);
        }
        break;
    case STORE_LK_FINISHED:
        finished(srv, g, ev);
        break;
    case STORE_LK_OTHER:
        break;
    }
}

/* ---- the request ------------------------------------------------------------------------------ */

static void event_done(struct store_req *req)
{
    struct hook *k = req->arg;
    const struct store_lk_event *ev = &req->u.lk_event;
    if (k->h != NULL) {
        k->h->pending = NULL;
    }
    if (req->rc != 0) {
        const char *code = NULL;
        unsigned int status = gw_api_status(req->rc, &code);
        gw_log(GW_LOG_WARN, "livekit.webhook_failed", "event=%s rc=%d status=%u", ev->event,
               req->rc, status);
        reply(k->srv, k->h, HOOK_UNAVAILABLE, status == 500 ? 503 : status, "unavailable",
              "cannot record the event now; retry");
    } else if (ev->result == STORE_LK_DUPLICATE) {
        gw_log(GW_LOG_INFO, "livekit.webhook", "event=%s result=duplicate", ev->event);
        reply(k->srv, k->h, HOOK_DUPLICATE, 200, NULL, NULL);
    } else if (ev->result != STORE_LK_APPLIED) {
        gw_log(GW_LOG_INFO, "livekit.webhook", "event=%s result=ignored why=%d", ev->event,
               (int)ev->result);
        reply(k->srv, k->h, HOOK_IGNORED, 200, NULL, NULL);
    } else {
        gw_log(GW_LOG_INFO, "livekit.webhook", "event=%s result=ok room=%s media_changed=%d",
               ev->event, ev->room_id, ev->media_changed);
        apply_event(k->srv, ev, k->replaced);
        reply(k->srv, k->h, HOOK_OK, 200, NULL, NULL);
    }
    store_req_free(req);
    free(k);
}

void gw_webhook_detach(struct gw_http *h)
{
    struct hook *k = h->pending->arg;
    k->h = NULL;
}

/* Check, parse and submit; every refusal answers here. */
static void run(struct gw_http *h)
{
    struct gw_server *srv = h->srv;
    const struct gw_config *cfg = srv->cfg;
    if (cfg->livekit_api_key == NULL || cfg->livekit_api_secret == NULL) {
        reply(srv, h, HOOK_UNAVAILABLE, 503, "unavailable", "LiveKit is not configured");
        return;
    }
    struct gw_err err = {0};
    const char *auth = h->api_token;
    if (gw_lk_verify_webhook(cfg->livekit_api_key, cfg->livekit_api_secret, auth,
                             auth != NULL ? strlen(auth) : 0, (const unsigned char *)h->api_body,
                             h->api_body_len, gw_unix_ms() / 1000, &err) != 0) {
        gw_log(GW_LOG_WARN, "livekit.webhook_refused", "reason=\"%s\"", err.msg);
        reply(srv, h, HOOK_UNAUTHORIZED, 401, "unauthorized", "invalid webhook signature");
        return;
    }
    if (!h->hook_json) {
        reply(srv, h, HOOK_BAD, 400, "bad_request", "Content-Type must be application/webhook+json");
        return;
    }
    struct hook *k = calloc(1, sizeof(*k));
    struct store_req *req = k != NULL ? store_req_new(STORE_OP_LK_EVENT, event_done, k) : NULL;
    if (req == NULL) {
        free(k);
        reply(srv, h, HOOK_UNAVAILABLE, 503, "unavailable", "out of memory");
        return;
    }
    int rc = gw_lk_parse_event((const unsigned char *)h->api_body, h->api_body_len,
                               &req->u.lk_event, &k->replaced, &err);
    if (rc != 0) {
        store_req_free(req);
        free(k);
        gw_log(GW_LOG_INFO, "livekit.webhook", "result=%s", rc > 0 ? "ignored" : "bad_request");
        if (rc > 0) {
            reply(srv, h, HOOK_IGNORED, 200, NULL, NULL);
        } else {
            reply(srv, h, HOOK_BAD, 400, "bad_request", err.msg);
        }
        return;
    }
    k->srv = srv;
    k->h = h;
    req->u.lk_event.at_unix_ms = gw_unix_ms();
    req->u.lk_event.early_join_ms = (int64_t)cfg->early_join_min * 60000;
    if (store_submit(srv->store, req, gw_now_ms()) != 0) {
        store_req_free(req);
        free(k);
        reply(srv, h, HOOK_UNAVAILABLE, 503, "unavailable", "server busy; retry");
        return;
    }
    h->pending = req;
}

void gw_webhook_run(struct gw_http *h)
{
    if (h->has_response || h->pending != NULL) {
        return;
    }
    if (h->api_too_large) {
        reply(h->srv, h, HOOK_BAD, 413, "too_large", "body larger than 65536 bytes");
        return;
    }
    run(h);
}

/* Is the Content-Type application/webhook+json (or application/json)? */
static bool is_json_type(struct lws *wsi)
{
    char type[128] = "";
    if (lws_hdr_copy(wsi, type, sizeof(type), WSI_TOKEN_HTTP_CONTENT_TYPE) <= 0) {
        return false;
    }
    size_t n = strcspn(type, "; \t");
    return (n == 24 && strncasecmp(type, "application/webhook+json", n) == 0) ||
           (n == 16 && strncasecmp(type, "application/json", n) == 0);
}

void gw_webhook_begin(struct gw_server *srv, struct gw_http *h, bool get)
{
    (void)get;
    gw_api_fini(h);
    if (lws_hdr_total_length(h->wsi, WSI_TOKEN_POST_URI) <= 0) {
        gw_http_error(h, 405, "bad_request", "method not allowed");
        return;
    }
    char cl[24] = "";
    lws_hdr_copy(h->wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH);
    long long n = strtoll(cl, NULL, 10);
    if (n > GW_LK_BODY_MAX) {
        reply(srv, h, HOOK_BAD, 413, "too_large", "body larger than 65536 bytes");
        return;
    }
    if (n <= 0) {
        reply(srv, h, HOOK_BAD, 400, "bad_request", "a body is required");
        return;
    }
    char auth[GW_JWT_MAX_BYTES + 16];
    int alen = lws_hdr_copy(h->wsi, auth, sizeof(auth), WSI_TOKEN_HTTP_AUTHORIZATION);
    if (alen > 0) {
        h->api_token = strndup(auth, (size_t)alen);
    }
    sodium_memzero(auth, sizeof(auth));
    h->hook_json = is_json_type(h->wsi);
    h->api_route = GW_API_LIVEKIT_HOOK;
    h->api_post = true;
    h->api_body_cap = GW_LK_BODY_MAX;
}
