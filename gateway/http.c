/*
 * http.c: the plain HTTP routes served on the gateway's port.
 *
 * DESIGN: every response is prepared into the connection's gw_http and
 * written from LWS_CALLBACK_HTTP_WRITEABLE in one lws_write (headers and
 * body together; the gateway speaks HTTP/1.1 only). Routes that need the
 * database (readyz) submit a store request and return; the store's done
 * callback fills the response and asks for a writable callback. If the
 * client goes away first, the pending request is detached (arg = NULL) and
 * its result dropped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ai.h"
#include "gw_int.h"

/* Room for the status line and every header (the CSP is the longest). */
#define GW_HTTP_HEADERS_MAX 2048

/* Free a response body, wiped: it may carry a token or an auth code. */
static void free_body(char *body, size_t len)
{
    if (body != NULL) {
        sodium_memzero(body, len);
        free(body);
    }
}

/* Take ownership of body (malloc'd) as the response. */
void gw_http_respond_take(struct gw_http *h, unsigned int status, const char *type, char *body,
                          size_t len)
{
    free_body(h->body, h->body_len);
    h->body = body;
    h->body_len = len;
    h->status = status;
    h->content_type = type;
    h->has_response = true;
    lws_callback_on_writable(h->wsi);
}

void gw_http_respond(struct gw_http *h, unsigned int status, const char *body)
{
    char *copy = strdup(body);
    if (copy == NULL) {
        lws_set_timeout(h->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
        return;
    }
    gw_http_respond_take(h, status, "application/json", copy, strlen(copy));
}

void gw_http_respond_json(struct gw_http *h, unsigned int status, json_t *obj)
{
    char *text = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (text == NULL) {
        gw_http_error(h, 503, "unavailable", "out of memory");
        return;
    }
    gw_http_respond_take(h, status, "application/json", text, strlen(text));
}

void gw_http_error(struct gw_http *h, unsigned int status, const char *code, const char *message)
{
    char body[GW_HTTP_BODY_MAX];
    snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, message);
    gw_http_respond(h, status, body);
}

static void readyz_done(struct store_req *req)
{
    struct gw_http *h = req->arg;
    if (h != NULL) {
        h->pending = NULL;
        if (req->rc == 0) {
            gw_http_respond(h, 200, "{\"status\":\"ready\"}");
        } else if (req->rc == STORE_E_SCHEMA) {
            gw_http_respond(h, 503, "{\"status\":\"not_ready\",\"reason\":\"migrations\"}");
        } else {
            gw_http_respond(h, 503, "{\"status\":\"not_ready\",\"reason\":\"database\"}");
        }
    }
    store_req_free(req);
}

static void route_readyz(struct gw_server *srv, struct gw_http *h)
{
    struct store_req *req = store_req_new(STORE_OP_HEALTH, readyz_done, h);
    if (req == NULL) {
        gw_http_error(h, 503, "unavailable", "out of memory");
        return;
    }
    int rc = store_submit(srv->store, req, gw_now_ms());
    if (rc != 0) {
        store_req_free(req);
        gw_http_respond(h, 503, "{\"status\":\"not_ready\",\"reason\":\"busy\"}");
        return;
    }
    h->pending = req;
}

static bool is_get(struct lws *wsi)
{
    return lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;
}

