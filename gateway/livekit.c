/*
 * livekit.c: the pure parts of the LiveKit integration: webhook checks and
 * parsing, token minting, the Twirp URL (livekit.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <sodium.h>

#include "jwt.h"
#include "livekit.h"

/* ---- webhook signature -------------------------------------------------------------------- */

/* The token in an Authorization value: bare, or after "Bearer ". */
static const char *token_of(const char *auth, size_t *len)
{
    while (*len > 0 && (*auth == ' ' || *auth == '\t')) {
        auth++;
        (*len)--;
    }
    if (*len > 7 && strncasecmp(auth, "Bearer ", 7) == 0) {
        auth += 7;
        *len -= 7;
    }
    while (*len > 0 && (auth[*len - 1] == ' ' || auth[*len - 1] == '\t')) {
        (*len)--;
    }
    return auth;
}

/* Does the sha256 claim equal base64(SHA-256(body)), padded, standard alphabet? */
static int body_hash_ok(const json_t *claims, const unsigned char *body, size_t body_len)
{
    const char *claim = json_string_value(json_object_get(claims, "sha256"));
    if (claim == NULL) {
        return 0;
    }
    unsigned char digest[crypto_hash_sha256_BYTES];
    char want[sodium_base64_ENCODED_LEN(crypto_hash_sha256_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    crypto_hash_sha256(digest, body, body_len);
    sodium_bin2base64(want, sizeof(want), digest, sizeof(digest), sodium_base64_VARIANT_ORIGINAL);
    return gw_ct_equal(claim, strlen(claim), want, strlen(want));
}

int gw_lk_verify_webhook(const char *api_key, const char *api_secret, const char *auth,
                         size_t auth_len, const unsigned char *body, size_t body_len,
                         int64_t now_unix, struct gw_err *err)
{
    if (auth == NULL || auth_len == 0) {
        return gw_err_set(err, GW_LK_E_AUTH, "Authorization header missing");
    }
    size_t len = auth_len;
    const char *token = token_of(auth, &len);
    struct gw_jwt_check chk = {
        .now_unix = now_unix, .leeway_sec = GW_LK_LEEWAY_SEC, .require_exp = 1};
    json_t *claims = NULL;
    struct gw_err jerr = {0};
    if (gw_jwt_verify_hs256(token, len, (const unsigned char *)api_secret, strlen(api_secret),
                            &chk, &claims, &jerr) != 0) {
        return gw_err_set(err, GW_LK_E_AUTH, "webhook token refused: %s", jerr.msg);
    }
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    int rc = 0;
    if (iss == NULL || !gw_ct_equal(iss, strlen(iss), api_key, strlen(api_key))) {
        rc = gw_err_set(err, GW_LK_E_AUTH, "webhook token refused: iss is not LIVEKIT_API_KEY");
    } else if (!body_hash_ok(claims, body, body_len)) {
        rc = gw_err_set(err, GW_LK_E_HASH, "webhook body does not match the token's sha256");
    }
    json_decref(claims);
    return rc;
}

/* ---- webhook event ------------------------------------------------------------------------- */

/* Copy an optional string member into dst (cap); "" when absent or null.
 * -1 when present with another type or too long. */
static int get_str(const json_t *obj, const char *key, char *dst, size_t cap)
{
    const json_t *v = json_object_get(obj, key);
    dst[0] = '\0';
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) >= cap) {
        return -1;
    }
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return memchr(dst, '\0', json_string_length(v)) == NULL ? 0 : -1;
}

/* An int64 in protobuf JSON: a number or a decimal string; 0 when absent. */
static int get_i64(const json_t *obj, const char *key, int64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    *out = 0;
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (!json_is_string(v)) {
        return -1;
    }
    char *end = NULL;
    errno = 0;
    long long n = strtoll(json_string_value(v), &end, 10);
    if (errno != 0 || end == json_string_value(v) || *end != '\0') {
        return -1;
    }
    *out = n;
    return 0;
}

/* Is the enum value v (name or number; absent = 0) equal to name / number? */
static int enum_is(const json_t *v, const char *name, json_int_t number)
{
    if (v == NULL || json_is_null(v)) {
        return number == 0;
    }
    if (json_is_integer(v)) {
        return json_integer_value(v) == number;
    }
    return json_is_string(v) && strcmp(json_string_value(v), name) == 0;
}

static enum store_lk_kind kind_of(const char *event)
{
    if (strcmp(event, "participant_joined") == 0) {
        return STORE_LK_JOINED;
    }
    if (strcmp(event, "participant_left") == 0) {
        return STORE_LK_LEFT;
    }
    if (strcmp(event, "room_finished") == 0) {
        return STORE_LK_FINISHED;
    }
    return STORE_LK_OTHER;
}

/* The room object: name, sid and creation time (ms). */
static int parse_room(const json_t *room, struct store_lk_event *ev)
{
    if (room == NULL) {
        return 0;
    }
    int64_t sec = 0, ms = 0;
    if (!json_is_object(room) || get_str(room, "name", ev->room_id, sizeof ev->room_id) != 0 ||
        get_str(room, "sid", ev->room_sid, sizeof ev->room_sid) != 0 ||
        get_i64(room, "creationTime", &sec) != 0 || get_i64(room, "creationTimeMs", &ms) != 0) {
        return -1;
    }
    /* Times beyond year 5000 (or negative) are not LiveKit's: unknown. */
    static const int64_t max_sec = INT64_C(95617584000);
    if (sec < 0 || sec > max_sec || ms < 0 || ms > max_sec * 1000) {
        sec = ms = 0;
    }
    ev->room_created_ms = ms > 0 ? ms : sec * 1000;
    return 0;
}

