/*
 * test_multinode.c: two gateway processes on one PostgreSQL. A chat
 * committed by one node reaches the member connections on the other in
 * seq order, with no gap and no duplicate (the commit notifies, the other
 * node reads what it lacks); a member who joins a node that has not
 * delivered the newest messages yet gets each of them once, in `joined`'s
 * history or as `message`.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>
#include <sodium.h>

#include "gwproc.h"
#include "jwt.h"
#include "pgtest.h"
#include "wsclient.h"

#define SECRET "multinode-test-secret-0123456789"
#define COACH  PGTEST_COACH
#define CLIENT PGTEST_CLIENT
#define WAIT   10000
#define BURST  20 /* the per-connection chat burst allowed */


static char dbname[64], conninfo[512];
static struct gwproc node_a, node_b;

static void start_node(struct gwproc *gp)
{
    static char env_db[600];
    snprintf(env_db, sizeof env_db, "DATABASE_URL=%s", conninfo);
    const char *env[] = {env_db, "JWT_SECRET=" SECRET, NULL};
    cr_assert_eq(gwproc_start(gp, env, NULL), 0, "a gateway node starts");
}

static void setup(void)
{
    cr_assert(sodium_init() >= 0);
    cr_assert_eq(pgtest_db_create(1, dbname, sizeof dbname, conninfo, sizeof conninfo), 0);
    cr_assert_eq(pgtest_exec(conninfo, pgtest_seed_room1), 0);
    start_node(&node_a);
    start_node(&node_b);
}

static void teardown(void)
{
    struct gwproc *nodes[] = {&node_a, &node_b};
    for (int i = 0; i < 2; i++) {
        if (nodes[i]->pid > 0) {
            cr_expect_eq(gwproc_stop(nodes[i], SIGTERM), 0, "clean exit");
            unlink(nodes[i]->log_path);
        }
    }
    pgtest_db_drop(dbname);
}

TestSuite(multinode, .init = setup, .fini = teardown, .timeout = 120);

static struct wsc *login(int port, const char *sub)
{
    json_t *claims =
        json_pack("{s:s, s:I}", "sub", sub, "exp", (json_int_t)(time(NULL) + 3600));
    char *jwt = gw_jwt_sign_hs256(claims, (const unsigned char *)SECRET, strlen(SECRET));
    json_decref(claims);
    struct wsc_opts o = {.port = port, .bearer = jwt};
    int status = 0;
    struct wsc *c = wsc_connect(&o, &status);
    free(jwt);
    cr_assert_not_null(c, "connect (status %d)", status);
    json_decref(wsc_expect(c, "welcome", WAIT));
    return c;
}

/* Join room-1; returns `joined` (caller frees). */
static json_t *join(struct wsc *c)
{
    wsc_send_json(c, "{\"type\":\"join\",\"room\":\"room-1\"}");
    json_t *j = wsc_expect(c, "joined", WAIT);
    cr_assert_not_null(j, "joined");
    return j;
}

static void send_burst(struct wsc *c, const char *who, int n)
{
    for (int i = 0; i < n; i++) {
        wsc_send_json(c, "{\"type\":\"chat\",\"room\":\"room-1\",\"clientMsgId\":\"%s-%d\","
                         "\"text\":\"%s says %d\"}",
                      who, i, who, i);
    }
}

/* What one connection saw: each seq's count, in arrival order. */
struct seen {
    int count[256];
    long long order[256];
    int n;
    int acks;
};

static void note_seq(struct seen *s, long long seq)
{
    cr_assert(seq >= 1 && seq < 256, "seq %lld in range", seq);
    s->count[seq]++;
    s->order[s->n++] = seq;
}

