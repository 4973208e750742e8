/*
 * test_nodes.c: two gateway processes on one PostgreSQL, beyond chat
 * (test_multinode.c): presence and typing across nodes, presence cleared
 * after a node is killed, one clock per room (each warning once, the end
 * on time, with members on both nodes), the other node finishing the clock
 * after the lease holder is killed, and an AI job of a killed node
 * completed by the other. Heartbeat 1 s, lease 2 s, so a dead node is
 * noticed within a few seconds.
 */
#define _DEFAULT_SOURCE /* usleep */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "fakeai.h"
#include "gwproc.h"
#include "jwt.h"
#include "pgtest.h"
#include "wsclient.h"

#define SECRET "nodes-test-secret-0123456789abcdef"
#define COACH  PGTEST_COACH
#define CLIENT PGTEST_CLIENT
#define WAIT   10000

static char dbname[64], conninfo[512];
static struct gwproc node_a, node_b;
static struct fakeai *fa;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Start a node named id with the common settings and `extra`. */
static void start_node(struct gwproc *gp, const char *id, const char *extra)
{
    static char env_db[600];
    char env_id[64];
    snprintf(env_db, sizeof env_db, "DATABASE_URL=%s", conninfo);
    snprintf(env_id, sizeof env_id, "NODE_ID=%s", id);
    const char *env[] = {env_db,
                         "JWT_SECRET=" SECRET,
                         env_id,
                         "NODE_HEARTBEAT_SEC=1",
                         "ROOM_LEASE_SEC=2",
                         "TIMER_WARNINGS=30,10",
                         "LOG_LEVEL=info",
                         extra,
                         NULL};
    cr_assert_eq(gwproc_start(gp, env, NULL), 0, "node %s starts", id);
}

/* A gauge of a node's /metrics, or -1. */
static long metric(const struct gwproc *gp, const char *name)
{
    static char body[65536];
    long status = 0;
    if (http_get(gp->port, "/metrics", &status, body, sizeof body) != 0 || status != 200) {
        return -1;
    }
    char key[96];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = strstr(body, key);
    return p != NULL ? strtol(p + strlen(key), NULL, 10) : -1;
}

/* Wait until both nodes see each other. */
static void await_peers(void)
{
    int64_t until = mono_ms() + WAIT;
    while (mono_ms() < until) {
        if (metric(&node_a, "coach_node_peers") == 1 && metric(&node_b, "coach_node_peers") == 1) {
            return;
        }
        usleep(100 * 1000);
    }
    cr_assert_fail("the nodes never saw each other");
}

static void setup(void)
{
    cr_assert(sodium_init() >= 0);
    cr_assert_eq(pgtest_db_create(1, dbname, sizeof dbname, conninfo, sizeof conninfo), 0);
    cr_assert_eq(pgtest_exec(conninfo, pgtest_seed_room1), 0);
    fa = NULL;
}

static void teardown(void)
{
    struct gwproc *nodes[] = {&node_a, &node_b};
    for (int i = 0; i < 2; i++) {
        if (nodes[i]->pid > 0) {
            cr_expect_eq(gwproc_stop(nodes[i], SIGTERM), 0, "clean exit");
        }
        if (nodes[i]->log_path[0] != '\0') {
            unlink(nodes[i]->log_path);
        }
    }
    memset(&node_a, 0, sizeof node_a);
    memset(&node_b, 0, sizeof node_b);
    fakeai_free(fa);
    pgtest_db_drop(dbname);
}

TestSuite(nodes, .init = setup, .fini = teardown, .timeout = 120);

static struct wsc *login(const struct gwproc *gp, const char *sub)
{
    json_t *claims = json_pack("{s:s, s:I}", "sub", sub, "exp", (json_int_t)(time(NULL) + 3600));
    char *jwt = gw_jwt_sign_hs256(claims, (const unsigned char *)SECRET, strlen(SECRET));
    json_decref(claims);
    struct wsc_opts o = {.port = gp->port, .bearer = jwt};
    int status = 0;
    struct wsc *c = wsc_connect(&o, &status);
    free(jwt);
    cr_assert_not_null(c, "connect (status %d)", status);
    json_decref(wsc_expect(c, "welcome", WAIT));
    return c;
}

static json_t *join(struct wsc *c)
{
    wsc_send_json(c, "{\"type\":\"join\",\"room\":\"room-1\"}");
    json_t *j = wsc_expect(c, "joined", WAIT);
    cr_assert_not_null(j, "joined");
    return j;
}

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "";
}

