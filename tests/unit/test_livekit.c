/*
 * test_livekit.c: the pure LiveKit parts (gateway/livekit.c): webhook
 * signature checks against fixed vectors (made with the jose library the
 * official SDK uses, and by hand for the malformed ones), event parsing,
 * minted tokens and the Twirp URL.
 */
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "jwt.h"
#include "livekit.h"

#define KEY    "APIvec0key"
#define SECRET "vec-secret-0123456789abcdefghijklmnop"
#define NBF    1700000000
#define EXP    1700000300
/* A body whose SHA-256 in base64 holds both '+' and '/', so its base64url
 * form differs. */
#define BODY "{\"event\":\"room_started\",\"id\":\"EV_vec0\",\"room\":{\"name\":\"room-vec\",\"sid\":\"RM_vec\"}}"

#define TOK_GOOD                                                                 \
    "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJBUEl2ZWMwa2V5IiwibmJmIjoxNzAwMDAwMDAwLCJleHAiOjE" \
    "3MDAwMDAzMDAsInNoYTI1NiI6InNpQVRTVEZveFhTa0srM0cvUWZnTm53bzJMVjMzSWhpa0hzNWxTa1d" \
    "IQmM9IiwidmlkZW8iOnt9fQ.VPiGoq0qpARtYBaFbirNlYMxVXwULLvYmVHKA-7upxY"
#define TOK_WRONG_SECRET                                                                 \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJBUEl2ZWMwa2V5IiwibmJmIjoxNzAwMDA" \
    "wMDAwLCJleHAiOjE3MDAwMDAzMDAsInNoYTI1NiI6InNpQVRTVEZveFhTa0srM0cvUWZnTm53bzJMVjM" \
    "zSWhpa0hzNWxTa1dIQmM9IiwidmlkZW8iOnt9fQ.Nm8V4etp3rxMBy5Nm-omrHd3f2p3wNmJpwwZTrrn" \
    "_yo"
#define TOK_WRONG_ISS                                                                 \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJBUElvdGhlciIsIm5iZiI6MTcwMDAwMDA" \
    "wMCwiZXhwIjoxNzAwMDAwMzAwLCJzaGEyNTYiOiJzaUFUU1RGb3hYU2tLKzNHL1FmZ05ud28yTFYzM0l" \
    "oaWtIczVsU2tXSEJjPSIsInZpZGVvIjp7fX0.CUoESdaW7w9X2SfoNC5cJF8wyK457URwKWmiPB4a1OM"
#define TOK_ALG_NONE                                                                 \
    "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpc3MiOiJBUEl2ZWMwa2V5IiwibmJmIjoxNzAwMDAw" \
    "MDAwLCJleHAiOjE3MDAwMDAzMDAsInNoYTI1NiI6InNpQVRTVEZveFhTa0srM0cvUWZnTm53bzJMVjMz" \
    "SWhpa0hzNWxTa1dIQmM9IiwidmlkZW8iOnt9fQ."
#define TOK_HS512                                                                 \
    "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJBUEl2ZWMwa2V5IiwibmJmIjoxNzAwMDA" \
    "wMDAwLCJleHAiOjE3MDAwMDAzMDAsInNoYTI1NiI6InNpQVRTVEZveFhTa0srM0cvUWZnTm53bzJMVjM" \
    "zSWhpa0hzNWxTa1dIQmM9IiwidmlkZW8iOnt9fQ.hiCBGa6qAfnH-LEPCANc5G8kf-e7rjoAJVFBpWfl" \
    "GzqJ_jeeN4rIVsU0jVYy6I_DQYr9yWTFFVI1oWsL5TdtPQ"
#define TOK_WRONG_SHA                                                                 \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJBUEl2ZWMwa2V5IiwibmJmIjoxNzAwMDA" \
    "wMDAwLCJleHAiOjE3MDAwMDAzMDAsInNoYTI1NiI6Imp2WTlJc2F6YnV0Y3I0b2NGdmJPYzgreVNMUnp" \
    "vRm0wQmY3d1pOMXZBdFU9IiwidmlkZW8iOnt9fQ.T3oHEXnivjPw_-99DTTVY0NX54nAQTx8K01nk7I-" \
    "Xp8"
#define TOK_SHA_BASE64URL                                                                 \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJBUEl2ZWMwa2V5IiwibmJmIjoxNzAwMDA" \
    "wMDAwLCJleHAiOjE3MDAwMDAzMDAsInNoYTI1NiI6InNpQVRTVEZveFhTa0stM0dfUWZnTm53bzJMVjM" \
    "zSWhpa0hzNWxTa1dIQmMiLCJ2aWRlbyI6e319.NstDBH8NoKleoPamItPDkTSb1YP1AVriaUQB4HtM2P" \
    "M"