/* Read frames until `want` messages arrived (and `acks` acks). */
static void collect(struct wsc *c, struct seen *s, int want, int acks)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (s->n < want || s->acks < acks) {
        char *f = wsc_recv(c, WAIT, NULL);
        cr_assert_not_null(f, "frames stop at %d messages of %d, %d acks of %d", s->n, want,
                           s->acks, acks);
        json_t *o = json_loads(f, 0, NULL);
        free(f);
        const char *type = json_string_value(json_object_get(o, "type"));
        cr_assert_not_null(type);
        if (strcmp(type, "message") == 0) {
            note_seq(s, json_integer_value(json_object_get(o, "seq")));
        } else if (strcmp(type, "ack") == 0) {
            s->acks++;
        } else {
            cr_assert(strcmp(type, "presence") == 0 || strcmp(type, "typing") == 0,
                      "unexpected frame %s", type);
        }
        json_decref(o);
    }
}

static void assert_exactly_once_in_order(const struct seen *s, long long from, long long to,
                                         const char *who)
{
    for (long long q = from; q <= to; q++) {
        cr_expect_eq(s->count[q], 1, "%s got seq %lld %d times", who, q, s->count[q]);
    }
    for (int i = 1; i < s->n; i++) {
        cr_expect_lt(s->order[i - 1], s->order[i], "%s: seq %lld then %lld", who,
                     s->order[i - 1], s->order[i]);
    }
}

Test(multinode, chat_both_ways_across_nodes)
{
    struct wsc *coach = login(node_a.port, COACH);
    struct wsc *client = login(node_b.port, CLIENT);
    json_decref(join(coach));
    json_decref(join(client));
    /* Both send at once: commits from two nodes interleave in one room. */
    send_burst(coach, "coach", BURST);
    send_burst(client, "client", BURST);
    struct seen a = {0}, b = {0};
    collect(coach, &a, 2 * BURST, BURST);
    collect(client, &b, 2 * BURST, BURST);
    assert_exactly_once_in_order(&a, 1, 2 * BURST, "coach on node A");
    assert_exactly_once_in_order(&b, 1, 2 * BURST, "client on node B");
    /* Nothing more arrives on either side: no late duplicate. */
    struct wsc *both[] = {coach, client};
    for (int k = 0; k < 2; k++) {
        char *extra = wsc_recv(both[k], 500, NULL);
        cr_expect(extra == NULL || strstr(extra, "\"message\"") == NULL, "late frame %s", extra);
        free(extra);
    }
    char *rows = pgtest_query_value(conninfo, "SELECT count(*) || '|' || max(seq) || '|' ||"
                                              " count(DISTINCT seq) FROM coach_message");
    cr_expect_str_eq(rows, "40|40|40", "the database holds each message once");
    free(rows);
    wsc_close(coach, 1000);
    wsc_close(client, 1000);
}

Test(multinode, a_late_joiner_on_the_other_node_gets_each_message_once)
{
    struct wsc *coach = login(node_a.port, COACH);
    json_decref(join(coach));
    send_burst(coach, "early", BURST);
    struct seen a = {0};
    collect(coach, &a, BURST, BURST);
    /* The client joins node B, which has never seen the room, while the
     * coach keeps writing on node A. */
    struct wsc *client = login(node_b.port, CLIENT);
    wsc_send_json(client, "{\"type\":\"join\",\"room\":\"room-1\",\"since\":0}");
    sleep(2); /* the coach's rate allowance refills */
    send_burst(coach, "late", BURST);
    json_t *j = wsc_expect(client, "joined", WAIT);
    cr_assert_not_null(j);
    struct seen b = {0};
    json_t *hist = json_object_get(j, "history");
    size_t i;
    json_t *m;
    json_array_foreach(hist, i, m)
    {
        note_seq(&b, json_integer_value(json_object_get(m, "seq")));
    }
    int from_history = b.n;
    json_decref(j);
    collect(client, &b, 2 * BURST, 0);
    assert_exactly_once_in_order(&b, 1, 2 * BURST, "client joining node B");
    cr_expect_geq(from_history, BURST, "the early messages come in the history");
    wsc_close(coach, 1000);
    wsc_close(client, 1000);
}

/* ---- rolling restart --------------------------------------------------------------------- */

