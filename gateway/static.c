/*
 * static.c: the browser client's files (WEB_ROOT) on every path that is not
 * a route of its own.
 *
 * DESIGN: the web root is resolved and read into memory once, at start-up
 * (gw_static_open, main thread), so the loop thread never touches the file
 * system (STYLE: no file I/O on the loop after start-up). A request is then
 * an exact lookup of its path among the files loaded: nothing outside the
 * table can be named, whatever the encoding. Still, paths that are not plain
 * (`..`, `//`, backslashes, `%`, control bytes, anything outside
 * [A-Za-z0-9._/-]) are refused before the lookup, so the rule does not hang
 * on the table alone.
 *
 * Loading walks the root (at most GW_STATIC_DEPTH_MAX levels) and keeps
 * regular files of a known type whose real path stays under the root's real
 * path (a symlink pointing outside is skipped, symlinked directories are not
 * entered). Hidden names (a leading dot) and names with other characters are
 * skipped. Every file is at most GW_STATIC_FILE_MAX bytes, the whole set at
 * most GW_STATIC_FILES_MAX files and GW_STATIC_TOTAL_MAX bytes; what does not
 * fit is skipped with a WARN. Changing a file needs a restart.
 *
 * Responses: GET and HEAD only (others 405), 404 JSON for anything else;
 * Content-Type by extension, a strong ETag (BLAKE2b of the content) with
 * Cache-Control: no-cache (If-None-Match gives 304), nosniff, no-referrer,
 * and a Content-Security-Policy that allows only the origin's own scripts,
 * styles and images and WebSocket connections.
 */
/* realpath(3) is XSI. */
#define _XOPEN_SOURCE 700

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "gw_int.h"

#define GW_STATIC_FILE_MAX  ((size_t)2 * 1024 * 1024)
#define GW_STATIC_TOTAL_MAX ((size_t)16 * 1024 * 1024)
#define GW_STATIC_FILES_MAX 256
#define GW_STATIC_DEPTH_MAX 8
#define GW_STATIC_PATH_MAX  255 /* URL path, leading '/' included */
#define GW_STATIC_ETAG_LEN  34  /* '"' + 32 hex + '"' */

/* The security headers of every static response (borrowed by gw_http). */
static const struct gw_http_header web_headers_base[] = {
    {"x-content-type-options:", "nosniff"},
    {"referrer-policy:", "no-referrer"},
    {"x-frame-options:", "DENY"},
    {"content-security-policy:",
     "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; form-action 'self'; "
     "frame-ancestors 'none'"},
};
#define WEB_HEADERS_BASE_N (sizeof(web_headers_base) / sizeof(web_headers_base[0]))

struct gw_static_file {
    char *url_path;      /* "/index.html", owned */
    const char *type;    /* static string */
    unsigned char *data; /* owned */
    size_t len;
    char etag[GW_STATIC_ETAG_LEN + 1];
    /* web_headers_base plus the ETag; the ETag entry points into etag. */
    struct gw_http_header headers[WEB_HEADERS_BASE_N + 1];
};

struct gw_static {
    char *root;                   /* real path, owned */
    struct gw_static_file *files; /* owned, GW_STATIC_FILES_MAX entries */
    size_t n_files;
    size_t total_bytes;
};

struct content_type {
    const char *ext;
    const char *type;
};

static const struct content_type content_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".json", "application/json"},
    {".webmanifest", "application/manifest+json"},
    {".txt", "text/plain; charset=utf-8"},
    {".woff2", "font/woff2"},
};

/* The Content-Type for name's extension, NULL when it is not served. */
static const char *type_for(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof(content_types) / sizeof(content_types[0]); i++) {
        if (strcmp(dot, content_types[i].ext) == 0) {
            return content_types[i].type;
        }
    }
    return NULL;
}

/* A name we serve: [A-Za-z0-9._-], no leading dot, non-empty. */
static bool is_plain_name(const char *name)
{
    if (name[0] == '\0' || name[0] == '.') {
        return false;
    }
    for (const char *p = name; *p != '\0'; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

bool gw_static_path_ok(const char *path)
{
    size_t len = strlen(path);
    if (len == 0 || len > GW_STATIC_PATH_MAX || path[0] != '/') {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = path[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-' || c == '/';
        if (!ok) {
            return false; /* '%', '\\', control bytes, spaces, ... */
        }
        if (c == '/' && i + 1 < len && (path[i + 1] == '/' || path[i + 1] == '.')) {
            return false; /* "//", "/.", "/..": hidden names and parents */
        }
    }
    return strstr(path, "..") == NULL;
}

/* True when real (a realpath) is root itself or below it. */
static bool is_under(const char *root, const char *real)
{
    size_t n = strlen(root);
    return strncmp(root, real, n) == 0 && (real[n] == '\0' || real[n] == '/' || n == 1);
}

/* Read the regular file at real (at most max bytes) into a malloc'd buffer.
 * 0, -EFBIG when larger, or a negative errno. */
static int read_file(const char *real, size_t max, unsigned char **out, size_t *out_len)
{
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        return -errno;
    }
    struct stat st;
    int rc = 0;
    unsigned char *buf = NULL;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
    } else if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
    } else if (st.st_size < 0 || (unsigned long long)st.st_size > max) {
        rc = -EFBIG;
    } else if ((buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1)) == NULL) {
        rc = -ENOMEM;
    }
    size_t len = 0, want = rc == 0 ? (size_t)st.st_size : 0;
    while (rc == 0 && len < want) {
        ssize_t n = read(fd, buf + len, want - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO; /* shrank while we read it */
        } else {
            len += (size_t)n;
        }
    }
    close(fd);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *out_len = len;
    return 0;
}

