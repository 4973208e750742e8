/*
 * test_room_nodes.c: the rooms core with other gateway nodes: local
 * presence published, remote presence merged into the member list and the
 * idle rule, remote typing, and bringing a room up to the database
 * (start, warnings, end). Pure: the clock is a number.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "room.h"

#define T0     1700000000000LL /* scheduledFor */
#define MIN_MS 60000LL
#define COACH  "ccoach0000000000000000000"
#define CLIENT "cclient000000000000000000"
#define ADMIN  "cadmin0000000000000000000"

static struct room *room_with(unsigned idle_sec)
{
    struct room_load ld = {
        .room_id = "session-7f1c",
        .appointment_id = "cappt00000000000000000000",
        .coach_id = COACH,
        .coach_name = "Coach Carla",
        .client_id = CLIENT,
        .client_name = "Client Cid",
        .scheduled_unix_ms = T0,
        .duration_min = 20,
        .status = ROOM_APPT_SCHEDULED,
    };
    struct room_cfg cfg;
    room_cfg_default(&cfg);
    cfg.idle_end_sec = (int)idle_sec;
    cfg.warnings_sec[0] = 300;
    cfg.warnings_sec[1] = 60;
    cfg.n_warnings = 2;
    struct room *r = NULL;
    cr_assert_eq(room_new(&cfg, &ld, T0 - MIN_MS, &r), 0);
    return r;
}

static int join(struct room *r, struct room_conn *c, const char *user, int64_t now,
                struct room_fx_list *fx)
{
    struct room_join_in in = {.user_id = user, .display_name = user};
    return room_on_join(r, c, &in, now, fx);
}

static size_t count(const struct room_fx_list *fx, enum room_fx_kind kind)
{
    size_t n = 0;
    for (size_t i = 0; i < fx->len; i++) {
        n += fx->v[i].kind == kind;
    }
    return n;
}

static const struct room_fx *find(const struct room_fx_list *fx, enum room_fx_kind kind)
{
    for (size_t i = 0; i < fx->len; i++) {
        if (fx->v[i].kind == kind) {
            return &fx->v[i];
        }
    }
    return NULL;
}

Test(room_nodes, the_first_and_last_connection_here_are_published)
{
    struct room *r = room_with(300);
    struct room_conn a, b;
    room_conn_init(&a, 1, NULL, T0);
    room_conn_init(&b, 2, NULL, T0);
    struct room_fx_list fx = {.len = 0};
    cr_assert_eq(join(r, &a, COACH, T0, &fx), 0);
    const struct room_fx *lp = find(&fx, ROOM_FX_LOCAL_PRESENCE);
    cr_assert_not_null(lp);
    cr_expect(lp->is_join);
    cr_expect_str_eq(lp->user.id, COACH);
    cr_expect_eq(lp->user.role, ROOM_ROLE_COACH);
    fx.len = 0;
    cr_assert_eq(join(r, &b, COACH, T0, &fx), 0);
    cr_expect_eq(count(&fx, ROOM_FX_LOCAL_PRESENCE), 0, "a second tab is not news");
    cr_assert_eq(room_on_leave(r, &a, T0 + 1, &fx), 0);
    cr_expect_eq(count(&fx, ROOM_FX_LOCAL_PRESENCE), 0);
    cr_assert_eq(room_on_leave(r, &b, T0 + 2, &fx), 0);
    lp = find(&fx, ROOM_FX_LOCAL_PRESENCE);
    cr_assert_not_null(lp);
    cr_expect_not(lp->is_join);
    room_free(r);
}

