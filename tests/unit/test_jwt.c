/*
 * test_jwt.c: HS256 verification and signing: a published vector, round
 * trips, and every way a token can be wrong.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "jwt.h"

static const unsigned char secret[] = "your-256-bit-secret";
#define SECRET_LEN (sizeof(secret) - 1)

static const char vector[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

static void setup(void)
{
    cr_assert(sodium_init() >= 0);
}

static int verify(const char *tok, int64_t now, int require_exp, json_t **claims)
{
    struct gw_jwt_check chk = {.now_unix = now, .leeway_sec = 60, .require_exp = require_exp};
    struct gw_err err = {0};
    json_t *c = NULL;
    int rc = gw_jwt_verify_hs256(tok, strlen(tok), secret, SECRET_LEN, &chk, &c, &err);
    if (rc == 0) {
        cr_assert_not_null(c);
        if (claims != NULL) {
            *claims = c;
        } else {
            json_decref(c);
        }
    } else {
        cr_assert_null(c, "nothing returned on error");
        cr_assert(err.msg[0] != '\0', "an error message");
        cr_assert(strstr(err.msg, "your-256") == NULL, "no secret in the message");
    }
    return rc;
}

static char *sign(json_t *claims)
{
    char *t = gw_jwt_sign_hs256(claims, secret, SECRET_LEN);
    json_decref(claims);
    cr_assert_not_null(t);
    return t;
}

TestSuite(jwt, .init = setup);

Test(jwt, published_vector_verifies)
{
    json_t *c = NULL;
    cr_assert_eq(verify(vector, 1516239022, 0, &c), 0);
    cr_expect_str_eq(json_string_value(json_object_get(c, "sub")), "1234567890");
    json_decref(c);
    cr_expect_eq(verify(vector, 1516239022, 1, NULL), GW_JWT_E_EXPIRED, "exp required");
}

Test(jwt, sign_then_verify_round_trip)
{
    char *t = sign(json_pack("{s:s, s:I}", "sub", "cuser", "exp", (json_int_t)2000));
    cr_expect(strncmp(t, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 37) == 0);
    json_t *c = NULL;
    cr_assert_eq(verify(t, 1000, 1, &c), 0);
    cr_expect_str_eq(json_string_value(json_object_get(c, "sub")), "cuser");
    json_decref(c);
    free(t);
}

Test(jwt, expiry_and_not_before_with_leeway)
{
    char *t = sign(
        json_pack("{s:s, s:I, s:I}", "sub", "u", "exp", (json_int_t)1000, "nbf", (json_int_t)900));
    cr_expect_eq(verify(t, 1059, 1, NULL), 0, "inside exp leeway");
    cr_expect_eq(verify(t, 1060, 1, NULL), GW_JWT_E_EXPIRED, "at exp + leeway");
    cr_expect_eq(verify(t, 840, 1, NULL), 0, "inside nbf leeway");
    cr_expect_eq(verify(t, 839, 1, NULL), GW_JWT_E_NOT_YET, "before nbf - leeway");
    free(t);
}

Test(jwt, forged_and_malformed_tokens_are_refused)
{
    char tampered[sizeof(vector)];
    memcpy(tampered, vector, sizeof(vector));
    tampered[40] = tampered[40] == 'A' ? 'B' : 'A'; /* payload byte */
    cr_expect_eq(verify(tampered, 1516239022, 0, NULL), GW_JWT_E_SIGNATURE);
    char badsig[sizeof(vector)];
    memcpy(badsig, vector, sizeof(vector));
    badsig[sizeof(vector) - 3] = badsig[sizeof(vector) - 3] == 'c' ? 'd' : 'c';
    cr_expect_eq(verify(badsig, 1516239022, 0, NULL), GW_JWT_E_SIGNATURE);
    cr_expect_eq(verify("", 0, 0, NULL), GW_JWT_E_FORMAT);
    cr_expect_eq(verify("abc.def", 0, 0, NULL), GW_JWT_E_FORMAT);
    cr_expect_eq(verify("a.b.c.d", 0, 0, NULL), GW_JWT_E_FORMAT);
    cr_expect_eq(verify("!!.??.**", 0, 0, NULL), GW_JWT_E_SIGNATURE);
    char huge[GW_JWT_MAX_BYTES + 2];
    memset(huge, 'a', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    cr_expect_eq(verify(huge, 0, 0, NULL), GW_JWT_E_FORMAT);
}

/* A correctly signed token whose header names another algorithm. */
static char *sign_with_header(const char *header_json, const char *payload_json)
{
    size_t hl = strlen(header_json), pl = strlen(payload_json);
    char h64[256], p64[256];
    sodium_bin2base64(h64, sizeof(h64), (const unsigned char *)header_json, hl,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_bin2base64(p64, sizeof(p64), (const unsigned char *)payload_json, pl,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *tok = malloc(1024);
    int n = snprintf(tok, 1024, "%s.%s", h64, p64);
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, secret, SECRET_LEN);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)tok, (size_t)n);
    crypto_auth_hmacsha256_final(&st, mac);
    tok[n] = '.';
    sodium_bin2base64(tok + n + 1, (size_t)(1024 - n - 1), mac, sizeof(mac),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return tok;
}

Test(jwt, only_hs256_is_accepted)
{
    const char *payload = "{\"sub\":\"u\",\"exp\":2000}";
    char *t = sign_with_header("{\"alg\":\"none\",\"typ\":\"JWT\"}", payload);
    cr_expect_eq(verify(t, 1000, 1, NULL), GW_JWT_E_ALG);
    free(t);
    t = sign_with_header("{\"alg\":\"HS512\"}", payload);
    cr_expect_eq(verify(t, 1000, 1, NULL), GW_JWT_E_ALG);
    free(t);
    t = sign_with_header("{\"typ\":\"JWT\"}", payload);
    cr_expect_eq(verify(t, 1000, 1, NULL), GW_JWT_E_ALG, "no alg");
    free(t);
    t = sign_with_header("{\"alg\":\"HS256\"}", payload);
    cr_expect_eq(verify(t, 1000, 1, NULL), 0, "typ is optional");
    free(t);
    t = sign_with_header("{\"alg\":\"HS256\"}", "[1,2]");
    cr_expect_eq(verify(t, 1000, 0, NULL), GW_JWT_E_FORMAT, "payload must be an object");
    free(t);
    t = sign_with_header("{\"alg\":\"HS256\"}", "{\"exp\":\"soon\"}");
    cr_expect_eq(verify(t, 1000, 1, NULL), GW_JWT_E_FORMAT, "exp must be numeric");
    free(t);
    /* An unsigned token ("alg":"none" with an empty signature). */
    cr_expect_eq(verify("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1In0.", 0, 0, NULL), GW_JWT_E_SIGNATURE);
}

Test(jwt, only_the_base64url_alphabet_spells_a_token)
{
    /* The published vector's signature has a '_' (...V_adQssw5c). */
    char t[sizeof(vector)];
    memcpy(t, vector, sizeof(vector));
    char *u = strrchr(t, '_');
    cr_assert_not_null(u);
    *u = (char)0xff;
    cr_expect_eq(verify(t, 1516239022, 0, NULL), GW_JWT_E_SIGNATURE, "0xff is not '_'");
    memcpy(t, vector, sizeof(vector));
    t[10] = '+'; /* standard base64 in the header */
    cr_expect_eq(verify(t, 1516239022, 0, NULL), GW_JWT_E_SIGNATURE);
}
