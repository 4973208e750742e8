/*
 * jwt.h: HS256 JSON Web Tokens: verification (WebSocket auth, LiveKit
 * webhooks) and signing (LiveKit access tokens). Any thread; no state.
 */
#ifndef COACH_GW_JWT_H
#define COACH_GW_JWT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "gw.h"

/* Largest token accepted, in bytes. */
#define GW_JWT_MAX_BYTES 8192

enum {
    GW_JWT_E_FORMAT = -2001,    /* not three base64url parts of JSON objects */
    GW_JWT_E_ALG = -2002,       /* header alg is not HS256 (or typ is not JWT) */
    GW_JWT_E_SIGNATURE = -2003, /* signature does not match */
    GW_JWT_E_EXPIRED = -2004,   /* exp missing (when required) or in the past */
    GW_JWT_E_NOT_YET = -2005,   /* nbf in the future */
};

struct gw_jwt_check {
    int64_t now_unix;   /* seconds */
    int64_t leeway_sec; /* applied to exp and nbf */
    int require_exp;    /* 1: a token without a numeric exp is refused */
};

/* Verify token (len bytes, not necessarily NUL-terminated) against secret.
 * The signature is checked (constant time) before the payload is parsed.
 * On success *claims_out is a new reference the caller releases with
 * json_decref. On error nothing is allocated and err names the reason
 * (never the token or the secret). */
int gw_jwt_verify_hs256(const char *token, size_t len, const unsigned char *secret,
                        size_t secret_len, const struct gw_jwt_check *chk, json_t **claims_out,
                        struct gw_err *err);

/* Whether a (alen bytes) equals b (blen bytes), in time independent of
 * their contents and of where they differ: both are hashed with BLAKE2b to
 * 32 bytes, the digests compared with sodium_memcmp and the lengths
 * compared without a branch. For secrets and values derived from them. */
int gw_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

/* Sign claims (borrowed) with header {"alg":"HS256","typ":"JWT"}. Returns a
 * malloc'd NUL-terminated token, or NULL when out of memory. */
char *gw_jwt_sign_hs256(const json_t *claims, const unsigned char *secret, size_t secret_len);

#endif
