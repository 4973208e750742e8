/*
 * test_static.c: the real coach-gateway binary serving the browser client's
 * files (gateway/static.c): the index at `/`, content types and security
 * headers, ETag revalidation, HEAD, refused traversal in several encodings
 * and through symlinks, the file size cap, 404/405, the default web root
 * (from the checkout and from an installed copy), and the start-up error
 * for a WEB_ROOT that does not exist.
 *
 * Requests are written by hand on a raw socket so that nothing (curl's URL
 * normalisation) cleans a hostile path before the gateway sees it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "gwproc.h"

#define SECRET "TOPSECRET-outside-the-root"
#define MIB2   ((size_t)2 * 1024 * 1024)

struct resp {
    int status; /* 0: no HTTP answer (connection dropped) */
    char raw[65536];
    size_t len;
    char *body; /* into raw */
    size_t body_len;
};

static char outside_dir[256], root_dir[300];

static void write_file(const char *dir, const char *name, const char *text, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert(fd >= 0, "create %s: %d", path, errno);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
}

static void put(const char *dir, const char *name, const char *text)
{
    write_file(dir, name, text, strlen(text));
}

static void link_to(const char *target, const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    cr_assert_eq(symlink(target, path), 0, "symlink %s", path);
}

/* A web root with one file of each type, and traps: a secret outside it
 * reached by symlinks, a hidden file, an unknown type, a file over 2 MiB. */
static void make_root(void)
{
    snprintf(outside_dir, sizeof(outside_dir), "/tmp/coach-static-out-XXXXXX");
    cr_assert_not_null(mkdtemp(outside_dir));
    snprintf(root_dir, sizeof(root_dir), "%s/web", outside_dir);
    cr_assert_eq(mkdir(root_dir, 0755), 0);
    put(outside_dir, "secret.js", SECRET);
    put(root_dir, "index.html", "<!doctype html><title>room</title>");
    put(root_dir, "app.js", "export const x = 1;");
    put(root_dir, "style.css", "body{color:red}");
    put(root_dir, "favicon.svg", "<svg xmlns='http://www.w3.org/2000/svg'/>");
    write_file(root_dir, "icon.png", "\x89PNG\r\n\x1a\n", 8);
    write_file(root_dir, "favicon.ico", "\0\0\1\0", 4);
    put(root_dir, "data.json", "{}");
    put(root_dir, "site.webmanifest", "{\"name\":\"x\"}");
    put(root_dir, ".hidden.js", SECRET);
    put(root_dir, "notes.md", SECRET);
    char sub[320];
    snprintf(sub, sizeof(sub), "%s/sub", root_dir);
    cr_assert_eq(mkdir(sub, 0755), 0);
    put(sub, "index.html", "<p>sub</p>");
    char *big = malloc(MIB2 + 1);
    cr_assert_not_null(big);
    memset(big, 'a', MIB2 + 1);
    write_file(root_dir, "edge.js", big, MIB2);    /* the cap: served */
    write_file(root_dir, "big.js", big, MIB2 + 1); /* one byte over: not */
    free(big);
    char target[320];
    snprintf(target, sizeof(target), "%s/secret.js", outside_dir);
    link_to(target, root_dir, "escape.js");
    link_to(outside_dir, root_dir, "outdir");
    link_to("style.css", root_dir, "alias.css");
}

static void remove_root(void)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", outside_dir);
    cr_expect_eq(system(cmd), 0);
}

/* Send request (len bytes, may hold NUL) and read the answer until close. */
static void raw_request(int port, const char *request, size_t len, struct resp *r)
{
    memset(r, 0, sizeof(*r));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(write(fd, request, len), (ssize_t)len);
    for (;;) {
        ssize_t n = read(fd, r->raw + r->len, sizeof(r->raw) - 1 - r->len);
        if (n <= 0) {
            break;
        }
        r->len += (size_t)n;
    }
    close(fd);
    r->raw[r->len] = '\0';
    if (sscanf(r->raw, "HTTP/1.1 %d", &r->status) != 1) {
        r->status = 0;
    }
    char *sep = strstr(r->raw, "\r\n\r\n");
    r->body = sep != NULL ? sep + 4 : r->raw + r->len;
    r->body_len = (size_t)(r->raw + r->len - r->body);
}

