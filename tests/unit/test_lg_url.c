/*
 * test_lg_url.c: coach-loadgen's --url parsing (tools/loadgen/lg_url.h):
 * loopback hosts only, with a clear error for anything else.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "lg_url.h"

Test(lg_url, loopback_forms)
{
    struct lg_url u;
    struct lg_err err = {{0}};
    cr_assert_eq(lg_url_parse("ws://127.0.0.1:8080/ws", &u, &err), 0, "%s", err.msg);
    cr_assert_str_eq(u.host, "127.0.0.1");
    cr_assert_eq(u.port, 8080);
    cr_assert_str_eq(u.path, "/ws");
    cr_assert_eq(lg_url_parse("ws://localhost", &u, &err), 0, "%s", err.msg);
    cr_assert_eq(u.port, 80);
    cr_assert_str_eq(u.path, "/ws");
    cr_assert_eq(lg_url_parse("ws://[::1]:9000/other", &u, &err), 0, "%s", err.msg);
    cr_assert_str_eq(u.host, "::1");
    cr_assert_eq(u.port, 9000);
    cr_assert_str_eq(u.path, "/other");
    cr_assert_eq(lg_url_parse("ws://127.255.3.4:1/ws", &u, &err), 0, "%s", err.msg);
}

Test(lg_url, is_loopback)
{
    cr_assert(lg_url_is_loopback("127.0.0.1"));
    cr_assert(lg_url_is_loopback("127.1.2.3"));
    cr_assert_not(lg_url_is_loopback("128.0.0.1"));
    cr_assert_not(lg_url_is_loopback("127.0.0.256"));
    cr_assert_not(lg_url_is_loopback("127.0.0"));
    cr_assert_not(lg_url_is_loopback("127.0.0.1.5"));
    cr_assert_not(lg_url_is_loopback("127.0.0.1x"));
    cr_assert_not(lg_url_is_loopback(" 127.0.0.1"));
    cr_assert_not(lg_url_is_loopback("127.0.0.0001"));
    cr_assert_not(lg_url_is_loopback("127.example.com"));
    cr_assert_not(lg_url_is_loopback("localhost.example.com"));
    cr_assert_not(lg_url_is_loopback("::2"));
}

Test(lg_url, refusals_say_why)
{
    struct {
        const char *url;
        const char *why;
    } cases[] = {
        {"ws://10.0.0.1:8080/ws", "refusing the non-loopback host \"10.0.0.1\""},
        {"ws://example.com/ws", "refusing the non-loopback host \"example.com\""},
        {"ws://[2001:db8::1]:80/ws", "refusing the non-loopback host"},
        {"wss://127.0.0.1/ws", "wss is not supported"},
        {"http://127.0.0.1/ws", "want ws://"},
        {"ws://", "bad host"},
        {"ws://[::1/ws", "bad host"},
        {"ws://127.0.0.1:0/ws", "bad port"},
        {"ws://127.0.0.1:65536/ws", "bad port"},
        {"ws://127.0.0.1:80x/ws", "bad port"},
        {"ws://127.0.0.1:/ws", "bad port"},
        {"ws://[::1]x/ws", "bad host"},
        {"ws://127.0.0.1/w s", "bad path"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct lg_url u;
        struct lg_err err = {{0}};
        cr_assert_eq(lg_url_parse(cases[i].url, &u, &err), -EINVAL, "accepted %s", cases[i].url);
        cr_assert(strstr(err.msg, cases[i].why) != NULL, "%s: \"%s\"", cases[i].url, err.msg);
        cr_assert(strstr(err.msg, cases[i].url) != NULL, "names the URL: %s", err.msg);
    }
}
