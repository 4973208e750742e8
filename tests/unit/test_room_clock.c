/*
 * test_room_clock.c: the room clock and the session's end in the rooms
 * core: warnings, end by clock, idle end, `end`, LiveKit/admin end, and a
 * restart from persisted state. A 20-minute session runs in microseconds.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "room.h"

#define T0     1700000000000LL /* scheduledFor */
#define SEC_MS 1000LL
#define MIN_MS 60000LL
#define ENDS   (T0 + 20 * MIN_MS) /* when the coach joins at T0 */
#define COACH  "ccoach0000000000000000000"
#define CLIENT "cclient000000000000000000"
#define ADMIN  "cadmin0000000000000000000"

static struct room_load load_default(void)
{
    return (struct room_load){
        .room_id = "session-7f1c",
        .appointment_id = "cappt00000000000000000000",
        .coach_id = COACH,
        .client_id = CLIENT,
        .scheduled_unix_ms = T0,
        .duration_min = 20,
    };
}

static struct room *room_make(const struct room_load *ld, int64_t now_ms)
{
    struct room_cfg cfg;
    room_cfg_default(&cfg);
    struct room *r = NULL;
    cr_assert_eq(room_new(&cfg, ld, now_ms, &r), 0);
    return r;
}

static void join(struct room *r, struct room_conn *c, const char *user, bool admin, int64_t now)
{
    struct room_fx_list fx = {.len = 0};
    struct room_join_in in = {.user_id = user, .display_name = user, .is_admin = admin};
    cr_assert_eq(room_on_join(r, c, &in, now, &fx), 0);
}

/* Coach (conn 1) joined at T0: the session runs from T0 to ENDS. */
static struct room *running(struct room_conn *k)
{
    struct room_load ld = load_default();
    struct room *r = room_make(&ld, T0);
    room_conn_init(k, 1, NULL, T0);
    join(r, k, COACH, false, T0);
    cr_assert_eq(room_ends_unix_ms(r), ENDS);
    return r;
}

static void assert_warning(const struct room_fx *e, int threshold, int remaining, unsigned sent)
{
    cr_assert_eq(e->kind, ROOM_FX_WARNING);
    cr_assert_eq(e->to.kind, ROOM_TO_MEMBERS);
    cr_assert_eq(e->threshold_sec, threshold);
    cr_assert_eq(e->remaining_sec, remaining);
    cr_assert_eq(e->ends_unix_ms, ENDS);
    cr_assert_eq(e->warnings_sent, sent);
}

static void assert_end(const struct room_fx *e, enum room_end_reason reason, int64_t at)
{
    cr_assert_eq(e->kind, ROOM_FX_END);
    cr_assert_eq(e->to.kind, ROOM_TO_MEMBERS);
    cr_assert_eq(e->reason, reason, "reason %d", e->reason);
    cr_assert_eq(e->ended_unix_ms, at);
    cr_assert_eq(e->started_unix_ms, T0);
    cr_assert_eq(e->ends_unix_ms, ENDS);
}

/* ---- the whole clock --------------------------------------------------------- */

Test(room_clock, twenty_minutes_tick_by_tick)
{
    struct room_conn k;
    struct room *r = running(&k);
    struct room_fx_list fx = {.len = 0};
    int64_t at[4] = {0};
    /* every 250 ms from the start to well after the end */
    for (int64_t now = T0; now <= ENDS + MIN_MS; now += 250) {
        size_t before = fx.len;
        cr_assert_eq(room_on_tick(r, now, &fx), 0);
        cr_assert_leq(fx.len, before + 1);
        if (fx.len > before) {
            cr_assert_lt(before, 4);
            at[before] = now;
        }
    }
    cr_assert_eq(fx.len, 3);
    assert_warning(&fx.v[0], 300, 300, 1);
    cr_assert_eq(at[0], ENDS - 300 * SEC_MS);
    assert_warning(&fx.v[1], 60, 60, 2);
    cr_assert_eq(at[1], ENDS - 60 * SEC_MS);
    assert_end(&fx.v[2], ROOM_END_TIMER, ENDS);
    cr_assert_eq(at[2], ENDS);
    cr_assert_eq(room_state(r), ROOM_STATE_ENDED);
    cr_assert_eq(room_end_reason(r), ROOM_END_TIMER);
    cr_assert_eq(room_ended_unix_ms(r), ENDS);
    cr_assert_eq(room_warnings_sent(r), 2);
    room_free(r);
}

