/*
 * msgs.c: see msgs.h.
 */
#include "msgs.h"

#include "gw_int.h"

json_t *gw_msg_time(int64_t unix_ms)
{
    if (unix_ms == 0) {
        return json_null();
    }
    char buf[32];
    gw_iso8601(unix_ms, buf, sizeof(buf));
    return json_string(buf);
}

json_t *gw_msg_member(const struct room_member_info *m)
{
    const char *role = room_role_name(m->role);
    return json_pack("{s:s, s:s, s:s}", "userId", m->id, "displayName", m->display_name, "role",
                     role != NULL ? role : "observer");
}

json_t *gw_msg_members(const struct room *r)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < room_member_count(r); i++) {
        json_array_append_new(a, gw_msg_member(room_member_at(r, i)));
    }
    return a;
}

static const char *store_role_name(enum store_role role)
{
    switch (role) {
    case STORE_ROLE_COACH:
        return "coach";
    case STORE_ROLE_CLIENT:
        return "client";
    case STORE_ROLE_OBSERVER:
        return "observer";
    case STORE_ROLE_NONE:
        break;
    }
    return "client";
}

json_t *gw_msg_message(const char *room_id, const struct store_message *m, int bare)
{
    json_t *o = json_pack("{s:I, s:s, s:s, s:{s:s, s:s, s:s}, s:s, s:o}", "seq", (json_int_t)m->seq,
                          "messageId", m->message_id, "clientMsgId", m->client_msg_id, "from",
                          "userId", m->user_id, "displayName", m->display_name, "role",
                          store_role_name(m->role), "text", m->text != NULL ? m->text : "",
                          "createdAt", gw_msg_time(m->created_unix_ms));
    if (o != NULL && !bare) {
        json_object_set_new(o, "type", json_string("message"));
        json_object_set_new(o, "room", json_string(room_id));
    }
    return o;
}

json_t *gw_msg_message_list(const struct store_message *msgs, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < n; i++) {
        json_array_append_new(a, gw_msg_message(NULL, &msgs[i], 1));
    }
    return a;
}

const char *gw_msg_session_status(const struct room *r)
{
    switch (room_state(r)) {
    case ROOM_STATE_WAITING:
        return "scheduled";
    case ROOM_STATE_RUNNING:
        return "active";
    case ROOM_STATE_ENDED:
        return "completed";
    case ROOM_STATE_CANCELLED:
        return "cancelled";
    }
    return "scheduled";
}
