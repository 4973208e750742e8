/*
 * test_codec.c: every client command decoded, and every limit of the
 * contract checked at the limit and one past it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

static int dec(const char *json, struct gw_cmd *cmd, struct gw_codec_err *err)
{
    return gw_codec_decode(json, strlen(json), cmd, err);
}

static void expect_error(const char *json, const char *code)
{
    struct gw_cmd cmd;
    struct gw_codec_err err;
    cr_expect_eq(dec(json, &cmd, &err), -1, "refused: %s", json);
    cr_expect_str_eq(err.code, code, "%s -> %s", json, err.code);
    cr_expect(err.message[0] != '\0');
    cr_expect_null(cmd.text);
}

Test(codec, chat_is_trimmed_and_echoes)
{
    struct gw_cmd cmd;
    struct gw_codec_err err;
    cr_assert_eq(dec("{\"type\":\"chat\",\"id\":\"r1\",\"room\":\"rm\",\"clientMsgId\":\"a-b_9\","
                     "\"text\":\"  hi there \\n\"}",
                     &cmd, &err),
                 0, "%s", err.message);
    cr_expect_eq(cmd.type, GW_C_CHAT);
    cr_expect(cmd.has_id);
    cr_expect_str_eq(cmd.id, "r1");
    cr_expect_str_eq(cmd.room, "rm");
    cr_expect_str_eq(cmd.client_msg_id, "a-b_9");
    cr_expect_str_eq(cmd.text, "hi there");
    cr_expect_eq(cmd.text_len, 8);
    gw_cmd_fini(&cmd);
}

static char *chat_with_text_len(size_t n, char fill)
{
    char *json = malloc(n + 128);
    int k = snprintf(json, n + 128,
                     "{\"type\":\"chat\",\"room\":\"r\",\"clientMsgId\":\"m\",\"text\":\"");
    memset(json + k, fill, n);
    snprintf(json + k + n, 128, "\"}");
    return json;
}

Test(codec, chat_text_limits)
{
    struct gw_cmd cmd;
    struct gw_codec_err err;
    char *ok = chat_with_text_len(4000, 'x');
    cr_expect_eq(dec(ok, &cmd, &err), 0, "4000 bytes");
    gw_cmd_fini(&cmd);
    free(ok);
    char *big = chat_with_text_len(4001, 'x');
    cr_expect_eq(dec(big, &cmd, &err), -1);
    cr_expect_str_eq(err.code, "too_large");
    cr_expect_str_eq(err.client_msg_id, "m", "clientMsgId echoed");
    free(big);
    expect_error("{\"type\":\"chat\",\"room\":\"r\",\"clientMsgId\":\"m\",\"text\":\"   \"}",
                 "bad_request");
    expect_error("{\"type\":\"chat\",\"room\":\"r\",\"clientMsgId\":\"m\",\"text\":5}",
                 "bad_request");
    expect_error("{\"type\":\"chat\",\"room\":\"r\",\"clientMsgId\":\"m\"}", "bad_request");
}

Test(codec, client_msg_id_rules)
{
    char json[256];
    char id64[65];
    memset(id64, 'a', 64);
    id64[64] = '\0';
    struct gw_cmd cmd;
    struct gw_codec_err err;
    snprintf(json, sizeof(json),
             "{\"type\":\"chat\",\"room\":\"r\",\"clientMsgId\":\"%s\",\"text\":\"x\"}", id64);
    cr_expect_eq(dec(json, &cmd, &err), 0, "64 chars");
    gw_cmd_fini(&cmd);
    snprintf(json, sizeof(json),
             "{\"type\":\"chat\",\"room\":\"r\",\"clientMsgId\":\"%sa\",\"text\":\"x\"}", id64);
    expect_error(json, "bad_request");
    expect_error("{\"type\":\"chat\",\"room\":\"r\",\"clientMsgId\":\"a b\",\"text\":\"x\"}",
                 "bad_request");
    expect_error("{\"type\":\"chat\",\"room\":\"r\",\"clientMsgId\":\"\",\"text\":\"x\"}",
                 "bad_request");
    expect_error("{\"type\":\"chat\",\"room\":\"r\",\"clientMsgId\":\"\\u00e9\",\"text\":\"x\"}",
                 "bad_request");
}

Test(codec, history_limit_is_refused_not_clamped)
{
    struct gw_cmd cmd;
    struct gw_codec_err err;
    cr_assert_eq(dec("{\"type\":\"history\",\"room\":\"r\"}", &cmd, &err), 0);
    cr_expect_eq(cmd.limit, 50);
    cr_expect(!cmd.has_before);
    cr_assert_eq(
        dec("{\"type\":\"history\",\"room\":\"r\",\"limit\":200,\"before\":7}", &cmd, &err), 0);
    cr_expect_eq(cmd.limit, 200);
    cr_expect_eq(cmd.before, 7);
    cr_assert_eq(dec("{\"type\":\"history\",\"room\":\"r\",\"limit\":1}", &cmd, &err), 0);
    expect_error("{\"type\":\"history\",\"room\":\"r\",\"limit\":201}", "bad_request");
    expect_error("{\"type\":\"history\",\"room\":\"r\",\"limit\":0}", "bad_request");
    expect_error("{\"type\":\"history\",\"room\":\"r\",\"limit\":5.5}", "bad_request");
    expect_error("{\"type\":\"history\",\"room\":\"r\",\"before\":0}", "bad_request");
}

Test(codec, join_since_and_typing)
{
    struct gw_cmd cmd;
    struct gw_codec_err err;
    cr_assert_eq(dec("{\"type\":\"join\",\"room\":\"r\",\"since\":0}", &cmd, &err), 0);
    cr_expect(cmd.has_since);
    cr_expect_eq(cmd.since, 0);
    cr_assert_eq(dec("{\"type\":\"join\",\"room\":\"r\"}", &cmd, &err), 0);
    cr_expect(!cmd.has_since);
    expect_error("{\"type\":\"join\",\"room\":\"r\",\"since\":-1}", "bad_request");
    expect_error("{\"type\":\"join\",\"room\":\"r\",\"since\":\"3\"}", "bad_request");
    cr_assert_eq(dec("{\"type\":\"typing\",\"room\":\"r\",\"state\":true}", &cmd, &err), 0);
    cr_expect(cmd.typing);
    expect_error("{\"type\":\"typing\",\"room\":\"r\",\"state\":1}", "bad_request");
}

Test(codec, rate_rules)
{
    struct gw_cmd cmd;
    struct gw_codec_err err;
    cr_assert_eq(dec("{\"type\":\"rate\",\"room\":\"r\",\"rating\":5,\"tip\":3,\"comment\":\"ok\"}",
                     &cmd, &err),
                 0);
    cr_expect_eq(cmd.rating, 5);
    cr_expect_eq(cmd.tip, 3);
    cr_expect_str_eq(cmd.comment, "ok");
    gw_cmd_fini(&cmd);
    cr_assert_eq(dec("{\"type\":\"rate\",\"room\":\"r\",\"rating\":1}", &cmd, &err), 0);
    cr_expect_eq(cmd.tip, 0);
    cr_expect_null(cmd.comment);
    expect_error("{\"type\":\"rate\",\"room\":\"r\",\"rating\":0}", "bad_request");
    expect_error("{\"type\":\"rate\",\"room\":\"r\",\"rating\":6}", "bad_request");
    expect_error("{\"type\":\"rate\",\"room\":\"r\",\"rating\":3,\"tip\":2}", "bad_request");
    expect_error("{\"type\":\"rate\",\"room\":\"r\",\"rating\":3,\"tip\":0}", "bad_request");
    /* 2000 two-byte characters pass, 2001 do not: characters, not bytes. */
    size_t cap = 2001 * 2 + 128;
    char *json = malloc(cap);
    for (int n = 2000; n <= 2001; n++) {
        int k =
            snprintf(json, cap, "{\"type\":\"rate\",\"room\":\"r\",\"rating\":4,\"comment\":\"");
        for (int i = 0; i < n; i++) {
            json[k++] = (char)0xC3;
            json[k++] = (char)0xA9;
        }
        snprintf(json + k, cap - (size_t)k, "\"}");
        int rc = dec(json, &cmd, &err);
        cr_expect_eq(rc, n == 2000 ? 0 : -1, "comment of %d characters", n);
        gw_cmd_fini(&cmd);
    }
    free(json);
}

