/*
 * fuzz_lkevent.c: libFuzzer target for the LiveKit webhook path after the
 * signature (gw_lk_parse_event) and for the signature check itself
 * (gw_lk_verify_webhook) on the same bytes.
 *
 * Each input is parsed as a webhook body. Invariants: the result is 0,
 * GW_LK_IGNORED or GW_LK_E_BODY (with a message); on 0 every string of the
 * event is NUL-terminated within its field, the id and event name are
 * non-empty, the kind matches the event name, and a participant event
 * names its participant sid and identity. Then the input, as the body, is
 * verified with a token signed here over it (it must pass) and with the
 * input itself as the Authorization value (it must not, barring a valid
 * signature, which random bytes do not carry).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "fuzz_check.h"
#include "jwt.h"
#include "livekit.h"

#define KEY    "APIfuzz"
#define SECRET "coach-fuzz-livekit-secret"
#define NOW    1700000000

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sodium_init() < 0) {
        fuzz_fail(__FILE__, __LINE__, "sodium_init");
    }
    return 0;
}

static bool terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

static void check_event(const struct store_lk_event *ev)
{
    FUZZ_CHECK(terminated(ev->event_id, sizeof ev->event_id) && ev->event_id[0] != '\0');
    FUZZ_CHECK(terminated(ev->event, sizeof ev->event) && ev->event[0] != '\0');
    FUZZ_CHECK(terminated(ev->room_id, sizeof ev->room_id));
    FUZZ_CHECK(terminated(ev->room_sid, sizeof ev->room_sid));
    FUZZ_CHECK(terminated(ev->participant_sid, sizeof ev->participant_sid));
    FUZZ_CHECK(terminated(ev->user_id, sizeof ev->user_id));
    switch (ev->kind) {
    case STORE_LK_JOINED:
        FUZZ_CHECK(strcmp(ev->event, "participant_joined") == 0);
        break;
    case STORE_LK_LEFT:
        FUZZ_CHECK(strcmp(ev->event, "participant_left") == 0);
        break;
    case STORE_LK_FINISHED:
        FUZZ_CHECK(strcmp(ev->event, "room_finished") == 0);
        break;
    case STORE_LK_OTHER:
        FUZZ_CHECK(strcmp(ev->event, "room_started") == 0);
        break;
    }
    if (ev->kind == STORE_LK_JOINED || ev->kind == STORE_LK_LEFT) {
        FUZZ_CHECK(ev->participant_sid[0] != '\0' && ev->user_id[0] != '\0');
    }
}

/* A token LiveKit would send for body. */
static char *sign_for(const uint8_t *body, size_t size)
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    char b64[sodium_base64_ENCODED_LEN(crypto_hash_sha256_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    crypto_hash_sha256(digest, body, size);
    sodium_bin2base64(b64, sizeof b64, digest, sizeof digest, sodium_base64_VARIANT_ORIGINAL);
    json_t *claims = json_pack("{s:s, s:I, s:I, s:s}", "iss", KEY, "nbf", (json_int_t)NOW, "exp",
                               (json_int_t)(NOW + 300), "sha256", b64);
    char *t = claims != NULL ? gw_jwt_sign_hs256(claims, (const unsigned char *)SECRET,
                                                 strlen(SECRET))
                             : NULL;
    json_decref(claims);
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct store_lk_event ev;
    bool replaced = true;
    struct gw_err err = {0};
    int rc = gw_lk_parse_event(data, size, &ev, &replaced, &err);
    FUZZ_CHECK(rc == 0 || rc == GW_LK_IGNORED || rc == GW_LK_E_BODY);
    if (rc == 0) {
        check_event(&ev);
    }
    if (rc == GW_LK_E_BODY) {
        FUZZ_CHECK(err.msg[0] != '\0' && err.code == GW_LK_E_BODY);
    }
    FUZZ_CHECK(!replaced || ev.kind == STORE_LK_LEFT);

    char *token = sign_for(data, size);
    if (token != NULL) {
        FUZZ_CHECK(gw_lk_verify_webhook(KEY, SECRET, token, strlen(token), data, size, NOW + 1,
                                        &err) == 0);
        free(token);
    }
    int vrc = gw_lk_verify_webhook(KEY, SECRET, (const char *)data, size,
                                   (const unsigned char *)"{}", 2, NOW + 1, &err);
    FUZZ_CHECK(vrc == GW_LK_E_AUTH || vrc == GW_LK_E_HASH);
    FUZZ_CHECK(strstr(err.msg, SECRET) == NULL);
    return 0;
}
