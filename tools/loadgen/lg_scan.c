/*
 * lg_scan.c: see lg_scan.h. A recursive-descent walk over RFC 8259 JSON
 * that validates what it skips (strings with their escapes, numbers,
 * literals, nested objects and arrays up to a small depth).
 */
#include "lg_scan.h"

#include <string.h>

#define DEPTH_MAX 16

struct cur {
    const char *p, *end;
};

static void ws(struct cur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) {
        c->p++;
    }
}

static int eat(struct cur *c, char ch)
{
    ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 0;
    }
    return -1;
}

/* The length of the UTF-8 sequence at p (at most n bytes), 0 when it is
 * not a valid one (overlong forms, surrogates, above U+10FFFF). */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t len = p[0] < 0x80 ? 1 : p[0] >= 0xc2 && p[0] <= 0xdf ? 2 : p[0] >= 0xe0 && p[0] <= 0xef ? 3 : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : 0;
    if (len == 0 || len > n) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) ||
        (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90)) {
        return 0;
    }
    return len;
}

/* A string at c->p (its opening quote), checked as jansson checks it
 * (valid UTF-8, no raw control character). Sets *raw and *n to its contents
 * when they hold no escape (else *raw = NULL). -1 when malformed, and on
 * a \u escape (surrogates, NUL: left to jansson). */
static int string(struct cur *c, const char **raw, size_t *n)
{
    if (c->p >= c->end || *c->p != '"') {
        return -1;
    }
    const char *start = ++c->p;
    int escaped = 0;
    while (c->p < c->end && *c->p != '"') {
        unsigned char ch = (unsigned char)*c->p;
        if (ch < 0x20) {
            return -1;
        }
        if (ch >= 0x80) {
            size_t u = utf8_len((const unsigned char *)c->p, (size_t)(c->end - c->p));
            if (u == 0) {
                return -1;
            }
            c->p += u;
            continue;
        }
        if (ch == '\\') {
            escaped = 1;
            if (++c->p >= c->end || *c->p == '\0' || !strchr("\"\\/bfnrt", *c->p)) {
                return -1;
            }
        }
        c->p++;
    }
    if (c->p >= c->end) {
        return -1;
    }
    *raw = escaped ? NULL : start;
    *n = (size_t)(c->p - start);
    c->p++;
    return 0;
}

static int digits(struct cur *c)
{
    const char *s = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        c->p++;
    }
    return c->p > s ? 0 : -1;
}

static int number(struct cur *c)
{
    if (c->p < c->end && *c->p == '-') {
        c->p++;
    }
    if (c->p < c->end && *c->p == '0') {
        c->p++;
    } else if (digits(c) != 0) {
        return -1;
    }
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (digits(c) != 0) {
            return -1;
        }
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-')) {
            c->p++;
        }
        if (digits(c) != 0) {
            return -1;
        }
    }
    return 0;
}

static int literal(struct cur *c, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) {
        return -1;
    }
    c->p += n;
    return 0;
}

static int value(struct cur *c, int depth);

/* An object or array at c->p; each member's value skipped. */
static int container(struct cur *c, int depth)
{
    char close = *c->p == '{' ? '}' : ']';
    int object = close == '}';
    c->p++;
    if (depth >= DEPTH_MAX) {
        return -1;
    }
    if (eat(c, close) == 0) {
        return 0;
    }
    for (;;) {
        ws(c);
        if (object) {
            const char *k;
            size_t kn;
            if (string(c, &k, &kn) != 0 || eat(c, ':') != 0) {
                return -1;
            }
        }
        if (value(c, depth + 1) != 0) {
            return -1;
        }
        if (eat(c, ',') == 0) {
            continue;
        }
        return eat(c, close);
    }
}

static int value(struct cur *c, int depth)
{
    ws(c);
    if (c->p >= c->end) {
        return -1;
    }
    const char *raw;
    size_t n;
    switch (*c->p) {
    case '"':
        return string(c, &raw, &n);
    case '{':
    case '[':
        return container(c, depth);
    case 't':
        return literal(c, "true");
    case 'f':
        return literal(c, "false");
    case 'n':
        return literal(c, "null");
    default:
        return number(c);
    }
}

