/*
 * auth.c: turning a bearer token into the store request that resolves its
 * user, shared by the WebSocket (ws.c) and the HTTP API (api.c). A JWT is
 * verified here, on the loop thread (HS256 with JWT_SECRET, exp required),
 * and only its user is looked up; anything else of the right size is
 * taken for a session token and checked in the database.
 */
#include <string.h>

#include "gw_int.h"
#include "jwt.h"

static bool looks_like_jwt(const char *token, size_t len)
{
    const char *d1 = memchr(token, '.', len);
    return d1 != NULL && memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) != NULL;
}

static struct store_req *jwt_request(const struct gw_config *cfg, const char *token, size_t len,
                                     store_done_fn done, void *arg, int64_t *exp_unix_ms)
{
    struct gw_jwt_check chk = {.now_unix = gw_unix_ms() / 1000, .require_exp = 1};
    json_t *claims = NULL;
    struct gw_err err = {0};
    if (gw_jwt_verify_hs256(token, len, (const unsigned char *)cfg->jwt_secret,
                            strlen(cfg->jwt_secret), &chk, &claims, &err) != 0) {
        gw_log(GW_LOG_INFO, "auth.refused", "reason=\"%s\"", err.msg);
        return NULL;
    }
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    struct store_req *req = NULL;
    if (sub != NULL && sub[0] != '\0' && strlen(sub) <= STORE_ID_MAX) {
        req = store_req_new(STORE_OP_AUTH_USER, done, arg);
    }
    if (req != NULL) {
        snprintf(req->u.auth_user.user.id, sizeof(req->u.auth_user.user.id), "%s", sub);
        *exp_unix_ms = (int64_t)json_number_value(json_object_get(claims, "exp")) * 1000;
    }
    json_decref(claims);
    return req;
}

struct store_req *gw_auth_request(const struct gw_config *cfg, const char *token, size_t len,
                                  store_done_fn done, void *arg, int64_t *jwt_exp_unix_ms)
{
    *jwt_exp_unix_ms = 0;
    if (len == 0 || memchr(token, '\0', len) != NULL) {
        return NULL;
    }
    if (looks_like_jwt(token, len) && cfg->jwt_secret != NULL) {
        return jwt_request(cfg, token, len, done, arg, jwt_exp_unix_ms);
    }
    if (len > STORE_TOKEN_MAX) {
        return NULL;
    }
    struct store_req *req = store_req_new(STORE_OP_AUTH_SESSION, done, arg);
    if (req != NULL) {
        memcpy(req->u.auth_session.token, token, len);
        req->u.auth_session.token[len] = '\0';
    }
    return req;
}
