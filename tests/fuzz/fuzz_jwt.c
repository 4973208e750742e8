/*
 * fuzz_jwt.c: libFuzzer target for gw_jwt_verify_hs256.
 *
 * A random token almost never carries a valid HMAC, so each input is
 * verified twice, against FUZZ_SECRET at a fixed clock: as is (the
 * signature check and the splitting around it), then
 *   - re-signed: the bytes before the last '.' get a correct signature
 *     appended, so mutations reach the header and payload parsers; or,
 *   - when it starts with '{', as raw claims JSON wrapped in the standard
 *     {"alg":"HS256","typ":"JWT"} header and signed, so the exp/nbf checks
 *     see JSON-shaped mutations.
 * Invariants: the result is one of the documented codes; an error leaves
 * *claims_out alone and names no secret; a correctly signed, well-formed
 * token is never refused for its signature; and a token that verifies
 * re-verifies to the same claims, fails under another secret, fails with
 * a byte of its header, payload or signature changed, its last byte cut or
 * a byte appended, and passes an independent check
 * (HMAC recomputed here, header alg HS256, exp/nbf against the clock).
 *
 * The seed corpus in corpus/jwt/ is signed with FUZZ_SECRET at FUZZ_NOW;
 * docs/fuzzing.md shows how to sign a new seed.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "fuzz_check.h"
#include "jwt.h"

#define FUZZ_SECRET  "coach-fuzz-secret"
#define OTHER_SECRET "coach-fuzz-other-secret"
#define FUZZ_NOW     1700000000 /* 2023-11-14T22:13:20Z */
#define FUZZ_LEEWAY  60
#define SIG_B64_LEN  43 /* 32 bytes, base64url without padding */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char fuzz_secret[] = FUZZ_SECRET;
static const unsigned char other_secret[] = OTHER_SECRET;

/* Put in *claims_out before each call: an error must leave it there. */
static json_t *untouched;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sodium_init() < 0) {
        fuzz_fail(__FILE__, __LINE__, "sodium_init");
    }
    untouched = json_object();
    if (untouched == NULL) {
        fuzz_fail(__FILE__, __LINE__, "json_object");
    }
    return 0;
}

static bool is_documented(int rc)
{
    return rc == 0 || rc == GW_JWT_E_FORMAT || rc == GW_JWT_E_ALG || rc == GW_JWT_E_SIGNATURE ||
           rc == GW_JWT_E_EXPIRED || rc == GW_JWT_E_NOT_YET;
}

/* One call to the verifier; its error contract is checked here. On success
 * *claims is the new reference, else NULL. */
static int verify(const char *tok, size_t len, const unsigned char *secret, size_t secret_len,
                  int require_exp, json_t **claims)
{
    struct gw_jwt_check chk = {
        .now_unix = FUZZ_NOW, .leeway_sec = FUZZ_LEEWAY, .require_exp = require_exp};
    struct gw_err err;
    memset(&err, 0, sizeof(err));
    *claims = untouched;
    int rc = gw_jwt_verify_hs256(tok, len, secret, secret_len, &chk, claims, &err);
    FUZZ_CHECK(is_documented(rc));
    if (rc == 0) {
        FUZZ_CHECK(*claims != untouched && json_is_object(*claims));
    } else {
        FUZZ_CHECK(*claims == untouched);
        *claims = NULL;
        FUZZ_CHECK(err.code == rc);
        FUZZ_CHECK(memchr(err.msg, '\0', sizeof(err.msg)) != NULL && err.msg[0] != '\0');
        FUZZ_CHECK(strstr(err.msg, FUZZ_SECRET) == NULL && strstr(err.msg, OTHER_SECRET) == NULL);
    }
    return rc;
}

