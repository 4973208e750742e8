/*
 * test_outbox.c: shared frames and the bounded per-connection outbox:
 * one serialization shared by reference, and the full path (count and
 * bytes) refusing without growing.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "frame.h"
#include "map.h"

static struct gw_frame *frame_of(const char *text)
{
    json_t *o = json_pack("{s:s}", "t", text);
    struct gw_frame *f = gw_frame_from_json(o);
    json_decref(o);
    cr_assert_not_null(f);
    return f;
}

Test(outbox, one_frame_shared_by_many_outboxes)
{
    struct gw_frame *f = frame_of("hi");
    cr_expect_eq(f->len, strlen("{\"t\":\"hi\"}"));
    cr_expect(memcmp(gw_frame_payload(f), "{\"t\":\"hi\"}", f->len) == 0);
    struct gw_outbox a, b;
    gw_outbox_init(&a, 1024);
    gw_outbox_init(&b, 1024);
    cr_assert_eq(gw_outbox_push(&a, f), 0);
    cr_assert_eq(gw_outbox_push(&b, f), 0);
    cr_expect_eq(f->refs, 3);
    gw_frame_unref(f);
    cr_expect_eq(gw_outbox_peek(&a), f);
    gw_outbox_pop(&a);
    cr_expect_eq(f->refs, 1, "b still holds it");
    gw_outbox_fini(&b); /* frees the frame: ASan would report a leak or double free */
    gw_outbox_fini(&a);
}

Test(outbox, full_by_bytes_refuses_and_keeps_order)
{
    struct gw_frame *f = frame_of("0123456789"); /* 17 bytes */
    struct gw_outbox o;
    gw_outbox_init(&o, 3 * f->len);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(gw_outbox_push(&o, f), 0);
    }
    cr_expect_eq(gw_outbox_push(&o, f), -ENOBUFS, "the fourth does not fit");
    cr_expect_eq(o.len, 3);
    cr_expect_eq(o.bytes, 3 * f->len);
    gw_outbox_pop(&o);
    cr_expect_eq(gw_outbox_push(&o, f), 0, "room again after a write");
    gw_outbox_fini(&o);
    cr_expect_eq(f->refs, 1);
    gw_frame_unref(f);
}

Test(outbox, full_by_count)
{
    struct gw_frame *f = frame_of("x");
    struct gw_outbox o;
    gw_outbox_init(&o, 1u << 30);
    for (int i = 0; i < GW_OUTBOX_SLOTS; i++) {
        cr_assert_eq(gw_outbox_push(&o, f), 0);
    }
    cr_expect_eq(gw_outbox_push(&o, f), -ENOBUFS);
    for (int i = 0; i < GW_OUTBOX_SLOTS; i++) {
        cr_assert_not_null(gw_outbox_peek(&o));
        gw_outbox_pop(&o);
    }
    cr_expect_null(gw_outbox_peek(&o));
    gw_outbox_pop(&o); /* popping an empty outbox is harmless */
    gw_frame_unref(f);
}

Test(map, put_get_replace_delete)
{
    struct gw_map *m = gw_map_new(4);
    int a = 1, b = 2;
    for (uint64_t k = 1; k <= 1000; k++) {
        cr_assert_eq(gw_map_put(m, &k, sizeof(k), k % 2 ? (void *)&a : (void *)&b), 0);
    }
    cr_expect_eq(gw_map_count(m), 1000);
    uint64_t k = 7;
    cr_expect_eq(gw_map_get(m, &k, sizeof(k)), &a);
    cr_assert_eq(gw_map_put(m, &k, sizeof(k), &b), 0);
    cr_expect_eq(gw_map_get(m, &k, sizeof(k)), &b, "replaced");
    cr_expect_eq(gw_map_count(m), 1000);
    cr_expect_eq(gw_map_del(m, &k, sizeof(k)), &b);
    cr_expect_null(gw_map_get(m, &k, sizeof(k)));
    cr_expect_null(gw_map_del(m, &k, sizeof(k)));
    cr_expect_eq(gw_map_count(m), 999);
    cr_expect_null(gw_map_get(m, "room-1", 6));
    cr_assert_eq(gw_map_put(m, "room-1", 6, &a), 0);
    cr_expect_eq(gw_map_get(m, "room-1", 6), &a);
    cr_expect_null(gw_map_get(m, "room-12", 7), "keys compare by length too");
    gw_map_free(m);
}

