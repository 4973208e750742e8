/*
 * webhook.c: POST /webhooks/livekit, LiveKit's webhook receiver.
 */
#include "gw_int.h"

void gw_webhook_begin(struct gw_server *srv, struct gw_http *h, bool get)
{
    (void)srv;
    (void)get;
    gw_http_error(h, 404, "not_found", "no such route");
}