Test(room_nodes, remote_members_join_and_leave_the_member_list)
{
    struct room *r = room_with(300);
    struct room_conn a;
    room_conn_init(&a, 1, NULL, T0);
    struct room_fx_list fx = {.len = 0};
    cr_assert_eq(join(r, &a, COACH, T0, &fx), 0);

    struct room_remote_member v[] = {
        {.user_id = CLIENT, .display_name = "Client Cid", .nodes = 1},
        {.user_id = "cstranger0000000000000000", .display_name = "x", .nodes = 1},
    };
    fx.len = 0;
    cr_assert_eq(room_on_remote_presence(r, v, 2, T0 + 1, &fx), 0);
    cr_assert_eq(fx.len, 1, "the stranger is ignored");
    cr_expect_eq(fx.v[0].kind, ROOM_FX_PRESENCE);
    cr_expect(fx.v[0].is_join);
    cr_expect_str_eq(fx.v[0].user.id, CLIENT);
    cr_expect_eq(fx.v[0].user.role, ROOM_ROLE_CLIENT);
    struct room_conn *to[4];
    cr_expect_eq(room_fx_recipients(&fx.v[0], to, 4), 1);
    cr_expect_eq(room_member_count(r), 2);
    cr_expect(room_member_here(r, COACH));
    cr_expect_not(room_member_here(r, CLIENT));

    /* the same view again: nothing new */
    fx.len = 0;
    cr_assert_eq(room_on_remote_presence(r, v, 1, T0 + 2, &fx), 0);
    cr_expect_eq(fx.len, 0);

    /* the client joins here too, then the other node loses them: still a member */
    struct room_conn b;
    room_conn_init(&b, 2, NULL, T0);
    fx.len = 0;
    cr_assert_eq(join(r, &b, CLIENT, T0 + 3, &fx), 0);
    cr_expect_eq(count(&fx, ROOM_FX_PRESENCE), 0, "already a member");
    cr_expect_eq(count(&fx, ROOM_FX_LOCAL_PRESENCE), 1);
    fx.len = 0;
    cr_assert_eq(room_on_remote_presence(r, NULL, 0, T0 + 4, &fx), 0);
    cr_expect_eq(fx.len, 0);
    /* ... and leaves here: gone everywhere now */
    fx.len = 0;
    cr_assert_eq(room_on_leave(r, &b, T0 + 5, &fx), 0);
    const struct room_fx *p = find(&fx, ROOM_FX_PRESENCE);
    cr_assert_not_null(p);
    cr_expect_not(p->is_join);
    cr_expect_eq(room_member_count(r), 1);

    /* a member only elsewhere who leaves there: presence leave */
    cr_assert_eq(room_on_remote_presence(r, v, 1, T0 + 6, &fx), 0);
    fx.len = 0;
    cr_assert_eq(room_on_remote_presence(r, NULL, 0, T0 + 7, &fx), 0);
    cr_assert_eq(fx.len, 1);
    cr_expect_not(fx.v[0].is_join);
    cr_expect_eq(room_member_count(r), 1);
    room_free(r);
}

Test(room_nodes, participants_elsewhere_hold_the_idle_clock)
{
    struct room *r = room_with(60);
    struct room_conn a;
    room_conn_init(&a, 1, NULL, T0);
    struct room_fx_list fx = {.len = 0};
    cr_assert_eq(join(r, &a, COACH, T0, &fx), 0); /* starts the session */
    int64_t ends = room_ends_unix_ms(r);
    struct room_remote_member v[] = {{.user_id = CLIENT, .display_name = "C", .nodes = 2}};
    cr_assert_eq(room_on_remote_presence(r, v, 1, T0 + 1000, &fx), 0);
    cr_assert_eq(room_on_leave(r, &a, T0 + 2000, &fx), 0);
    cr_expect_eq(room_next_deadline_ms(r), ends - 300 * 1000,
                 "no idle end: the client is elsewhere");
    /* an observer elsewhere does not hold it */
    struct room_remote_member adm[] = {
        {.user_id = ADMIN, .display_name = "A", .is_admin = true, .nodes = 1}};
    fx.len = 0;
    cr_assert_eq(room_on_remote_presence(r, adm, 1, T0 + 5000, &fx), 0);
    cr_expect_eq(room_next_deadline_ms(r), T0 + 5000 + 60 * 1000, "idle from the client's leave");
    fx.len = 0;
    cr_assert_eq(room_on_tick(r, T0 + 5000 + 60 * 1000, &fx), 0);
    const struct room_fx *e = find(&fx, ROOM_FX_END);
    cr_assert_not_null(e);
    cr_expect_eq(e->reason, ROOM_END_IDLE);
    room_free(r);
}