/* A member that reconnects to whichever node is up and recovers with since. */
struct member {
    const char *user;
    struct wsc *c;
    long long last_seq; /* highest seq seen, in order */
    int gaps, dups;
    int reconnects;
};

static struct gwproc *up_node(void)
{
    return node_a.pid > 0 ? &node_a : &node_b;
}

/* A message (from history or live) seen by m. */
static void member_saw(struct member *m, long long seq)
{
    if (seq <= m->last_seq) {
        m->dups++;
    } else if (seq != m->last_seq + 1) {
        m->gaps++;
        m->last_seq = seq;
    } else {
        m->last_seq = seq;
    }
}

static void member_connect(struct member *m)
{
    for (int attempt = 0; attempt < 50 && m->c == NULL; attempt++) {
        m->c = login(up_node()->port, m->user);
        wsc_send_json(m->c, "{\"type\":\"join\",\"room\":\"room-1\",\"since\":%lld}", m->last_seq);
        json_t *j = wsc_expect(m->c, "joined", WAIT);
        if (j == NULL) { /* that node is going down: try again */
            wsc_free(m->c);
            m->c = NULL;
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        size_t i;
        json_t *msg;
        json_array_foreach(json_object_get(j, "history"), i, msg)
        {
            member_saw(m, json_integer_value(json_object_get(msg, "seq")));
        }
        json_decref(j);
        m->reconnects++;
    }
    cr_assert_not_null(m->c, "%s reconnects", m->user);
}

/* Read m's frames for up to timeout_ms; returns 1 when the ack of cmid came
 * (cmid NULL: never), -1 when the connection closed (m->c is then NULL). */
static int member_pump(struct member *m, const char *cmid, int timeout_ms)
{
    for (;;) {
        char *f = wsc_recv(m->c, timeout_ms, NULL);
        if (f == NULL) {
            if (wsc_close_code(m->c) != 0) {
                wsc_free(m->c);
                m->c = NULL;
                return -1;
            }
            return 0;
        }
        json_t *o = json_loads(f, 0, NULL);
        free(f);
        const char *type = json_string_value(json_object_get(o, "type"));
        int done = 0;
        if (type != NULL && strcmp(type, "message") == 0) {
            member_saw(m, json_integer_value(json_object_get(o, "seq")));
        } else if (type != NULL && strcmp(type, "ack") == 0 && cmid != NULL) {
            done = strcmp(json_string_value(json_object_get(o, "clientMsgId")), cmid) == 0;
        } else if (type != NULL && strcmp(type, "error") == 0) {
            cr_expect_fail("%s got error %s", m->user,
                           json_string_value(json_object_get(o, "code")));
        }
        json_decref(o);
        if (done) {
            return 1;
        }
    }
}

static void restart(struct gwproc *gp)
{
    cr_expect_eq(gwproc_stop(gp, SIGTERM), 0, "the node drains and exits 0");
    unlink(gp->log_path);
    gp->pid = 0;
}

Test(multinode, rolling_restart_during_a_chat_stream_loses_and_duplicates_nothing)
{
    enum { N = 45 };
    struct member coach = {.user = COACH}, client = {.user = CLIENT};
    coach.c = login(node_a.port, COACH);
    json_decref(join(coach.c));
    client.c = login(node_b.port, CLIENT);
    json_decref(join(client.c));
    for (int i = 0; i < N; i++) {
        if (i == N / 3) {
            restart(&node_b); /* the client's node: it reconnects to A */
            start_node(&node_b);
        } else if (i == 2 * N / 3) {
            restart(&node_a); /* the coach's node: it reconnects to B */
        }
        char cmid[32];
        snprintf(cmid, sizeof cmid, "m-%d", i);
        int acked = 0;
        for (int tries = 0; !acked && tries < 20; tries++) {
            if (coach.c == NULL) {
                member_connect(&coach);
            }
            /* Sent again after a reconnect with the same clientMsgId: stored once. */
            wsc_send_json(coach.c,
                          "{\"type\":\"chat\",\"room\":\"room-1\",\"clientMsgId\":\"%s\","
                          "\"text\":\"message %d\"}",
                          cmid, i);
            acked = member_pump(&coach, cmid, WAIT) == 1;
        }
        cr_assert(acked, "message %d acked", i);
        if (client.c == NULL) {
            member_connect(&client);
        }
        if (member_pump(&client, NULL, 0) < 0) {
            member_connect(&client);
        }
        struct timespec ts = {0, 120 * 1000 * 1000}; /* under the chat rate limit */
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < 50 && (client.last_seq < N || coach.last_seq < N); i++) {
        if (client.c == NULL) {
            member_connect(&client);
        }
        member_pump(&client, NULL, 100);
        if (coach.c != NULL) {
            member_pump(&coach, NULL, 0);
        }
    }
    cr_expect_eq(client.last_seq, N, "the client saw every message");
    cr_expect_eq(coach.last_seq, N, "the coach saw every message");
    cr_expect_eq(client.gaps + client.dups + coach.gaps + coach.dups, 0,
                 "gaps %d/%d, duplicates %d/%d (client/coach)", client.gaps, coach.gaps,
                 client.dups, coach.dups);
    cr_expect_geq(client.reconnects, 1, "the client moved node");
    cr_expect_geq(coach.reconnects, 1, "the coach moved node");
    char *rows = pgtest_query_value(conninfo, "SELECT count(*) || '|' || count(DISTINCT"
                                              " client_msg_id) FROM coach_message");
    cr_expect_str_eq(rows, "45|45", "each message stored once");
    free(rows);
    wsc_close(coach.c, 1000);
    wsc_close(client.c, 1000);
}

/* Node B's room is behind the database (its messages were written where B
 * heard nothing: straight into the tables here) when the client rejoins B
 * with `since` past B's lastSeq, as a client coming from another node does.
 * B's next catch-up must not hand the client what it already has. */
Test(multinode, a_rejoin_with_since_beyond_the_nodes_view_gets_no_repeat)
{
    struct wsc *client = login(node_b.port, CLIENT);
    json_decref(join(client));
    struct wsc *coach = login(node_a.port, COACH);
    json_decref(join(coach));
    send_burst(coach, "first", 3);
    struct seen b0 = {0};
    collect(client, &b0, 3, 0);
    wsc_close(client, 1000);
    /* Seqs 4..8, unannounced. */
    cr_assert_eq(pgtest_exec(conninfo,
                             "INSERT INTO \"Message\"(id,\"sessionId\",\"userId\",sender,content)"
                             " SELECT 'cquiet' || g, s.id, s.\"userId\", 'coach', 'quiet ' || g"
                             " FROM generate_series(4, 8) g, \"Session\" s"
                             " WHERE s.\"userId\" = '" COACH "';"
                             "INSERT INTO coach_message(message_id,appointment_id,seq,user_id,"
                             "client_msg_id) SELECT 'cquiet' || g, 'cappt1', g, '" COACH "',"
                             " 'quiet-' || g FROM generate_series(4, 8) g;"
                             "UPDATE coach_room SET last_seq = 8 WHERE appointment_id = 'cappt1'"),
                 0);
    client = login(node_b.port, CLIENT);
    wsc_send_json(client, "{\"type\":\"join\",\"room\":\"room-1\",\"since\":8}");
    json_t *j = wsc_expect(client, "joined", WAIT);
    cr_assert_not_null(j);
    cr_expect_eq(json_array_size(json_object_get(j, "history")), 0);
    json_decref(j);
    /* Seq 9 from node A: B catches up 4..9 and the client gets only 9. */
    sleep(1);
    send_burst(coach, "second", 1);
    struct seen b = {0};
    collect(client, &b, 1, 0);
    cr_expect_eq(b.order[0], 9, "the first message after since is 9, got %lld", b.order[0]);
    char *extra = wsc_recv(client, 700, NULL);
    cr_expect(extra == NULL || strstr(extra, "\"message\"") == NULL, "repeat %s", extra);
    free(extra);
    wsc_close(coach, 1000);
    wsc_close(client, 1000);
}