static void request(int port, const char *method, const char *path, const char *extra,
                    struct resp *r)
{
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sConnection: close\r\n\r\n", method,
                     path, extra != NULL ? extra : "");
    raw_request(port, req, (size_t)n, r);
}

/* The value of header name (case-insensitive) into out, or "" . */
static void header(const struct resp *r, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    size_t nlen = strlen(name);
    for (const char *line = strstr(r->raw, "\r\n"); line != NULL && line + 2 < r->body;
         line = strstr(line + 2, "\r\n")) {
        const char *h = line + 2;
        if (strncasecmp(h, name, nlen) == 0 && h[nlen] == ':') {
            const char *v = h + nlen + 1;
            v += strspn(v, " ");
            size_t vlen = strcspn(v, "\r");
            snprintf(out, cap, "%.*s", (int)vlen, v);
            return;
        }
    }
}

static struct gwproc gp;

static void start_with_root(const char *root)
{
    char env_root[320];
    snprintf(env_root, sizeof(env_root), "WEB_ROOT=%s", root);
    const char *env[] = {"DATABASE_URL=postgresql://127.0.0.1:1/x", env_root, NULL};
    const char *args[] = {"serve", "--no-migrate", NULL};
    cr_assert_eq(gwproc_start(&gp, env, args), 0, "gateway starts");
}

static void setup(void)
{
    make_root();
    start_with_root(root_dir);
}

static void teardown(void)
{
    if (gp.pid > 0) {
        cr_expect_eq(gwproc_stop(&gp, SIGTERM), 0);
        unlink(gp.log_path);
    }
    remove_root();
}

TestSuite(static_files, .init = setup, .fini = teardown, .timeout = 60);

Test(static_files, index_at_root_with_security_headers)
{
    struct resp r;
    char v[512];
    request(gp.port, "GET", "/", NULL, &r);
    cr_assert_eq(r.status, 200, "%s", r.raw);
    cr_expect_str_eq(r.body, "<!doctype html><title>room</title>");
    header(&r, "content-type", v, sizeof(v));
    cr_expect_str_eq(v, "text/html; charset=utf-8");
    header(&r, "x-content-type-options", v, sizeof(v));
    cr_expect_str_eq(v, "nosniff");
    header(&r, "referrer-policy", v, sizeof(v));
    cr_expect_str_eq(v, "no-referrer");
    header(&r, "cache-control", v, sizeof(v));
    cr_expect_str_eq(v, "no-cache");
    header(&r, "content-security-policy", v, sizeof(v));
    cr_expect(strstr(v, "default-src 'self'") != NULL, "CSP: %s", v);
    cr_expect(strstr(v, "script-src 'self';") != NULL, "no inline script: %s", v);
    cr_expect(strstr(v, "unsafe-inline") == NULL, "CSP: %s", v);
    cr_expect(strstr(v, "connect-src 'self' ws: wss:") != NULL, "CSP: %s", v);

    request(gp.port, "GET", "/index.html", NULL, &r);
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(r.body, "<!doctype html><title>room</title>");
    request(gp.port, "GET", "/sub/", NULL, &r);
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(r.body, "<p>sub</p>");
    request(gp.port, "GET", "/?room=x", NULL, &r);
    cr_expect_eq(r.status, 200, "a query string does not matter");
}