/* Whether the members list of o holds user. */
static bool has_member(const json_t *o, const char *user)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(o, "members"), i, m)
    {
        if (strcmp(str(m, "userId"), user) == 0) {
            return true;
        }
    }
    return false;
}

static char *query(const char *sql)
{
    char *v = pgtest_query_value(conninfo, sql);
    cr_assert_not_null(v, "query: %s", sql);
    return v;
}

/* ---- presence and typing -------------------------------------------------------------- */

/* A user's last connection on a node going away is written to the other
 * nodes only after a grace (3 s): a reconnect within it is never seen
 * there, and a real leave arrives after the grace. */
Test(nodes, a_reconnect_within_the_grace_is_not_a_leave_on_the_other_node)
{
    start_node(&node_a, "node-a", NULL);
    start_node(&node_b, "node-b", NULL);
    await_peers();
    struct wsc *coach = login(&node_a, COACH);
    json_decref(join(coach));
    struct wsc *client = login(&node_b, CLIENT);
    json_decref(join(client));
    json_t *p = wsc_expect(coach, "presence", WAIT);
    cr_assert_not_null(p, "the client's arrival crosses nodes");
    json_decref(p);

    wsc_close(client, 1000);
    client = login(&node_b, CLIENT);
    json_decref(join(client));
    char *rows = query("SELECT count(*) FROM coach_presence WHERE node_id = 'node-b'");
    cr_expect_str_eq(rows, "1", "the row stays through the reconnect");
    free(rows);
    p = wsc_expect(coach, "presence", 4500);
    cr_expect_null(p, "no leave, no join on the other node: %s",
                   p != NULL ? str(p, "event") : "");
    json_decref(p);

    int64_t t0 = mono_ms();
    wsc_close(client, 1000);
    p = wsc_expect(coach, "presence", WAIT + 3000);
    int64_t took = mono_ms() - t0;
    cr_assert_not_null(p, "a real leave arrives");
    cr_expect_str_eq(str(p, "event"), "leave");
    cr_expect_geq(took, 2500, "not before the grace: %lld ms", (long long)took);
    json_decref(p);
    rows = query("SELECT count(*) FROM coach_presence WHERE node_id = 'node-b'");
    cr_expect_str_eq(rows, "0");
    free(rows);
    wsc_close(coach, 1000);
}

Test(nodes, presence_and_typing_cross_nodes_and_a_killed_node_leaves)
{
    start_node(&node_a, "node-a", NULL);
    start_node(&node_b, "node-b", NULL);
    await_peers();
    struct wsc *coach = login(&node_a, COACH);
    json_decref(join(coach));
    struct wsc *client = login(&node_b, CLIENT);
    json_t *j = join(client);
    cr_expect(has_member(j, COACH), "the coach on the other node is in `joined`'s members");
    cr_expect(has_member(j, CLIENT));
    json_decref(j);

    json_t *p = wsc_expect(coach, "presence", WAIT);
    cr_assert_not_null(p, "the coach hears the client arrive on the other node");
    cr_expect_str_eq(str(p, "event"), "join");
    cr_expect_str_eq(str(json_object_get(p, "member"), "userId"), CLIENT);
    cr_expect(has_member(p, COACH) && has_member(p, CLIENT));
    json_decref(p);

    /* an admin observing from node B is a member on node A too */
    cr_assert_eq(pgtest_exec(conninfo, "INSERT INTO \"User\"(id,email,\"displayName\",role,"
                                       "\"updatedAt\") VALUES ('cadmin1','a@t','Ada Admin','admin',"
                                       "now())"),
                 0);
    struct wsc *admin = login(&node_b, "cadmin1");
    json_decref(join(admin));
    p = wsc_expect(coach, "presence", WAIT);
    cr_assert_not_null(p, "the observer's arrival crosses nodes");
    cr_expect_str_eq(str(json_object_get(p, "member"), "userId"), "cadmin1");
    cr_expect_str_eq(str(json_object_get(p, "member"), "role"), "observer");
    json_decref(p);
    wsc_close(admin, 1000);
    p = wsc_expect(coach, "presence", WAIT);
    cr_assert_not_null(p);
    cr_expect_str_eq(str(p, "event"), "leave");
    json_decref(p);

    wsc_send_json(client, "{\"type\":\"typing\",\"room\":\"room-1\",\"state\":true}");
    json_t *t = wsc_expect(coach, "typing", WAIT);
    cr_assert_not_null(t, "typing crosses nodes");
    cr_expect_str_eq(str(t, "userId"), CLIENT);
    cr_expect(json_is_true(json_object_get(t, "state")));
    json_decref(t);

    /* node B dies: its member leaves the coach's view within the node
     * time-to-live (3 heartbeats) and a heartbeat */
    int64_t t0 = mono_ms();
    cr_assert_eq(gwproc_stop(&node_b, SIGKILL), 128 + SIGKILL);
    node_b.pid = 0;
    p = wsc_expect(coach, "presence", WAIT);
    cr_assert_not_null(p, "presence leave after the kill");
    int64_t took = mono_ms() - t0;
    cr_expect_str_eq(str(p, "event"), "leave");
    cr_expect_str_eq(str(json_object_get(p, "member"), "userId"), CLIENT);
    cr_expect_not(has_member(p, CLIENT));
    cr_expect_leq(took, 3000 + 1000 + 1500, "cleared within the documented bound: %lld ms",
                  (long long)took);
    json_decref(p);
    char *rows = query("SELECT count(*) FROM coach_presence WHERE node_id = 'node-b'");
    cr_expect_str_eq(rows, "0", "the dead node's presence rows are gone");
    free(rows);
    wsc_free(client);
    wsc_close(coach, 1000);
}