static void file_etag(struct gw_static_file *f)
{
    unsigned char hash[16];
    char hex[sizeof(hash) * 2 + 1];
    crypto_generichash(hash, sizeof(hash), f->data, f->len, NULL, 0);
    sodium_bin2hex(hex, sizeof(hex), hash, sizeof(hash));
    snprintf(f->etag, sizeof(f->etag), "\"%s\"", hex);
    memcpy(f->headers, web_headers_base, sizeof(web_headers_base));
    f->headers[WEB_HEADERS_BASE_N] = (struct gw_http_header){"etag:", f->etag};
}

/* Load one file found at real (its real path) as url_path. Skips (0, with
 * a WARN) what does not fit; a negative errno only for -ENOMEM. */
static int add_file(struct gw_static *st, const char *real, const char *url_path, const char *type)
{
    if (st->n_files == GW_STATIC_FILES_MAX) {
        gw_log(GW_LOG_WARN, "web.file_skipped", "path=%s reason=too_many_files", url_path);
        return 0;
    }
    struct gw_static_file *f = &st->files[st->n_files];
    int rc = read_file(real, GW_STATIC_FILE_MAX, &f->data, &f->len);
    if (rc == -ENOMEM) {
        return rc;
    }
    if (rc != 0) {
        gw_log(GW_LOG_WARN, "web.file_skipped", "path=%s reason=%s", url_path,
               rc == -EFBIG ? "too_large" : "unreadable");
        return 0;
    }
    if (f->len > GW_STATIC_TOTAL_MAX - st->total_bytes) {
        gw_log(GW_LOG_WARN, "web.file_skipped", "path=%s reason=total_too_large", url_path);
        free(f->data);
        f->data = NULL;
        return 0;
    }
    f->url_path = strdup(url_path);
    if (f->url_path == NULL) {
        free(f->data);
        f->data = NULL;
        return -ENOMEM;
    }
    f->type = type;
    file_etag(f);
    st->total_bytes += f->len;
    st->n_files++;
    return 0;
}

static int scan_dir(struct gw_static *st, const char *dir, const char *url_dir, int depth);

/* One directory entry: a file to load, a directory to enter, or a skip. */
static int scan_entry(struct gw_static *st, const char *dir, const char *url_dir, int depth,
                      const char *name)
{
    char path[PATH_MAX], url[GW_STATIC_PATH_MAX + 1], real[PATH_MAX];
    if (!is_plain_name(name)) {
        return 0;
    }
    int n1 = snprintf(path, sizeof(path), "%s/%s", dir, name);
    int n2 = snprintf(url, sizeof(url), "%s/%s", url_dir, name);
    if (n1 < 0 || (size_t)n1 >= sizeof(path) || n2 < 0 || (size_t)n2 >= sizeof(url)) {
        return 0;
    }
    struct stat lst;
    if (lstat(path, &lst) != 0) {
        return 0;
    }
    if (realpath(path, real) == NULL || !is_under(st->root, real)) {
        gw_log(GW_LOG_WARN, "web.file_skipped", "path=%s reason=outside_root", url);
        return 0;
    }
    if (S_ISDIR(lst.st_mode)) {
        return depth + 1 < GW_STATIC_DEPTH_MAX ? scan_dir(st, real, url, depth + 1) : 0;
    }
    const char *type = type_for(name);
    if (type == NULL) {
        return 0;
    }
    return add_file(st, real, url, type);
}

static int scan_dir(struct gw_static *st, const char *dir, const char *url_dir, int depth)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        gw_log(GW_LOG_WARN, "web.dir_skipped", "path=%s/", url_dir);
        return 0;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        rc = scan_entry(st, dir, url_dir, depth, e->d_name);
    }
    closedir(d);
    return rc;
}

/* The directory holding the running executable (/proc/self/exe). */
static int exe_dir(char *out, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", out, cap - 1);
    if (n <= 0 || (size_t)n >= cap - 1) {
        return -ENOENT;
    }
    out[n] = '\0';
    char *slash = strrchr(out, '/');
    if (slash == NULL) {
        return -ENOENT;
    }
    *slash = '\0';
    return 0;
}

/* The default web root: an installed copy beside the binary
 * (<prefix>/bin -> <prefix>/share/coach-gateway/web), or the checkout's
 * web/ from a build tree (build/<name>/gateway or build/gateway). Each
 * candidate must hold index.html. 0 with out set, or -ENOENT. */