Test(room_clock, twenty_minutes_by_deadline)
{
    struct room_conn k;
    struct room *r = running(&k);
    struct room_fx_list fx = {.len = 0};
    int64_t expect[3] = {ENDS - 300 * SEC_MS, ENDS - 60 * SEC_MS, ENDS};
    for (int i = 0; i < 3; i++) {
        int64_t d = room_next_deadline_ms(r);
        cr_assert_eq(d, expect[i]);
        cr_assert_eq(room_on_tick(r, d - 1, &fx), 0);
        cr_assert_eq(fx.len, (size_t)i, "early tick does nothing");
        cr_assert_eq(room_on_tick(r, d, &fx), 0);
        cr_assert_eq(fx.len, (size_t)i + 1);
        cr_assert_eq(room_on_tick(r, d, &fx), 0);
        cr_assert_eq(fx.len, (size_t)i + 1, "a second tick repeats nothing");
    }
    cr_assert_eq(room_next_deadline_ms(r), ROOM_NO_DEADLINE);
    cr_assert_eq(fx.v[2].kind, ROOM_FX_END);
    room_free(r);
}

Test(room_clock, waiting_room_has_no_clock)
{
    struct room_load ld = load_default();
    struct room *r = room_make(&ld, T0);
    struct room_fx_list fx = {.len = 0};
    cr_assert_eq(room_next_deadline_ms(r), ROOM_NO_DEADLINE);
    cr_assert_eq(room_on_tick(r, T0 + 60 * MIN_MS, &fx), 0);
    cr_assert_eq(fx.len, 0);
    cr_assert_eq(room_state(r), ROOM_STATE_WAITING);
    room_free(r);
}

Test(room_clock, short_session_warns_at_once)
{
    struct room_load ld = load_default();
    ld.duration_min = 3;
    struct room *r = room_make(&ld, T0);
    struct room_conn k;
    room_conn_init(&k, 1, NULL, T0);
    join(r, &k, COACH, false, T0);
    /* 180 s left at the start: the 300 s warning is already due (deadline in
     * the past), and tells the truth */
    cr_assert_eq(room_next_deadline_ms(r), T0 - 2 * MIN_MS);
    struct room_fx_list fx = {.len = 0};
    cr_assert_eq(room_on_tick(r, T0, &fx), 0);
    cr_assert_eq(fx.len, 1);
    cr_assert_eq(fx.v[0].kind, ROOM_FX_WARNING);
    cr_assert_eq(fx.v[0].threshold_sec, 300);
    cr_assert_eq(fx.v[0].remaining_sec, 180);
    cr_assert_eq(room_next_deadline_ms(r), T0 + 2 * MIN_MS);
    room_free(r);
}

/* ---- idle ------------------------------------------------------------------------ */

Test(room_clock, idle_end)
{
    struct room_conn k, o;
    struct room *r = running(&k);
    room_conn_init(&o, 2, NULL, T0);
    join(r, &o, ADMIN, true, T0);
    struct room_fx_list fx = {.len = 0};
    int64_t left = T0 + MIN_MS;
    cr_assert_eq(room_on_leave(r, &k, left, &fx), 0);
    fx.len = 0;
    /* an observer does not keep the session alive */
    int64_t idle = left + 300 * SEC_MS;
    cr_assert_eq(room_next_deadline_ms(r), idle);
    cr_assert_eq(room_on_tick(r, idle - 1, &fx), 0);
    cr_assert_eq(fx.len, 0);
    cr_assert_eq(room_on_tick(r, idle, &fx), 0);
    cr_assert_eq(fx.len, 1);
    assert_end(&fx.v[0], ROOM_END_IDLE, idle);
    cr_assert_str_eq(room_end_reason_name(ROOM_END_IDLE), "idle");
    room_free(r);
}