/* ---- the room clock ----------------------------------------------------------------------- */

/* A running 1-minute session that started `ago_sec` seconds ago. */
static void seed_running(int ago_sec)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "UPDATE \"Appointment\" SET status='active', \"durationMin\"=1 WHERE id='cappt1';"
             "INSERT INTO coach_room (appointment_id) VALUES ('cappt1');"
             "INSERT INTO \"Session\"(id,\"roomId\",\"appointmentId\",\"userId\",\"startedAt\","
             "\"durationMinutes\",status) VALUES"
             " ('csess1','room-1','cappt1','" COACH
             "',(now() at time zone 'UTC') - interval '%d seconds',1,'active'),"
             " ('csess2','room-1','cappt1','" CLIENT
             "',(now() at time zone 'UTC') - interval '%d seconds',1,'active');",
             ago_sec, ago_sec);
    cr_assert_eq(pgtest_exec(conninfo, sql), 0);
}

/* The session's end (unix ms) as stored. */
static int64_t ends_at(void)
{
    char *v = query("SELECT (extract(epoch FROM min(\"startedAt\") at time zone 'UTC') * 1000"
                    " + 60000)::int8 FROM \"Session\"");
    int64_t ms = strtoll(v, NULL, 10);
    free(v);
    return ms;
}

/* What a member saw of the clock. */
struct clock_seen {
    int warnings[2]; /* 30 s, 10 s */
    int64_t warning_at[2];
    int ended;
    int64_t ended_at;
    char reason[16];
};

/* One frame of c, if any within timeout_ms, noted in s. */
static void clock_frame(struct wsc *c, struct clock_seen *s, int timeout_ms)
{
    char *f = wsc_recv(c, timeout_ms, NULL);
    if (f == NULL) {
        return;
    }
    json_t *o = json_loads(f, 0, NULL);
    free(f);
    const char *type = str(o, "type");
    if (strcmp(type, "timer") == 0) {
        long left = (long)json_integer_value(json_object_get(o, "remainingSec"));
        int k = left > 20 ? 0 : 1;
        s->warnings[k]++;
        s->warning_at[k] = unix_ms();
    } else if (strcmp(type, "session.ended") == 0) {
        s->ended++;
        s->ended_at = unix_ms();
        snprintf(s->reason, sizeof s->reason, "%s", str(o, "reason"));
    }
    json_decref(o);
}

/* Read the n connections' frames (in turns, noting arrival times) until
 * each saw session.ended and 1.5 s more passed (a repeat would come
 * right behind), or the timeout. */
static void watch_clock(struct wsc **c, struct clock_seen *s, size_t n, int timeout_ms)
{
    int64_t until = mono_ms() + timeout_ms, all_ended = 0;
    while (mono_ms() < until && (all_ended == 0 || mono_ms() < all_ended + 1500)) {
        bool ended = true;
        for (size_t i = 0; i < n; i++) {
            clock_frame(c[i], &s[i], 20);
            ended = ended && s[i].ended > 0;
        }
        if (ended && all_ended == 0) {
            all_ended = mono_ms();
        }
    }
}