static int default_root(char *out, size_t cap, const char **source)
{
    static const struct {
        const char *rel;
        const char *source;
    } candidates[] = {
        {"../share/coach-gateway/web", "install"},
        {"../../../web", "checkout"},
        {"../../web", "checkout"},
    };
    char dir[PATH_MAX], probe[PATH_MAX + 64];
    if (exe_dir(dir, sizeof(dir)) != 0) {
        return -ENOENT;
    }
    for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
        snprintf(probe, sizeof(probe), "%s/%s/index.html", dir, candidates[i].rel);
        if (access(probe, R_OK) == 0) {
            snprintf(probe, sizeof(probe), "%s/%s", dir, candidates[i].rel);
            if (realpath(probe, out) != NULL && strlen(out) < cap) {
                *source = candidates[i].source;
                return 0;
            }
        }
    }
    return -ENOENT;
}

void gw_static_free(struct gw_static *st)
{
    if (st == NULL) {
        return;
    }
    for (size_t i = 0; i < st->n_files; i++) {
        free(st->files[i].url_path);
        free(st->files[i].data);
    }
    free(st->files);
    free(st->root);
    free(st);
}

/* Resolve the root (configured or default) into st->root. */
static int resolve_root(struct gw_static *st, const char *configured, const char **source,
                        struct gw_err *err)
{
    char real[PATH_MAX];
    struct stat sb;
    if (configured != NULL) {
        if (realpath(configured, real) == NULL || stat(real, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            return gw_err_set(err, -ENOENT, "WEB_ROOT %s: not a readable directory", configured);
        }
        *source = "WEB_ROOT";
    } else if (default_root(real, sizeof(real), source) != 0) {
        return 0; /* no root: nothing is served */
    }
    st->root = strdup(real);
    return st->root != NULL ? 0 : gw_err_set(err, -ENOMEM, "out of memory");
}

int gw_static_open(const char *configured, struct gw_static **out, struct gw_err *err)
{
    struct gw_static *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return gw_err_set(err, -ENOMEM, "out of memory");
    }
    st->files = calloc(GW_STATIC_FILES_MAX, sizeof(st->files[0]));
    const char *source = NULL;
    int rc = st->files != NULL ? resolve_root(st, configured, &source, err)
                               : gw_err_set(err, -ENOMEM, "out of memory");
    if (rc == 0 && st->root != NULL) {
        rc = scan_dir(st, st->root, "", 0);
        if (rc != 0) {
            gw_err_set(err, rc, "WEB_ROOT: out of memory");
        }
    }
    if (rc != 0) {
        gw_static_free(st);
        return rc;
    }
    if (st->root == NULL) {
        gw_log(GW_LOG_WARN, "web.root_missing",
               "msg=\"no web/ found beside the executable; set WEB_ROOT to serve the client\"");
    } else {
        gw_log(GW_LOG_NOTICE, "web.root", "path=%s source=%s files=%zu bytes=%zu", st->root, source,
               st->n_files, st->total_bytes);
    }
    *out = st;
    return 0;
}

static const struct gw_static_file *lookup(const struct gw_static *st, const char *path)
{
    char idx[GW_STATIC_PATH_MAX + 16];
    size_t len = strlen(path);
    if (len > 0 && path[len - 1] == '/') {
        snprintf(idx, sizeof(idx), "%sindex.html", path);
        path = idx;
    }
    for (size_t i = 0; st != NULL && i < st->n_files; i++) {
        if (strcmp(st->files[i].url_path, path) == 0) {
            return &st->files[i];
        }
    }
    return NULL;
}

static bool is_head(struct lws *wsi)
{
    return lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0;
}

/* True when the request's If-None-Match names f's ETag. */
static bool not_modified(struct lws *wsi, const struct gw_static_file *f)
{
    char inm[256];
    int n = lws_hdr_copy(wsi, inm, sizeof(inm), WSI_TOKEN_HTTP_IF_NONE_MATCH);
    return n > 0 && strstr(inm, f->etag) != NULL;
}

void gw_static_route(struct gw_server *srv, struct gw_http *h, const char *path, bool get)
{
    bool head = !get && is_head(h->wsi);
    if (!get && !head) {
        gw_http_error(h, 405, "bad_request", "method not allowed");
        return;
    }
    const struct gw_static_file *f = gw_static_path_ok(path) ? lookup(srv->web, path) : NULL;
    if (f == NULL) {
        gw_http_error(h, 404, "not_found", "no such file");
        return;
    }
    bool unchanged = not_modified(h->wsi, f);
    char *copy = NULL;
    if (!unchanged && !head && f->len > 0) {
        copy = malloc(f->len);
        if (copy == NULL) {
            gw_http_error(h, 503, "unavailable", "out of memory");
            return;
        }
        memcpy(copy, f->data, f->len);
    }
    h->headers = f->headers;
    h->n_headers = sizeof(f->headers) / sizeof(f->headers[0]);
    h->cache_control = "no-cache";
    h->head_len = head || unchanged ? f->len : 0; /* the body not sent */
    gw_http_respond_take(h, unchanged ? 304 : 200, f->type, copy, copy != NULL ? f->len : 0);
}