Test(room_clock, idle_reset_by_a_participant_coming_back)
{
    struct room_conn k;
    struct room *r = running(&k);
    struct room_fx_list fx = {.len = 0};
    cr_assert_eq(room_on_leave(r, &k, T0 + MIN_MS, &fx), 0);
    join(r, &k, COACH, false, T0 + MIN_MS + 299 * SEC_MS);
    cr_assert_eq(room_next_deadline_ms(r), ENDS - 300 * SEC_MS);
    cr_assert_eq(room_on_disconnect(&k, T0 + 10 * MIN_MS, &fx), 0);
    fx.len = 0;
    /* idle deadline T0+15min = the 300 s warning: the end wins, no warning */
    cr_assert_eq(room_next_deadline_ms(r), T0 + 15 * MIN_MS);
    cr_assert_eq(room_on_tick(r, T0 + 15 * MIN_MS - 1, &fx), 0);
    cr_assert_eq(fx.len, 0);
    cr_assert_eq(room_on_tick(r, T0 + 15 * MIN_MS, &fx), 0);
    cr_assert_eq(fx.len, 1);
    assert_end(&fx.v[0], ROOM_END_IDLE, T0 + 15 * MIN_MS);
    room_free(r);
}

Test(room_clock, idle_off_when_zero)
{
    struct room_cfg cfg;
    room_cfg_default(&cfg);
    cfg.idle_end_sec = 0;
    struct room_load ld = load_default();
    struct room *r = NULL;
    cr_assert_eq(room_new(&cfg, &ld, T0, &r), 0);
    struct room_conn k;
    room_conn_init(&k, 1, NULL, T0);
    join(r, &k, COACH, false, T0);
    struct room_fx_list fx = {.len = 0};
    cr_assert_eq(room_on_leave(r, &k, T0 + 1, &fx), 0);
    cr_assert_eq(room_next_deadline_ms(r), ENDS - 300 * SEC_MS);
    room_free(r);
}

/* ---- races -------------------------------------------------------------------------- */

Test(room_clock, late_tick_ends_without_warning)
{
    struct room_conn k;
    struct room *r = running(&k);
    struct room_fx_list fx = {.len = 0};
    cr_assert_eq(room_on_tick(r, ENDS + 5 * SEC_MS, &fx), 0);
    cr_assert_eq(fx.len, 1);
    assert_end(&fx.v[0], ROOM_END_TIMER, ENDS);
    room_free(r);
}

Test(room_clock, end_command_racing_a_warning)
{
    struct room_conn k;
    struct room *r = running(&k);
    struct room_fx_list fx = {.len = 0};
    int64_t w = ENDS - 60 * SEC_MS;
    cr_assert_eq(room_on_tick(r, ENDS - 300 * SEC_MS, &fx), 0);
    cr_assert_eq(fx.len, 1);
    /* the coach ends at the very ms the 60 s warning is due, before the tick */
    cr_assert_eq(room_on_end(r, &k, w, &fx), 0);
    cr_assert_eq(fx.len, 2);
    assert_end(&fx.v[1], ROOM_END_COACH, w);
    cr_assert_eq(room_on_tick(r, w, &fx), 0);
    cr_assert_eq(room_on_tick(r, ENDS, &fx), 0);
    cr_assert_eq(fx.len, 2, "no warning and no second end after the end");
    cr_assert_eq(room_next_deadline_ms(r), ROOM_NO_DEADLINE);
    room_free(r);
}

Test(room_clock, warning_then_end_command_same_ms)
{
    struct room_conn k;
    struct room *r = running(&k);
    struct room_fx_list fx = {.len = 0};
    int64_t w = ENDS - 60 * SEC_MS;
    cr_assert_eq(room_on_tick(r, w, &fx), 0);
    cr_assert_eq(fx.len, 1);
    assert_warning(&fx.v[0], 60, 60, 2); /* 300 skipped: only the relevant one */
    cr_assert_eq(room_on_end(r, &k, w, &fx), 0);
    cr_assert_eq(fx.len, 2);
    assert_end(&fx.v[1], ROOM_END_COACH, w);
    room_free(r);
}

Test(room_clock, end_command_after_endsat_before_tick)
{
    struct room_conn k;
    struct room *r = running(&k);
    struct room_fx_list fx = {.len = 0};
    cr_assert_eq(room_on_end(r, &k, ENDS + 700, &fx), 0);
    cr_assert_eq(fx.len, 1);
    assert_end(&fx.v[0], ROOM_END_TIMER, ENDS);
    room_free(r);
}

