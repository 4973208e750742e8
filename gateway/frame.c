/*
 * frame.c: see frame.h.
 */
#include "frame.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Most frames (acks, chat messages, presence) fit here: serialized once,
 * then copied, instead of serialized twice (once to learn the size). */
#define FRAME_GUESS 2048

static struct gw_frame *frame_alloc(size_t len)
{
    struct gw_frame *f = malloc(sizeof(*f) + LWS_PRE + len);
    if (f != NULL) {
        f->refs = 1;
        f->len = len;
    }
    return f;
}

struct gw_frame *gw_frame_from_json(const json_t *obj)
{
    char guess[FRAME_GUESS];
    size_t len = json_dumpb(obj, guess, sizeof(guess), JSON_COMPACT);
    if (len == 0) {
        return NULL;
    }
    struct gw_frame *f = frame_alloc(len);
    if (f == NULL) {
        return NULL;
    }
    if (len <= sizeof(guess)) {
        memcpy(f->buf + LWS_PRE, guess, len);
    } else if (json_dumpb(obj, (char *)f->buf + LWS_PRE, len, JSON_COMPACT) != len) {
        free(f);
        return NULL;
    }
    return f;
}

void gw_frame_ref(struct gw_frame *f)
{
    f->refs++;
}

void gw_frame_unref(struct gw_frame *f)
{
    if (f != NULL && --f->refs == 0) {
        free(f);
    }
}

void gw_outbox_init(struct gw_outbox *o, size_t max_bytes)
{
    memset(o, 0, sizeof(*o));
    o->max_bytes = max_bytes;
}

void gw_outbox_fini(struct gw_outbox *o)
{
    while (o->len > 0) {
        gw_outbox_pop(o);
    }
    free(o->slot);
    o->slot = NULL;
    o->cap = 0;
}

/* Room for one more: grow the ring (its frames move to the start, in
 * order). 0, or -1 when at GW_OUTBOX_SLOTS or out of memory. */
static int outbox_grow(struct gw_outbox *o)
{
    if (o->len < o->cap) {
        return 0;
    }
    size_t cap = o->cap == 0 ? 8 : o->cap * 2;
    if (cap > GW_OUTBOX_SLOTS) {
        return -1;
    }
    struct gw_frame **slot = calloc(cap, sizeof(*slot));
    if (slot == NULL) {
        return -1;
    }
    for (size_t i = 0; i < o->len; i++) {
        slot[i] = o->slot[(o->head + i) % o->cap];
    }
    free(o->slot);
    o->slot = slot;
    o->cap = cap;
    o->head = 0;
    return 0;
}

int gw_outbox_push(struct gw_outbox *o, struct gw_frame *f)
{
    if (o->bytes + f->len > o->max_bytes || outbox_grow(o) != 0) {
        return -ENOBUFS;
    }
    gw_frame_ref(f);
    o->slot[(o->head + o->len) % o->cap] = f;
    o->len++;
    o->bytes += f->len;
    return 0;
}

struct gw_frame *gw_outbox_peek(const struct gw_outbox *o)
{
    return o->len > 0 ? o->slot[o->head] : NULL;
}

struct gw_frame *gw_outbox_at(const struct gw_outbox *o, size_t i)
{
    return i < o->len ? o->slot[(o->head + i) % o->cap] : NULL;
}

size_t gw_ws_text_header(unsigned char out[GW_WS_HEADER_MAX], size_t len)
{
    out[0] = 0x81; /* FIN, text */
    if (len < 126) {
        out[1] = (unsigned char)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (unsigned char)(len >> 8);
        out[3] = (unsigned char)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++) {
        out[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    }
    return 10;
}

void gw_outbox_pop(struct gw_outbox *o)
{
    if (o->len == 0) {
        return;
    }
    struct gw_frame *f = o->slot[o->head];
    o->slot[o->head] = NULL;
    o->head = (o->head + 1) % o->cap;
    o->len--;
    o->bytes -= f->len;
    gw_frame_unref(f);
    if (o->len == 0 && o->cap > 8) {
        /* a burst is over: give its array back */
        free(o->slot);
        o->slot = NULL;
        o->cap = 0;
        o->head = 0;
    }
}