#define TOK_NO_EXP                                                                 \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJBUEl2ZWMwa2V5IiwibmJmIjoxNzAwMDA" \
    "wMDAwLCJzaGEyNTYiOiJzaUFUU1RGb3hYU2tLKzNHL1FmZ05ud28yTFYzM0loaWtIczVsU2tXSEJjPSJ" \
    "9.ZxLbL6NIIDFdUedkeI0X4TiviApzIU2YvPSr32qdeww"
#define TOK_TAMPERED                                                                 \
    "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJBUEl2ZWMwa2V5IiwibmJmIjoxNzAwMDAwMDAwLCJleHAiOjE" \
    "4MDAwMDAwMDAsInNoYTI1NiI6InNpQVRTVEZveFhTa0srM0cvUWZnTm53bzJMVjMzSWhpa0hzNWxTa1d" \
    "IQmM9IiwidmlkZW8iOnt9fQ.VPiGoq0qpARtYBaFbirNlYMxVXwULLvYmVHKA-7upxY"

static int check_at(const char *token, int64_t now)
{
    struct gw_err err = {0};
    return gw_lk_verify_webhook(KEY, SECRET, token, strlen(token), (const unsigned char *)BODY,
                                strlen(BODY), now, &err);
}

static int check(const char *token)
{
    return check_at(token, NBF + 100);
}

Test(livekit_webhook, good_token_passes)
{
    cr_assert_eq(check(TOK_GOOD), 0);
}

Test(livekit_webhook, bearer_prefix_and_spaces_accepted)
{
    cr_assert_eq(check("Bearer " TOK_GOOD), 0);
    cr_assert_eq(check("bearer " TOK_GOOD), 0);
    cr_assert_eq(check("  " TOK_GOOD " "), 0);
}

Test(livekit_webhook, exp_and_nbf_with_60s_leeway)
{
    cr_assert_eq(check_at(TOK_GOOD, EXP + 59), 0);
    cr_assert_eq(check_at(TOK_GOOD, EXP + 60), GW_LK_E_AUTH, "expired");
    cr_assert_eq(check_at(TOK_GOOD, NBF - 60), 0);
    cr_assert_eq(check_at(TOK_GOOD, NBF - 61), GW_LK_E_AUTH, "not yet valid");
}

Test(livekit_webhook, refused_tokens)
{
    cr_assert_eq(check(TOK_WRONG_SECRET), GW_LK_E_AUTH);
    cr_assert_eq(check(TOK_WRONG_ISS), GW_LK_E_AUTH);
    cr_assert_eq(check(TOK_ALG_NONE), GW_LK_E_AUTH);
    cr_assert_eq(check(TOK_HS512), GW_LK_E_AUTH);
    cr_assert_eq(check(TOK_TAMPERED), GW_LK_E_AUTH);
    cr_assert_eq(check(TOK_NO_EXP), GW_LK_E_AUTH);
    cr_assert_eq(check(""), GW_LK_E_AUTH);
    cr_assert_eq(check("Bearer "), GW_LK_E_AUTH);
    cr_assert_eq(check("not.a.token"), GW_LK_E_AUTH);
}

Test(livekit_webhook, body_hash_must_match)
{
    cr_assert_eq(check(TOK_WRONG_SHA), GW_LK_E_HASH);
    cr_assert_eq(check(TOK_SHA_BASE64URL), GW_LK_E_HASH, "base64url is not LiveKit's encoding");
    struct gw_err err = {0};
    const char tampered[] = BODY " ";
    cr_assert_eq(gw_lk_verify_webhook(KEY, SECRET, TOK_GOOD, strlen(TOK_GOOD),
                                      (const unsigned char *)tampered, strlen(tampered), NBF + 1,
                                      &err),
                 GW_LK_E_HASH);
    cr_assert(strstr(err.msg, SECRET) == NULL && strstr(err.msg, "eyJ") == NULL);
}

Test(livekit_webhook, wrong_key_configured)
{
    struct gw_err err = {0};
    cr_assert_eq(gw_lk_verify_webhook("APIother", SECRET, TOK_GOOD, strlen(TOK_GOOD),
                                      (const unsigned char *)BODY, strlen(BODY), NBF + 1, &err),
                 GW_LK_E_AUTH);
}

/* ---- parsing ------------------------------------------------------------------------------ */

static int parse(const char *json, struct store_lk_event *ev, bool *replaced)
{
    struct gw_err err = {0};
    return gw_lk_parse_event((const unsigned char *)json, strlen(json), ev, replaced, &err);
}

