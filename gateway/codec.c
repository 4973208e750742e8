/*
 * codec.c: see codec.h. Table of command names, then one small validator
 * per command. Every check follows the contract: never clamp, refuse.
 */
#include "codec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static const char *const names[] = {
    [GW_C_HELLO] = "hello", [GW_C_JOIN] = "join",     [GW_C_LEAVE] = "leave",
    [GW_C_CHAT] = "chat",   [GW_C_TYPING] = "typing", [GW_C_HISTORY] = "history",
    [GW_C_END] = "end",     [GW_C_RATE] = "rate",     [GW_C_PING] = "ping",
};

const char *gw_cmd_name(enum gw_cmd_type type)
{
    return (size_t)type < sizeof(names) / sizeof(names[0]) ? names[type] : "?";
}

static int fail(struct gw_codec_err *err, const char *code, const char *msg)
{
    err->code = code;
    snprintf(err->message, sizeof(err->message), "%s", msg);
    return -1;
}

static bool is_msg_id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* Copy a string field of 1..max bytes; -1 when absent, empty, too long or not a string. */
static int get_str(const json_t *obj, const char *key, char *out, size_t max)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_string(v)) {
        return -1;
    }
    size_t n = json_string_length(v);
    if (n == 0 || n > max || memchr(json_string_value(v), '\0', n) != NULL) {
        return -1;
    }
    memcpy(out, json_string_value(v), n + 1);
    return 0;
}

/* An integer field within [lo, hi]: 1 present and valid, 0 absent, -1 invalid. */
static int get_int(const json_t *obj, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        return -1;
    }
    *out = json_integer_value(v);
    return 1;
}

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int decode_chat(const json_t *o, struct gw_cmd *cmd, struct gw_codec_err *err)
{
    if (get_str(o, "clientMsgId", cmd->client_msg_id, GW_ID_MAX) != 0) {
        return fail(err, "bad_request", "clientMsgId must be 1..64 of [A-Za-z0-9_-]");
    }
    for (const char *p = cmd->client_msg_id; *p != '\0'; p++) {
        if (!is_msg_id_char(*p)) {
            return fail(err, "bad_request", "clientMsgId must be 1..64 of [A-Za-z0-9_-]");
        }
    }
    snprintf(err->client_msg_id, sizeof(err->client_msg_id), "%s", cmd->client_msg_id);
    const json_t *t = json_object_get(o, "text");
    if (!json_is_string(t)) {
        return fail(err, "bad_request", "text must be a string");
    }
    const char *s = json_string_value(t);
    size_t n = json_string_length(t);
    if (memchr(s, '\0', n) != NULL) {
        return fail(err, "bad_request", "text must not contain NUL");
    }
    while (n > 0 && is_space((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n > 0 && is_space((unsigned char)s[n - 1])) {
        n--;
    }
    if (n == 0) {
        return fail(err, "bad_request", "text is empty");
    }
    if (n > GW_TEXT_MAX) {
        return fail(err, "too_large", "text is longer than 4000 bytes");
    }
    cmd->text = malloc(n + 1);
    if (cmd->text == NULL) {
        return fail(err, "internal", "out of memory");
    }
    memcpy(cmd->text, s, n);
    cmd->text[n] = '\0';
    cmd->text_len = n;
    return 0;
}

static size_t utf8_chars(const char *s, size_t n)
{
    size_t chars = 0;
    for (size_t i = 0; i < n; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            chars++;
        }
    }
    return chars;
}

static int decode_rate(const json_t *o, struct gw_cmd *cmd, struct gw_codec_err *err)
{
    int64_t v = 0;
    if (get_int(o, "rating", 1, 5, &v) != 1) {
        return fail(err, "bad_request", "rating must be an integer 1..5");
    }
    cmd->rating = (int)v;
    int r = get_int(o, "tip", 1, 5, &v);
    if (r < 0 || (r == 1 && v != 1 && v != 3 && v != 5)) {
        return fail(err, "bad_request", "tip must be 1, 3 or 5");
    }
    cmd->tip = r == 1 ? (int)v : 0;
    const json_t *c = json_object_get(o, "comment");
    if (c != NULL && !json_is_null(c)) {
        if (!json_is_string(c) ||
            memchr(json_string_value(c), '\0', json_string_length(c)) != NULL) {
            return fail(err, "bad_request", "comment must be a string");
        }
        if (utf8_chars(json_string_value(c), json_string_length(c)) > GW_COMMENT_MAX) {
            return fail(err, "bad_request", "comment is longer than 2000 characters");
        }
        cmd->comment = strdup(json_string_value(c));
        if (cmd->comment == NULL) {
            return fail(err, "internal", "out of memory");
        }
    }
    return 0;
}

static int decode_history(const json_t *o, struct gw_cmd *cmd, struct gw_codec_err *err)
{
    int64_t v = 0;
    int r = get_int(o, "before", 1, INT64_MAX, &v);
    if (r < 0) {
        return fail(err, "bad_request", "before must be a positive integer");
    }
    cmd->has_before = r == 1;
    cmd->before = v;
    cmd->limit = GW_HISTORY_DEFAULT;
    r = get_int(o, "limit", 1, GW_HISTORY_LIMIT, &v);
    if (r < 0) {
        return fail(err, "bad_request", "limit must be an integer 1..200");
    }
    if (r == 1) {
        cmd->limit = (int)v;
    }
    return 0;
}

static int decode_body(const json_t *o, struct gw_cmd *cmd, struct gw_codec_err *err)
{
    int64_t v = 0;
    int r = 0;
    switch (cmd->type) {
    case GW_C_HELLO: {
        const json_t *t = json_object_get(o, "token");
        if (!json_is_string(t) || json_string_length(t) == 0 || json_string_length(t) > 8192) {
            return fail(err, "bad_request", "token must be a non-empty string");
        }
        cmd->token = strdup(json_string_value(t));
        return cmd->token != NULL ? 0 : fail(err, "internal", "out of memory");
    }
    case GW_C_JOIN:
        r = get_int(o, "since", 0, INT64_MAX, &v);
        if (r < 0) {
            return fail(err, "bad_request", "since must be a non-negative integer");
        }
        cmd->has_since = r == 1;
        cmd->since = v;
        return 0;
    case GW_C_CHAT:
        return decode_chat(o, cmd, err);
    case GW_C_TYPING: {
        const json_t *s = json_object_get(o, "state");
        if (!json_is_boolean(s)) {
            return fail(err, "bad_request", "state must be true or false");
        }
        cmd->typing = json_is_true(s);
        return 0;
    }
    case GW_C_HISTORY:
        return decode_history(o, cmd, err);
    case GW_C_RATE:
        return decode_rate(o, cmd, err);
    case GW_C_LEAVE:
    case GW_C_END:
    case GW_C_PING:
        return 0;
    }
    return fail(err, "bad_request", "unknown type");
}

static int decode_type(const json_t *o, struct gw_cmd *cmd, struct gw_codec_err *err)
{
    const char *type = json_string_value(json_object_get(o, "type"));
    if (type == NULL) {
        return fail(err, "bad_request", "type is missing");
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(type, names[i]) == 0) {
            cmd->type = (enum gw_cmd_type)i;
            return 0;
        }
    }
    return fail(err, "bad_request", "unknown type");
}