Test(static_files, content_type_by_extension)
{
    static const char *cases[][2] = {
        {"/app.js", "text/javascript; charset=utf-8"},
        {"/style.css", "text/css; charset=utf-8"},
        {"/favicon.svg", "image/svg+xml"},
        {"/icon.png", "image/png"},
        {"/favicon.ico", "image/x-icon"},
        {"/data.json", "application/json"},
        {"/site.webmanifest", "application/manifest+json"},
        {"/alias.css", "text/css; charset=utf-8"}, /* a symlink inside the root */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct resp r;
        char v[128];
        request(gp.port, "GET", cases[i][0], NULL, &r);
        cr_expect_eq(r.status, 200, "%s: %s", cases[i][0], r.raw);
        header(&r, "content-type", v, sizeof(v));
        cr_expect_str_eq(v, cases[i][1], "%s", cases[i][0]);
        header(&r, "x-content-type-options", v, sizeof(v));
        cr_expect_str_eq(v, "nosniff", "%s", cases[i][0]);
    }
    struct resp r;
    request(gp.port, "GET", "/icon.png", NULL, &r);
    cr_expect_eq(r.body_len, 8, "binary body intact");
    cr_expect_eq(memcmp(r.body, "\x89PNG\r\n\x1a\n", 8), 0);
}

Test(static_files, etag_revalidation_and_head)
{
    struct resp r;
    char etag[128], v[128], extra[256];
    request(gp.port, "GET", "/app.js", NULL, &r);
    header(&r, "etag", etag, sizeof(etag));
    cr_assert(strlen(etag) > 2 && etag[0] == '"', "etag: %s", etag);
    snprintf(extra, sizeof(extra), "If-None-Match: %s\r\n", etag);
    request(gp.port, "GET", "/app.js", extra, &r);
    cr_expect_eq(r.status, 304);
    cr_expect_eq(r.body_len, 0);
    request(gp.port, "GET", "/app.js", "If-None-Match: \"other\"\r\n", &r);
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(r.body, "export const x = 1;");

    request(gp.port, "HEAD", "/app.js", NULL, &r);
    cr_expect_eq(r.status, 200, "%s", r.raw);
    header(&r, "content-length", v, sizeof(v));
    cr_expect_str_eq(v, "19");
    cr_expect_eq(r.body_len, 0, "HEAD has no body");
}

Test(static_files, traversal_is_refused)
{
    static const char *paths[] = {
        "/../secret.js",
        "/../../../../etc/passwd",
        "/%2e%2e/secret.js",
        "/%2E%2E/secret.js",
        "/%2e%2e%2fsecret.js",
        "/..%2fsecret.js",
        "/.%2e/secret.js",
        "/%252e%252e/secret.js",
        "/..%5csecret.js",
        "/..\\secret.js",
        "/sub/..%2f..%2fsecret.js",
        "//secret.js",
        "/escape.js",        /* symlink to a file outside the root */
        "/outdir/secret.js", /* symlink to a directory outside the root */
        "/.hidden.js",
        "/notes.md",
        "/%00/../secret.js",
        "/web/../secret.js",
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct resp r;
        request(gp.port, "GET", paths[i], NULL, &r);
        cr_expect(strstr(r.raw, "TOPSECRET") == NULL, "%s leaked: %s", paths[i], r.raw);
        cr_expect(r.status >= 400 || r.status == 0, "%s answered %d", paths[i], r.status);
    }
    /* A NUL inside the request line. */
    static const char nul_req[] = "GET /escape.js\0/index.html HTTP/1.1\r\nHost: x\r\n"
                                  "Connection: close\r\n\r\n";
    struct resp r;
    raw_request(gp.port, nul_req, sizeof(nul_req) - 1, &r);
    cr_expect(strstr(r.raw, "TOPSECRET") == NULL, "NUL leaked: %s", r.raw);
    cr_expect(r.status != 200, "NUL: %d", r.status);
    /* The server is still fine. */
    request(gp.port, "GET", "/", NULL, &r);
    cr_expect_eq(r.status, 200);
}

