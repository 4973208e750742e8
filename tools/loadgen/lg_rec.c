/*
 * lg_rec.c: the recording parser (see lg_rec.h for the format).
 *
 * One line at a time: jansson decodes the line (rejecting duplicate keys),
 * then each member is checked by name and type. Every error names the file
 * and the 1-based line.
 */
#include "lg_rec.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static void set_err(struct lg_err *err, const char *name, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_err(struct lg_err *err, const char *name, unsigned line, const char *fmt, ...)
{
    int n = snprintf(err->msg, sizeof err->msg, "%s:%u: ", name, line);
    if (n < 0 || (size_t)n >= sizeof err->msg) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(err->msg + n, sizeof err->msg - (size_t)n, fmt, ap);
    va_end(ap);
}

const char *lg_who_name(enum lg_who who)
{
    return who == LG_WHO_COACH ? "coach" : "client";
}

void lg_rec_free(struct lg_rec *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->n; i++) {
        free(r->ev[i].text);
    }
    free(r->ev);
    free(r->name);
    free(r);
}

static int is_allowed_key(const char *k)
{
    static const char *const keys[] = {"at_ms", "who",    "type",    "text",
                                       "state", "rating", "comment", "tip"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (strcmp(k, keys[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The string member key of o, its length in *len; NULL when absent. -1 in
 * *bad when present but not a string. */
static const char *get_str(json_t *o, const char *key, size_t *len, int *bad)
{
    json_t *v = json_object_get(o, key);
    *bad = 0;
    if (v == NULL) {
        return NULL;
    }
    if (!json_is_string(v)) {
        *bad = 1;
        return NULL;
    }
    *len = json_string_length(v);
    return json_string_value(v);
}

static int check_keys(json_t *o, const char *name, unsigned line, struct lg_err *err)
{
    const char *k;
    json_t *val;
    json_object_foreach(o, k, val)
    {
        (void)val;
        if (!is_allowed_key(k)) {
            set_err(err, name, line, "unknown member \"%s\"", k);
            return -EINVAL;
        }
    }
    return 0;
}

static int parse_head(json_t *o, struct lg_event *ev, const char *name, unsigned line,
                      struct lg_err *err)
{
    json_t *at = json_object_get(o, "at_ms");
    if (!json_is_integer(at) || json_integer_value(at) < 0 ||
        json_integer_value(at) > LG_REC_MAX_AT_MS) {
        set_err(err, name, line, "\"at_ms\" must be an integer in 0..%lld", LG_REC_MAX_AT_MS);
        return -EINVAL;
    }
    ev->at_ms = (int64_t)json_integer_value(at);
    size_t len;
    int bad;
    const char *who = get_str(o, "who", &len, &bad);
    if (who != NULL && strcmp(who, "coach") == 0) {
        ev->who = LG_WHO_COACH;
    } else if (who != NULL && strcmp(who, "client") == 0) {
        ev->who = LG_WHO_CLIENT;
    } else {
        set_err(err, name, line, "\"who\" must be \"coach\" or \"client\"");
        return -EINVAL;
    }
    const char *type = get_str(o, "type", &len, &bad);
    static const struct {
        const char *name;
        enum lg_ev_type type;
    } types[] = {
        {"chat", LG_EV_CHAT}, {"typing", LG_EV_TYPING}, {"end", LG_EV_END}, {"rate", LG_EV_RATE}};
    for (size_t i = 0; type != NULL && i < sizeof types / sizeof types[0]; i++) {
        if (strcmp(type, types[i].name) == 0) {
            ev->type = types[i].type;
            return 0;
        }
    }
    set_err(err, name, line, "\"type\" must be one of chat, typing, end, rate");
    return -EINVAL;
}

/* Only the members of its type may appear. */
static int check_members_for_type(json_t *o, const struct lg_event *ev, const char *name,
                                  unsigned line, struct lg_err *err)
{
    static const char *const extra[] = {"text", "state", "rating", "comment", "tip"};
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        const char *k = extra[i];
        int ok = (ev->type == LG_EV_CHAT && strcmp(k, "text") == 0) ||
                 (ev->type == LG_EV_TYPING && strcmp(k, "state") == 0) ||
                 (ev->type == LG_EV_RATE && strcmp(k, "text") != 0 && strcmp(k, "state") != 0);
        if (!ok && json_object_get(o, k) != NULL) {
            set_err(err, name, line, "\"%s\" does not belong to a \"%s\" event", k,
                    json_string_value(json_object_get(o, "type")));
            return -EINVAL;
        }
    }
    return 0;
}

static int parse_chat(json_t *o, struct lg_event *ev, const char *name, unsigned line,
                      struct lg_err *err)
{
    size_t len = 0;
    int bad;
    const char *text = get_str(o, "text", &len, &bad);
    if (text == NULL || len == 0 || len > LG_REC_MAX_TEXT || memchr(text, '\0', len) != NULL) {
        set_err(err, name, line, "a chat needs \"text\": a string of 1..%d bytes", LG_REC_MAX_TEXT);
        return -EINVAL;
    }
    size_t a = 0, b = len;
    while (a < b && (text[a] == ' ' || text[a] == '\t' || text[a] == '\n' || text[a] == '\r')) {
        a++;
    }
    if (a == b) {
        set_err(err, name, line, "a chat's \"text\" is only white space");
        return -EINVAL;
    }
    ev->text = strdup(text);
    return ev->text == NULL ? -ENOMEM : 0;
}

static int parse_rate(json_t *o, struct lg_event *ev, const char *name, unsigned line,
                      struct lg_err *err)
{
    if (ev->who != LG_WHO_CLIENT) {
        set_err(err, name, line, "only the client rates");
        return -EINVAL;
    }
    json_t *r = json_object_get(o, "rating");
    if (!json_is_integer(r) || json_integer_value(r) < 1 || json_integer_value(r) > 5) {
        set_err(err, name, line, "\"rating\" must be an integer in 1..5");
        return -EINVAL;
    }
    ev->rating = (int)json_integer_value(r);
    json_t *t = json_object_get(o, "tip");
    if (t != NULL) {
        json_int_t tv = json_is_integer(t) ? json_integer_value(t) : -1;
        if (tv != 1 && tv != 3 && tv != 5) {
            set_err(err, name, line, "\"tip\" must be 1, 3 or 5");
            return -EINVAL;
        }
        ev->tip = (int)tv;
    }
    size_t len = 0;
    int bad;
    const char *c = get_str(o, "comment", &len, &bad);
    if (bad || (c != NULL && (len > LG_REC_MAX_COMMENT || memchr(c, '\0', len) != NULL))) {
        set_err(err, name, line, "\"comment\" must be a string of at most %d bytes",
                LG_REC_MAX_COMMENT);
        return -EINVAL;
    }
    if (c != NULL) {
        ev->text = strdup(c);
        if (ev->text == NULL) {
            return -ENOMEM;
        }
    }
    return 0;
}

static int parse_event(json_t *o, struct lg_event *ev, const char *name, unsigned line,
                       struct lg_err *err)
{
    int rc = check_keys(o, name, line, err);
    if (rc == 0) {
        rc = parse_head(o, ev, name, line, err);
    }
    if (rc == 0) {
        rc = check_members_for_type(o, ev, name, line, err);
    }
    if (rc != 0) {
        return rc;
    }
    switch (ev->type) {
    case LG_EV_CHAT:
        return parse_chat(o, ev, name, line, err);
    case LG_EV_TYPING: {
        json_t *s = json_object_get(o, "state");
        if (!json_is_boolean(s)) {
            set_err(err, name, line, "a typing event needs \"state\": true or false");
            return -EINVAL;
        }
        ev->state = json_is_true(s);
        return 0;
    }
    case LG_EV_END:
        if (ev->who != LG_WHO_COACH) {
            set_err(err, name, line, "only the coach ends a session");
            return -EINVAL;
        }
        return 0;
    case LG_EV_RATE:
        return parse_rate(o, ev, name, line, err);
    }
    return -EINVAL;
}

static int is_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') {
            return 0;
        }
    }
    return 1;
}

/* Parse one non-blank line into r->ev[r->n]. */
static int parse_line(struct lg_rec *r, const char *s, size_t len, unsigned line,
                      struct lg_err *err)
{
    if (len > LG_REC_MAX_LINE) {
        set_err(err, r->name, line, "line longer than %d bytes", LG_REC_MAX_LINE);
        return -EINVAL;
    }
    if (r->n == LG_REC_MAX_EVENTS) {
        set_err(err, r->name, line, "more than %d events", LG_REC_MAX_EVENTS);
        return -EINVAL;
    }
    json_error_t jerr;
    json_t *o = json_loadb(s, len, JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL || !json_is_object(o)) {
        set_err(err, r->name, line, "not a JSON object%s%s", o ? "" : ": ", o ? "" : jerr.text);
        json_decref(o);
        return -EINVAL;
    }
    struct lg_event ev = {.line = line};
    int rc = parse_event(o, &ev, r->name, line, err);
    json_decref(o);
    if (rc == 0 && r->n > 0 && ev.at_ms < r->ev[r->n - 1].at_ms) {
        set_err(err, r->name, line, "\"at_ms\" %lld goes back in time (previous %lld)",
                (long long)ev.at_ms, (long long)r->ev[r->n - 1].at_ms);
        rc = -EINVAL;
    }
    if (rc != 0) {
        free(ev.text);
        return rc;
    }
    r->ev[r->n++] = ev;
    r->n_chats += ev.type == LG_EV_CHAT;
    r->length_ms = ev.at_ms;
    return 0;
}

static size_t count_lines(const char *buf, size_t len)
{
    size_t n = 1;
    for (size_t i = 0; i < len; i++) {
        n += buf[i] == '\n';
    }
    return n;
}

int lg_rec_parse(const char *name, const char *buf, size_t len, struct lg_rec **out,
                 struct lg_err *err)
{
    struct lg_rec *r = calloc(1, sizeof *r);
    if (r == NULL || (r->name = strdup(name)) == NULL) {
        free(r);
        return -ENOMEM;
    }
    size_t cap = count_lines(buf, len);
    if (cap > LG_REC_MAX_EVENTS) {
        cap = LG_REC_MAX_EVENTS;
    }
    r->ev = calloc(cap, sizeof *r->ev);
    if (r->ev == NULL) {
        lg_rec_free(r);
        return -ENOMEM;
    }
    unsigned line = 0;
    size_t pos = 0;
    int rc = 0;
    while (pos < len && rc == 0) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        line++;
        const char *s = buf + pos;
        size_t l = end - pos;
        if (!is_blank(s, l) && s[0] != '#') {
            rc = parse_line(r, s, l, line, err);
        }
        pos = end + 1;
    }
    if (rc == 0 && r->n == 0) {
        set_err(err, name, line, "no events");
        rc = -EINVAL;
    }
    if (rc != 0) {
        lg_rec_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* Read all of f into a new buffer (*len bytes), at most LG_REC_MAX_FILE;
 * -EFBIG beyond it. */
static int read_all(FILE *f, char **out, size_t *len)
{
    size_t cap = (size_t)64 * 1024, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap || ferror(f)) {
            break;
        }
        if (cap > LG_REC_MAX_FILE) {
            free(buf);
            return -EFBIG;
        }
        char *nb = realloc(buf, cap * 2);
        if (nb == NULL) {
            break;
        }
        buf = nb;
        cap *= 2;
    }
    if (buf == NULL || n == cap) {
        free(buf);
        return -ENOMEM;
    }
    if (ferror(f)) {
        free(buf);
        return -EIO;
    }
    if (n > LG_REC_MAX_FILE) {
        free(buf);
        return -EFBIG;
    }
    *out = buf;
    *len = n;
    return 0;
}

int lg_rec_load(const char *path, struct lg_rec **out, struct lg_err *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int e = errno;
        (void)snprintf(err->msg, sizeof err->msg, "%s: cannot open (errno %d)", path, e);
        return -e;
    }
    char *buf = NULL;
    size_t n = 0;
    int rc = read_all(f, &buf, &n);
    (void)fclose(f);
    if (rc == -EFBIG) {
        (void)snprintf(err->msg, sizeof err->msg, "%s: larger than %zu bytes", path,
                       LG_REC_MAX_FILE);
    } else if (rc != 0) {
        (void)snprintf(err->msg, sizeof err->msg, "%s: cannot read it", path);
    } else {
        rc = lg_rec_parse(path, buf, n, out, err);
    }
    free(buf);
    return rc;
}
