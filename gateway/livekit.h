/*
 * livekit.h: the pure parts of the gateway's LiveKit integration
 * (protocol.md section 5): webhook signature checks, webhook event
 * parsing, access and admin token minting, the Twirp URL. No I/O, no
 * clock reads (times come in), no state; any thread.
 */
#ifndef COACH_GW_LIVEKIT_H
#define COACH_GW_LIVEKIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw.h"
#include "store.h"

/* Largest webhook body accepted (413 above). */
#define GW_LK_BODY_MAX 65536
/* Clock leeway on the webhook token's exp and nbf, in seconds. */
#define GW_LK_LEEWAY_SEC 60

enum {
    GW_LK_E_AUTH = -2101,  /* Authorization missing, or not a valid token for us */
    GW_LK_E_HASH = -2102,  /* the sha256 claim does not match the body */
    GW_LK_E_BODY = -2103,  /* the body is not a webhook event */
    GW_LK_IGNORED = 1,     /* gw_lk_parse_event: nothing for the gateway in it */
};

/*
 * Check a webhook the way LiveKit's WebhookReceiver does: auth is the
 * Authorization header's value (a bare JWT; a "Bearer " prefix is
 * accepted), HS256 signed with api_secret, iss = api_key, exp required and
 * nbf honoured with GW_LK_LEEWAY_SEC of leeway against now_unix, and the
 * sha256 claim equal to the standard padded base64 of SHA-256(body).
 * Secrets and hashes are compared in constant time. 0, GW_LK_E_AUTH or
 * GW_LK_E_HASH with err filled (never with the token or a secret).
 */
int gw_lk_verify_webhook(const char *api_key, const char *api_secret, const char *auth,
                         size_t auth_len, const unsigned char *body, size_t body_len,
                         int64_t now_unix, struct gw_err *err);

/*
 * Read a verified webhook body (LiveKit's WebhookEvent in protobuf JSON)
 * into ev: the id, event name and kind, the room (name, sid, creation
 * time) and, for participant events, the participant (sid, identity).
 * *replaced is set for a participant_left whose disconnectReason is
 * DUPLICATE_IDENTITY. Returns 0 (ev filled), GW_LK_IGNORED (an event the
 * gateway has no use for: not participant_joined/left, room_started or
 * room_finished; or a participant that is not a standard user: egress,
 * ingress, SIP, agent), or GW_LK_E_BODY with err filled (not JSON, no id,
 * fields of the wrong type or too long).
 */
int gw_lk_parse_event(const unsigned char *body, size_t len, struct store_lk_event *ev,
                      bool *replaced, struct gw_err *err);

/* What an access token grants. */
struct gw_lk_grant {
    const char *identity; /* "User"."id" */
    const char *name;     /* display name */
    const char *room;     /* roomId */
    bool can_publish;     /* false for observers */
    int64_t nbf_unix, exp_unix;
};

/* An access token with exactly the claims of the official SDK's
 * AccessToken: iss, sub, name, nbf, exp and video {room, roomJoin,
 * canPublish, canSubscribe, canPublishData}. malloc'd, or NULL. */
char *gw_lk_access_token(const char *api_key, const char *api_secret,
                         const struct gw_lk_grant *g);

/* A server token for RoomService calls on room: video {room, roomAdmin,
 * roomCreate} (DeleteRoom needs roomCreate on LiveKit's server), valid
 * from now_unix for ttl_sec. malloc'd, or NULL. */
char *gw_lk_admin_token(const char *api_key, const char *api_secret, const char *room,
                        int64_t now_unix, int64_t ttl_sec);

/* LIVEKIT_URL (ws://, wss://, http://, https://, with or without a path)
 * -> "<http or https>://host[:port][/path]/twirp/livekit.RoomService/<method>"
 * into out. 0, or -1 when the URL has another scheme or does not fit. */
int gw_lk_twirp_url(const char *livekit_url, const char *method, char *out, size_t cap);

#endif
