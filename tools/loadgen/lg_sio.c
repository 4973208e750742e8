/*
 * lg_sio.c: coach-loadgen's Socket.IO adapter (see lg_sio.h for the
 * mapping). Packets over a WebSocket are not batched (Engine.IO v4 batches
 * with 0x1e only on long polling), so a frame is one packet: a type digit,
 * for a Socket.IO message a second digit, an optional ack id, and JSON.
 * Only the default namespace "/" is used.
 */
#include "lg_sio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACK_BITS  3
#define ACK_N_MOD (1u << 26) /* ids stay below 2^29: 9 digits */

/* A command that asks an ack, and the coachroom.v1 reply its ack becomes. */
static const struct {
    const char *cmd, *reply;
} ACKED[] = {{NULL, NULL},      {"join", "joined"}, {"chat", "ack"},
             {"leave", "left"}, {"end", "ended"},   {"rate", "rated"}};

#define N_ACKED (sizeof ACKED / sizeof ACKED[0])

static unsigned acked_kind(const char *cmd)
{
    for (unsigned k = 1; k < N_ACKED; k++) {
        if (strcmp(cmd, ACKED[k].cmd) == 0) {
            return k;
        }
    }
    return 0;
}

/* "<prefix><json>" as a new string; NULL on OOM. */
static char *prefixed(const char *prefix, const json_t *j)
{
    char *body = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    if (body == NULL) {
        return NULL;
    }
    size_t n = strlen(prefix) + strlen(body) + 1;
    char *s = malloc(n);
    if (s != NULL) {
        (void)snprintf(s, n, "%s%s", prefix, body);
    }
    free(body);
    return s;
}

char *lg_sio_encode(const json_t *o, uint32_t *ack_n)
{
    const char *type = json_string_value(json_object_get(o, "type"));
    if (type == NULL) {
        return NULL;
    }
    if (strcmp(type, "hello") == 0) {
        json_t *auth = json_pack("{sO}", "token", json_object_get(o, "token"));
        char *s = auth ? prefixed("40", auth) : NULL;
        json_decref(auth);
        return s;
    }
    json_t *body = json_copy((json_t *)o); /* shallow: the members are shared */
    json_t *pkt = body ? json_pack("[so]", type, body) : NULL;
    if (pkt == NULL) {
        json_decref(body);
        return NULL;
    }
    json_object_del(body, "type");
    char prefix[24] = "42";
    unsigned kind = acked_kind(type);
    if (kind != 0) {
        uint32_t id = (*ack_n << ACK_BITS) | kind;
        *ack_n = (*ack_n + 1) % ACK_N_MOD;
        (void)snprintf(prefix, sizeof prefix, "42%u", (unsigned)id);
    }
    char *s = prefixed(prefix, pkt);
    json_decref(pkt);
    return s;
}

char *lg_sio_pong(const char *buf, size_t len)
{
    char *s = malloc(len + 1);
    if (s == NULL) {
        return NULL;
    }
    memcpy(s, buf, len);
    s[0] = '3';
    s[len] = '\0';
    return s;
}

/* The decimal digits at *p (at most 9), moved past; -1 when none. */
static long digits(const char **p, const char *end)
{
    long v = 0;
    int n = 0;
    while (*p < end && **p >= '0' && **p <= '9' && n < 9) {
        v = v * 10 + (**p - '0');
        (*p)++;
        n++;
    }
    return n == 0 ? -1 : v;
}

/* obj (consumed) with "type" set; NULL when obj is not an object. */
static json_t *typed(json_t *obj, const char *type)
{
    if (!json_is_object(obj)) {
        json_decref(obj);
        return NULL;
    }
    json_object_set_new(obj, "type", json_string(type));
    return obj;
}

/* 43<id>[payload]: the reply of the command the id was made for. */
static json_t *ack_reply(long id, json_t *args)
{
    unsigned kind = (unsigned)id & ((1u << ACK_BITS) - 1);
    json_t *p = json_array_get(args, 0);
    if (kind == 0 || kind >= N_ACKED || !json_is_object(p)) {
        return NULL;
    }
    json_t *e = json_object_get(p, "error");
    if (!json_is_object(e)) {
        return typed(json_copy(p), ACKED[kind].reply);
    }
    json_t *err = json_copy(e);
    json_t *cmid = json_object_get(p, "clientMsgId");
    if (err != NULL && json_is_string(cmid)) {
        json_object_set(err, "clientMsgId", cmid);
    }
    return typed(err, "error");
}

/* 42["event",payload] */
static json_t *event(json_t *args)
{
    const char *name = json_string_value(json_array_get(args, 0));
    json_t *p = json_array_get(args, 1);
    if (name == NULL || !json_is_object(p)) {
        return NULL;
    }
    return typed(json_copy(p), name);
}

/* 44{"message":M}: a refused namespace connect, as coachroom.v1's error. */
static json_t *connect_error(json_t *j)
{
    const char *m = json_string_value(json_object_get(j, "message"));
    const char *code = m != NULL && strcmp(m, "unavailable") == 0 ? "unavailable" : "unauthorized";
    return json_pack("{ss ss ss}", "type", "error", "code", code, "message", m ? m : "refused");
}

/* The Socket.IO packet after Engine.IO's "4". */
static enum lg_sio_in socketio(const char *p, const char *end, json_t **out)
{
    if (p == end || *p == '/') {
        return LG_SIO_BAD; /* another namespace */
    }
    char t = *p++;
    if (t == '1') {
        return LG_SIO_CLOSE;
    }
    long id = digits(&p, end);
    json_t *j = p < end ? json_loadb(p, (size_t)(end - p), 0, NULL) : NULL;
    switch (t) {
    case '0':
        *out = json_pack("{ss}", "type", "welcome");
        break;
    case '2':
        *out = json_is_array(j) ? event(j) : NULL;
        break;
    case '3':
        *out = id >= 0 && json_is_array(j) ? ack_reply(id, j) : NULL;
        break;
    case '4':
        *out = connect_error(j);
        break;
    default:
        break;
    }
    json_decref(j);
    return *out != NULL ? LG_SIO_OBJ : LG_SIO_BAD;
}

enum lg_sio_in lg_sio_decode(const char *buf, size_t len, json_t **out)
{
    *out = NULL;
    if (len == 0) {
        return LG_SIO_BAD;
    }
    switch (buf[0]) {
    case '0':
        return LG_SIO_OPEN;
    case '1':
        return LG_SIO_CLOSE;
    case '2':
        return LG_SIO_PING;
    case '3':
    case '6':
        return LG_SIO_SKIP;
    case '4':
        return socketio(buf + 1, buf + len, out);
    default:
        return LG_SIO_BAD;
    }
}
