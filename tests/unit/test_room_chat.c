/*
 * test_room_chat.c: typing and chat admission (buckets, flood), and the
 * committed-seq bookkeeping of the rooms core. Pure: the clock is a number.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "room.h"

#define T0     1700000000000LL /* scheduledFor */
#define MIN_MS 60000LL
#define COACH  "ccoach0000000000000000000"
#define CLIENT "cclient000000000000000000"
#define ADMIN  "cadmin0000000000000000000"

/* A running room: coach on conn 1, client on conns 2 and 3, admin on 4. */
struct fixture {
    struct room *r;
    struct room_conn k, c1, c2, o;
    struct room_fx_list fx;
};

static void join(struct fixture *f, struct room_conn *c, const char *user, bool admin)
{
    struct room_join_in in = {.user_id = user, .display_name = user, .is_admin = admin};
    cr_assert_eq(room_on_join(f->r, c, &in, T0, &f->fx), 0);
}

static void setup(struct fixture *f)
{
    memset(f, 0, sizeof(*f));
    struct room_cfg cfg;
    room_cfg_default(&cfg);
    struct room_load ld = {
        .room_id = "session-7f1c",
        .appointment_id = "cappt00000000000000000000",
        .coach_id = COACH,
        .client_id = CLIENT,
        .scheduled_unix_ms = T0,
        .duration_min = 20,
        .last_seq = 41,
    };
    cr_assert_eq(room_new(&cfg, &ld, T0, &f->r), 0);
    room_conn_init(&f->k, 1, NULL, T0);
    room_conn_init(&f->c1, 2, NULL, T0);
    room_conn_init(&f->c2, 3, NULL, T0);
    room_conn_init(&f->o, 4, NULL, T0);
    join(f, &f->k, COACH, false);
    join(f, &f->c1, CLIENT, false);
    join(f, &f->c2, CLIENT, false);
    join(f, &f->o, ADMIN, true);
    f->fx.len = 0;
}

static int chat(struct fixture *f, struct room_conn *c, const char *cmid, int64_t now)
{
    struct room_chat_in in = {.client_msg_id = cmid, .text = "hello", .text_len = 5};
    return room_on_chat(f->r, c, &in, now, &f->fx);
}

/* ---- typing -------------------------------------------------------------- */

Test(room_chat, typing_goes_to_the_other_members)
{
    struct fixture f;
    setup(&f);
    struct room_conn *to[8];
    cr_assert_eq(room_on_typing(f.r, &f.c1, true, T0, &f.fx), 0);
    cr_assert_eq(f.fx.len, 1);
    const struct room_fx *e = &f.fx.v[0];
    cr_assert_eq(e->kind, ROOM_FX_TYPING);
    cr_assert_str_eq(e->user.id, CLIENT);
    cr_assert(e->state);
    cr_assert_eq(e->to.kind, ROOM_TO_MEMBERS);
    cr_assert(e->to.skip_user);
    /* coach and observer; neither of the client's own tabs */
    cr_assert_eq(room_fx_recipients(e, to, 8), 2);
    cr_assert(to[0] == &f.k || to[1] == &f.k);
    cr_assert(to[0] == &f.o || to[1] == &f.o);
    cr_assert_eq(room_fx_recipients(e, to, 1), 2, "count beyond cap");
    room_free(f.r);
}

Test(room_chat, typing_5_per_second_then_dropped)
{
    struct fixture f;
    setup(&f);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(room_on_typing(f.r, &f.k, i % 2 == 0, T0 + 100, &f.fx), 0);
    }
    cr_assert_eq(f.fx.len, 5);
    /* the 6th within the second: dropped silently */
    cr_assert_eq(room_on_typing(f.r, &f.k, true, T0 + 100, &f.fx), 0);
    cr_assert_eq(f.fx.len, 5);
    /* the bucket is per connection: another tab is not limited */
    cr_assert_eq(room_on_typing(f.r, &f.c1, true, T0 + 100, &f.fx), 0);
    cr_assert_eq(f.fx.len, 6);
    /* 199 ms later still nothing, 200 ms refill exactly one */
    f.fx.len = 0;
    cr_assert_eq(room_on_typing(f.r, &f.k, true, T0 + 299, &f.fx), 0);
    cr_assert_eq(f.fx.len, 0);
    cr_assert_eq(room_on_typing(f.r, &f.k, true, T0 + 300, &f.fx), 0);
    cr_assert_eq(f.fx.len, 1);
    cr_assert_eq(room_on_typing(f.r, &f.k, true, T0 + 300, &f.fx), 0);
    cr_assert_eq(f.fx.len, 1);
    /* a second later: 5 again, not more */
    f.fx.len = 0;
    for (int i = 0; i < 7; i++) {
        cr_assert_eq(room_on_typing(f.r, &f.k, true, T0 + 1300 + 10000, &f.fx), 0);
    }
    cr_assert_eq(f.fx.len, 5);
    room_free(f.r);
}

