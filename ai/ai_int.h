/*
 * ai_int.h: declarations shared between the ai module's files. Never
 * included outside ai/.
 */
#ifndef COACH_AI_INT_H
#define COACH_AI_INT_H

#include <stddef.h>
#include <stdint.h>

#include "ai.h"

/* Fill err (NULL-safe) with code and a printf-style message. Returns code. */
int ai__err_set(struct ai_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* p with every zero, negative or too large field replaced by its default or
 * clamped (p NULL: all defaults). */
struct ai_policy ai__policy_norm(const struct ai_policy *p);

/* The delay a Retry-After value asks for, in ms from now_unix_ms: 0 for a
 * date in the past. Returns 0, or -EINVAL when v is not delta-seconds or
 * an IMF-fixdate. Delta-seconds too large for int64 ms saturate. */
int ai__retry_after_ms(const char *v, int64_t now_unix_ms, int64_t *delay_ms);

/* The endpoint's error code name from an error response body
 * ({"error":{"code":"x"}} or {"error":{"type":"x"}}), copied into out (cap
 * bytes, NUL-terminated) only if it is 1..63 characters of [A-Za-z0-9_.-].
 * Returns 1 when found, 0 otherwise (out = ""). Never copies free text. */
int ai__error_code_name(const char *body, size_t len, char *out, size_t cap);

#endif