static int decode_object(const json_t *o, struct gw_cmd *cmd, struct gw_codec_err *err)
{
    const json_t *id = json_object_get(o, "id");
    if (id != NULL) {
        if (get_str(o, "id", cmd->id, GW_ID_MAX) != 0) {
            return fail(err, "bad_request", "id must be a string of 1..64 bytes");
        }
        cmd->has_id = err->has_id = true;
        memcpy(err->id, cmd->id, sizeof(err->id));
    }
    if (decode_type(o, cmd, err) != 0) {
        return -1;
    }
    if (cmd->type != GW_C_HELLO && cmd->type != GW_C_PING) {
        if (get_str(o, "room", cmd->room, GW_ROOM_MAX) != 0) {
            return fail(err, "bad_request", "room must be a string of 1..128 bytes");
        }
        memcpy(err->room, cmd->room, sizeof(err->room));
    }
    return decode_body(o, cmd, err);
}

int gw_codec_decode(const char *buf, size_t len, struct gw_cmd *cmd, struct gw_codec_err *err)
{
    memset(cmd, 0, sizeof(*cmd));
    memset(err, 0, sizeof(*err));
    json_error_t jerr;
    json_t *o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL) {
        return fail(err, "bad_request", "frame is not valid JSON");
    }
    int rc = json_is_object(o) ? decode_object(o, cmd, err)
                               : fail(err, "bad_request", "frame must be a JSON object");
    json_decref(o);
    if (rc != 0) {
        gw_cmd_fini(cmd);
    }
    return rc;
}

static int dup_field(char **dst, const char *src)
{
    *dst = NULL;
    if (src != NULL && (*dst = strdup(src)) == NULL) {
        return -1;
    }
    return 0;
}

int gw_cmd_copy(struct gw_cmd *dst, const struct gw_cmd *src)
{
    *dst = *src;
    if (dup_field(&dst->text, src->text) != 0 || dup_field(&dst->comment, src->comment) != 0 ||
        dup_field(&dst->token, src->token) != 0) {
        gw_cmd_fini(dst);
        return -ENOMEM;
    }
    return 0;
}

int gw_codec_decode_rating(const char *buf, size_t len, struct gw_cmd *cmd,
                           struct gw_codec_err *err)
{
    memset(cmd, 0, sizeof(*cmd));
    memset(err, 0, sizeof(*err));
    cmd->type = GW_C_RATE;
    json_t *o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
    int rc = o == NULL            ? fail(err, "bad_request", "body is not valid JSON")
             : !json_is_object(o) ? fail(err, "bad_request", "body must be a JSON object")
                                  : decode_rate(o, cmd, err);
    json_decref(o);
    if (rc != 0) {
        gw_cmd_fini(cmd);
    }
    return rc;
}

void gw_cmd_fini(struct gw_cmd *cmd)
{
    free(cmd->text);
    free(cmd->comment);
    if (cmd->token != NULL) {
        memset(cmd->token, 0, strlen(cmd->token));
        free(cmd->token);
    }
    cmd->text = cmd->comment = cmd->token = NULL;
}
