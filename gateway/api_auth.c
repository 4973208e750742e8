/*
 * api_auth.c: the Skool auth-code routes of protocol.md section 5,
 * POST /api/auth/codes and POST /api/auth/redeem.
 *
 * DESIGN: api.c collects the body (bounded) and hands over here; each
 * route validates it on the loop thread, makes its secrets here (the code's
 * random part and the session token, from libsodium), then runs as one
 * store request held in h->pending, like the other /api routes. The times
 * written come from the gateway's wall clock, read once per request.
 *
 *  - codes: SERVICE_KEY unset (or empty) -> 503; the Bearer token is
 *    compared with it in constant time (both hashed with BLAKE2b to a
 *    fixed size, the digests compared with sodium_memcmp, lengths compared
 *    without a branch) -> 401 when it differs; a bad body -> 422; then the
 *    store issues the code under the daily limit (429 beyond it).
 *  - redeem: no authorization (the code is the credential); the store uses
 *    the code and creates the "UserSession" in one statement; 401 with
 *    invalid_code, code_used or code_expired when it cannot.
 *
 * Codes and tokens are never logged. json_t stays inside this file.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <sodium.h>

#include "gw_int.h"
#include "jwt.h"
#include "msgs.h"

#define CODE_TTL_MS         ((int64_t)30 * 60 * 1000)
#define SESSION_TTL_MS      ((int64_t)30 * 24 * 60 * 60 * 1000)
#define CODES_PER_DAY       5
#define CODE_RANDOM_CHARS   16
#define SESSION_TOKEN_BYTES 32
#define HEADER_SCRATCH_MAX  4096 /* a longer User-Agent is recorded as "" */

/* A store failure other than the route's own outcomes. */
static void store_failed(struct gw_http *h, int rc)
{
    if (rc == STORE_E_UNAVAILABLE || rc == STORE_E_FULL || rc == STORE_E_STOPPED) {
        gw_http_error(h, 503, "unavailable", "database unavailable; retry");
    } else if (rc == -EINVAL) {
        gw_http_error(h, 422, "bad_request", "a value was refused");
    } else {
        gw_http_error(h, 500, "internal", "internal error");
    }
}

/* ---- body ----------------------------------------------------------------------------------- */