static int key_is(const char *k, size_t n, const char *want)
{
    return k != NULL && n == strlen(want) && memcmp(k, want, n) == 0;
}

/* A non-negative integer that fits int64 (seq). */
static int integer(struct cur *c, int64_t *out)
{
    ws(c);
    const char *s = c->p;
    if (number(c) != 0) {
        return -1;
    }
    int64_t v = 0;
    for (const char *q = s; q < c->p; q++) {
        if (*q < '0' || *q > '9' || v > (INT64_MAX - 9) / 10) {
            return -1; /* negative, fractional or huge: not a seq */
        }
        v = v * 10 + (*q - '0');
    }
    *out = v;
    return 0;
}

/* The "from" object: its "role". */
static int from_object(struct cur *c, struct lg_scan *out)
{
    if (eat(c, '{') != 0) {
        return -1;
    }
    if (eat(c, '}') == 0) {
        return 0;
    }
    for (;;) {
        const char *k, *v;
        size_t kn, vn;
        ws(c);
        if (string(c, &k, &kn) != 0 || k == NULL || eat(c, ':') != 0) {
            return -1;
        }
        ws(c);
        if (key_is(k, kn, "role") && c->p < c->end && *c->p == '"') {
            if (string(c, &v, &vn) != 0) {
                return -1;
            }
            out->from_role = key_is(v, vn, "coach")    ? LG_SCAN_ROLE_COACH
                             : key_is(v, vn, "client") ? LG_SCAN_ROLE_CLIENT
                                                       : LG_SCAN_ROLE_OTHER;
        } else if (value(c, 2) != 0) {
            return -1;
        }
        if (eat(c, ',') == 0) {
            continue;
        }
        return eat(c, '}');
    }
}

/* One top-level member's value, read when it is one we need. */
static int member(struct cur *c, const char *k, size_t kn, struct lg_scan *out, int *typed)
{
    ws(c);
    if (k == NULL) {
        return -1; /* an escaped key: the slow way */
    }
    const char *v;
    size_t vn;
    if (key_is(k, kn, "type")) {
        if (string(c, &v, &vn) != 0 || v == NULL) {
            return -1;
        }
        *typed = 1;
        if (key_is(v, vn, "ack")) {
            out->type = LG_SCAN_ACK;
        } else if (key_is(v, vn, "message")) {
            out->type = LG_SCAN_MESSAGE;
        } else {
            return -1; /* another type: the slow way */
        }
        return 0;
    }
    if (key_is(k, kn, "seq")) {
        return integer(c, &out->seq);
    }
    if (key_is(k, kn, "clientMsgId") && c->p < c->end && *c->p == '"') {
        if (string(c, &v, &vn) != 0 || v == NULL || vn >= sizeof out->cmid) {
            return -1;
        }
        memcpy(out->cmid, v, vn);
        out->cmid[vn] = '\0';
        return 0;
    }
    if (key_is(k, kn, "from") && c->p < c->end && *c->p == '{') {
        return from_object(c, out);
    }
    return value(c, 1);
}

int lg_scan_frame(const char *s, size_t len, struct lg_scan *out)
{
    struct cur c = {s, s + len};
    memset(out, 0, sizeof *out);
    int typed = 0;
    if (eat(&c, '{') != 0 || eat(&c, '}') == 0) {
        return -1;
    }
    for (;;) {
        const char *k;
        size_t kn;
        ws(&c);
        if (string(&c, &k, &kn) != 0 || eat(&c, ':') != 0 || member(&c, k, kn, out, &typed) != 0) {
            return -1;
        }
        if (eat(&c, ',') == 0) {
            continue;
        }
        if (eat(&c, '}') != 0) {
            return -1;
        }
        break;
    }
    ws(&c);
    return c.p == c.end && typed ? 0 : -1;
}