Test(static_files, missing_large_and_directories_are_404)
{
    static const char *paths[] = {"/nope.js", "/big.js", "/sub", "/nope/", "/index.html/x"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct resp r;
        char v[128];
        request(gp.port, "GET", paths[i], NULL, &r);
        cr_expect_eq(r.status, 404, "%s: %s", paths[i], r.raw);
        header(&r, "content-type", v, sizeof(v));
        cr_expect_str_eq(v, "application/json", "%s", paths[i]);
        cr_expect(strstr(r.body, "\"not_found\"") != NULL, "%s: %s", paths[i], r.body);
    }
    char *log = gwproc_log(&gp);
    cr_assert_not_null(log);
    cr_expect(strstr(log, "web.file_skipped path=/big.js reason=too_large") != NULL, "%s", log);
    cr_expect(strstr(log, "reason=outside_root") != NULL, "%s", log);
    cr_expect(strstr(log, "web.root path=") != NULL && strstr(log, "source=WEB_ROOT") != NULL, "%s",
              log);
    free(log);
}

Test(static_files, a_file_of_exactly_the_cap_is_served)
{
    struct resp r;
    char v[64];
    request(gp.port, "HEAD", "/edge.js", NULL, &r);
    cr_expect_eq(r.status, 200, "%s", r.raw);
    header(&r, "content-length", v, sizeof(v));
    cr_expect_str_eq(v, "2097152");
    request(gp.port, "GET", "/edge.js", NULL, &r);
    cr_expect_eq(r.status, 200);
    cr_expect(r.body_len > 0 && r.body[0] == 'a');
}

Test(static_files, other_methods_are_405)
{
    static const char *methods[] = {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        struct resp r;
        request(gp.port, methods[i], "/index.html", "Content-Length: 0\r\n", &r);
        cr_expect_eq(r.status, 405, "%s: %s", methods[i], r.raw);
        cr_expect(strstr(r.raw, "<title>") == NULL, "%s", methods[i]);
    }
}

Test(static_start, missing_web_root_stops_startup)
{
    const char *env[] = {"DATABASE_URL=postgresql://127.0.0.1:1/x",
                         "WEB_ROOT=/nonexistent/coach-web", NULL};
    const char *args[] = {"serve", "--no-migrate", NULL};
    struct gwproc run = {0};
    int rc = gwproc_run(&run, env, args);
    char *log = gwproc_log(&run);
    cr_assert_not_null(log);
    cr_expect_eq(rc, 1, "exit %d: %s", rc, log);
    cr_expect(strstr(log, "WEB_ROOT /nonexistent/coach-web") != NULL, "%s", log);
    free(log);
    unlink(run.log_path);
}

/* Without WEB_ROOT the binary of a build tree serves the checkout's web/. */
Test(static_start, default_root_is_the_checkout, .timeout = 60)
{
    const char *src = getenv("COACH_SOURCE_DIR");
    cr_assert_not_null(src);
    char path[512];
    snprintf(path, sizeof(path), "%s/web/index.html", src);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    static char want[65536];
    size_t n = fread(want, 1, sizeof(want) - 1, f);
    fclose(f);
    want[n] = '\0';

    const char *env[] = {"DATABASE_URL=postgresql://127.0.0.1:1/x", NULL};
    const char *args[] = {"serve", "--no-migrate", NULL};
    struct gwproc g = {0};
    cr_assert_eq(gwproc_start(&g, env, args), 0);
    struct resp r;
    request(g.port, "GET", "/", NULL, &r);
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(r.body, want, "the checkout's web/index.html");
    cr_expect_eq(gwproc_stop(&g, SIGTERM), 0);
    char *log = gwproc_log(&g);
    cr_expect(log != NULL && strstr(log, "source=checkout") != NULL, "%s", log);
    free(log);
    unlink(g.log_path);
}

/* An installed copy: <prefix>/bin/coach-gateway finds
 * <prefix>/share/coach-gateway/web. */
