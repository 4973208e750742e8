/*
 * test_lg_sio.c: coach-loadgen's Socket.IO adapter (tools/loadgen/
 * lg_sio.h): commands out as packets with ack ids, Engine.IO's control
 * packets, events and acks back as coachroom.v1 objects, refusals, and
 * frames it must not accept.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "lg_sio.h"

static char *encode(const char *json, uint32_t *n)
{
    json_t *o = json_loads(json, 0, NULL);
    cr_assert_not_null(o);
    char *s = lg_sio_encode(o, n);
    json_decref(o);
    return s;
}

/* Decode s, expecting an object; returns it. */
static json_t *decode_obj(const char *s)
{
    json_t *m = NULL;
    cr_assert_eq(lg_sio_decode(s, strlen(s), &m), LG_SIO_OBJ, "%s", s);
    cr_assert_not_null(m);
    return m;
}

static const char *str(json_t *m, const char *k)
{
    return json_string_value(json_object_get(m, k));
}

Test(lg_sio, hello_is_the_namespace_connect_with_auth)
{
    uint32_t n = 0;
    char *s = encode("{\"type\":\"hello\",\"token\":\"tok\"}", &n);
    cr_assert_str_eq(s, "40{\"token\":\"tok\"}");
    cr_assert_eq(n, 0);
    free(s);
}

Test(lg_sio, commands_carry_ack_ids_that_name_them)
{
    uint32_t n = 0;
    char *s = encode("{\"type\":\"join\",\"room\":\"r1\",\"since\":4}", &n);
    cr_assert_str_eq(s, "421[\"join\",{\"room\":\"r1\",\"since\":4}]"); /* (0 << 3) | join */
    free(s);
    s = encode("{\"type\":\"chat\",\"room\":\"r1\",\"clientMsgId\":\"a-1\",\"text\":\"hi\"}", &n);
    cr_assert_str_eq(s, "4210[\"chat\",{\"room\":\"r1\",\"clientMsgId\":\"a-1\",\"text\":\"hi\"}]");
    free(s);
    s = encode("{\"type\":\"typing\",\"room\":\"r1\",\"state\":true}", &n);
    cr_assert_str_eq(s, "42[\"typing\",{\"room\":\"r1\",\"state\":true}]");
    free(s);
    cr_assert_eq(n, 2);
    cr_assert_null(encode("{\"room\":\"r1\"}", &n));
}

Test(lg_sio, engine_io_control_packets)
{
    json_t *m = NULL;
    const char *open =
        "0{\"sid\":\"x\",\"upgrades\":[],\"pingInterval\":25000,\"pingTimeout\":20000}";
    cr_assert_eq(lg_sio_decode(open, strlen(open), &m), LG_SIO_OPEN);
    cr_assert_eq(lg_sio_decode("2", 1, &m), LG_SIO_PING);
    char *pong = lg_sio_pong("2probe", 6);
    cr_assert_str_eq(pong, "3probe");
    free(pong);
    cr_assert_eq(lg_sio_decode("3", 1, &m), LG_SIO_SKIP);
    cr_assert_eq(lg_sio_decode("6", 1, &m), LG_SIO_SKIP);
    cr_assert_eq(lg_sio_decode("1", 1, &m), LG_SIO_CLOSE);
    cr_assert_eq(lg_sio_decode("41", 2, &m), LG_SIO_CLOSE);
    cr_assert_null(m);
}

Test(lg_sio, connect_and_refusal)
{
    json_t *m = decode_obj("40{\"sid\":\"abc\"}");
    cr_assert_str_eq(str(m, "type"), "welcome");
    json_decref(m);
    m = decode_obj("44{\"message\":\"unauthorized\"}");
    cr_assert_str_eq(str(m, "type"), "error");
    cr_assert_str_eq(str(m, "code"), "unauthorized");
    json_decref(m);
}

Test(lg_sio, events_become_typed_objects)
{
    json_t *m = decode_obj("42[\"message\",{\"room\":\"r1\",\"seq\":7,\"clientMsgId\":\"a-1\"}]");
    cr_assert_str_eq(str(m, "type"), "message");
    cr_assert_eq(json_integer_value(json_object_get(m, "seq")), 7);
    json_decref(m);
    m = decode_obj("42[\"session.ended\",{\"room\":\"r1\",\"reason\":\"coach\"}]");
    cr_assert_str_eq(str(m, "type"), "session.ended");
    json_decref(m);
}

Test(lg_sio, acks_become_the_commands_replies)
{
    uint32_t n = 0;
    char *s = encode("{\"type\":\"join\",\"room\":\"r1\"}", &n); /* id 1 */
    free(s);
    s = encode("{\"type\":\"chat\",\"room\":\"r1\",\"clientMsgId\":\"a-1\",\"text\":\"x\"}", &n);
    free(s); /* id 10 */
    json_t *m = decode_obj("431[{\"room\":\"r1\",\"lastSeq\":3,\"history\":[]}]");
    cr_assert_str_eq(str(m, "type"), "joined");
    cr_assert_eq(json_integer_value(json_object_get(m, "lastSeq")), 3);
    json_decref(m);
    m = decode_obj("4310[{\"clientMsgId\":\"a-1\",\"seq\":4,\"messageId\":\"m\"}]");
    cr_assert_str_eq(str(m, "type"), "ack");
    cr_assert_str_eq(str(m, "clientMsgId"), "a-1");
    json_decref(m);
    m = decode_obj("4310[{\"error\":{\"code\":\"unavailable\",\"message\":\"try again\"},"
                   "\"clientMsgId\":\"a-1\"}]");
    cr_assert_str_eq(str(m, "type"), "error");
    cr_assert_str_eq(str(m, "code"), "unavailable");
    cr_assert_str_eq(str(m, "clientMsgId"), "a-1");
    json_decref(m);
}

Test(lg_sio, frames_it_does_not_accept)
{
    static const char *const bad[] = {"",
                                      "9",
                                      "4",
                                      "42",
                                      "42{\"a\":1}",
                                      "42[1,{}]",
                                      "43[{}]",
                                      "430[{}]",
                                      "437[{}]",
                                      "431[1]",
                                      "4/admin,0",
                                      "45[\"x\"]",
                                      "42[\"message\",\"text\"]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *m = NULL;
        cr_assert_eq(lg_sio_decode(bad[i], strlen(bad[i]), &m), LG_SIO_BAD, "%s", bad[i]);
        cr_assert_null(m);
    }
}