/* ---- end ----------------------------------------------------------------------------- */

Test(room_clock, end_is_idempotent)
{
    struct room_conn k, c;
    struct room *r = running(&k);
    room_conn_init(&c, 2, NULL, T0);
    join(r, &c, CLIENT, false, T0);
    struct room_fx_list fx = {.len = 0};
    struct room_conn *to[4];
    cr_assert_eq(room_on_end(r, &k, T0 + 5 * MIN_MS, &fx), 0);
    cr_assert_eq(fx.len, 1);
    assert_end(&fx.v[0], ROOM_END_COACH, T0 + 5 * MIN_MS);
    cr_assert_eq(room_fx_recipients(&fx.v[0], to, 4), 2);
    cr_assert_eq(room_on_end(r, &k, T0 + 5 * MIN_MS, &fx), ROOM_E_CLOSED);
    cr_assert_eq(room_on_end(r, &k, T0 + 6 * MIN_MS, &fx), ROOM_E_CLOSED);
    cr_assert_eq(room_on_external_end(r, ROOM_END_LIVEKIT, T0 + 6 * MIN_MS, &fx), ROOM_E_CLOSED);
    cr_assert_eq(room_on_external_end(r, ROOM_END_ADMIN, T0 + 6 * MIN_MS, &fx), ROOM_E_CLOSED);
    cr_assert_eq(room_on_tick(r, ENDS, &fx), 0);
    cr_assert_eq(fx.len, 1);
    cr_assert_eq(room_state(r), ROOM_STATE_ENDED);
    cr_assert_eq(room_end_reason(r), ROOM_END_COACH);
    room_free(r);
}

Test(room_clock, end_by_client_forbidden_by_observer_admin)
{
    struct room_conn k, c, o, x;
    struct room *r = running(&k);
    room_conn_init(&c, 2, NULL, T0);
    room_conn_init(&o, 3, NULL, T0);
    room_conn_init(&x, 4, NULL, T0);
    join(r, &c, CLIENT, false, T0);
    join(r, &o, ADMIN, true, T0);
    struct room_fx_list fx = {.len = 0};
    cr_assert_eq(room_on_end(r, &c, T0 + MIN_MS, &fx), ROOM_E_FORBIDDEN);
    cr_assert_eq(room_on_end(r, &x, T0 + MIN_MS, &fx), ROOM_E_NOT_MEMBER);
    fx.len = ROOM_FX_MAX;
    cr_assert_eq(room_on_end(r, &o, T0 + MIN_MS, &fx), ROOM_E_NOSPACE);
    fx.len = 0;
    cr_assert_eq(room_state(r), ROOM_STATE_RUNNING);
    cr_assert_eq(room_on_end(r, &o, T0 + MIN_MS, &fx), 0);
    cr_assert_eq(fx.len, 1);
    assert_end(&fx.v[0], ROOM_END_ADMIN, T0 + MIN_MS);
    room_free(r);
}

Test(room_clock, end_before_start_refused)
{
    struct room_load ld = load_default();
    struct room *r = room_make(&ld, T0);
    struct room_conn o;
    room_conn_init(&o, 1, NULL, T0);
    join(r, &o, ADMIN, true, T0);
    struct room_fx_list fx = {.len = 0};
    cr_assert_eq(room_on_end(r, &o, T0, &fx), ROOM_E_NOT_STARTED);
    cr_assert_eq(room_on_external_end(r, ROOM_END_ADMIN, T0, &fx), ROOM_E_NOT_STARTED);
    cr_assert_eq(fx.len, 0);
    room_free(r);
}

Test(room_clock, livekit_end_waits_for_empty_room)
{
    struct room_conn k;
    struct room *r = running(&k);
    struct room_fx_list fx = {.len = 0};
    cr_assert_eq(room_on_external_end(r, ROOM_END_TIMER, T0 + MIN_MS, &fx), -EINVAL);
    cr_assert_eq(room_on_external_end(r, ROOM_END_LIVEKIT, T0 + MIN_MS, &fx), ROOM_E_IN_USE);
    cr_assert_eq(fx.len, 0);
    cr_assert_eq(room_on_leave(r, &k, T0 + 2 * MIN_MS, &fx), 0);
    fx.len = 0;
    cr_assert_eq(room_on_external_end(r, ROOM_END_LIVEKIT, T0 + 3 * MIN_MS, &fx), 0);
    cr_assert_eq(fx.len, 1);
    assert_end(&fx.v[0], ROOM_END_LIVEKIT, T0 + 3 * MIN_MS);
    room_free(r);
}