Test(room_nodes, remote_typing_reaches_the_others_here)
{
    struct room *r = room_with(300);
    struct room_conn a;
    room_conn_init(&a, 1, NULL, T0);
    struct room_fx_list fx = {.len = 0};
    cr_assert_eq(join(r, &a, COACH, T0, &fx), 0);
    fx.len = 0;
    cr_assert_eq(room_on_remote_typing(r, CLIENT, true, &fx), 0);
    cr_expect_eq(fx.len, 0, "not a member: nothing");
    struct room_remote_member v[] = {{.user_id = CLIENT, .display_name = "C", .nodes = 1}};
    cr_assert_eq(room_on_remote_presence(r, v, 1, T0, &fx), 0);
    fx.len = 0;
    cr_assert_eq(room_on_remote_typing(r, CLIENT, true, &fx), 0);
    cr_assert_eq(fx.len, 1);
    cr_expect_eq(fx.v[0].kind, ROOM_FX_TYPING);
    cr_expect(fx.v[0].state);
    struct room_conn *to[4];
    cr_expect_eq(room_fx_recipients(&fx.v[0], to, 4), 1);
    cr_expect_eq(to[0], &a);
    room_free(r);
}

Test(room_nodes, sync_starts_warns_once_and_ends)
{
    struct room *r = room_with(300);
    struct room_fx_list fx = {.len = 0};
    struct room_sync s = {.started_unix_ms = T0, .client_has_session = true};
    cr_assert_eq(room_on_sync(r, &s, T0 + 10, &fx), 0);
    cr_expect_eq(fx.len, 0);
    cr_expect_eq(room_state(r), ROOM_STATE_RUNNING);
    cr_expect_eq(room_ends_unix_ms(r), T0 + 20 * MIN_MS);

    /* the clock's node sent the 300 s warning: framed here once */
    int64_t now = T0 + 15 * MIN_MS + 2000;
    s.warnings_sent = 1;
    cr_assert_eq(room_on_sync(r, &s, now, &fx), 0);
    cr_assert_eq(fx.len, 1);
    cr_expect_eq(fx.v[0].kind, ROOM_FX_WARNING);
    cr_expect(fx.v[0].recorded);
    cr_expect_eq(fx.v[0].remaining_sec, 298);
    cr_expect_eq(room_warnings_sent(r), 1);
    fx.len = 0;
    cr_assert_eq(room_on_sync(r, &s, now + 10, &fx), 0);
    cr_expect_eq(fx.len, 0, "never twice");

    /* an earlier stored start moves the end */
    s.started_unix_ms = T0 - 1000;
    cr_assert_eq(room_on_sync(r, &s, now + 20, &fx), 0);
    cr_expect_eq(room_ends_unix_ms(r), T0 - 1000 + 20 * MIN_MS);

    /* ended elsewhere: END with the stored reason and time */
    s.ended_unix_ms = T0 + 17 * MIN_MS;
    s.reason = ROOM_END_COACH;
    fx.len = 0;
    cr_assert_eq(room_on_sync(r, &s, now + 30, &fx), 0);
    cr_assert_eq(fx.len, 1);
    cr_expect_eq(fx.v[0].kind, ROOM_FX_END);
    cr_expect_eq(fx.v[0].reason, ROOM_END_COACH);
    cr_expect_eq(fx.v[0].ended_unix_ms, T0 + 17 * MIN_MS);
    cr_expect_eq(room_state(r), ROOM_STATE_ENDED);
    fx.len = 0;
    cr_assert_eq(room_on_sync(r, &s, now + 40, &fx), 0);
    cr_expect_eq(fx.len, 0);
    room_free(r);
}