Test(room_chat, typing_needs_membership)
{
    struct fixture f;
    setup(&f);
    struct room_conn x;
    room_conn_init(&x, 9, NULL, T0);
    cr_assert_eq(room_on_typing(f.r, &x, true, T0, &f.fx), ROOM_E_NOT_MEMBER);
    cr_assert_eq(f.fx.len, 0);
    room_free(f.r);
}

/* ---- chat admission ------------------------------------------------------------ */

Test(room_chat, admitted_chat_asks_for_persist)
{
    struct fixture f;
    setup(&f);
    struct room_chat_in in = {.client_msg_id = "m-1", .text = "hi there", .text_len = 8};
    cr_assert_eq(room_on_chat(f.r, &f.c2, &in, T0 + 5, &f.fx), 0);
    cr_assert_eq(f.fx.len, 1);
    const struct room_fx *e = &f.fx.v[0];
    cr_assert_eq(e->kind, ROOM_FX_PERSIST_CHAT);
    cr_assert_eq(e->room, f.r);
    cr_assert_eq(e->to.kind, ROOM_TO_NONE);
    cr_assert_eq(e->conn_id, 3);
    cr_assert_str_eq(e->user.id, CLIENT);
    cr_assert_eq(e->user.role, ROOM_ROLE_CLIENT);
    cr_assert_str_eq(e->client_msg_id, "m-1");
    cr_assert_eq(e->text, in.text);
    cr_assert_eq(e->text_len, 8);
    cr_assert_eq(room_last_seq(f.r), 41, "nothing visible before the commit");
    room_free(f.r);
}

Test(room_chat, burst_20_then_rate_limited_then_refill)
{
    struct fixture f;
    setup(&f);
    for (int i = 0; i < ROOM_CHAT_BURST; i++) {
        cr_assert_eq(chat(&f, &f.k, "m", T0 + 10), 0, "chat %d", i);
        f.fx.len = 0;
    }
    cr_assert_eq(chat(&f, &f.k, "m", T0 + 10), ROOM_E_RATE_LIMITED);
    cr_assert_eq(f.fx.len, 0);
    cr_assert_str_eq(room_err_code(ROOM_E_RATE_LIMITED), "rate_limited");
    /* 10/s: 99 ms later still empty, 100 ms later one token */
    cr_assert_eq(chat(&f, &f.k, "m", T0 + 109), ROOM_E_RATE_LIMITED);
    cr_assert_eq(chat(&f, &f.k, "m", T0 + 110), 0);
    cr_assert_eq(f.fx.len, 1);
    cr_assert_eq(chat(&f, &f.k, "m", T0 + 110), ROOM_E_RATE_LIMITED);
    /* other connections have their own bucket */
    cr_assert_eq(chat(&f, &f.c1, "m", T0 + 110), 0);
    /* two seconds of silence refill the whole burst, never more */
    f.fx.len = 0;
    int ok = 0;
    for (int i = 0; i < 30; i++) {
        if (chat(&f, &f.k, "m", T0 + 60000) == 0) {
            ok++;
            f.fx.len = 0;
        }
    }
    cr_assert_eq(ok, ROOM_CHAT_BURST);
    room_free(f.r);
}

Test(room_chat, steady_10_per_second_is_fine)
{
    struct fixture f;
    setup(&f);
    for (int i = 0; i < 600; i++) { /* a minute at the limit */
        cr_assert_eq(chat(&f, &f.k, "m", T0 + 100LL * i), 0, "chat %d", i);
        f.fx.len = 0;
    }
    room_free(f.r);
}

Test(room_chat, flooding_closes)
{
    struct fixture f;
    setup(&f);
    for (int i = 0; i < ROOM_CHAT_BURST; i++) {
        cr_assert_eq(chat(&f, &f.k, "m", T0), 0);
        f.fx.len = 0;
    }
    for (int i = 0; i < ROOM_FLOOD_REJECTS; i++) {
        cr_assert_eq(chat(&f, &f.k, "m", T0 + 50), ROOM_E_RATE_LIMITED, "refusal %d", i);
    }
    cr_assert_eq(chat(&f, &f.k, "m", T0 + 50), ROOM_E_FLOOD);
    cr_assert_eq(f.fx.len, 0);
    cr_assert_str_eq(room_err_code(ROOM_E_FLOOD), "rate_limited");
    room_free(f.r);
}