Test(codec, malformed_frames)
{
    expect_error("", "bad_request");
    expect_error("not json", "bad_request");
    expect_error("[1,2]", "bad_request");
    expect_error("{}", "bad_request");
    expect_error("{\"type\":\"dance\"}", "bad_request");
    expect_error("{\"type\":5}", "bad_request");
    expect_error("{\"type\":\"join\"}", "bad_request");
    expect_error("{\"type\":\"join\",\"room\":\"\"}", "bad_request");
    expect_error("{\"type\":\"ping\",\"type\":\"ping\"}", "bad_request");
    expect_error("{\"type\":\"hello\"}", "bad_request");
    char id65[128];
    snprintf(id65, sizeof(id65), "{\"type\":\"ping\",\"id\":\"%065d\"}", 0);
    expect_error(id65, "bad_request");
    struct gw_cmd cmd;
    struct gw_codec_err err;
    cr_expect_eq(dec("{\"type\":\"leave\",\"id\":\"x1\"}", &cmd, &err), -1);
    cr_expect(err.has_id, "id echoed even when the rest is wrong");
    cr_expect_str_eq(err.id, "x1");
    cr_assert_eq(dec("{\"type\":\"ping\",\"id\":\"p\"}", &cmd, &err), 0);
    cr_expect_eq(cmd.type, GW_C_PING);
    cr_assert_eq(dec("{\"type\":\"hello\",\"token\":\"abc\"}", &cmd, &err), 0);
    cr_expect_str_eq(cmd.token, "abc");
    gw_cmd_fini(&cmd);
    const char nul[] = "{\"type\":\"ping\"}\0junk";
    cr_expect_eq(gw_codec_decode(nul, sizeof(nul) - 1, &cmd, &err), -1, "bytes after the object");
}
