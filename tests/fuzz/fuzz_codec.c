/*
 * fuzz_codec.c: libFuzzer target for gw_codec_decode (one WebSocket text
 * frame to one validated command, protocol.md section 3).
 *
 * Every input is decoded once; the result is then checked two ways:
 *   - against the contract's limits alone (lengths, charsets, ranges, the
 *     fields of other command types left empty, strings that are valid
 *     UTF-8 so they can be echoed back as JSON);
 *   - against an oracle: the same bytes parsed with jansson, so that an
 *     accepted command carries exactly the values the frame held (a "type"
 *     or "token" with an embedded NUL must not pass for something else).
 * A refused frame must name a protocol error code and a message, own no
 * memory (LeakSanitizer checks the rest), and echo only id, room and
 * clientMsgId values that were really in the frame and are valid.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "codec.h"
#include "fuzz_check.h"

#define TOKEN_MAX 8192 /* hello token, bytes (codec.c) */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* protocol.md section 3, "Error codes". */
static const char *const protocol_codes[] = {
    "bad_request", "unauthorized", "forbidden", "not_found",   "not_open", "closed",
    "conflict",    "rate_limited", "too_large", "unavailable", "internal",
};

static bool is_protocol_code(const char *code)
{
    for (size_t i = 0; i < sizeof(protocol_codes) / sizeof(protocol_codes[0]); i++) {
        if (strcmp(code, protocol_codes[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Length of a fixed-size string field, which must be NUL-terminated. */
static size_t field_len(const char *s, size_t cap)
{
    const char *nul = memchr(s, '\0', cap);
    FUZZ_CHECK(nul != NULL);
    return (size_t)(nul - s);
}

static bool is_ascii_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_msg_id(const char *s, size_t n)
{
    if (n < 1 || n > GW_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* Valid UTF-8 without NUL: what json_stringn accepts, so it can be echoed. */
static bool is_json_text(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    bool ok = j != NULL && memchr(s, '\0', n) == NULL;
    json_decref(j);
    return ok;
}

/* s (n bytes) equals the JSON string v byte for byte, length included. */
static bool equals_json(const char *s, size_t n, const json_t *v)
{
    return json_is_string(v) && json_string_length(v) == n &&
           memcmp(json_string_value(v), s, n) == 0;
}

static bool is_absent(const json_t *v)
{
    return v == NULL || json_is_null(v);
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

/* Fields that belong to other command types stay zero. */
static void check_unused_fields(const struct gw_cmd *cmd)
{
    enum gw_cmd_type t = cmd->type;
    FUZZ_CHECK((cmd->text != NULL) == (t == GW_C_CHAT));
    FUZZ_CHECK((cmd->token != NULL) == (t == GW_C_HELLO));
    if (t != GW_C_CHAT) {
        FUZZ_CHECK(cmd->client_msg_id[0] == '\0' && cmd->text_len == 0);
    }
    if (t != GW_C_RATE) {
        FUZZ_CHECK(cmd->comment == NULL && cmd->rating == 0 && cmd->tip == 0);
    }
    if (t != GW_C_JOIN) {
        FUZZ_CHECK(!cmd->has_since && cmd->since == 0);
    }
    if (t != GW_C_HISTORY) {
        FUZZ_CHECK(!cmd->has_before && cmd->before == 0 && cmd->limit == 0);
    }
    if (t != GW_C_TYPING) {
        FUZZ_CHECK(!cmd->typing);
    }
}

static void check_chat(const struct gw_cmd *cmd, const json_t *frame)
{
    size_t id_len = field_len(cmd->client_msg_id, sizeof(cmd->client_msg_id));
    FUZZ_CHECK(is_msg_id(cmd->client_msg_id, id_len));
    FUZZ_CHECK(equals_json(cmd->client_msg_id, id_len, json_object_get(frame, "clientMsgId")));

    size_t n = cmd->text_len;
    FUZZ_CHECK(n >= 1 && n <= GW_TEXT_MAX);
    FUZZ_CHECK(strlen(cmd->text) == n);
    FUZZ_CHECK(!is_ascii_space((unsigned char)cmd->text[0]));
    FUZZ_CHECK(!is_ascii_space((unsigned char)cmd->text[n - 1]));
    FUZZ_CHECK(is_json_text(cmd->text, n));

    /* Oracle: the frame's text with ASCII whitespace trimmed. */
    const json_t *t = json_object_get(frame, "text");
    FUZZ_CHECK(json_is_string(t));
    const char *s = json_string_value(t);
    size_t sn = json_string_length(t);
    while (sn > 0 && is_ascii_space((unsigned char)*s)) {
        s++;
        sn--;
    }
    while (sn > 0 && is_ascii_space((unsigned char)s[sn - 1])) {
        sn--;
    }
    FUZZ_CHECK(sn == n && memcmp(s, cmd->text, n) == 0);
}

static void check_rate(const struct gw_cmd *cmd, const json_t *frame)
{
    FUZZ_CHECK(cmd->rating >= 1 && cmd->rating <= 5);
    FUZZ_CHECK(json_integer_value(json_object_get(frame, "rating")) == cmd->rating);
    FUZZ_CHECK(cmd->tip == 0 || cmd->tip == 1 || cmd->tip == 3 || cmd->tip == 5);
    const json_t *tip = json_object_get(frame, "tip");
    FUZZ_CHECK(is_absent(tip) ? cmd->tip == 0 : json_integer_value(tip) == cmd->tip);
    const json_t *c = json_object_get(frame, "comment");
    if (is_absent(c)) {
        FUZZ_CHECK(cmd->comment == NULL);
        return;
    }
    FUZZ_CHECK(cmd->comment != NULL);
    size_t n = strlen(cmd->comment);
    FUZZ_CHECK(equals_json(cmd->comment, n, c));
    FUZZ_CHECK(utf8_chars(cmd->comment, n) <= GW_COMMENT_MAX);
    FUZZ_CHECK(is_json_text(cmd->comment, n));
}

static void check_body(const struct gw_cmd *cmd, const json_t *frame)
{
    const json_t *v = NULL;
    switch (cmd->type) {
    case GW_C_HELLO: {
        size_t n = strlen(cmd->token);
        FUZZ_CHECK(n >= 1 && n <= TOKEN_MAX);
        FUZZ_CHECK(equals_json(cmd->token, n, json_object_get(frame, "token")));
        break;
    }
    case GW_C_JOIN:
        v = json_object_get(frame, "since");
        FUZZ_CHECK(cmd->has_since == !is_absent(v));
        FUZZ_CHECK(cmd->has_since ? cmd->since >= 0 && json_integer_value(v) == cmd->since
                                  : cmd->since == 0);
        break;
    case GW_C_CHAT:
        check_chat(cmd, frame);
        break;
    case GW_C_TYPING:
        v = json_object_get(frame, "state");
        FUZZ_CHECK(json_is_boolean(v) && cmd->typing == json_is_true(v));
        break;
    case GW_C_HISTORY:
        v = json_object_get(frame, "before");
        FUZZ_CHECK(cmd->has_before == !is_absent(v));
        FUZZ_CHECK(cmd->has_before ? cmd->before >= 1 && json_integer_value(v) == cmd->before
                                   : cmd->before == 0);
        v = json_object_get(frame, "limit");
        FUZZ_CHECK(cmd->limit >= 1 && cmd->limit <= GW_HISTORY_LIMIT);
        FUZZ_CHECK(is_absent(v) ? cmd->limit == GW_HISTORY_DEFAULT
                                : json_integer_value(v) == cmd->limit);
        break;
    case GW_C_RATE:
        check_rate(cmd, frame);
        break;
    case GW_C_LEAVE:
    case GW_C_END:
    case GW_C_PING:
        break;
    }
}

static void check_accepted(const struct gw_cmd *cmd, const json_t *frame)
{
    FUZZ_CHECK(json_is_object(frame));
    const char *name = gw_cmd_name(cmd->type);
    FUZZ_CHECK(strcmp(name, "?") != 0);
    FUZZ_CHECK(equals_json(name, strlen(name), json_object_get(frame, "type")));

    size_t id_len = field_len(cmd->id, sizeof(cmd->id));
    if (cmd->has_id) {
        FUZZ_CHECK(id_len >= 1 && id_len <= GW_ID_MAX && is_json_text(cmd->id, id_len));
        FUZZ_CHECK(equals_json(cmd->id, id_len, json_object_get(frame, "id")));
    } else {
        FUZZ_CHECK(id_len == 0 && json_object_get(frame, "id") == NULL);
    }

    size_t room_len = field_len(cmd->room, sizeof(cmd->room));
    if (cmd->type == GW_C_HELLO || cmd->type == GW_C_PING) {
        FUZZ_CHECK(room_len == 0);
    } else {
        FUZZ_CHECK(room_len >= 1 && room_len <= GW_ROOM_MAX && is_json_text(cmd->room, room_len));
        FUZZ_CHECK(equals_json(cmd->room, room_len, json_object_get(frame, "room")));
    }
    check_unused_fields(cmd);
    check_body(cmd, frame);
}

/* A refused frame: a protocol code, a message, nothing owned, and echoes
 * that were in the frame (obj is NULL when the frame is not an object). */
static void check_refused(const struct gw_cmd *cmd, const struct gw_codec_err *err,
                          const json_t *obj)
{
    FUZZ_CHECK(err->code != NULL && is_protocol_code(err->code));
    FUZZ_CHECK(field_len(err->message, sizeof(err->message)) > 0);
    FUZZ_CHECK(cmd->text == NULL && cmd->comment == NULL && cmd->token == NULL);

    size_t n = field_len(err->id, sizeof(err->id));
    if (err->has_id) {
        FUZZ_CHECK(n >= 1 && n <= GW_ID_MAX && is_json_text(err->id, n));
        FUZZ_CHECK(obj != NULL && equals_json(err->id, n, json_object_get(obj, "id")));
    } else {
        FUZZ_CHECK(n == 0);
    }
    n = field_len(err->room, sizeof(err->room));
    if (n > 0) {
        FUZZ_CHECK(n <= GW_ROOM_MAX && is_json_text(err->room, n));
        FUZZ_CHECK(obj != NULL && equals_json(err->room, n, json_object_get(obj, "room")));
    }
    n = field_len(err->client_msg_id, sizeof(err->client_msg_id));
    if (n > 0) {
        FUZZ_CHECK(is_msg_id(err->client_msg_id, n));
        FUZZ_CHECK(obj != NULL &&
                   equals_json(err->client_msg_id, n, json_object_get(obj, "clientMsgId")));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct gw_cmd cmd;
    struct gw_codec_err err;
    int rc = gw_codec_decode(buf, size, &cmd, &err);
    json_t *frame = json_loadb(buf, size, JSON_REJECT_DUPLICATES, NULL);
    if (rc == 0) {
        check_accepted(&cmd, frame);
    } else {
        FUZZ_CHECK(rc == -1);
        check_refused(&cmd, &err, json_is_object(frame) ? frame : NULL);
    }
    gw_cmd_fini(&cmd);
    FUZZ_CHECK(cmd.text == NULL && cmd.comment == NULL && cmd.token == NULL);
    gw_cmd_fini(&cmd); /* finishing twice is harmless */
    json_decref(frame);
    return 0;
}
