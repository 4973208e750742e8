/*
 * test_lg_scan.c: coach-loadgen's quick frame scanner (tools/loadgen/
 * lg_scan.h). What it accepts it must read exactly as jansson does; what
 * it does not fully understand it must leave to jansson.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "lg_scan.h"

static int scan(const char *s, struct lg_scan *q)
{
    return lg_scan_frame(s, strlen(s), q);
}

/* s scanned, then compared with jansson's reading of the same fields. */
static void same_as_jansson(const char *s)
{
    struct lg_scan q;
    cr_assert_eq(scan(s, &q), 0, "scanned: %s", s);
    json_t *m = json_loads(s, 0, NULL);
    cr_assert_not_null(m, "%s", s);
    const char *type = json_string_value(json_object_get(m, "type"));
    cr_expect_eq(q.type, strcmp(type, "ack") == 0 ? LG_SCAN_ACK : LG_SCAN_MESSAGE, "%s", s);
    cr_expect_eq(q.seq, (int64_t)json_integer_value(json_object_get(m, "seq")), "%s", s);
    const char *cmid = json_string_value(json_object_get(m, "clientMsgId"));
    cr_expect_str_eq(q.cmid, cmid != NULL ? cmid : "", "%s", s);
    const char *role = json_string_value(json_object_get(json_object_get(m, "from"), "role"));
    enum lg_scan_role want = role == NULL                ? LG_SCAN_ROLE_NONE
                             : strcmp(role, "coach") == 0  ? LG_SCAN_ROLE_COACH
                             : strcmp(role, "client") == 0 ? LG_SCAN_ROLE_CLIENT
                                                           : LG_SCAN_ROLE_OTHER;
    cr_expect_eq(q.from_role, want, "%s", s);
    json_decref(m);
}

Test(lg_scan, reads_the_gateways_frames)
{
    same_as_jansson("{\"type\":\"ack\",\"room\":\"r-1\",\"clientMsgId\":\"abcdef-12\",\"seq\":7,"
                    "\"id\":\"cm1\",\"createdAt\":\"2026-11-25T10:00:00.000Z\"}");
    same_as_jansson(
        "{\"type\":\"message\",\"room\":\"r-1\",\"seq\":42,\"id\":\"cm2\",\"clientMsgId\":\"x-1\","
        "\"from\":{\"id\":\"u1\",\"role\":\"client\",\"displayName\":\"Sam \\\"S\\\" Client\"},"
        "\"text\":\"a \\\"seq\\\": 99, \\\\ then \\n and caf\xc3\xa9 \xf0\x9f\x99\x82\","
        "\"createdAt\":\"2026-11-25T10:00:00.000Z\"}");
    /* other orders, spaces, members it skips (nested, arrays, literals, numbers) */
    same_as_jansson(" { \"seq\" : 3 , \"extra\" : [1, -2.5e3, {\"a\": [true, false, null]}, \"s\"],"
                    " \"from\" : { \"role\" : \"coach\", \"n\": 0 }, \"type\" : \"message\" } ");
    same_as_jansson("{\"type\":\"message\",\"seq\":1,\"clientMsgId\":null,\"from\":{}}");
    same_as_jansson("{\"type\":\"message\",\"seq\":1,\"from\":{\"role\":\"admin\"}}");
    same_as_jansson("{\"type\":\"ack\"}");
}

Test(lg_scan, leaves_everything_else_to_jansson)
{
    static const char *const slow[] = {
        "{\"type\":\"joined\",\"room\":\"r\"}",             /* another type */
        "{\"type\":\"error\",\"code\":\"unavailable\"}",  /* another type */
        "{\"room\":\"r\",\"seq\":1}",                       /* no type */
        "{}",
        "[]",
        "",
        "{\"type\":\"ack\"",                                  /* cut short */
        "{\"type\":\"ack\",}",                                /* trailing comma */
        "{\"type\":\"ack\"} x",                               /* trailing bytes */
        "{\"type\":\"ack\",\"seq\":-1}",                      /* not a seq */
        "{\"type\":\"ack\",\"seq\":1.5}",
        "{\"type\":\"ack\",\"seq\":99999999999999999999}",
        "{\"type\":\"ack\",\"seq\":01}",                      /* not JSON */
        "{\"type\":\"ack\",\"x\":tru}",
        "{\"type\":\"ack\",\"x\":\"\\u0041\"}",               /* \\u escapes: jansson's */
        "{\"\\u0074ype\":\"ack\"}",                           /* an escaped key */
        "{\"type\":\"a\\u0063k\"}",
        "{\"type\":\"ack\",\"x\":\"\\q\"}",                   /* a bad escape */
        "{\"type\":\"ack\",\"x\":\"tab\there\"}",             /* a raw control character */
        "{\"type\":\"ack\",\"x\":\"\xc3\"}",                  /* cut UTF-8 */
        "{\"type\":\"ack\",\"x\":\"\xc0\xaf\"}",              /* overlong */
        "{\"type\":\"ack\",\"x\":\"\xed\xa0\x80\"}",          /* a surrogate */
        "{\"type\":\"ack\",\"x\":\"\xf4\x90\x80\x80\"}",      /* above U+10FFFF */
        "{\"type\":\"ack\",\"clientMsgId\":\"a\\\"b\"}",      /* an escape in a value read */
        "{\"type\":\"ack\",\"x\":[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}", /* too deep */
    };
    for (size_t i = 0; i < sizeof slow / sizeof slow[0]; i++) {
        struct lg_scan q;
        cr_expect_eq(scan(slow[i], &q), -1, "frame %zu: %s", i, slow[i]);
    }
    /* and a NUL inside is not the end of the frame */
    struct lg_scan q;
    static const char nul[] = "{\"type\":\"ack\",\"x\":\"a\0b\"}";
    cr_expect_eq(lg_scan_frame(nul, sizeof nul - 1, &q), -1);
}

Test(lg_scan, a_long_client_msg_id_is_left_to_jansson)
{
    char s[256];
    char id[LG_SCAN_CMID_MAX + 1];
    memset(id, 'a', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    (void)snprintf(s, sizeof s, "{\"type\":\"ack\",\"clientMsgId\":\"%s\"}", id);
    struct lg_scan q;
    cr_expect_eq(scan(s, &q), -1);
    id[LG_SCAN_CMID_MAX - 1] = '\0';
    (void)snprintf(s, sizeof s, "{\"type\":\"ack\",\"clientMsgId\":\"%s\"}", id);
    cr_expect_eq(scan(s, &q), 0);
    cr_expect_str_eq(q.cmid, id);
}