/* b64url(HMAC-SHA256(secret, msg)) into out (SIG_B64_LEN + 1 bytes). */
static void sign_b64(const char *msg, size_t len, char *out)
{
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, fuzz_secret, sizeof(fuzz_secret) - 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)msg, len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2base64(out, SIG_B64_LEN + 1, mac, sizeof(mac),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* Decode one base64url part to a JSON object, as an independent reader. */
static json_t *oracle_object(const char *in, size_t len)
{
    unsigned char *buf = malloc(len + 1);
    FUZZ_CHECK(buf != NULL);
    size_t n = 0;
    json_t *obj = NULL;
    if (sodium_base642bin(buf, len + 1, in, len, NULL, &n, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0) {
        obj = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, NULL);
    }
    free(buf);
    return obj;
}

/* What an accepted token must be, checked without the verifier's code. */
static void oracle_accepted(const char *tok, size_t len, int require_exp, const json_t *claims)
{
    FUZZ_CHECK(len >= 1 && len <= GW_JWT_MAX_BYTES);
    const char *dot1 = memchr(tok, '.', len);
    FUZZ_CHECK(dot1 != NULL);
    const char *dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - tok));
    FUZZ_CHECK(dot2 != NULL);
    size_t signed_len = (size_t)(dot2 - tok);
    FUZZ_CHECK(memchr(dot2 + 1, '.', len - signed_len - 1) == NULL);

    char sig[SIG_B64_LEN + 1];
    sign_b64(tok, signed_len, sig);
    FUZZ_CHECK(len - signed_len - 1 == SIG_B64_LEN && memcmp(dot2 + 1, sig, SIG_B64_LEN) == 0);

    json_t *hdr = oracle_object(tok, (size_t)(dot1 - tok));
    FUZZ_CHECK(json_is_object(hdr));
    const json_t *alg = json_object_get(hdr, "alg");
    const json_t *typ = json_object_get(hdr, "typ");
    FUZZ_CHECK(json_is_string(alg) && json_string_length(alg) == 5 &&
               strcmp(json_string_value(alg), "HS256") == 0);
    FUZZ_CHECK(typ == NULL || (json_is_string(typ) && json_string_length(typ) == 3 &&
                               strcmp(json_string_value(typ), "JWT") == 0));
    json_decref(hdr);

    json_t *payload = oracle_object(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    FUZZ_CHECK(json_is_object(payload) && json_equal(payload, claims));
    json_decref(payload);

    const json_t *exp = json_object_get(claims, "exp");
    const json_t *nbf = json_object_get(claims, "nbf");
    FUZZ_CHECK(exp != NULL || !require_exp);
    FUZZ_CHECK(exp == NULL ||
               (json_is_number(exp) && json_number_value(exp) + FUZZ_LEEWAY > (double)FUZZ_NOW));
    FUZZ_CHECK(nbf == NULL ||
               (json_is_number(nbf) && json_number_value(nbf) - FUZZ_LEEWAY <= (double)FUZZ_NOW));
}

/* tok verified: the same bytes verify again to equal claims, and changing
 * the secret or the bytes makes it fail. */
static void check_accepted(const char *tok, size_t len, int require_exp, const json_t *claims)
{
    oracle_accepted(tok, len, require_exp, claims);

    json_t *again = NULL;
    FUZZ_CHECK(verify(tok, len, fuzz_secret, sizeof(fuzz_secret) - 1, require_exp, &again) == 0);
    FUZZ_CHECK(json_equal(again, claims));
    json_decref(again);

    json_t *c = NULL;
    FUZZ_CHECK(verify(tok, len, other_secret, sizeof(other_secret) - 1, require_exp, &c) ==
               GW_JWT_E_SIGNATURE);

    char *copy = malloc(len + 1);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, tok, len);
    FUZZ_CHECK(verify(copy, len - 1, fuzz_secret, sizeof(fuzz_secret) - 1, 0, &c) != 0);
    copy[len] = 'A';
    FUZZ_CHECK(verify(copy, len + 1, fuzz_secret, sizeof(fuzz_secret) - 1, 0, &c) != 0);
    /* One byte changed: in the header, in the payload, in the signature. */
    const char *dot1 = memchr(tok, '.', len);
    size_t at[3] = {0, (size_t)(dot1 - tok) + 1, len - 1};
    for (size_t i = 0; i < 3; i++) {
        char saved = copy[at[i]];
        copy[at[i]] = (char)(saved ^ 0x01);
        FUZZ_CHECK(verify(copy, len, fuzz_secret, sizeof(fuzz_secret) - 1, 0, &c) != 0);
        copy[at[i]] = saved;
    }
    free(copy);
}

