/*
 * msgs.h: builders for the server-to-client JSON frames that carry room
 * data (protocol.md section 3, "Server to client"). Each returns a new
 * json_t reference, or NULL when out of memory. Loop thread.
 */
#ifndef COACH_GW_MSGS_H
#define COACH_GW_MSGS_H

#include <jansson.h>

#include "room.h"
#include "store.h"

/* {"userId","displayName","role"} */
json_t *gw_msg_member(const struct room_member_info *m);

/* The room's present members, in join order. */
json_t *gw_msg_members(const struct room *r);

/* One chat message as `message` carries it (without "type" and "room"
 * when bare is set: the form inside history lists). */
json_t *gw_msg_message(const char *room_id, const struct store_message *m, int bare);

/* A list of messages in the order given. */
json_t *gw_msg_message_list(const struct store_message *msgs, size_t n);

/* "scheduled" | "active" | "completed" | "cancelled" from the room state. */
const char *gw_msg_session_status(const struct room *r);

/* ISO 8601 string, or JSON null for 0. */
json_t *gw_msg_time(int64_t unix_ms);

#endif
