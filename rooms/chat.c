/*
 * chat.c: chat admission (membership, session state, the per-connection
 * token bucket and flood rule) and the bookkeeping of committed seqs.
 *
 * DESIGN
 * Durable before visible: room_on_chat() only asks for the message to be
 * stored (PERSIST_CHAT); the ack and the deliveries come from
 * room_on_chat_committed(), after the store's commit assigned the seq.
 * The room checks that seqs arrive contiguous (lastSeq + 1) and refuses
 * anything else without changing, so a confused completion can never make
 * a client see a gap or a repeat.
 *
 * Token buckets count thousandths of a token: a rate of N tokens a second
 * is N thousandths a millisecond, so refills are exact integers. A bucket
 * starts full. The flood rule counts refusals in a fixed window of
 * ROOM_FLOOD_WINDOW_MS that opens at the first refusal after the previous
 * window expired; refusal number ROOM_FLOOD_REJECTS + 1 in one window
 * answers ROOM_E_FLOOD (the gateway closes with 1008). Sustained sending
 * at twice the allowed rate for two seconds gets there; an occasional
 * burst does not.
 */
#include <errno.h>
#include <string.h>

#include "room.h"
#include "room_int.h"

bool room__bucket_take(struct room_bucket *b, int64_t now_ms, int64_t per_sec, int64_t burst)
{
    int64_t cap = burst * 1000;
    if (now_ms > b->last_ms) {
        int64_t elapsed = now_ms - b->last_ms;
        if (elapsed >= cap) {
            b->milli = cap; /* full whatever the rate (rate >= 1); no overflow */
        } else {
            int64_t m = b->milli + elapsed * per_sec;
            b->milli = m < cap ? m : cap;
        }
    }
    b->last_ms = now_ms; /* a clock stepping back refills nothing */
    if (b->milli < 1000) {
        return false;
    }
    b->milli -= 1000;
    return true;
}

/* A refused chat: count it in c's flood window. */
static int refuse(struct room_conn *c, int64_t now_ms)
{
    if (now_ms < c->flood_window_start_ms ||
        now_ms - c->flood_window_start_ms >= ROOM_FLOOD_WINDOW_MS || c->flood_rejects == 0) {
        c->flood_window_start_ms = now_ms;
        c->flood_rejects = 0;
    }
    c->flood_rejects++;
    return c->flood_rejects > ROOM_FLOOD_REJECTS ? ROOM_E_FLOOD : ROOM_E_RATE_LIMITED;
}

static bool chat_in_ok(const struct room_chat_in *in)
{
    if (in->client_msg_id == NULL || in->text == NULL) {
        return false;
    }
    size_t n = strlen(in->client_msg_id);
    return n > 0 && n <= ROOM_CLIENT_MSG_ID_MAX;
}

int room_on_chat(struct room *r, struct room_conn *c, const struct room_chat_in *in, int64_t now_ms,
                 struct room_fx_list *fx)
{
    if (r == NULL || c == NULL || in == NULL || fx == NULL || !chat_in_ok(in)) {
        return -EINVAL;
    }
    size_t i = room__slot_of(r, c);
    if (i == ROOM__NOT_FOUND) {
        return ROOM_E_NOT_MEMBER;
    }
    if (r->state == ROOM_STATE_WAITING) {
        return ROOM_E_NOT_STARTED;
    }
    if (r->state != ROOM_STATE_RUNNING || now_ms >= r->ends_unix_ms) {
        return ROOM_E_CLOSED;
    }
    if (!room__fx_has_space(fx, 1)) {
        return ROOM_E_NOSPACE;
    }
    if (!room__bucket_take(&c->chat, now_ms, ROOM_CHAT_PER_SEC, ROOM_CHAT_BURST)) {
        return refuse(c, now_ms);
    }
    struct room_fx *e = room__fx_push(fx, ROOM_FX_PERSIST_CHAT, r);
    e->user = r->members[r->slots[i].member].info;
    e->conn_id = c->id;
    room__copy_str(e->client_msg_id, sizeof(e->client_msg_id), in->client_msg_id);
    e->text = in->text;
    e->text_len = in->text_len;
    return 0;
}

int room_on_chat_committed(struct room *r, uint64_t seq, uint64_t conn_id, int64_t now_ms,
                           struct room_fx_list *fx)
{
    (void)now_ms;
    if (r == NULL || fx == NULL) {
        return -EINVAL;
    }
    if (seq <= r->last_seq) {
        return ROOM_E_SEQ_OLD;
    }
    if (seq != r->last_seq + 1) {
        return ROOM_E_SEQ_GAP;
    }
    if (!room__fx_has_space(fx, 2)) {
        return ROOM_E_NOSPACE;
    }
    r->last_seq = seq;
    if (conn_id != 0) {
        struct room_fx *ack = room__fx_push(fx, ROOM_FX_ACK, r);
        ack->to = (struct room_target){.kind = ROOM_TO_CONN, .conn_id = conn_id};
        ack->seq = seq;
    }
    struct room_fx *msg = room__fx_push(fx, ROOM_FX_DELIVER, r);
    msg->to = (struct room_target){.kind = ROOM_TO_MEMBERS};
    msg->seq = seq;
    return 0;
}

int room_skip_seq(struct room *r, uint64_t seq)
{
    if (r == NULL || seq == 0) {
        return -EINVAL;
    }
    if (seq <= r->last_seq + 1) {
        return 0; /* nothing missing */
    }
    r->last_seq = seq - 1;
    return 1;
}