/* Verify tok with exp required and not; check both results agree.
 * Returns the result without exp required. */
static int verify_both(const char *tok, size_t len, bool well_signed)
{
    json_t *strict = NULL;
    json_t *lax = NULL;
    int rc_strict = verify(tok, len, fuzz_secret, sizeof(fuzz_secret) - 1, 1, &strict);
    int rc_lax = verify(tok, len, fuzz_secret, sizeof(fuzz_secret) - 1, 0, &lax);
    if (well_signed) {
        FUZZ_CHECK(rc_lax != GW_JWT_E_SIGNATURE);
    }
    /* Requiring exp refuses more (as expired), and a token that passes
     * without that requirement fails with it only for lack of an exp. */
    FUZZ_CHECK(rc_strict == rc_lax || rc_strict == GW_JWT_E_EXPIRED);
    FUZZ_CHECK(rc_strict != 0 || rc_lax == 0);
    if (rc_lax == 0 && rc_strict != 0) {
        FUZZ_CHECK(json_object_get(lax, "exp") == NULL);
    }
    if (rc_strict == 0) {
        check_accepted(tok, len, 1, strict);
    }
    if (rc_lax == 0) {
        check_accepted(tok, len, 0, lax);
    }
    json_decref(strict);
    json_decref(lax);
    return rc_lax;
}

static size_t count_dots(const char *s, size_t n)
{
    size_t dots = 0;
    for (size_t i = 0; i < n; i++) {
        dots += s[i] == '.';
    }
    return dots;
}

/* Verify signed_part + "." + its signature (well-formed when signed_part
 * has exactly one dot and the whole fits GW_JWT_MAX_BYTES), as verify_both. */
static int verify_resigned(const char *signed_part, size_t n)
{
    char *tok = malloc(n + 1 + SIG_B64_LEN + 1);
    FUZZ_CHECK(tok != NULL);
    memcpy(tok, signed_part, n);
    tok[n] = '.';
    sign_b64(signed_part, n, tok + n + 1);
    size_t len = n + 1 + SIG_B64_LEN;
    int rc = verify_both(tok, len, count_dots(signed_part, n) == 1 && len <= GW_JWT_MAX_BYTES);
    free(tok);
    return rc;
}

static char *b64url(const unsigned char *in, size_t len)
{
    size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *out = malloc(cap);
    FUZZ_CHECK(out != NULL);
    sodium_bin2base64(out, cap, in, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return out;
}

/* claims (raw bytes) under the standard header, correctly signed. */
static void verify_claims(const uint8_t *claims, size_t n)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char *h64 = b64url((const unsigned char *)header, sizeof(header) - 1);
    char *p64 = b64url(claims, n);
    size_t n_part = strlen(h64) + 1 + strlen(p64);
    char *part = malloc(n_part + 1);
    FUZZ_CHECK(part != NULL);
    int k = snprintf(part, n_part + 1, "%s.%s", h64, p64);
    FUZZ_CHECK(k >= 0 && (size_t)k == n_part);
    int rc = verify_resigned(part, n_part);

    /* Correctly signed under a good header: claims that are not a JSON
     * object must still be refused, as a format error. */
    json_t *obj = json_loadb((const char *)claims, n, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(obj)) {
        FUZZ_CHECK(rc == GW_JWT_E_FORMAT);
    }
    json_decref(obj);
    free(part);
    free(h64);
    free(p64);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    verify_both(in, size, false);
    if (size > 0 && data[0] == '{') {
        verify_claims(data, size);
        return 0;
    }
    size_t signed_len = size;
    while (signed_len > 0 && in[signed_len - 1] != '.') {
        signed_len--;
    }
    verify_resigned(in, signed_len > 0 ? signed_len - 1 : size);
    return 0;
}