Test(room_clock, admin_end_with_members_present)
{
    struct room_conn k;
    struct room *r = running(&k);
    struct room_fx_list fx = {.len = 0};
    cr_assert_eq(room_on_external_end(r, ROOM_END_ADMIN, T0 + MIN_MS, &fx), 0);
    cr_assert_eq(fx.len, 1);
    assert_end(&fx.v[0], ROOM_END_ADMIN, T0 + MIN_MS);
    room_free(r);
}

/* ---- restart ------------------------------------------------------------------------- */

/* A room reloaded at now with the session started at T0 and n warnings
 * already counted; the coach reconnects at once. */
static struct room *reloaded(unsigned sent, int64_t now, struct room_conn *k)
{
    struct room_load ld = load_default();
    ld.status = ROOM_APPT_ACTIVE;
    ld.started_unix_ms = T0;
    ld.coach_has_session = true;
    ld.warnings_sent = sent;
    ld.last_seq = 17;
    struct room *r = room_make(&ld, now);
    cr_assert_eq(room_state(r), ROOM_STATE_RUNNING);
    cr_assert_eq(room_ends_unix_ms(r), ENDS);
    room_conn_init(k, 1, NULL, now);
    join(r, k, COACH, false, now);
    return r;
}

Test(room_clock, restart_does_not_repeat_a_warning)
{
    struct room_conn k;
    int64_t now = ENDS - 200 * SEC_MS; /* after the 300 s warning was sent */
    struct room *r = reloaded(1, now, &k);
    struct room_fx_list fx = {.len = 0};
    cr_assert_eq(room_next_deadline_ms(r), ENDS - 60 * SEC_MS);
    cr_assert_eq(room_on_tick(r, now, &fx), 0);
    cr_assert_eq(fx.len, 0);
    cr_assert_eq(room_on_tick(r, ENDS - 60 * SEC_MS, &fx), 0);
    cr_assert_eq(fx.len, 1);
    assert_warning(&fx.v[0], 60, 60, 2);
    cr_assert_eq(room_on_tick(r, ENDS, &fx), 0);
    cr_assert_eq(fx.len, 2);
    assert_end(&fx.v[1], ROOM_END_TIMER, ENDS);
    cr_assert_eq(room_last_seq(r), 17);
    room_free(r);
}

Test(room_clock, restart_sends_a_missed_warning_still_relevant)
{
    struct room_conn k;
    int64_t now = ENDS - 200 * SEC_MS; /* down while the 300 s warning was due */
    struct room *r = reloaded(0, now, &k);
    struct room_fx_list fx = {.len = 0};
    cr_assert_eq(room_next_deadline_ms(r), ENDS - 300 * SEC_MS);
    cr_assert_eq(room_on_tick(r, now, &fx), 0);
    cr_assert_eq(fx.len, 1);
    assert_warning(&fx.v[0], 300, 200, 1);
    room_free(r);
}

Test(room_clock, restart_skips_warnings_no_longer_relevant)
{
    struct room_conn k;
    int64_t now = ENDS - 30 * SEC_MS - 400; /* both thresholds passed while down */
    struct room *r = reloaded(0, now, &k);
    struct room_fx_list fx = {.len = 0};
    cr_assert_eq(room_on_tick(r, now, &fx), 0);
    cr_assert_eq(fx.len, 1);
    assert_warning(&fx.v[0], 60, 31, 2);
    cr_assert_eq(room_next_deadline_ms(r), ENDS);
    room_free(r);
}

