/*
 * lg_url.h: the gateway URLs coach-loadgen accepts: ws://HOST[:PORT][/PATH]
 * with HOST on this machine (127.0.0.0/8, "localhost", "[::1]"). Pure.
 */
#ifndef COACH_LG_URL_H
#define COACH_LG_URL_H

#include "lg_rec.h"

struct lg_url {
    char host[64];  /* without brackets */
    int port;       /* default 80 */
    char path[128]; /* default "/ws" */
};

/* 1 when host (no brackets) is loopback: a dotted quad 127.x.y.z,
 * "localhost" or "::1". */
int lg_url_is_loopback(const char *host);

/* Parse s into *u. 0, or -EINVAL with err saying why (a non-loopback host
 * is refused with an explanation); *u is then unspecified. */
int lg_url_parse(const char *s, struct lg_url *u, struct lg_err *err);

#endif