Test(room_chat, occasional_refusals_do_not_close)
{
    struct fixture f;
    setup(&f);
    int64_t now = T0;
    for (int i = 0; i < ROOM_CHAT_BURST; i++) {
        cr_assert_eq(chat(&f, &f.k, "m", now), 0);
        f.fx.len = 0;
    }
    /* 20 refusals, then the window expires: the count starts over */
    for (int i = 0; i < ROOM_FLOOD_REJECTS; i++) {
        cr_assert_eq(chat(&f, &f.k, "m", now), ROOM_E_RATE_LIMITED);
    }
    now += ROOM_FLOOD_WINDOW_MS;
    for (int i = 0; i < ROOM_CHAT_BURST; i++) {
        cr_assert_eq(chat(&f, &f.k, "m", now), 0);
        f.fx.len = 0;
    }
    for (int i = 0; i < ROOM_FLOOD_REJECTS; i++) {
        cr_assert_eq(chat(&f, &f.k, "m", now), ROOM_E_RATE_LIMITED);
    }
    cr_assert_eq(chat(&f, &f.k, "m", now), ROOM_E_FLOOD);
    room_free(f.r);
}

Test(room_chat, refusals_before_the_bucket_cost_nothing)
{
    struct fixture f;
    setup(&f);
    struct room_conn x;
    room_conn_init(&x, 9, NULL, T0);
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(chat(&f, &x, "m", T0), ROOM_E_NOT_MEMBER);
    }
    cr_assert_eq(f.fx.len, 0);
    cr_assert_str_eq(room_err_code(ROOM_E_NOT_MEMBER), "forbidden");
    /* x's bucket is untouched: a full burst once it joins */
    struct room_join_in in = {.user_id = ADMIN, .is_admin = true};
    cr_assert_eq(room_on_join(f.r, &x, &in, T0, &f.fx), 0);
    f.fx.len = 0;
    for (int i = 0; i < ROOM_CHAT_BURST; i++) {
        cr_assert_eq(chat(&f, &x, "m", T0), 0);
        f.fx.len = 0;
    }
    /* no effect slot: nothing consumed */
    f.fx.len = ROOM_FX_MAX;
    cr_assert_eq(chat(&f, &f.k, "m", T0), ROOM_E_NOSPACE);
    f.fx.len = 0;
    struct room_chat_in bad = {.client_msg_id = "", .text = "x", .text_len = 1};
    cr_assert_eq(room_on_chat(f.r, &f.k, &bad, T0, &f.fx), -EINVAL);
    for (int i = 0; i < ROOM_CHAT_BURST; i++) {
        cr_assert_eq(chat(&f, &f.k, "m", T0), 0);
        f.fx.len = 0;
    }
    room_free(f.r);
}

Test(room_chat, chat_before_start_and_after_end)
{
    struct room_cfg cfg;
    room_cfg_default(&cfg);
    struct room_load ld = {
        .room_id = "r",
        .appointment_id = "a",
        .coach_id = COACH,
        .client_id = CLIENT,
        .scheduled_unix_ms = T0,
        .duration_min = 20,
    };
    struct room *r = NULL;
    cr_assert_eq(room_new(&cfg, &ld, T0, &r), 0);
    struct room_conn o, k;
    room_conn_init(&o, 1, NULL, T0);
    room_conn_init(&k, 2, NULL, T0);
    struct room_fx_list fx = {.len = 0};
    struct room_join_in admin = {.user_id = ADMIN, .is_admin = true};
    struct room_join_in coach = {.user_id = COACH};
    struct room_chat_in in = {.client_msg_id = "m", .text = "x", .text_len = 1};
    cr_assert_eq(room_on_join(r, &o, &admin, T0, &fx), 0);
    cr_assert_eq(room_on_chat(r, &o, &in, T0, &fx), ROOM_E_NOT_STARTED);
    cr_assert_eq(room_on_join(r, &k, &coach, T0, &fx), 0);
    fx.len = 0;
    int64_t ends = room_ends_unix_ms(r);
    cr_assert_eq(room_on_chat(r, &k, &in, ends - 1, &fx), 0);
    /* at endsAt, even before the tick ran */
    cr_assert_eq(room_on_chat(r, &k, &in, ends, &fx), ROOM_E_CLOSED);
    cr_assert_eq(room_on_tick(r, ends, &fx), 0);
    cr_assert_eq(fx.v[fx.len - 1].kind, ROOM_FX_END);
    fx.len = 0;
    cr_assert_eq(room_on_chat(r, &k, &in, ends + 1, &fx), ROOM_E_CLOSED);
    cr_assert_eq(fx.len, 0);
    /* after the end: typing dropped silently */
    cr_assert_eq(room_on_typing(r, &k, true, ends + 1, &fx), 0);
    cr_assert_eq(fx.len, 0);
    room_free(r);
}

