/*
 * lg_url.c: parsing and checking coach-loadgen's --url (see lg_url.h).
 * Strict on purpose: the tool must never load a machine it was not meant
 * to, so the host is checked as text, without any name resolution.
 */
#include "lg_url.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* One decimal octet, 0..255, 1..3 digits; *s moves past it. */
static int octet(const char **s, unsigned *out)
{
    unsigned v = 0;
    int n = 0;
    while (**s >= '0' && **s <= '9' && n < 4) {
        v = v * 10 + (unsigned)(**s - '0');
        (*s)++;
        n++;
    }
    if (n == 0 || n > 3 || v > 255) {
        return -1;
    }
    *out = v;
    return 0;
}

int lg_url_is_loopback(const char *host)
{
    if (strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0) {
        return 1;
    }
    unsigned q[4];
    const char *p = host;
    for (int i = 0; i < 4; i++) {
        if (octet(&p, &q[i]) != 0 || (i < 3 && *p++ != '.')) {
            return 0;
        }
    }
    return *p == '\0' && q[0] == 127;
}

static int fail(struct lg_err *err, const char *url, const char *why)
{
    (void)snprintf(err->msg, sizeof err->msg, "--url %s: %s", url, why);
    return -EINVAL;
}

/* HOST or [HOST] at *p; *p moves past it. */
static int parse_host(const char **p, struct lg_url *u)
{
    const char *h = *p, *end;
    if (*h == '[') {
        h++;
        end = strchr(h, ']');
        if (end == NULL) {
            return -1;
        }
        *p = end + 1;
    } else {
        end = h + strcspn(h, ":/");
        *p = end;
    }
    size_t len = (size_t)(end - h);
    if (len == 0 || len >= sizeof u->host) {
        return -1;
    }
    memcpy(u->host, h, len);
    u->host[len] = '\0';
    return 0;
}

/* :PORT at *p, if there; *p moves past it. */
static int parse_port(const char **p, struct lg_url *u)
{
    u->port = 80;
    if (**p != ':') {
        return 0;
    }
    (*p)++;
    long v = 0;
    int n = 0;
    while (**p >= '0' && **p <= '9' && n < 6) {
        v = v * 10 + (**p - '0');
        (*p)++;
        n++;
    }
    if (n == 0 || v < 1 || v > 65535 || (**p != '\0' && **p != '/')) {
        return -1;
    }
    u->port = (int)v;
    return 0;
}

int lg_url_parse(const char *s, struct lg_url *u, struct lg_err *err)
{
    if (strncmp(s, "wss://", 6) == 0) {
        return fail(err, s, "wss is not supported (loopback only: use ws://)");
    }
    if (strncmp(s, "ws://", 5) != 0) {
        return fail(err, s, "want ws://HOST:PORT/PATH");
    }
    const char *p = s + 5;
    if (parse_host(&p, u) != 0) {
        return fail(err, s, "bad host");
    }
    if (parse_port(&p, u) != 0) {
        return fail(err, s, "bad port (1..65535)");
    }
    if (*p != '\0' && *p != '/') {
        return fail(err, s, "bad host");
    }
    if (strpbrk(p, " \t\r\n?#") != NULL) {
        return fail(err, s, "bad path");
    }
    if ((size_t)snprintf(u->path, sizeof u->path, "%s", *p ? p : "/ws") >= sizeof u->path) {
        return fail(err, s, "path too long");
    }
    if (!lg_url_is_loopback(u->host)) {
        (void)snprintf(err->msg, sizeof err->msg,
                       "--url %s: refusing the non-loopback host \"%s\": coach-loadgen only "
                       "loads a gateway on this machine (127.0.0.0/8, localhost, [::1])",
                       s, u->host);
        return -EINVAL;
    }
    return 0;
}
