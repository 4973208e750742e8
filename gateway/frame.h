/*
 * frame.h: outbound WebSocket frames and the per-connection outbox.
 *
 * A frame is serialized once and shared by reference among all its
 * recipients (a chat message to every member connection). Each connection
 * queues references in a ring bounded both in count and in bytes; a full
 * outbox is the slow-consumer signal (close 4008), never a reason to grow.
 * Loop thread only.
 */
#ifndef COACH_GW_FRAME_H
#define COACH_GW_FRAME_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <libwebsockets.h>

struct gw_frame {
    unsigned refs;
    size_t len;          /* payload bytes */
    unsigned char buf[]; /* LWS_PRE headroom, then the payload */
};

/* Serialize obj (borrowed) into a new frame with one reference, or NULL. */
struct gw_frame *gw_frame_from_json(const json_t *obj);

static inline unsigned char *gw_frame_payload(struct gw_frame *f)
{
    return f->buf + LWS_PRE;
}

void gw_frame_ref(struct gw_frame *f);
void gw_frame_unref(struct gw_frame *f); /* NULL-safe */

#define GW_OUTBOX_SLOTS 128 /* frames queued at most */

/* A ring of queued frames. Its array grows on demand (8, 16, ... up to
 * GW_OUTBOX_SLOTS) and is freed when a large one empties, so an idle
 * connection holds none: a held connection's memory counts. */
struct gw_outbox {
    struct gw_frame **slot; /* owned; cap entries */
    size_t cap, head, len;
    size_t bytes, max_bytes;
};

void gw_outbox_init(struct gw_outbox *o, size_t max_bytes);
/* Drop every queued frame. */
void gw_outbox_fini(struct gw_outbox *o);
/* Queue a new reference to f. 0, or -ENOBUFS when full or out of memory
 * (nothing queued). */
int gw_outbox_push(struct gw_outbox *o, struct gw_frame *f);
/* The oldest frame (borrowed) or NULL. */
struct gw_frame *gw_outbox_peek(const struct gw_outbox *o);
/* Drop the oldest frame. */
void gw_outbox_pop(struct gw_outbox *o);
/* The i-th oldest frame (borrowed), or NULL when fewer are queued. */
struct gw_frame *gw_outbox_at(const struct gw_outbox *o, size_t i);

#define GW_WS_HEADER_MAX 10

/* Write the header of an unmasked, final WebSocket text frame of len
 * payload bytes (RFC 6455 5.2: what a server sends) into out; returns its
 * size (2, 4 or 10). */
size_t gw_ws_text_header(unsigned char out[GW_WS_HEADER_MAX], size_t len);

#endif