Test(outbox, grows_in_order_while_wrapped_and_gives_memory_back)
{
    struct gw_frame *f[40];
    char text[8];
    for (int i = 0; i < 40; i++) {
        snprintf(text, sizeof(text), "m%d", i);
        f[i] = frame_of(text);
    }
    struct gw_outbox o;
    gw_outbox_init(&o, 1u << 20);
    cr_expect_eq(o.cap, 0, "an idle outbox holds no array");
    int next_in = 0, next_out = 0;
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(gw_outbox_push(&o, f[next_in++]), 0);
    }
    for (int i = 0; i < 4; i++) { /* the ring's head moves: pushes wrap */
        cr_assert_eq(gw_outbox_peek(&o), f[next_out++]);
        gw_outbox_pop(&o);
    }
    while (next_in < 40) { /* 8 -> 16 -> 32 -> 64 while wrapped */
        cr_assert_eq(gw_outbox_push(&o, f[next_in++]), 0);
    }
    cr_expect_eq(o.cap, 64);
    while (next_out < 40) {
        cr_assert_eq(gw_outbox_peek(&o), f[next_out++], "frame %d in order", next_out - 1);
        gw_outbox_pop(&o);
    }
    cr_expect_eq(o.cap, 0, "emptied after a burst: the array is freed");
    gw_outbox_fini(&o);
    for (int i = 0; i < 40; i++) {
        cr_expect_eq(f[i]->refs, 1);
        gw_frame_unref(f[i]);
    }
}

Test(outbox, at_walks_a_wrapped_ring_in_order)
{
    struct gw_frame *f[10];
    char text[8];
    for (int i = 0; i < 10; i++) {
        snprintf(text, sizeof(text), "m%d", i);
        f[i] = frame_of(text);
    }
    struct gw_outbox o;
    gw_outbox_init(&o, 1u << 20);
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(gw_outbox_push(&o, f[i]), 0);
    }
    for (int i = 0; i < 5; i++) {
        gw_outbox_pop(&o);
    }
    for (int i = 6; i < 10; i++) { /* wraps around the 8 slots */
        cr_assert_eq(gw_outbox_push(&o, f[i]), 0);
    }
    for (size_t i = 0; i < 5; i++) {
        cr_expect_eq(gw_outbox_at(&o, i), f[5 + i], "frame %zu", i);
    }
    cr_expect_null(gw_outbox_at(&o, 5));
    gw_outbox_fini(&o);
    cr_expect_null(gw_outbox_at(&o, 0));
    for (int i = 0; i < 10; i++) {
        gw_frame_unref(f[i]);
    }
}

/* RFC 6455 5.2: 7-bit, 16-bit and 64-bit payload lengths, network order. */
Test(outbox, websocket_text_headers)
{
    unsigned char h[GW_WS_HEADER_MAX];
    cr_expect_eq(gw_ws_text_header(h, 0), 2);
    cr_expect(h[0] == 0x81 && h[1] == 0);
    cr_expect_eq(gw_ws_text_header(h, 125), 2);
    cr_expect_eq(h[1], 125);
    cr_expect_eq(gw_ws_text_header(h, 126), 4);
    cr_expect(h[0] == 0x81 && h[1] == 126 && h[2] == 0 && h[3] == 126);
    cr_expect_eq(gw_ws_text_header(h, 65535), 4);
    cr_expect(h[2] == 0xff && h[3] == 0xff);
    cr_expect_eq(gw_ws_text_header(h, 65536), 10);
    static const unsigned char want[] = {0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0};
    cr_expect(memcmp(h, want, sizeof(want)) == 0);
}

/* A frame longer than the first serialization attempt is still whole. */
Test(outbox, a_long_frame_is_serialized_whole)
{
    char text[5000];
    memset(text, 'x', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    struct gw_frame *f = frame_of(text);
    cr_expect_eq(f->len, strlen(text) + strlen("{\"t\":\"\"}"));
    cr_expect(memcmp(gw_frame_payload(f), "{\"t\":\"xxx", 9) == 0);
    cr_expect(memcmp(gw_frame_payload(f) + f->len - 5, "xxx\"}", 5) == 0);
    gw_frame_unref(f);
}