Test(static_start, default_root_of_an_install, .timeout = 60)
{
    char prefix[] = "/tmp/coach-prefix-XXXXXX", cmd[2048], bin[256];
    cr_assert_not_null(mkdtemp(prefix));
    snprintf(cmd, sizeof(cmd),
             "mkdir -p '%s/bin' '%s/share/coach-gateway/web' && cp '%s' '%s/bin/coach-gateway' && "
             "printf 'installed-index' > '%s/share/coach-gateway/web/index.html'",
             prefix, prefix, getenv("COACH_GATEWAY_BIN"), prefix, prefix);
    cr_assert_eq(system(cmd), 0);
    snprintf(bin, sizeof(bin), "%s/bin/coach-gateway", prefix);
    cr_assert_eq(setenv("COACH_GATEWAY_BIN", bin, 1), 0);
    const char *env[] = {"DATABASE_URL=postgresql://127.0.0.1:1/x", NULL};
    const char *args[] = {"serve", "--no-migrate", NULL};
    struct gwproc g = {0};
    cr_assert_eq(gwproc_start(&g, env, args), 0);
    struct resp r;
    request(g.port, "GET", "/", NULL, &r);
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(r.body, "installed-index");
    cr_expect_eq(gwproc_stop(&g, SIGTERM), 0);
    char *log = gwproc_log(&g);
    cr_expect(log != NULL && strstr(log, "source=install") != NULL, "%s", log);
    free(log);
    unlink(g.log_path);
    snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", prefix);
    cr_expect_eq(system(cmd), 0);
}

/* Start a gateway on dir and count how many of /<prefix><i><ext> it
 * serves for i in [0, n) (i zero-padded to width digits). */
static size_t served_of(const char *dir, size_t n, const char *prefix, int width, const char *ext,
                        char **log_out)
{
    start_with_root(dir);
    size_t served = 0;
    for (size_t i = 0; i < n; i++) {
        char path[64];
        struct resp r;
        snprintf(path, sizeof(path), "/%s%0*zu%s", prefix, width, i, ext);
        request(gp.port, "HEAD", path, NULL, &r);
        served += r.status == 200;
    }
    *log_out = gwproc_log(&gp);
    cr_expect_eq(gwproc_stop(&gp, SIGTERM), 0);
    unlink(gp.log_path);
    gp.pid = 0;
    return served;
}

/* 256 files at most: the 257th is skipped (which one depends on readdir). */
Test(static_start, at_most_256_files, .timeout = 60)
{
    char dir[] = "/tmp/coach-static-many-XXXXXX", name[32], *log = NULL;
    cr_assert_not_null(mkdtemp(dir));
    for (int i = 0; i < 257; i++) {
        snprintf(name, sizeof(name), "f%03d.txt", i);
        put(dir, name, "x");
    }
    cr_expect_eq(served_of(dir, 257, "f", 3, ".txt", &log), 256);
    cr_expect(log != NULL && strstr(log, "reason=too_many_files") != NULL, "%s", log);
    cr_expect(log != NULL && strstr(log, "files=256 ") != NULL, "%s", log);
    free(log);
    snprintf(outside_dir, sizeof(outside_dir), "%s", dir);
    remove_root();
}

/* 16 MiB in all: of nine 2 MiB files, eight are loaded. */
Test(static_start, at_most_16_mib_in_all, .timeout = 60)
{
    char dir[] = "/tmp/coach-static-total-XXXXXX", name[32], *log = NULL;
    cr_assert_not_null(mkdtemp(dir));
    char *blob = calloc(1, MIB2);
    cr_assert_not_null(blob);
    for (int i = 0; i < 9; i++) {
        snprintf(name, sizeof(name), "b%d.js", i);
        write_file(dir, name, blob, MIB2);
    }
    free(blob);
    cr_expect_eq(served_of(dir, 9, "b", 1, ".js", &log), 8);
    cr_expect(log != NULL && strstr(log, "reason=total_too_large") != NULL, "%s", log);
    free(log);
    snprintf(outside_dir, sizeof(outside_dir), "%s", dir);
    remove_root();
}