static json_t *body_object(const struct gw_http *h)
{
    if (h->api_body == NULL) {
        return NULL;
    }
    json_t *o = json_loadb(h->api_body, h->api_body_len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Copy member key of o into dst (cap bytes). 0 when it is a string that
 * fits, non-empty unless optional; 1 when it is absent or null and
 * optional (dst = ""); -1 otherwise. */
static int copy_member(json_t *o, const char *key, char *dst, size_t cap, bool optional)
{
    json_t *v = json_object_get(o, key);
    dst[0] = '\0';
    if (optional && (v == NULL || json_is_null(v))) {
        return 1;
    }
    if (!json_is_string(v)) {
        return -1;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if ((len == 0 && !optional) || len >= cap || memchr(s, '\0', len) != NULL) {
        return -1;
    }
    memcpy(dst, s, len);
    dst[len] = '\0';
    return 0;
}

/* ---- POST /api/auth/codes ----------------------------------------------------------------- */

/* Constant time in the key's content and length (see DESIGN). */
static bool service_key_ok(const char *token, const char *key)
{
    return token != NULL && gw_ct_equal(token, strlen(token), key, strlen(key));
}

/* "vgs-<unix ms>-<16 of [a-z0-9]>" into out. */
static void make_code(char *out, size_t cap, int64_t now_unix_ms)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    char rnd[CODE_RANDOM_CHARS + 1];
    for (size_t i = 0; i < CODE_RANDOM_CHARS; i++) {
        rnd[i] = alphabet[randombytes_uniform((uint32_t)(sizeof(alphabet) - 1))];
    }
    rnd[CODE_RANDOM_CHARS] = '\0';
    (void)snprintf(out, cap, "vgs-%lld-%s", (long long)now_unix_ms, rnd);
    sodium_memzero(rnd, sizeof(rnd));
}

static void codes_done(struct store_req *req)
{
    struct gw_http *h = req->arg;
    if (h != NULL) {
        h->pending = NULL;
        const struct store_auth_code_issue *a = &req->u.code_issue;
        if (req->rc != 0) {
            gw_log(GW_LOG_WARN, "auth.code_failed", "rc=%d", req->rc);
            store_failed(h, req->rc);
        } else if (a->limited) {
            gw_log(GW_LOG_INFO, "auth.code_rate_limited", "count=%d", a->request_count);
            gw_http_error(h, 429, "rate_limited", "at most 5 codes per user per UTC day");
        } else {
            gw_log(GW_LOG_INFO, "auth.code_issued", "count=%d", a->request_count);
            gw_http_respond_json(h, 201,
                                 json_pack("{s:s, s:o}", "code", a->code, "expiresAt",
                                           gw_msg_time(a->expires_unix_ms)));
        }
    }
    store_req_free(req);
}

/* Fill a from the body: "skoolUserId" and "skoolUsername". 0 or -1. */
static int codes_body(const struct gw_http *h, struct store_auth_code_issue *a)
{
    json_t *o = body_object(h);
    int rc = o != NULL &&
                     copy_member(o, "skoolUserId", a->skool_user_id, sizeof(a->skool_user_id),
                                 false) == 0 &&
                     copy_member(o, "skoolUsername", a->skool_username, sizeof(a->skool_username),
                                 false) == 0
                 ? 0
                 : -1;
    json_decref(o);
    return rc;
}

static void run_codes(struct gw_http *h)
{
    const char *key = h->srv->cfg->service_key;
    if (key == NULL || key[0] == '\0') {
        gw_http_error(h, 503, "unavailable", "auth codes are not configured");
        return;
    }
    if (!service_key_ok(h->api_token, key)) {
        gw_log(GW_LOG_INFO, "auth.refused", "route=codes reason=\"bad service key\"");
        gw_http_error(h, 401, "unauthorized", "Authorization: Bearer <SERVICE_KEY> required");
        return;
    }
    struct store_req *req = store_req_new(STORE_OP_AUTH_CODE_ISSUE, codes_done, NULL);
    if (req == NULL) {
        gw_http_error(h, 503, "unavailable", "out of memory");
        return;
    }
    struct store_auth_code_issue *a = &req->u.code_issue;
    if (codes_body(h, a) != 0) {
        store_req_free(req);
        gw_http_error(h, 422, "bad_request",
                      "skoolUserId (1..128 bytes) and skoolUsername (1..256 bytes) required");
        return;
    }
    a->now_unix_ms = gw_unix_ms();
    a->expires_unix_ms = a->now_unix_ms + CODE_TTL_MS;
    a->max_per_day = CODES_PER_DAY;
    make_code(a->code, sizeof(a->code), a->now_unix_ms);
    gw_api_submit(h, req);
}

/* ---- POST /api/auth/redeem ---------------------------------------------------------------- */

static void redeem_done(struct store_req *req)
{
    struct gw_http *h = req->arg;
    if (h != NULL) {
        h->pending = NULL;
        const struct store_auth_code_redeem *r = &req->u.code_redeem;
        if (req->rc == 0) {
            gw_log(GW_LOG_INFO, "auth.code_redeemed", "user_session=%s", r->user_session_id);
            gw_http_respond_json(h, 201,
                                 json_pack("{s:s, s:o, s:s, s:s}", "token", r->session_token,
                                           "expiresAt", gw_msg_time(r->session_expires_unix_ms),
                                           "skoolUserId", r->skool_user_id, "skoolUsername",
                                           r->skool_username));
        } else if (req->rc == STORE_E_NOTFOUND) {
            gw_http_error(h, 401, "invalid_code", "unknown auth code");
        } else if (req->rc == STORE_E_CONFLICT) {
            gw_http_error(h, 401, "code_used", "auth code already used");
        } else if (req->rc == STORE_E_STATE) {
            gw_http_error(h, 401, "code_expired", "auth code expired");
        } else {
            gw_log(GW_LOG_WARN, "auth.redeem_failed", "rc=%d", req->rc);
            store_failed(h, req->rc);
        }
    }
    store_req_free(req);
}

/* The User-Agent header into out (cap bytes): printable ASCII only (other
 * bytes become '?', so the column always takes it), cut to fit; "" when
 * there is none or it is over HEADER_SCRATCH_MAX. */
static void copy_user_agent(struct lws *wsi, char *out, size_t cap)
{
    out[0] = '\0';
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_USER_AGENT);
    if (total <= 0 || total >= HEADER_SCRATCH_MAX) {
        return;
    }
    char *scratch = malloc((size_t)total + 1);
    if (scratch == NULL) {
        return;
    }
    int n = lws_hdr_copy(wsi, scratch, total + 1, WSI_TOKEN_HTTP_USER_AGENT);
    size_t len = 0;
    for (int i = 0; i < n && len + 1 < cap; i++) {
        unsigned char ch = (unsigned char)scratch[i];
        if (ch >= 0x20 && ch < 0x7f) {
            out[len++] = scratch[i];
        } else {
            out[len++] = '?';
        }
    }
    out[len] = '\0';
    free(scratch);
}

/* The peer's address into out (cap bytes), "" when unknown. An IPv4
 * client of the dual-stack listener shows as "::ffff:a.b.c.d": recorded as
 * "a.b.c.d". */
static void peer_ip(struct lws *wsi, char *out, size_t cap)
{
    static const char mapped[] = "::ffff:";
    char buf[STORE_IP_MAX + 1];
    out[0] = '\0';
    if (lws_get_peer_simple(wsi, buf, sizeof(buf)) == NULL) {
        return;
    }
    const char *ip = buf;
    size_t n = strlen(mapped);
    if (strncasecmp(buf, mapped, n) == 0 && strchr(buf + n, ':') == NULL &&
        strchr(buf + n, '.') != NULL) {
        ip = buf + n;
    }
    (void)snprintf(out, cap, "%s", ip);
}

/* 32 random bytes as base64url without padding (43 characters). */
static void make_session_token(char *out, size_t cap)
{
    unsigned char raw[SESSION_TOKEN_BYTES];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(out, cap, raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
}

/* Fill r from the body: "code" and the optional "deviceFingerprint".
 * 0; 1 when the code is too long to exist; -1 for a bad body. */
static int redeem_body(const struct gw_http *h, struct store_auth_code_redeem *r)
{
    json_t *o = body_object(h);
    if (o == NULL) {
        return -1;
    }
    int rc = 0;
    json_t *code = json_object_get(o, "code");
    if (!json_is_string(code) || json_string_length(code) == 0 ||
        copy_member(o, "deviceFingerprint", r->fingerprint, sizeof(r->fingerprint), true) < 0) {
        rc = -1;
    } else if (copy_member(o, "code", r->code, sizeof(r->code), false) != 0) {
        rc = 1;
    }
    json_decref(o);
    return rc;
}

static void run_redeem(struct gw_http *h)
{
    struct store_req *req = store_req_new(STORE_OP_AUTH_CODE_REDEEM, redeem_done, NULL);
    if (req == NULL) {
        gw_http_error(h, 503, "unavailable", "out of memory");
        return;
    }
    struct store_auth_code_redeem *r = &req->u.code_redeem;
    int rc = redeem_body(h, r);
    if (rc != 0) {
        store_req_free(req);
        if (rc > 0) {
            gw_http_error(h, 401, "invalid_code", "unknown auth code");
        } else {
            gw_http_error(h, 422, "bad_request",
                          "code required; deviceFingerprint optional (at most 512 bytes)");
        }
        return;
    }
    peer_ip(h->wsi, r->ip, sizeof(r->ip));
    copy_user_agent(h->wsi, r->user_agent, sizeof(r->user_agent));
    make_session_token(r->session_token, sizeof(r->session_token));
    r->now_unix_ms = gw_unix_ms();
    r->session_expires_unix_ms = r->now_unix_ms + SESSION_TTL_MS;
    gw_api_submit(h, req);
}

/* ---- entry point ---------------------------------------------------------------------------- */

void gw_api_auth_run(struct gw_http *h)
{
    if (h->api_route == GW_API_AUTH_CODES) {
        run_codes(h);
    } else {
        run_redeem(h);
    }
}