/* The participant of a joined/left event: 1 when it is a standard user. */
static int parse_participant(const json_t *p, struct store_lk_event *ev, bool *replaced)
{
    if (!json_is_object(p) ||
        get_str(p, "sid", ev->participant_sid, sizeof ev->participant_sid) != 0 ||
        get_str(p, "identity", ev->user_id, sizeof ev->user_id) != 0) {
        return -1;
    }
    if (ev->participant_sid[0] == '\0' || ev->user_id[0] == '\0') {
        return -1;
    }
    *replaced = ev->kind == STORE_LK_LEFT &&
                enum_is(json_object_get(p, "disconnectReason"), "DUPLICATE_IDENTITY", 2);
    return enum_is(json_object_get(p, "kind"), "STANDARD", 0);
}

int gw_lk_parse_event(const unsigned char *body, size_t len, struct store_lk_event *ev,
                      bool *replaced, struct gw_err *err)
{
    memset(ev, 0, sizeof(*ev));
    *replaced = false;
    json_error_t jerr;
    json_t *root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        return gw_err_set(err, GW_LK_E_BODY, "body is not a JSON object");
    }
    int rc = GW_LK_E_BODY;
    const char *what = "event";
    if (get_str(root, "event", ev->event, sizeof ev->event) != 0 || ev->event[0] == '\0') {
        what = "event: a non-empty string of at most 39 bytes is required";
    } else if (get_str(root, "id", ev->event_id, sizeof ev->event_id) != 0 ||
               ev->event_id[0] == '\0') {
        what = "id: a non-empty string of at most 128 bytes is required";
    } else if (parse_room(json_object_get(root, "room"), ev) != 0) {
        what = "room: name and sid strings expected";
    } else {
        ev->kind = kind_of(ev->event);
        rc = 0;
        if (ev->kind == STORE_LK_OTHER && strcmp(ev->event, "room_started") != 0) {
            rc = GW_LK_IGNORED;
        } else if (ev->kind == STORE_LK_JOINED || ev->kind == STORE_LK_LEFT) {
            int std = parse_participant(json_object_get(root, "participant"), ev, replaced);
            if (std < 0) {
                rc = GW_LK_E_BODY;
                what = "participant: sid and identity strings expected";
            } else if (std == 0) {
                rc = GW_LK_IGNORED; /* egress, ingress, SIP, agents */
            }
        }
    }
    json_decref(root);
    if (rc == GW_LK_E_BODY) {
        return gw_err_set(err, rc, "%s", what);
    }
    return rc;
}

/* ---- tokens ------------------------------------------------------------------------------------ */

static char *sign(const char *api_secret, json_t *claims)
{
    char *token = claims != NULL ? gw_jwt_sign_hs256(claims, (const unsigned char *)api_secret,
                                                     strlen(api_secret))
                                 : NULL;
    json_decref(claims);
    return token;
}

char *gw_lk_access_token(const char *api_key, const char *api_secret,
                         const struct gw_lk_grant *g)
{
    json_t *claims = json_pack(
        "{s:s, s:s, s:s, s:I, s:I, s:{s:s, s:b, s:b, s:b, s:b}}", "iss", api_key, "sub",
        g->identity, "name", g->name, "nbf", (json_int_t)g->nbf_unix, "exp",
        (json_int_t)g->exp_unix, "video", "room", g->room, "roomJoin", 1, "canPublish",
        g->can_publish ? 1 : 0, "canSubscribe", 1, "canPublishData", 1);
    return sign(api_secret, claims);
}

char *gw_lk_admin_token(const char *api_key, const char *api_secret, const char *room,
                        int64_t now_unix, int64_t ttl_sec)
{
    json_t *claims = json_pack("{s:s, s:I, s:I, s:{s:s, s:b, s:b}}", "iss", api_key, "nbf",
                               (json_int_t)now_unix, "exp", (json_int_t)(now_unix + ttl_sec),
                               "video", "room", room, "roomAdmin", 1, "roomCreate", 1);
    return sign(api_secret, claims);
}

/* ---- Twirp URL ---------------------------------------------------------------------------------- */

int gw_lk_twirp_url(const char *livekit_url, const char *method, char *out, size_t cap)
{
    static const struct {
        const char *from, *to;
    } schemes[] = {{"ws://", "http://"},
                   {"wss://", "https://"},
                   {"http://", "http://"},
                   {"https://", "https://"}};
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        size_t n = strlen(schemes[i].from);
        if (strncasecmp(livekit_url, schemes[i].from, n) != 0) {
            continue;
        }
        const char *rest = livekit_url + n;
        size_t rest_len = strlen(rest);
        while (rest_len > 0 && rest[rest_len - 1] == '/') {
            rest_len--;
        }
        if (rest_len == 0) {
            return -1;
        }
        int w = snprintf(out, cap, "%s%.*s/twirp/livekit.RoomService/%s", schemes[i].to,
                         (int)rest_len, rest, method);
        return w > 0 && (size_t)w < cap ? 0 : -1;
    }
    return -1;
}