Test(livekit_parse, participant_joined_as_the_sdk_serializes_it)
{
    struct store_lk_event ev;
    bool replaced = true;
    const char *j = "{\"event\":\"participant_joined\",\"room\":{\"sid\":\"RM_a\",\"name\":\"room-1\","
                    "\"creationTime\":\"1700000000\",\"creationTimeMs\":\"1700000000123\"},"
                    "\"participant\":{\"sid\":\"PA_1\",\"identity\":\"cuser1\",\"state\":\"ACTIVE\","
                    "\"joinedAt\":\"1700000001\"},\"id\":\"EV_1\",\"createdAt\":\"1700000001\"}";
    cr_assert_eq(parse(j, &ev, &replaced), 0);
    cr_assert_eq(ev.kind, STORE_LK_JOINED);
    cr_assert_str_eq(ev.event_id, "EV_1");
    cr_assert_str_eq(ev.room_id, "room-1");
    cr_assert_str_eq(ev.room_sid, "RM_a");
    cr_assert_eq(ev.room_created_ms, 1700000000123LL);
    cr_assert_str_eq(ev.participant_sid, "PA_1");
    cr_assert_str_eq(ev.user_id, "cuser1");
    cr_assert(!replaced);
}

Test(livekit_parse, creation_time_in_seconds_and_numbers)
{
    struct store_lk_event ev;
    bool replaced;
    cr_assert_eq(parse("{\"event\":\"room_finished\",\"id\":\"E\",\"room\":{\"name\":\"r\","
                       "\"sid\":\"RM\",\"creationTime\":1700000000}}",
                       &ev, &replaced),
                 0);
    cr_assert_eq(ev.kind, STORE_LK_FINISHED);
    cr_assert_eq(ev.room_created_ms, 1700000000000LL);
}

Test(livekit_parse, duplicate_identity_is_a_replacement)
{
    struct store_lk_event ev;
    bool replaced = false;
    cr_assert_eq(parse("{\"event\":\"participant_left\",\"id\":\"E\",\"room\":{\"name\":\"r\"},"
                       "\"participant\":{\"sid\":\"PA\",\"identity\":\"u\","
                       "\"disconnectReason\":\"DUPLICATE_IDENTITY\"}}",
                       &ev, &replaced),
                 0);
    cr_assert(replaced);
    cr_assert_eq(parse("{\"event\":\"participant_left\",\"id\":\"E\",\"room\":{\"name\":\"r\"},"
                       "\"participant\":{\"sid\":\"PA\",\"identity\":\"u\","
                       "\"disconnectReason\":\"CLIENT_INITIATED\"}}",
                       &ev, &replaced),
                 0);
    cr_assert(!replaced);
}

Test(livekit_parse, non_user_participants_and_other_events_are_ignored)
{
    struct store_lk_event ev;
    bool replaced;
    static const char *const kinds[] = {"EGRESS", "INGRESS", "SIP", "AGENT"};
    for (size_t i = 0; i < 4; i++) {
        char j[256];
        snprintf(j, sizeof j,
                 "{\"event\":\"participant_joined\",\"id\":\"E\",\"room\":{\"name\":\"r\"},"
                 "\"participant\":{\"sid\":\"PA\",\"identity\":\"EG_x\",\"kind\":\"%s\"}}",
                 kinds[i]);
        cr_assert_eq(parse(j, &ev, &replaced), GW_LK_IGNORED, "%s", kinds[i]);
    }
    cr_assert_eq(parse("{\"event\":\"participant_joined\",\"id\":\"E\",\"room\":{\"name\":\"r\"},"
                       "\"participant\":{\"sid\":\"PA\",\"identity\":\"u\",\"kind\":\"STANDARD\"}}",
                       &ev, &replaced),
                 0);
    cr_assert_eq(parse("{\"event\":\"track_published\",\"id\":\"E\"}", &ev, &replaced),
                 GW_LK_IGNORED);
    cr_assert_eq(parse("{\"event\":\"participant_connection_aborted\",\"id\":\"E\"}", &ev,
                       &replaced),
                 GW_LK_IGNORED);
    cr_assert_eq(parse("{\"event\":\"room_started\",\"id\":\"E\",\"room\":{\"name\":\"r\"}}", &ev,
                       &replaced),
                 0);
    cr_assert_eq(ev.kind, STORE_LK_OTHER);
}