static void route_metrics(struct gw_server *srv, struct gw_http *h)
{
    size_t len = 0;
    char *text = gw_metrics_render(srv, &len);
    if (text == NULL) {
        gw_http_error(h, 503, "unavailable", "out of memory");
        return;
    }
    gw_http_respond_take(h, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

static void route(struct gw_server *srv, struct gw_http *h, const char *path)
{
    bool get = is_get(h->wsi);
    if (strcmp(path, "/metrics") == 0) {
        if (get) {
            route_metrics(srv, h);
        } else {
            gw_http_error(h, 405, "bad_request", "method not allowed");
        }
        return;
    }
    if (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0) {
        if (!get) {
            gw_http_error(h, 405, "bad_request", "method not allowed");
        } else if (path[1] == 'h') {
            gw_http_respond(h, 200, "{\"status\":\"ok\"}");
        } else {
            route_readyz(srv, h);
        }
        return;
    }
    if (strcmp(path, "/webhooks/livekit") == 0) {
        gw_webhook_begin(srv, h, get);
        return;
    }
    if (strncmp(path, "/api/", 5) == 0) {
        gw_api_begin(srv, h, path, get);
        return;
    }
    gw_static_route(srv, h, path, get);
}

/* Cache-Control and the extra headers of h's response. */
static int add_headers(struct gw_http *h, unsigned char **p, unsigned char *end)
{
    const char *cc = h->cache_control != NULL ? h->cache_control : "no-store";
    if (lws_add_http_header_by_token(h->wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)cc, (int)strlen(cc), p, end)) {
        return -1;
    }
    for (size_t i = 0; i < h->n_headers; i++) {
        const char *v = h->headers[i].value;
        if (lws_add_http_header_by_name(h->wsi, (const unsigned char *)h->headers[i].name,
                                        (const unsigned char *)v, (int)strlen(v), p, end)) {
            return -1;
        }
    }
    return 0;
}

/* Forget the per-response settings (the connection may be kept alive). */
static void reset_response(struct gw_http *h)
{
    h->has_response = false;
    h->headers = NULL;
    h->n_headers = 0;
    h->cache_control = NULL;
    h->head_len = 0;
}

static int write_response_buf(struct gw_http *h, unsigned char *buf, size_t cap)
{
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + cap - 1;
    size_t content_len = h->head_len > 0 ? h->head_len : h->body_len;
    if (lws_add_http_common_headers(h->wsi, h->status, h->content_type, content_len, &p, end) ||
        add_headers(h, &p, end) || lws_finalize_http_header(h->wsi, &p, end) ||
        (size_t)(end - p) < h->body_len) {
        return -1;
    }
    if (h->body_len > 0) {
        memcpy(p, h->body, h->body_len);
        p += h->body_len;
    }
    reset_response(h);
    return lws_write(h->wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_FINAL) < 0 ? -1 : 0;
}

static int write_response(struct gw_http *h)
{
    size_t cap = LWS_PRE + GW_HTTP_HEADERS_MAX + h->body_len;
    unsigned char *buf = malloc(cap);
    if (buf == NULL) {
        return -1;
    }
    struct lws *wsi = h->wsi;
    int rc = write_response_buf(h, buf, cap);
    sodium_memzero(buf, cap);
    free(buf);
    free_body(h->body, h->body_len);
    h->body = NULL;
    /* h may be freed by lws from here on. */
    if (rc != 0 || lws_http_transaction_completed(wsi) != 0) {
        return -1;
    }
    return 0;
}

static void detach(struct gw_http *h)
{
    if (h == NULL) {
        return;
    }
    if (h->pending != NULL && h->api_route == GW_API_LIVEKIT_HOOK) {
        gw_webhook_detach(h); /* its effects still apply */
    } else if (h->pending != NULL) {
        h->pending->arg = NULL;
    }
    h->pending = NULL;
    free_body(h->body, h->body_len);
    h->body = NULL;
    reset_response(h);
    gw_api_fini(h);
}

int gw_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
    struct gw_server *srv = lws_context_user(lws_get_context(wsi));
    struct gw_http *h = user;
    switch (reason) {
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        return srv->draining ? 1 : 0; /* draining: accept nothing new */
    case LWS_CALLBACK_HTTP:
        if (h->pending != NULL || h->has_response) {
            return -1; /* pipelined request while one is pending */
        }
        h->wsi = wsi;
        h->srv = srv;
        if (in != NULL && strlen((const char *)in) != len) {
            /* a NUL (%00) inside the decoded path: nothing may cut it short */
            gw_http_error(h, 400, "bad_request", "invalid path");
            return 0;
        }
        route(srv, h, in != NULL ? (const char *)in : "/");
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return gw_ws_confirm_upgrade(srv, wsi);
    case LWS_CALLBACK_HTTP_BODY:
        gw_api_body(h, in, len);
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        gw_api_body_done(h);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return h != NULL && h->has_response ? write_response(h) : 0;
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        detach(h);
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (srv != NULL && srv->store != NULL) {
            store_run_done(srv->store);
        }
        if (srv != NULL && srv->ai != NULL) {
            ai_run_done(srv->ai);
        }
        if (srv != NULL && srv->lk != NULL) {
            ai_run_done(srv->lk);
        }
        if (srv != NULL && srv->listen != NULL) {
            store_listen_drain(srv->listen, gw_rooms_note, srv);
        }
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}
