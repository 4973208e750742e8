/*
 * test_room_join.c: membership, opening hours, session start, presence,
 * leave and disconnect in the rooms core. Pure: the clock is a number.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "room.h"

#define T0       1700000000000LL /* scheduledFor */
#define MIN_MS   60000LL
#define COACH    "ccoach0000000000000000000"
#define CLIENT   "cclient000000000000000000"
#define ADMIN    "cadmin0000000000000000000"
#define STRANGER "cstranger0000000000000000"

static struct room_load load_default(void)
{
    return (struct room_load){
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
}

static struct room *room_make(const struct room_load *ld, int64_t now_ms)
{
    struct room_cfg cfg;
    room_cfg_default(&cfg);
    struct room *r = NULL;
    cr_assert_eq(room_new(&cfg, ld, now_ms, &r), 0);
    cr_assert_not_null(r);
    return r;
}

static struct room *room_default(void)
{
    struct room_load ld = load_default();
    return room_make(&ld, T0 - 30 * MIN_MS);
}

static int join(struct room *r, struct room_conn *c, const char *user, bool admin, int64_t now,
                struct room_fx_list *fx)
{
    struct room_join_in in = {.user_id = user, .display_name = user, .is_admin = admin};
    return room_on_join(r, c, &in, now, fx);
}

/* ---- membership ---------------------------------------------------------- */

Test(room_join, roles)
{
    struct room *r = room_default();
    struct room_conn a, b, c, d;
    room_conn_init(&a, 1, NULL, T0);
    room_conn_init(&b, 2, NULL, T0);
    room_conn_init(&c, 3, NULL, T0);
    room_conn_init(&d, 4, NULL, T0);
    struct room_fx_list fx = {.len = 0};

    cr_assert_eq(join(r, &a, COACH, false, T0, &fx), 0);
    cr_assert_eq(room_conn_role(r, &a), ROOM_ROLE_COACH);
    cr_assert_eq(join(r, &b, CLIENT, false, T0, &fx), 0);
    cr_assert_eq(room_conn_role(r, &b), ROOM_ROLE_CLIENT);
    cr_assert_eq(join(r, &c, ADMIN, true, T0, &fx), 0);
    cr_assert_eq(room_conn_role(r, &c), ROOM_ROLE_OBSERVER);

    size_t before = fx.len;
    cr_assert_eq(join(r, &d, STRANGER, false, T0, &fx), ROOM_E_FORBIDDEN);
    cr_assert_eq(fx.len, before);
    cr_assert_eq(room_conn_role(r, &d), ROOM_ROLE_NONE);
    cr_assert_eq(room_conn_room_count(&d), 0);
    cr_assert_str_eq(room_err_code(ROOM_E_FORBIDDEN), "forbidden");

    /* the coach who is also an admin is still the coach */
    struct room_conn e;
    room_conn_init(&e, 5, NULL, T0);
    cr_assert_eq(join(r, &e, COACH, true, T0, &fx), 0);
    cr_assert_eq(room_conn_role(r, &e), ROOM_ROLE_COACH);

    cr_assert_eq(room_member_count(r), 3);
    cr_assert_str_eq(room_member_at(r, 0)->id, COACH);
    cr_assert_str_eq(room_member_at(r, 1)->id, CLIENT);
    cr_assert_str_eq(room_member_at(r, 2)->id, ADMIN);
    cr_assert_null(room_member_at(r, 3));
    room_free(r);
    cr_assert_eq(room_conn_room_count(&a), 0, "room_free detaches its connections");
}

Test(room_join, early_join_limit)
{
    struct room *r = room_default();
    struct room_conn a;
    room_conn_init(&a, 1, NULL, T0);
    struct room_fx_list fx = {.len = 0};
    int64_t limit = T0 - 10 * MIN_MS;

    cr_assert_eq(join(r, &a, COACH, false, limit - 1, &fx), ROOM_E_NOT_OPEN);
    cr_assert_eq(join(r, &a, ADMIN, true, limit - 1, &fx), ROOM_E_NOT_OPEN);
    cr_assert_eq(fx.len, 0);
    cr_assert_eq(room_state(r), ROOM_STATE_WAITING);
    cr_assert_str_eq(room_err_code(ROOM_E_NOT_OPEN), "not_open");

    cr_assert_eq(join(r, &a, COACH, false, limit, &fx), 0);
    cr_assert_eq(room_state(r), ROOM_STATE_RUNNING);
    cr_assert_eq(room_started_unix_ms(r), limit);
    cr_assert_eq(room_ends_unix_ms(r), limit + 20 * MIN_MS);
    room_free(r);
}

Test(room_join, cancelled_is_closed)
{
    struct room_load ld = load_default();
    ld.status = ROOM_APPT_CANCELLED;
    struct room *r = room_make(&ld, T0);
    struct room_conn a, s;
    room_conn_init(&a, 1, NULL, T0);
    room_conn_init(&s, 2, NULL, T0);
    struct room_fx_list fx = {.len = 0};

    cr_assert_eq(room_state(r), ROOM_STATE_CANCELLED);
    cr_assert_eq(join(r, &a, COACH, false, T0, &fx), ROOM_E_CLOSED);
    cr_assert_eq(join(r, &a, ADMIN, true, T0, &fx), ROOM_E_CLOSED);
    /* a stranger learns nothing about the appointment */
    cr_assert_eq(join(r, &s, STRANGER, false, T0, &fx), ROOM_E_FORBIDDEN);
    cr_assert_eq(room_on_media_join(r, CLIENT, T0, &fx), ROOM_E_CLOSED);
    cr_assert_eq(fx.len, 0);
    cr_assert_str_eq(room_err_code(ROOM_E_CLOSED), "closed");
    room_free(r);
}

/* ---- session start ---------------------------------------------------------- */

Test(room_join, first_participant_starts_session)
{
    struct room *r = room_default();
    struct room_conn o, a, b;
    room_conn_init(&o, 1, NULL, T0);
    room_conn_init(&a, 2, NULL, T0);
    room_conn_init(&b, 3, NULL, T0);
    struct room_fx_list fx = {.len = 0};

    /* an observer does not start the session */
    cr_assert_eq(join(r, &o, ADMIN, true, T0 - MIN_MS, &fx), 0);
    cr_assert_eq(fx.len, 2);
    cr_assert_eq(fx.v[0].kind, ROOM_FX_PRESENCE);
    cr_assert_eq(room_state(r), ROOM_STATE_WAITING);
    cr_assert_eq(room_next_deadline_ms(r), ROOM_NO_DEADLINE);

    fx.len = 0;
    cr_assert_eq(join(r, &a, CLIENT, false, T0 + 2000, &fx), 0);
    cr_assert_eq(fx.len, 3);
    cr_assert_eq(fx.v[0].kind, ROOM_FX_SESSION_START);
    cr_assert_eq(fx.v[0].room, r);
    cr_assert_str_eq(fx.v[0].user.id, CLIENT);
    cr_assert_eq(fx.v[0].user.role, ROOM_ROLE_CLIENT);
    cr_assert_eq(fx.v[0].to.kind, ROOM_TO_NONE);
    cr_assert_eq(fx.v[0].started_unix_ms, T0 + 2000);
    cr_assert_eq(fx.v[0].ends_unix_ms, T0 + 2000 + 20 * MIN_MS);
    cr_assert_eq(fx.v[0].duration_min, 20);
    cr_assert_eq(fx.v[1].kind, ROOM_FX_PRESENCE);
    cr_assert(fx.v[1].is_join);
    cr_assert_str_eq(fx.v[1].user.id, CLIENT);

    /* the coach arriving later gets a Session row, the clock stays */
    fx.len = 0;
    cr_assert_eq(join(r, &b, COACH, false, T0 + 9000, &fx), 0);
    cr_assert_eq(fx.len, 3);
    cr_assert_eq(fx.v[0].kind, ROOM_FX_SESSION_JOIN);
    cr_assert_str_eq(fx.v[0].user.id, COACH);
    cr_assert_eq(fx.v[0].at_unix_ms, T0 + 9000);
    cr_assert_eq(fx.v[0].started_unix_ms, T0 + 2000);
    cr_assert_eq(fx.v[1].kind, ROOM_FX_PRESENCE);
    cr_assert_eq(room_started_unix_ms(r), T0 + 2000);

    /* leaving and coming back: no new Session row, no new start */
    fx.len = 0;
    cr_assert_eq(room_on_leave(r, &b, T0 + 10000, &fx), 0);
    fx.len = 0;
    cr_assert_eq(join(r, &b, COACH, false, T0 + 11000, &fx), 0);
    cr_assert_eq(fx.len, 2);
    cr_assert_eq(fx.v[0].kind, ROOM_FX_PRESENCE);
    room_free(r);
}

Test(room_join, zero_duration_means_20_min)
{
    struct room_load ld = load_default();
    ld.duration_min = 0;
    struct room *r = room_make(&ld, T0);
    struct room_conn a;
    room_conn_init(&a, 1, NULL, T0);
    struct room_fx_list fx = {.len = 0};
    cr_assert_eq(join(r, &a, COACH, false, T0, &fx), 0);
    cr_assert_eq(room_duration_min(r), 20);
    cr_assert_eq(fx.v[0].duration_min, 20);
    cr_assert_eq(room_ends_unix_ms(r), T0 + 20 * MIN_MS);
    room_free(r);
}

Test(room_join, media_join_starts_like_join)
{
    struct room *r = room_default();
    struct room_fx_list fx = {.len = 0};
    cr_assert_eq(room_on_media_join(r, ADMIN, T0, &fx), ROOM_E_FORBIDDEN);
    cr_assert_eq(room_on_media_join(r, COACH, T0 - 11 * MIN_MS, &fx), ROOM_E_NOT_OPEN);
    cr_assert_eq(fx.len, 0);

    cr_assert_eq(room_on_media_join(r, COACH, T0, &fx), 0);
    cr_assert_eq(fx.len, 1);
    cr_assert_eq(fx.v[0].kind, ROOM_FX_SESSION_START);
    cr_assert_str_eq(fx.v[0].user.id, COACH);
    cr_assert_str_eq(fx.v[0].user.display_name, "Coach Carla");
    cr_assert_eq(room_member_count(r), 0, "media presence is not room presence");

    fx.len = 0;
    cr_assert_eq(room_on_media_join(r, COACH, T0 + 1, &fx), 0);
    cr_assert_eq(fx.len, 0);
    cr_assert_eq(room_on_media_join(r, CLIENT, T0 + 2, &fx), 0);
    cr_assert_eq(fx.len, 1);
    cr_assert_eq(fx.v[0].kind, ROOM_FX_SESSION_JOIN);

    /* the client's WebSocket join afterwards: presence only */
    struct room_conn b;
    room_conn_init(&b, 2, NULL, T0);
    fx.len = 0;
    cr_assert_eq(join(r, &b, CLIENT, false, T0 + 3, &fx), 0);
    cr_assert_eq(fx.len, 2);
    cr_assert_eq(fx.v[0].kind, ROOM_FX_PRESENCE);
    room_free(r);
}

Test(room_join, loaded_rows_are_not_recreated)
{
    struct room_load ld = load_default();
    ld.status = ROOM_APPT_ACTIVE;
    ld.started_unix_ms = T0;
    ld.coach_has_session = true;
    struct room *r = room_make(&ld, T0 + MIN_MS);
    struct room_conn a, b;
    room_conn_init(&a, 1, NULL, T0);
    room_conn_init(&b, 2, NULL, T0);
    struct room_fx_list fx = {.len = 0};
    cr_assert_eq(join(r, &a, COACH, false, T0 + MIN_MS, &fx), 0);
    cr_assert_eq(fx.len, 2);
    cr_assert_eq(fx.v[0].kind, ROOM_FX_PRESENCE);
    fx.len = 0;
    cr_assert_eq(join(r, &b, CLIENT, false, T0 + MIN_MS, &fx), 0);
    cr_assert_eq(fx.len, 3);
    cr_assert_eq(fx.v[0].kind, ROOM_FX_SESSION_JOIN);
    room_free(r);
}

Test(room_join, ended_session_may_be_joined)
{
    struct room_load ld = load_default();
    ld.status = ROOM_APPT_COMPLETED;
    ld.started_unix_ms = T0;
    ld.ended_unix_ms = T0 + 20 * MIN_MS;
    struct room *r = room_make(&ld, T0 + 180 * MIN_MS);
    struct room_conn b;
    room_conn_init(&b, 1, NULL, T0);
    struct room_fx_list fx = {.len = 0};
    cr_assert_eq(room_state(r), ROOM_STATE_ENDED);
    cr_assert_eq(join(r, &b, CLIENT, false, T0 + 180 * MIN_MS, &fx), 0);
    cr_assert_eq(fx.len, 2);
    cr_assert_eq(fx.v[0].kind, ROOM_FX_PRESENCE);
    cr_assert_eq(room_ended_unix_ms(r), T0 + 20 * MIN_MS);
    cr_assert_eq(room_next_deadline_ms(r), ROOM_NO_DEADLINE);
    room_free(r);
}

/* ---- presence --------------------------------------------------------------- */

Test(room_join, presence_two_connections_one_user)
{
    struct room *r = room_default();
    struct room_conn c1, c2, k1;
    room_conn_init(&c1, 11, NULL, T0);
    room_conn_init(&c2, 12, NULL, T0);
    room_conn_init(&k1, 21, NULL, T0);
    struct room_fx_list fx = {.len = 0};
    struct room_conn *to[8];

    cr_assert_eq(join(r, &k1, COACH, false, T0, &fx), 0);
    fx.len = 0;
    cr_assert_eq(join(r, &c1, CLIENT, false, T0, &fx), 0);
    cr_assert_eq(fx.len, 3); /* SESSION_JOIN, PRESENCE, LOCAL_PRESENCE */
    const struct room_fx *p = &fx.v[1];
    cr_assert_eq(p->kind, ROOM_FX_PRESENCE);
    cr_assert(p->is_join);
    cr_assert_eq(p->to.kind, ROOM_TO_MEMBERS);
    cr_assert_eq(p->to.conn_id, 11);
    cr_assert_eq(room_fx_recipients(p, to, 8), 1);
    cr_assert_eq(to[0], &k1);

    /* second tab of the same client: no presence, no session effect */
    fx.len = 0;
    cr_assert_eq(join(r, &c2, CLIENT, false, T0 + 1, &fx), 0);
    cr_assert_eq(fx.len, 0);
    cr_assert_eq(room_member_count(r), 2);
    cr_assert_eq(room_conn_count(r), 3);

    /* joining again on the same connection: nothing */
    cr_assert_eq(join(r, &c2, CLIENT, false, T0 + 2, &fx), 0);
    cr_assert_eq(fx.len, 0);
    cr_assert_eq(room_conn_count(r), 3);
    cr_assert_eq(room_conn_room_count(&c2), 1);

    /* first tab leaves: still present */
    cr_assert_eq(room_on_leave(r, &c1, T0 + 3, &fx), 0);
    cr_assert_eq(fx.len, 0);
    cr_assert_eq(room_member_count(r), 2);
    cr_assert_eq(room_on_leave(r, &c1, T0 + 3, &fx), ROOM_E_NOT_MEMBER);

    /* last tab drops: presence leave to the others */
    cr_assert_eq(room_on_disconnect(&c2, T0 + 4, &fx), 0);
    cr_assert_eq(fx.len, 2);
    p = &fx.v[0];
    cr_assert_eq(p->kind, ROOM_FX_PRESENCE);
    cr_assert_not(p->is_join);
    cr_assert_str_eq(p->user.id, CLIENT);
    cr_assert_eq(p->user.role, ROOM_ROLE_CLIENT);
    cr_assert_eq(p->to.kind, ROOM_TO_MEMBERS);
    cr_assert_eq(room_fx_recipients(p, to, 8), 1);
    cr_assert_eq(to[0], &k1);
    cr_assert_eq(room_member_count(r), 1);
    cr_assert_str_eq(room_member_at(r, 0)->id, COACH);
    cr_assert_eq(room_conn_room_count(&c2), 0);
    room_free(r);
}

Test(room_join, member_list_in_join_order)
{
    struct room *r = room_default();
    struct room_conn a, b, c;
    room_conn_init(&a, 1, NULL, T0);
    room_conn_init(&b, 2, NULL, T0);
    room_conn_init(&c, 3, NULL, T0);
    struct room_fx_list fx = {.len = 0};
    cr_assert_eq(join(r, &a, ADMIN, true, T0, &fx), 0);
    cr_assert_eq(join(r, &b, CLIENT, false, T0, &fx), 0);
    cr_assert_eq(join(r, &c, COACH, false, T0, &fx), 0);
    fx.len = 0;
    cr_assert_eq(room_on_leave(r, &a, T0, &fx), 0);
    cr_assert_eq(room_member_count(r), 2);
    cr_assert_str_eq(room_member_at(r, 0)->id, CLIENT);
    cr_assert_str_eq(room_member_at(r, 1)->id, COACH);
    cr_assert_eq(room_conn_role(r, &c), ROOM_ROLE_COACH);
    cr_assert_eq(room_conn_role(r, &b), ROOM_ROLE_CLIENT);
    cr_assert_eq(join(r, &a, ADMIN, true, T0, &fx), 0);
    cr_assert_str_eq(room_member_at(r, 2)->id, ADMIN);
    room_free(r);
}

Test(room_join, disconnect_leaves_every_room)
{
    struct room *r1 = room_default();
    struct room *r2 = room_default();
    struct room_conn a, k;
    room_conn_init(&a, 1, NULL, T0);
    room_conn_init(&k, 2, NULL, T0);
    struct room_fx_list fx = {.len = 0};
    cr_assert_eq(join(r1, &a, ADMIN, true, T0, &fx), 0);
    cr_assert_eq(join(r2, &a, ADMIN, true, T0, &fx), 0);
    cr_assert_eq(join(r2, &k, COACH, false, T0, &fx), 0);
    cr_assert_eq(room_conn_room_count(&a), 2);

    /* not enough room for two leaves: nothing happens */
    fx.len = ROOM_FX_MAX - 1;
    cr_assert_eq(room_on_disconnect(&a, T0, &fx), ROOM_E_NOSPACE);
    cr_assert_eq(fx.len, ROOM_FX_MAX - 1);
    cr_assert_eq(room_conn_room_count(&a), 2);

    fx.len = 0;
    cr_assert_eq(room_on_disconnect(&a, T0, &fx), 0);
    cr_assert_eq(fx.len, 4);
    cr_assert_eq(fx.v[0].kind, ROOM_FX_PRESENCE);
    cr_assert_eq(fx.v[2].kind, ROOM_FX_PRESENCE);
    cr_assert_neq(fx.v[0].room, fx.v[2].room);
    cr_assert_eq(room_conn_room_count(&a), 0);
    cr_assert_eq(room_member_count(r1), 0);
    cr_assert_eq(room_member_count(r2), 1);
    room_free(r1);
    room_free(r2);
}

/* ---- limits --------------------------------------------------------------------- */

Test(room_join, at_most_8_rooms_per_connection)
{
    struct room *rs[ROOM_CONN_MAX_ROOMS + 1];
    struct room_conn a;
    room_conn_init(&a, 1, NULL, T0);
    struct room_fx_list fx = {.len = 0};
    for (size_t i = 0; i <= ROOM_CONN_MAX_ROOMS; i++) {
        rs[i] = room_default();
    }
    for (size_t i = 0; i < ROOM_CONN_MAX_ROOMS; i++) {
        fx.len = 0;
        cr_assert_eq(join(rs[i], &a, ADMIN, true, T0, &fx), 0);
    }
    fx.len = 0;
    cr_assert_eq(join(rs[ROOM_CONN_MAX_ROOMS], &a, ADMIN, true, T0, &fx), ROOM_E_TOO_MANY);
    cr_assert_eq(fx.len, 0);
    cr_assert_eq(room_member_count(rs[ROOM_CONN_MAX_ROOMS]), 0);
    cr_assert_str_eq(room_err_code(ROOM_E_TOO_MANY), "rate_limited");
    /* one leave makes space again */
    cr_assert_eq(room_on_leave(rs[3], &a, T0, &fx), 0);
    cr_assert_eq(join(rs[ROOM_CONN_MAX_ROOMS], &a, ADMIN, true, T0, &fx), 0);
    room_conn_fini(&a, T0);
    cr_assert_eq(room_member_count(rs[0]), 0);
    for (size_t i = 0; i <= ROOM_CONN_MAX_ROOMS; i++) {
        room_free(rs[i]);
    }
}

Test(room_join, room_caps_and_nospace_change_nothing)
{
    struct room_cfg cfg;
    room_cfg_default(&cfg);
    cfg.max_members = 2;
    cfg.max_conns = 3;
    struct room_load ld = load_default();
    struct room *r = NULL;
    cr_assert_eq(room_new(&cfg, &ld, T0, &r), 0);
    struct room_conn a, b, c, d;
    room_conn_init(&a, 1, NULL, T0);
    room_conn_init(&b, 2, NULL, T0);
    room_conn_init(&c, 3, NULL, T0);
    room_conn_init(&d, 4, NULL, T0);
    struct room_fx_list fx = {.len = ROOM_FX_MAX - 1};

    cr_assert_eq(join(r, &a, COACH, false, T0, &fx), ROOM_E_NOSPACE);
    cr_assert_eq(fx.len, ROOM_FX_MAX - 1);
    cr_assert_eq(room_state(r), ROOM_STATE_WAITING);
    cr_assert_eq(room_member_count(r), 0);
    cr_assert_eq(room_conn_room_count(&a), 0);

    fx.len = 0;
    cr_assert_eq(join(r, &a, COACH, false, T0, &fx), 0);
    cr_assert_eq(join(r, &b, CLIENT, false, T0, &fx), 0);
    cr_assert_eq(join(r, &c, ADMIN, true, T0, &fx), ROOM_E_FULL, "member cap");
    cr_assert_eq(join(r, &c, CLIENT, false, T0, &fx), 0);
    cr_assert_eq(join(r, &d, COACH, false, T0, &fx), ROOM_E_FULL, "connection cap");
    cr_assert_eq(room_conn_count(r), 3);
    room_free(r);
}

Test(room_join, bad_input)
{
    struct room_cfg cfg;
    room_cfg_default(&cfg);
    struct room_load ld = load_default();
    struct room *r = NULL;
    ld.client_id = COACH;
    cr_assert_eq(room_new(&cfg, &ld, T0, &r), -EINVAL);
    ld = load_default();
    ld.room_id = "";
    cr_assert_eq(room_new(&cfg, &ld, T0, &r), -EINVAL);
    ld = load_default();
    cfg.warnings_sec[1] = 0;
    cr_assert_eq(room_new(&cfg, &ld, T0, &r), -EINVAL);
    cr_assert_null(r);

    r = room_default();
    struct room_conn a;
    room_conn_init(&a, 1, NULL, T0);
    struct room_fx_list fx = {.len = 0};
    char long_id[ROOM_USER_ID_MAX + 2];
    memset(long_id, 'x', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    cr_assert_eq(join(r, &a, long_id, true, T0, &fx), -EINVAL);
    cr_assert_eq(join(r, &a, "", true, T0, &fx), -EINVAL);
    cr_assert_str_eq(room_err_code(-EINVAL), "bad_request");
    room_free(r);
}

Test(room_join, long_display_name_cut_at_character)
{
    struct room *r = room_default();
    struct room_conn a;
    room_conn_init(&a, 1, NULL, T0);
    struct room_fx_list fx = {.len = 0};
    char name[ROOM_NAME_MAX + 8];
    size_t n = 0;
    name[n++] = 'a'; /* then two-byte characters: the cut falls inside one */
    while (n + 2 < sizeof(name)) {
        name[n++] = (char)0xC3;
        name[n++] = (char)0xA9;
    }
    name[n] = '\0';
    struct room_join_in in = {.user_id = COACH, .display_name = name};
    cr_assert_eq(room_on_join(r, &a, &in, T0, &fx), 0);
    const char *kept = room_member_at(r, 0)->display_name;
    cr_assert_eq(strlen(kept), ROOM_NAME_MAX - 1);
    cr_assert_eq(memcmp(kept, name, ROOM_NAME_MAX - 1), 0);
    room_free(r);
}

Test(room_join, a_failed_session_row_is_asked_for_again)
{
    struct room *r = room_default();
    struct room_conn a, b;
    room_conn_init(&a, 1, NULL, T0);
    room_conn_init(&b, 2, NULL, T0);
    struct room_fx_list fx = {.len = 0};
    cr_assert_eq(join(r, &a, CLIENT, false, T0 + 1000, &fx), 0);
    cr_assert_eq(fx.v[0].kind, ROOM_FX_SESSION_START);
    cr_assert(room_has_session(r, ROOM_ROLE_CLIENT));
    cr_assert_not(room_has_session(r, ROOM_ROLE_COACH));

    /* the row was refused: the session stays started, the row is asked
     * for again at the participant's next join */
    room_on_session_failed(r, ROOM_ROLE_CLIENT);
    cr_assert_not(room_has_session(r, ROOM_ROLE_CLIENT));
    cr_assert_eq(room_state(r), ROOM_STATE_RUNNING);
    cr_assert_eq(room_started_unix_ms(r), T0 + 1000);
    fx.len = 0;
    cr_assert_eq(room_on_leave(r, &a, T0 + 2000, &fx), 0);
    fx.len = 0;
    cr_assert_eq(join(r, &a, CLIENT, false, T0 + 3000, &fx), 0);
    cr_assert_eq(fx.v[0].kind, ROOM_FX_SESSION_JOIN);
    cr_assert_str_eq(fx.v[0].user.id, CLIENT);
    cr_assert_eq(fx.v[0].started_unix_ms, T0 + 1000);
    cr_assert(room_has_session(r, ROOM_ROLE_CLIENT));

    /* and the next one does not ask again */
    fx.len = 0;
    cr_assert_eq(join(r, &b, CLIENT, false, T0 + 4000, &fx), 0);
    for (size_t i = 0; i < fx.len; i++) {
        cr_assert_neq(fx.v[i].kind, ROOM_FX_SESSION_JOIN);
    }
    /* observers have no row */
    room_on_session_failed(r, ROOM_ROLE_OBSERVER);
    cr_assert_not(room_has_session(r, ROOM_ROLE_OBSERVER));
    cr_assert(room_has_session(r, ROOM_ROLE_CLIENT));
    room_free(r);
}