Test(nodes, one_clock_each_warning_once_and_the_end_on_time)
{
    seed_running(25); /* warnings due in 5 s and 25 s, the end in 35 s */
    start_node(&node_a, "node-a", NULL);
    start_node(&node_b, "node-b", NULL);
    await_peers();
    struct wsc *coach = login(&node_a, COACH);
    json_decref(join(coach));
    struct wsc *client = login(&node_b, CLIENT);
    json_decref(join(client));
    int64_t ends = ends_at();

    struct clock_seen seen[2];
    memset(seen, 0, sizeof seen);
    struct wsc *conns[2] = {coach, client};
    watch_clock(conns, seen, 2, 50000);
    const struct clock_seen *both[] = {&seen[0], &seen[1]};
    const char *who[] = {"coach (node A)", "client (node B)"};
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(both[i]->warnings[0], 1, "%s: the 30 s warning once", who[i]);
        cr_expect_eq(both[i]->warnings[1], 1, "%s: the 10 s warning once", who[i]);
        cr_expect_eq(both[i]->ended, 1, "%s: the end once", who[i]);
        cr_expect_str_eq(both[i]->reason, "timer");
        cr_expect_leq(both[i]->warning_at[1], ends - 10000 + 1500, "%s: 10 s warning on time",
                      who[i]);
        cr_expect_geq(both[i]->ended_at, ends - 200, "%s: not early", who[i]);
        cr_expect_leq(both[i]->ended_at, ends + 1500, "%s: the end on time", who[i]);
    }
    char *ws = query("SELECT max(\"warningsSent\") || ':' || min(\"warningsSent\")"
                     " FROM \"Session\"");
    cr_expect_str_eq(ws, "2:2", "each warning recorded once");
    free(ws);
    char *st = query("SELECT status FROM \"Appointment\" WHERE id = 'cappt1'");
    cr_expect_str_eq(st, "completed");
    free(st);
    wsc_close(coach, 1000);
    wsc_close(client, 1000);
}

Test(nodes, the_other_node_finishes_the_clock_of_a_killed_holder)
{
    seed_running(25);
    start_node(&node_a, "node-a", NULL);
    start_node(&node_b, "node-b", NULL);
    await_peers();
    struct wsc *coach = login(&node_a, COACH);
    json_decref(join(coach));
    struct wsc *client = login(&node_b, CLIENT);
    json_decref(join(client));
    int64_t ends = ends_at();

    /* both hear the 30 s warning, from whichever node holds the clock */
    json_t *w = wsc_expect(coach, "timer", WAIT);
    cr_assert_not_null(w);
    json_decref(w);
    w = wsc_expect(client, "timer", WAIT);
    cr_assert_not_null(w);
    json_decref(w);
    char *holder = query("SELECT node_id FROM coach_room_lease WHERE appointment_id = 'cappt1'");
    bool a_holds = strcmp(holder, "node-a") == 0;
    cr_assert(a_holds || strcmp(holder, "node-b") == 0, "a node holds the clock: %s", holder);
    free(holder);

    /* kill -9 the holder; the survivor's member gets the rest, once */
    struct gwproc *dead = a_holds ? &node_a : &node_b;
    struct wsc *survivor = a_holds ? client : coach;
    struct wsc *orphan = a_holds ? coach : client;
    cr_assert_eq(gwproc_stop(dead, SIGKILL), 128 + SIGKILL);
    dead->pid = 0;
    struct clock_seen s;
    memset(&s, 0, sizeof s);
    watch_clock(&survivor, &s, 1, 40000);
    cr_expect_eq(s.warnings[0], 0, "the 30 s warning is not repeated");
    cr_expect_eq(s.warnings[1], 1, "the 10 s warning once");
    cr_expect_eq(s.ended, 1, "the end once");
    cr_expect_str_eq(s.reason, "timer");
    /* within the lease time (2 s) and a heartbeat of due */
    cr_expect_leq(s.warning_at[1], ends - 10000 + 2000 + 1000 + 500, "10 s warning: %lld ms late",
                  (long long)(s.warning_at[1] - (ends - 10000)));
    cr_expect_leq(s.ended_at, ends + 2000 + 1000 + 500, "the end: %lld ms late",
                  (long long)(s.ended_at - ends));
    char *ws = query("SELECT max(\"warningsSent\") FROM \"Session\"");
    cr_expect_str_eq(ws, "2");
    free(ws);
    char *owner = query("SELECT coalesce(max(node_id), 'none') FROM coach_room_lease");
    cr_expect_str_neq(owner, a_holds ? "node-a" : "node-b", "the lease moved or was released");
    free(owner);
    wsc_free(orphan);
    wsc_close(survivor, 1000);
}

