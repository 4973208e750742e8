/*
 * test_static_path.c: which request paths gateway/static.c is willing to
 * look up (gw_static_path_ok): plain paths yes; parents, hidden names,
 * percent signs, backslashes, control bytes and over-long paths no.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "gw_int.h"

Test(static_path, plain_paths_pass)
{
    static const char *ok[] = {"/",      "/index.html", "/app.js", "/sub/", "/sub/x-y_z.1.css",
                               "/a.b.c", "/favicon.ico"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        cr_expect(gw_static_path_ok(ok[i]), "%s", ok[i]);
    }
}

Test(static_path, hostile_paths_fail)
{
    static const char *bad[] = {
        "",      "index.html", "/..",       "/../x",     "/a/../b", "/a/..",     "/a..b",  "//x",
        "/a//b", "/.hidden",   "/a/.git/x", "/%2e%2e/x", "/a%00b",  "/a\\b",     "/..\\x", "/a b",
        "/a\tb", "/a\nb",      "/a?b",      "/a#b",      "/\x7f",   "/\xc3\xa9", "/a;b",   "/~root",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_expect(!gw_static_path_ok(bad[i]), "'%s' refused", bad[i]);
    }
}

Test(static_path, length_limit)
{
    char path[300];
    memset(path, 'a', sizeof(path));
    path[0] = '/';
    path[255] = '\0'; /* 255 bytes: the limit */
    cr_expect(gw_static_path_ok(path));
    path[255] = 'a';
    path[256] = '\0'; /* 256 bytes: one over */
    cr_expect(!gw_static_path_ok(path));
}
