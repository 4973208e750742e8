/*
 * static.c: the browser client's files (WEB_ROOT) on every path that is not
 * a route of its own.
 */
#include "gw_int.h"

void gw_static_route(struct gw_server *srv, struct gw_http *h, const char *path, bool get)
{
    (void)srv;
    (void)path;
    (void)get;
    gw_http_error(h, 404, "not_found", "no such route");
}
