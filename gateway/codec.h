/*
 * codec.h: decoding and validating the client's WebSocket frames
 * (protocol.md section 3, "Client to server").
 *
 * One text frame is one JSON object. gw_codec_decode turns it into a
 * struct gw_cmd whose fields are already checked against every limit of
 * the contract, or into an error that names the code to send back and
 * echoes what could be recovered (id, room, clientMsgId). No json_t leaves
 * this module. Loop thread (any thread: no state).
 */
#ifndef COACH_GW_CODEC_H
#define COACH_GW_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_ID_MAX          64   /* "id" and "clientMsgId", bytes */
#define GW_ROOM_MAX        128  /* room ids, bytes */
#define GW_TEXT_MAX        4000 /* chat text after trimming, bytes */
#define GW_COMMENT_MAX     2000 /* rating comment, characters */
#define GW_HISTORY_LIMIT   200
#define GW_HISTORY_DEFAULT 50

enum gw_cmd_type {
    GW_C_HELLO,
    GW_C_JOIN,
    GW_C_LEAVE,
    GW_C_CHAT,
    GW_C_TYPING,
    GW_C_HISTORY,
    GW_C_END,
    GW_C_RATE,
    GW_C_PING,
};

/* A decoded command. Strings are owned (gw_cmd_fini frees them). */
struct gw_cmd {
    enum gw_cmd_type type;
    bool has_id;
    char id[GW_ID_MAX + 1];
    char room[GW_ROOM_MAX + 1];        /* every type but hello and ping */
    char client_msg_id[GW_ID_MAX + 1]; /* chat */
    char *text;                        /* chat: trimmed, 1..GW_TEXT_MAX bytes */
    size_t text_len;
    char *token;     /* hello */
    bool has_since;  /* join */
    int64_t since;   /* >= 0 */
    bool has_before; /* history */
    int64_t before;  /* >= 1 */
    int limit;       /* history: 1..200, default 50 */
    bool typing;     /* typing: state */
    int rating;      /* rate: 1..5 */
    int tip;         /* rate: 0 (none), 1, 3 or 5 */
    char *comment;   /* rate: NULL or <= 2000 characters */
};

/* Why a frame was refused: the protocol error code and what to echo. */
struct gw_codec_err {
    const char *code; /* "bad_request" or "too_large" (static string) */
    char message[128];
    bool has_id;
    char id[GW_ID_MAX + 1];
    char room[GW_ROOM_MAX + 1];        /* "" when unknown */
    char client_msg_id[GW_ID_MAX + 1]; /* "" when unknown */
};

/* Decode one frame of len bytes. 0 with *cmd filled (release it with
 * gw_cmd_fini), or -1 with *err filled and nothing allocated. */
int gw_codec_decode(const char *buf, size_t len, struct gw_cmd *cmd, struct gw_codec_err *err);

/* Decode the body of POST /api/sessions/{id}/rating: the fields of a WS
 * `rate` (rating, optional comment and tip) in one JSON object. Same
 * result and error rules as gw_codec_decode; cmd->type is GW_C_RATE. */
int gw_codec_decode_rating(const char *buf, size_t len, struct gw_cmd *cmd,
                           struct gw_codec_err *err);

/* Deep-copy src into dst (dst owns its strings). 0, or -ENOMEM with dst
 * left empty. */
int gw_cmd_copy(struct gw_cmd *dst, const struct gw_cmd *src);

/* Free what cmd owns; cmd may be zeroed or decoded. */
void gw_cmd_fini(struct gw_cmd *cmd);

/* The protocol name of a command type ("chat", ...). */
const char *gw_cmd_name(enum gw_cmd_type type);

#endif