Test(room_clock, restart_after_endsat_ends_at_once)
{
    struct room_conn k;
    int64_t now = ENDS + 180 * MIN_MS;
    struct room *r = reloaded(1, now, &k);
    struct room_fx_list fx = {.len = 0};
    cr_assert_eq(room_next_deadline_ms(r), ENDS - 60 * SEC_MS, "in the past: tick now");
    cr_assert_eq(room_on_tick(r, now, &fx), 0);
    cr_assert_eq(fx.len, 1);
    assert_end(&fx.v[0], ROOM_END_TIMER, ENDS);
    room_free(r);
}

Test(room_clock, restart_with_nobody_back_ends_by_idle_or_clock)
{
    struct room_load ld = load_default();
    ld.status = ROOM_APPT_ACTIVE;
    ld.started_unix_ms = T0;
    ld.warnings_sent = 0;
    int64_t now = T0 + 2 * MIN_MS;
    struct room *r = room_make(&ld, now);
    struct room_fx_list fx = {.len = 0};
    /* nobody connected since the restart: idle counts from the load */
    cr_assert_eq(room_next_deadline_ms(r), now + 300 * SEC_MS);
    cr_assert_eq(room_on_tick(r, now + 300 * SEC_MS, &fx), 0);
    cr_assert_eq(fx.len, 1);
    assert_end(&fx.v[0], ROOM_END_IDLE, now + 300 * SEC_MS);
    room_free(r);

    /* loaded 2 minutes before endsAt: the clock comes first */
    now = ENDS - 2 * MIN_MS;
    ld.warnings_sent = 1;
    r = room_make(&ld, now);
    fx.len = 0;
    cr_assert_eq(room_on_tick(r, ENDS - 60 * SEC_MS, &fx), 0);
    assert_warning(&fx.v[0], 60, 60, 2);
    cr_assert_eq(room_on_tick(r, ENDS, &fx), 0);
    cr_assert_eq(fx.len, 2);
    assert_end(&fx.v[1], ROOM_END_TIMER, ENDS);
    room_free(r);
}

Test(room_clock, loaded_count_beyond_list_is_clamped)
{
    struct room_conn k;
    struct room *r = reloaded(9, T0 + MIN_MS, &k);
    cr_assert_eq(room_warnings_sent(r), 2);
    cr_assert_eq(room_next_deadline_ms(r), ENDS);
    room_free(r);
}

Test(room_clock, thresholds_sorted_and_deduplicated)
{
    struct room_cfg cfg;
    room_cfg_default(&cfg);
    cfg.warnings_sec[0] = 60;
    cfg.warnings_sec[1] = 600;
    cfg.warnings_sec[2] = 60;
    cfg.n_warnings = 3;
    struct room_load ld = load_default();
    struct room *r = NULL;
    cr_assert_eq(room_new(&cfg, &ld, T0, &r), 0);
    struct room_conn k;
    room_conn_init(&k, 1, NULL, T0);
    join(r, &k, COACH, false, T0);
    struct room_fx_list fx = {.len = 0};
    for (int64_t now = T0; now <= ENDS; now += SEC_MS) {
        cr_assert_eq(room_on_tick(r, now, &fx), 0);
    }
    cr_assert_eq(fx.len, 3);
    cr_assert_eq(fx.v[0].threshold_sec, 600);
    cr_assert_eq(fx.v[1].threshold_sec, 60);
    cr_assert_eq(fx.v[2].kind, ROOM_FX_END);
    room_free(r);
}

Test(room_clock, tick_without_space_changes_nothing)
{
    struct room_conn k;
    struct room *r = running(&k);
    struct room_fx_list fx = {.len = ROOM_FX_MAX};
    cr_assert_eq(room_on_tick(r, ENDS, &fx), ROOM_E_NOSPACE);
    cr_assert_eq(fx.len, ROOM_FX_MAX);
    cr_assert_eq(room_state(r), ROOM_STATE_RUNNING);
    cr_assert_eq(room_warnings_sent(r), 0);
    room_fx_reset(&fx);
    cr_assert_eq(fx.len, 0);
    cr_assert_eq(room_on_tick(r, ENDS, &fx), 0);
    cr_assert_eq(fx.len, 1);
    assert_end(&fx.v[0], ROOM_END_TIMER, ENDS);
    struct room_conn *to[2];
    cr_assert_eq(room_fx_recipients(&fx.v[0], to, 2), 1);
    cr_assert_eq(to[0], &k);
    room_free(r);
}
