/*
 * jwt.c: HS256 JWT verification and signing with libsodium.
 *
 * DESIGN: verification splits the compact form into its three parts,
 * recomputes HMAC-SHA256 over "header.payload" and compares it with the
 * decoded signature in constant time before any JSON is parsed, so a
 * forged token never reaches the parser. Only then the header must say
 * alg HS256 (never "none" or anything else), and exp/nbf are checked with
 * the caller's clock and leeway.
 */
#include "jwt.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

static int b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap,
                         size_t *out_len)
{
    /* libsodium 1.0.18 reads bytes >= 0x80 as '_': one token would have many
     * spellings. Only the base64url alphabet is a valid token. */
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)in[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_')) {
            return -1;
        }
    }
    return sodium_base642bin(out, cap, in, len, NULL, out_len, NULL,
                             sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0
               ? 0
               : -1;
}

static json_t *decode_object(const char *in, size_t len)
{
    size_t cap = len; /* decoded is shorter than encoded */
    unsigned char *buf = malloc(cap + 1);
    size_t n = 0;
    json_t *obj = NULL;
    if (buf != NULL && b64url_decode(in, len, buf, cap, &n) == 0) {
        obj = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, NULL);
        if (obj != NULL && !json_is_object(obj)) {
            json_decref(obj);
            obj = NULL;
        }
    }
    free(buf);
    return obj;
}

static int check_signature(const char *token, size_t signed_len, const char *sig, size_t sig_len,
                           const unsigned char *secret, size_t secret_len)
{
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    unsigned char given[crypto_auth_hmacsha256_BYTES + 4];
    size_t given_len = 0;
    if (b64url_decode(sig, sig_len, given, sizeof(given), &given_len) != 0 ||
        given_len != sizeof(mac)) {
        return -1;
    }
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, secret, secret_len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)token, signed_len);
    crypto_auth_hmacsha256_final(&st, mac);
    int rc = sodium_memcmp(mac, given, sizeof(mac));
    sodium_memzero(&st, sizeof(st));
    return rc == 0 ? 0 : -1;
}

static int check_times(const json_t *claims, const struct gw_jwt_check *chk, struct gw_err *err)
{
    const json_t *exp = json_object_get(claims, "exp");
    const json_t *nbf = json_object_get(claims, "nbf");
    if (exp != NULL && !json_is_number(exp)) {
        return gw_err_set(err, GW_JWT_E_FORMAT, "token exp is not a number");
    }
    if (nbf != NULL && !json_is_number(nbf)) {
        return gw_err_set(err, GW_JWT_E_FORMAT, "token nbf is not a number");
    }
    if (exp == NULL && chk->require_exp) {
        return gw_err_set(err, GW_JWT_E_EXPIRED, "token has no exp");
    }
    if (exp != NULL && json_number_value(exp) + (double)chk->leeway_sec <= (double)chk->now_unix) {
        return gw_err_set(err, GW_JWT_E_EXPIRED, "token expired");
    }
    if (nbf != NULL && json_number_value(nbf) - (double)chk->leeway_sec > (double)chk->now_unix) {
        return gw_err_set(err, GW_JWT_E_NOT_YET, "token not valid yet");
    }
    return 0;
}

static int check_header(const char *h, size_t len, struct gw_err *err)
{
    json_t *hdr = decode_object(h, len);
    if (hdr == NULL) {
        return gw_err_set(err, GW_JWT_E_FORMAT, "token header is not a JSON object");
    }
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    const json_t *typ = json_object_get(hdr, "typ");
    int ok = alg != NULL && strcmp(alg, "HS256") == 0 &&
             (typ == NULL || (json_is_string(typ) && strcmp(json_string_value(typ), "JWT") == 0));
    json_decref(hdr);
    return ok ? 0 : gw_err_set(err, GW_JWT_E_ALG, "token alg must be HS256");
}

int gw_jwt_verify_hs256(const char *token, size_t len, const unsigned char *secret,
                        size_t secret_len, const struct gw_jwt_check *chk, json_t **claims_out,
                        struct gw_err *err)
{
    if (len == 0 || len > GW_JWT_MAX_BYTES) {
        return gw_err_set(err, GW_JWT_E_FORMAT, "token empty or too long");
    }
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 =
        dot1 != NULL ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (dot1 == NULL || dot2 == NULL ||
        memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL) {
        return gw_err_set(err, GW_JWT_E_FORMAT, "token is not header.payload.signature");
    }
    size_t signed_len = (size_t)(dot2 - token);
    if (check_signature(token, signed_len, dot2 + 1, len - signed_len - 1, secret, secret_len) !=
        0) {
        return gw_err_set(err, GW_JWT_E_SIGNATURE, "token signature does not match");
    }
    int rc = check_header(token, (size_t)(dot1 - token), err);
    if (rc != 0) {
        return rc;
    }
    json_t *claims = decode_object(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (claims == NULL) {
        return gw_err_set(err, GW_JWT_E_FORMAT, "token payload is not a JSON object");
    }
    rc = check_times(claims, chk, err);
    if (rc != 0) {
        json_decref(claims);
        return rc;
    }
    *claims_out = claims;
    return 0;
}

static char *b64url(const unsigned char *in, size_t len)
{
    size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *out = malloc(cap);
    if (out != NULL) {
        sodium_bin2base64(out, cap, in, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    }
    return out;
}

char *gw_jwt_sign_hs256(const json_t *claims, const unsigned char *secret, size_t secret_len)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char *payload = json_dumps(claims, JSON_COMPACT);
    char *h64 = b64url((const unsigned char *)header, sizeof(header) - 1);
    char *p64 = payload != NULL ? b64url((const unsigned char *)payload, strlen(payload)) : NULL;
    char *out = NULL;
    if (h64 != NULL && p64 != NULL) {
        size_t hl = strlen(h64), pl = strlen(p64);
        size_t scap = sodium_base64_ENCODED_LEN(crypto_auth_hmacsha256_BYTES,
                                                sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        out = malloc(hl + 1 + pl + 1 + scap);
        if (out != NULL) {
            memcpy(out, h64, hl);
            out[hl] = '.';
            memcpy(out + hl + 1, p64, pl + 1);
            unsigned char mac[crypto_auth_hmacsha256_BYTES];
            crypto_auth_hmacsha256_state st;
            crypto_auth_hmacsha256_init(&st, secret, secret_len);
            crypto_auth_hmacsha256_update(&st, (const unsigned char *)out, hl + 1 + pl);
            crypto_auth_hmacsha256_final(&st, mac);
            out[hl + 1 + pl] = '.';
            sodium_bin2base64(out + hl + 2 + pl, scap, mac, sizeof(mac),
                              sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        }
    }
    free(payload);
    free(h64);
    free(p64);
    return out;
}

int gw_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    unsigned char da[crypto_generichash_BYTES], db[crypto_generichash_BYTES];
    crypto_generichash(da, sizeof(da), a, alen, NULL, 0);
    crypto_generichash(db, sizeof(db), b, blen, NULL, 0);
    int same = sodium_memcmp(da, db, sizeof(da)) == 0;
    sodium_memzero(da, sizeof(da));
    sodium_memzero(db, sizeof(db));
    return same & (alen == blen);
}
