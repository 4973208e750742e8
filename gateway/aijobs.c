/*
 * aijobs.c: drives the durable AI summary jobs from the loop thread.
 */
#include "gw_int.h"

void gw_ai_kick(struct gw_server *srv)
{
    (void)srv;
}