/* ---- commit --------------------------------------------------------------------- */

Test(room_chat, committed_acks_and_delivers)
{
    struct fixture f;
    setup(&f);
    struct room_conn *to[8];
    cr_assert_eq(room_on_chat_committed(f.r, 42, 3, T0, &f.fx), 0);
    cr_assert_eq(f.fx.len, 2);
    const struct room_fx *ack = &f.fx.v[0];
    const struct room_fx *msg = &f.fx.v[1];
    cr_assert_eq(ack->kind, ROOM_FX_ACK);
    cr_assert_eq(ack->to.kind, ROOM_TO_CONN);
    cr_assert_eq(ack->to.conn_id, 3);
    cr_assert_eq(ack->seq, 42);
    cr_assert_eq(room_fx_recipients(ack, to, 8), 0);
    cr_assert_eq(msg->kind, ROOM_FX_DELIVER);
    cr_assert_eq(msg->to.kind, ROOM_TO_MEMBERS);
    cr_assert_eq(msg->to.conn_id, 0);
    cr_assert_not(msg->to.skip_user);
    cr_assert_eq(msg->seq, 42);
    cr_assert_eq(room_fx_recipients(msg, to, 8), 4, "the sender's own connection included");
    cr_assert_eq(room_last_seq(f.r), 42);

    /* a commit whose sender is unknown here: no ack */
    f.fx.len = 0;
    cr_assert_eq(room_on_chat_committed(f.r, 43, 0, T0, &f.fx), 0);
    cr_assert_eq(f.fx.len, 1);
    cr_assert_eq(f.fx.v[0].kind, ROOM_FX_DELIVER);
    room_free(f.r);
}

Test(room_chat, committed_seq_must_be_contiguous)
{
    struct fixture f;
    setup(&f);
    cr_assert_eq(room_on_chat_committed(f.r, 41, 3, T0, &f.fx), ROOM_E_SEQ_OLD);
    cr_assert_eq(room_on_chat_committed(f.r, 7, 3, T0, &f.fx), ROOM_E_SEQ_OLD);
    cr_assert_eq(room_on_chat_committed(f.r, 44, 3, T0, &f.fx), ROOM_E_SEQ_GAP);
    cr_assert_eq(f.fx.len, 0);
    cr_assert_eq(room_last_seq(f.r), 41);
    f.fx.len = ROOM_FX_MAX - 1;
    cr_assert_eq(room_on_chat_committed(f.r, 42, 3, T0, &f.fx), ROOM_E_NOSPACE);
    cr_assert_eq(room_last_seq(f.r), 41);
    f.fx.len = 0;
    for (uint64_t s = 42; s < 142; s++) {
        cr_assert_eq(room_on_chat_committed(f.r, s, 1, T0, &f.fx), 0);
        f.fx.len = 0;
    }
    cr_assert_eq(room_last_seq(f.r), 141);
    cr_assert_eq(room_on_chat_committed(f.r, 141, 1, T0, &f.fx), ROOM_E_SEQ_OLD);
    cr_assert_str_eq(room_err_code(ROOM_E_SEQ_GAP), "conflict");
    room_free(f.r);
}

Test(room_chat, committed_after_end_still_delivered)
{
    struct fixture f;
    setup(&f);
    cr_assert_eq(room_on_end(f.r, &f.k, T0 + MIN_MS, &f.fx), 0);
    f.fx.len = 0;
    cr_assert_eq(room_on_chat_committed(f.r, 42, 2, T0 + MIN_MS + 3, &f.fx), 0);
    cr_assert_eq(f.fx.len, 2);
    cr_assert_eq(f.fx.v[0].kind, ROOM_FX_ACK);
    cr_assert_eq(f.fx.v[1].kind, ROOM_FX_DELIVER);
    room_free(f.r);
}

Test(room_chat, skip_over_deleted_seqs)
{
    struct fixture f;
    setup(&f); /* lastSeq 41 */
    cr_assert_eq(room_skip_seq(f.r, 42), 0, "nothing missing");
    cr_assert_eq(room_skip_seq(f.r, 30), 0, "old");
    cr_assert_eq(room_last_seq(f.r), 41);
    cr_assert_eq(room_skip_seq(f.r, 45), 1, "42..44 are gone");
    cr_assert_eq(room_last_seq(f.r), 44);
    cr_assert_eq(room_on_chat_committed(f.r, 45, 0, T0, &f.fx), 0, "45 is next");
    cr_assert_eq(room_skip_seq(f.r, 0), -EINVAL);
    room_free(f.r);
}