/* ---- jobs ----------------------------------------------------------------------------------- */

Test(nodes, an_ai_job_of_a_killed_node_is_completed_by_the_other)
{
    cr_assert_eq(fakeai_start(&fa), 0);
    static char url_env[300];
    snprintf(url_env, sizeof url_env, "AI_SUMMARY_URL=%s", fakeai_url(fa));
    /* the first answer never comes in time: node A is killed while waiting */
    struct fakeai_response hang = {.status = 200,
                                   .body = "{\"choices\":[{\"message\":{\"content\":\"late\"}}]}",
                                   .delay_ms = 20000};
    cr_assert_eq(fakeai_push(fa, &hang), 0);
    cr_assert_eq(fakeai_push_summary(fa, "Summary by the survivor."), 0);
    start_node(&node_a, "node-a", url_env);

    struct wsc *coach = login(&node_a, COACH);
    json_decref(join(coach));
    wsc_send_json(coach, "{\"type\":\"chat\",\"room\":\"room-1\",\"clientMsgId\":\"m1\","
                         "\"text\":\"hello\"}");
    json_decref(wsc_expect(coach, "ack", WAIT));
    wsc_send_json(coach, "{\"type\":\"end\",\"room\":\"room-1\"}");
    json_decref(wsc_expect(coach, "session.ended", WAIT));
    cr_assert_eq(fakeai_wait_requests(fa, 1, WAIT), 0, "node A claimed the job and asked");
    char *st = query("SELECT status || ':' || claimed_by FROM coach_ai_job");
    cr_expect_str_eq(st, "running:node-a");
    free(st);

    start_node(&node_b, "node-b", url_env);
    await_peers();
    int64_t t0 = mono_ms();
    cr_assert_eq(gwproc_stop(&node_a, SIGKILL), 128 + SIGKILL);
    node_a.pid = 0;
    wsc_free(coach);
    char *done = NULL;
    while (mono_ms() - t0 < 15000) {
        free(done);
        done = query("SELECT status || ':' || attempts || ':' || coalesce(claimed_by, '')"
                     " FROM coach_ai_job");
        if (strncmp(done, "done", 4) == 0) {
            break;
        }
        usleep(200 * 1000);
    }
    cr_expect_str_eq(done, "done:2:node-b", "node B completed it (long before the 50 s lease)");
    free(done);
    char *sum = query("SELECT count(*) FROM \"Session\" WHERE \"aiSummary\" = "
                      "'Summary by the survivor.'");
    cr_expect_neq(strcmp(sum, "0"), 0, "the summary is stored");
    free(sum);
}

/* ---- the idle rule counts every node ------------------------------------------------------ */

static char *wait_value(const char *sql, const char *want, int timeout_ms)
{
    int64_t until = mono_ms() + timeout_ms;
    char *v = query(sql);
    while (strcmp(v, want) != 0 && mono_ms() < until) {
        free(v);
        usleep(100 * 1000);
        v = query(sql);
    }
    return v;
}

Test(nodes, a_participant_on_either_node_keeps_the_session_from_idling)
{
    start_node(&node_a, "node-a", "IDLE_END_SEC=2");
    start_node(&node_b, "node-b", "IDLE_END_SEC=2");
    await_peers();
    struct wsc *coach = login(&node_a, COACH);
    json_decref(join(coach));
    struct wsc *client = login(&node_b, CLIENT);
    json_decref(join(client));
    /* the coach goes; the client stays on the other node past IDLE_END_SEC */
    wsc_close(coach, 1000);
    sleep(4);
    char *st = query("SELECT status FROM \"Appointment\" WHERE id = 'cappt1'");
    cr_expect_str_eq(st, "active", "a participant connected elsewhere holds the idle clock");
    free(st);
    /* the client goes too: idle end about IDLE_END_SEC later */
    wsc_close(client, 1000);
    st = wait_value("SELECT status FROM \"Appointment\" WHERE id = 'cappt1'", "completed", 8000);
    cr_expect_str_eq(st, "completed");
    free(st);
    char *why = query("SELECT coalesce(end_reason, '') FROM coach_room");
    cr_expect_str_eq(why, "idle");
    free(why);
}