Test(livekit_parse, malformed_bodies)
{
    struct store_lk_event ev;
    bool replaced;
    static const char *const bad[] = {
        "",
        "not json",
        "[]",
        "{\"id\":\"E\"}",
        "{\"event\":\"room_finished\"}",
        "{\"event\":\"room_finished\",\"id\":7}",
        "{\"event\":\"room_finished\",\"id\":\"E\",\"room\":\"r\"}",
        "{\"event\":\"room_finished\",\"id\":\"E\",\"room\":{\"name\":5}}",
        "{\"event\":\"room_finished\",\"id\":\"E\",\"room\":{\"name\":\"r\",\"creationTime\":\"x\"}}",
        "{\"event\":\"participant_joined\",\"id\":\"E\",\"room\":{\"name\":\"r\"}}",
        "{\"event\":\"participant_joined\",\"id\":\"E\",\"room\":{\"name\":\"r\"},"
        "\"participant\":{\"sid\":\"PA\"}}",
        "{\"event\":\"room_finished\",\"id\":\"E\",\"id\":\"F\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(parse(bad[i], &ev, &replaced), GW_LK_E_BODY, "%s", bad[i]);
    }
}

/* ---- tokens and URLs ---------------------------------------------------------------------- */

static json_t *claims_of(const char *token)
{
    struct gw_jwt_check chk = {.now_unix = 1700000100, .require_exp = 1};
    json_t *claims = NULL;
    struct gw_err err = {0};
    cr_assert_eq(gw_jwt_verify_hs256(token, strlen(token), (const unsigned char *)SECRET,
                                     strlen(SECRET), &chk, &claims, &err),
                 0, "%s", err.msg);
    return claims;
}

Test(livekit_tokens, access_token_claims)
{
    struct gw_lk_grant g = {.identity = "cuser1", .name = "Sam", .room = "room-1",
                            .can_publish = false, .nbf_unix = 1700000000,
                            .exp_unix = 1700003600};
    char *t = gw_lk_access_token(KEY, SECRET, &g);
    cr_assert_not_null(t);
    json_t *c = claims_of(t);
    cr_assert_str_eq(json_string_value(json_object_get(c, "iss")), KEY);
    cr_assert_str_eq(json_string_value(json_object_get(c, "sub")), "cuser1");
    cr_assert_str_eq(json_string_value(json_object_get(c, "name")), "Sam");
    cr_assert_eq(json_integer_value(json_object_get(c, "nbf")), 1700000000);
    cr_assert_eq(json_integer_value(json_object_get(c, "exp")), 1700003600);
    json_t *v = json_object_get(c, "video");
    cr_assert_str_eq(json_string_value(json_object_get(v, "room")), "room-1");
    cr_assert(json_is_true(json_object_get(v, "roomJoin")));
    cr_assert(json_is_false(json_object_get(v, "canPublish")));
    cr_assert(json_is_true(json_object_get(v, "canSubscribe")));
    cr_assert(json_is_true(json_object_get(v, "canPublishData")));
    cr_assert_eq(json_object_size(c), 6);
    json_decref(c);
    free(t);
}

Test(livekit_tokens, admin_token_claims)
{
    char *t = gw_lk_admin_token(KEY, SECRET, "room-9", 1700000000, 600);
    json_t *c = claims_of(t);
    json_t *v = json_object_get(c, "video");
    cr_assert_str_eq(json_string_value(json_object_get(v, "room")), "room-9");
    cr_assert(json_is_true(json_object_get(v, "roomAdmin")));
    cr_assert(json_is_true(json_object_get(v, "roomCreate")), "LiveKit checks it for DeleteRoom");
    cr_assert_eq(json_integer_value(json_object_get(c, "exp")), 1700000600);
    json_decref(c);
    free(t);
}

Test(livekit_tokens, twirp_urls)
{
    char out[256];
    cr_assert_eq(gw_lk_twirp_url("wss://lk.example.com", "DeleteRoom", out, sizeof out), 0);
    cr_assert_str_eq(out, "https://lk.example.com/twirp/livekit.RoomService/DeleteRoom");
    cr_assert_eq(gw_lk_twirp_url("ws://127.0.0.1:7880/", "DeleteRoom", out, sizeof out), 0);
    cr_assert_str_eq(out, "http://127.0.0.1:7880/twirp/livekit.RoomService/DeleteRoom");
    cr_assert_eq(gw_lk_twirp_url("https://h/base/", "X", out, sizeof out), 0);
    cr_assert_str_eq(out, "https://h/base/twirp/livekit.RoomService/X");
    cr_assert_eq(gw_lk_twirp_url("ftp://h", "X", out, sizeof out), -1);
    cr_assert_eq(gw_lk_twirp_url("wss://", "X", out, sizeof out), -1);
    cr_assert_eq(gw_lk_twirp_url("wss://h", "X", out, 10), -1);
}
