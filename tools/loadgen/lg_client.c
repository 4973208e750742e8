/*
 * lg_client.c: coach-loadgen's libwebsockets client loop (see lg_run.h).
 *
 * DESIGN: one lws context on a libev loop (epoll), one thread. Every room
 * owns its two connections (coach, client) and a timer that plays its
 * recording; the loop owns a 100 ms tick (an lws_sul, which also re-arms
 * lws's own timer) that moves the run through its phases (traffic, drain,
 * closing) and prints the progress line. The rooms' and connections'
 * timers are libev timers (a heap): lws 4.1 keeps its suls in one sorted
 * list walked on every insert, which with thousands of rooms and
 * connections took most of the tool's time. Frames out go through a bounded
 * per-connection outbox written one per CLIENT_WRITEABLE. Chats carry the
 * clientMsgId "<run tag>-<n>"; each connection keeps its last LG_SLOTS chats
 * (send time, text) to measure acks and the peer's deliveries, and to
 * resend what was in flight when a connection was lost. Every `message`
 * and every history entry of a rejoin goes to the room's verifier.
 * Times are CLOCK_MONOTONIC microseconds. With --proto socketio, frames
 * in and out pass through lg_sio.h, which maps them to coachroom.v1
 * objects; everything else is the same.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <sodium.h>

#include "lg_run.h"
#include "lg_scan.h"
#include "lg_sio.h"

#define LG_SLOTS        256
#define OUT_CAP         128 /* > the largest --window, so a rejoin resends all */
#define RX_MAX          ((size_t)8 * 1024 * 1024)
#define VERIFY_MAX_SEQS (1u << 22)
#define RECONNECT_US    200000 /* first retry; doubles per failure */
#define RECONNECT_MAX   5000000
#define STORM_SPREAD_US 500000
#define RATE_WAIT_US    5000000
#define CHAT_RETRY_US   2000000 /* a chat refused `unavailable`: resent after 1-2 s */
#define ROOM_POLL_US    50000
#define TICK_US         100000
#define CLOSE_GRACE_US  3000000
#define CONNECTING_MAX  256 /* connection attempts in progress at once */
#define TAG_LEN         6
#define CMID_MAX        32

const char *const lg_error_codes[LG_N_CODES] = {
    "bad_request", "unauthorized", "forbidden",   "not_found", "not_open", "closed",
    "conflict",    "rate_limited", "unavailable", "too_large", "internal", "other"};

enum cstate { CS_IDLE, CS_CONNECTING, CS_OPEN, CS_JOINING, CS_JOINED };
enum phase { PH_TRAFFIC, PH_DRAIN, PH_CLOSING, PH_STOP };

struct slot {
    uint64_t n;
    int64_t sent_us;
    const char *text; /* borrowed from the recording */
    unsigned char busy;
    unsigned char retry; /* refused `unavailable`: resend when c->retry fires */
};

struct loop;
struct room;

struct conn {
    struct loop *L;
    struct room *room;
    size_t idx; /* global: 2 * room + role */
    enum lg_who role;
    struct lws *wsi;
    enum cstate st;
    int64_t t_conn_us; /* this connect attempt began */
    int dropping;      /* we are closing it (storm) */
    int storm_away;    /* dropped by the storm, not joined again yet */
    int queued;        /* waiting in loop.wait for an attempt slot */
    struct conn *wait_next;
    int joined_once;
    int dead;       /* refused for good (join error): no reconnect */
    unsigned fails; /* attempts since the last join */
    char *out[OUT_CAP];
    size_t out_len[OUT_CAP];
    unsigned out_head, out_n;
    char *rx;
    size_t rx_len, rx_cap;
    int rx_overflow;
    struct slot *slots; /* [LG_SLOTS], allocated on the first chat */
    uint64_t next_n;
    unsigned inflight;
    ev_timer sul;                /* reconnect */
    ev_timer retry;              /* resend the chats refused `unavailable` */
    ev_timer pace;               /* unthrottled --rate: the next send */
    int64_t pace_next_us;        /* unthrottled --rate: no send before this */
    int pace_armed;
    uint32_t sio_ack; /* --proto socketio: the next ack id's counter */
    char iface[INET_ADDRSTRLEN];
};

struct room {
    struct loop *L;
    size_t idx;
    const struct lg_room_fix *fx;
    const struct lg_rec *rec;
    struct conn c[2];
    struct lg_verify *ver;
    uint64_t base;
    size_t next_ev;
    int64_t t0_us;
    int started, done, ended;
    ev_timer sul;
};

struct loop {
    const struct lg_run_cfg *cfg;
    struct lg_run_result *res;
    struct lws_context *ctx;
    struct ev_loop *ev;
    struct room *rooms;
    size_t n;
    char tag[TAG_LEN + 1];
    enum phase phase;
    int64_t t_start_us, t_first_chat_us, t_traffic_end_us, t_phase_end_us;
    int storm_done;
    int64_t t_storm_us;
    /* Attempts in progress, at most CONNECTING_MAX; the others wait their
     * turn in order. lws 4.1 gives each attempt a timeout on its sorted
     * timer list, inserted by a walk over all those pending: 10 000
     * attempts at once (a storm) made that walk most of the tool's work. */
    unsigned connecting;
    struct conn *wait_head, *wait_tail;
    ev_timer pump; /* starts waiting attempts, outside any lws callback */
    uint64_t joined_now, rooms_joined;
    int64_t last_progress_us;
    uint64_t last_acks;
    lws_sorted_usec_list_t tick;
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

const char *lg_mode_name(enum lg_mode m)
{
    static const char *const names[] = {"replay", "unthrottled", "idle", "storm"};
    return names[m];
}

const char *lg_proto_name(enum lg_proto p)
{
    static const char *const names[] = {"native", "socketio"};
    return names[p];
}

typedef void (*timer_cb)(struct ev_loop *loop, ev_timer *w, int revents);

/* Arm (or re-arm) w to run cb after us microseconds. */
static void timer_arm(struct loop *L, ev_timer *w, timer_cb cb, int64_t us)
{
    ev_timer_stop(L->ev, w);
    ev_now_update(L->ev); /* the loop's time may be a batch of events old */
    ev_timer_init(w, cb, (ev_tstamp)(us > 0 ? us : 1) / 1e6, 0.);
    ev_timer_start(L->ev, w);
}

/* ---- output ---------------------------------------------------------------------------- */

static void out_clear(struct conn *c)
{
    while (c->out_n > 0) {
        free(c->out[c->out_head]);
        c->out[c->out_head] = NULL;
        c->out_head = (c->out_head + 1) % OUT_CAP;
        c->out_n--;
    }
    c->out_head = 0;
}

/* Queue the text s (consumed) on c. 0, or -1 when c is not open or its
 * outbox is full. */
static int send_text(struct conn *c, char *s)
{
    if (s == NULL || c->wsi == NULL || c->st < CS_OPEN || c->out_n == OUT_CAP) {
        free(s);
        return -1;
    }
    size_t len = strlen(s);
    char *buf = malloc(LWS_PRE + len);
    if (buf == NULL) {
        free(s);
        return -1;
    }
    /* NOLINTNEXTLINE(bugprone-not-null-terminated-result): a frame, sent by length */
    memcpy(buf + LWS_PRE, s, len);
    free(s);
    unsigned at = (c->out_head + c->out_n) % OUT_CAP;
    c->out[at] = buf;
    c->out_len[at] = len;
    c->out_n++;
    lws_callback_on_writable(c->wsi);
    return 0;
}

/* Queue the coachroom.v1 object o (consumed) on c, as the run's protocol
 * frames it. 0, or -1 as send_text. */
static int send_json(struct conn *c, json_t *o)
{
    if (o == NULL) {
        return -1;
    }
    char *s = c->L->cfg->proto == LG_PROTO_SOCKETIO ? lg_sio_encode(o, &c->sio_ack)
                                                    : json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return send_text(c, s);
}

static int on_writeable(struct conn *c)
{
    if (c->out_n == 0) {
        return 0;
    }
    char *buf = c->out[c->out_head];
    size_t len = c->out_len[c->out_head];
    int n = lws_write(c->wsi, (unsigned char *)buf + LWS_PRE, len, LWS_WRITE_TEXT);
    free(buf);
    c->out[c->out_head] = NULL;
    c->out_head = (c->out_head + 1) % OUT_CAP;
    c->out_n--;
    if (n < (int)len) {
        return -1;
    }
    c->L->res->frames_out++;
    if (c->out_n > 0) {
        lws_callback_on_writable(c->wsi);
    }
    return 0;
}

/* ---- chats ----------------------------------------------------------------------------- */

static void cmid_of(const struct loop *L, uint64_t n, char out[CMID_MAX])
{
    (void)snprintf(out, CMID_MAX, "%s-%llu", L->tag, (unsigned long long)n);
}

/* The n of one of this run's clientMsgIds; -1 when it is not ours. */
static int cmid_parse(const struct loop *L, const char *cmid, uint64_t *n)
{
    if (cmid == NULL || strncmp(cmid, L->tag, TAG_LEN) != 0 || cmid[TAG_LEN] != '-') {
        return -1;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(cmid + TAG_LEN + 1, &end, 10);
    if (errno != 0 || end == cmid + TAG_LEN + 1 || *end != '\0') {
        return -1;
    }
    *n = v;
    return 0;
}

static int chat_frame(struct conn *c, struct slot *s)
{
    char cmid[CMID_MAX];
    cmid_of(c->L, s->n, cmid);
    return send_json(c, json_pack("{ss ss ss ss}", "type", "chat", "room", c->room->fx->room,
                                  "clientMsgId", cmid, "text", s->text));
}

static void chat_send(struct conn *c, const char *text)
{
    struct lg_run_result *res = c->L->res;
    if (c->slots == NULL) {
        c->slots = calloc(LG_SLOTS, sizeof *c->slots);
        if (c->slots == NULL) {
            res->skipped_full++;
            return;
        }
    }
    struct slot *s = &c->slots[c->next_n % LG_SLOTS];
    if (s->busy) {
        res->skipped_full++;
        return;
    }
    *s = (struct slot){.n = c->next_n, .sent_us = now_us(), .text = text, .busy = 1};
    if (chat_frame(c, s) != 0) {
        s->busy = 0;
        res->skipped_full++;
        return;
    }
    c->next_n++;
    c->inflight++;
    res->chats_sent++;
    if (c->L->t_first_chat_us == 0) {
        c->L->t_first_chat_us = s->sent_us;
    }
}

static void refill(struct conn *c);

static void pace_fired(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct conn *c = lws_container_of(w, struct conn, pace);
    c->pace_armed = 0;
    refill(c);
}

/* --rate: 1 when c may send now (and counts the send), else 0 with a
 * wake-up armed for when it may. */
static int pace_ok(struct conn *c)
{
    double rate = c->L->cfg->rate;
    if (rate <= 0) {
        return 1;
    }
    int64_t now = now_us(), gap = (int64_t)(1e6 / rate);
    if (c->pace_next_us == 0) { /* the first send: somewhere in the first gap */
        c->pace_next_us = now + (int64_t)randombytes_uniform((uint32_t)gap + 1);
    }
    if (now < c->pace_next_us) {
        if (!c->pace_armed) {
            c->pace_armed = 1;
            timer_arm(c->L, &c->pace, pace_fired, c->pace_next_us - now);
        }
        return 0;
    }
    /* fallen behind (a reconnect, a busy loop): no burst to catch up */
    int64_t base = c->pace_next_us < now - gap ? now : c->pace_next_us;
    c->pace_next_us = base + gap;
    return 1;
}

/* unthrottled: keep cfg->window chats in flight (at --rate at most). */
static void refill(struct conn *c)
{
    struct loop *L = c->L;
    const struct lg_rec *rec = c->room->rec;
    if (L->cfg->mode != LG_MODE_UNTHROTTLED || L->phase != PH_TRAFFIC || c->st != CS_JOINED ||
        c->room->ended || !c->room->started || rec->n_chats == 0) {
        return;
    }
    while (c->inflight < L->cfg->window && c->out_n < OUT_CAP && pace_ok(c)) {
        uint64_t before = L->res->chats_sent;
        /* the recording's chats in turn, whoever said them */
        size_t k = (size_t)(c->next_n * 2 + c->role) % rec->n;
        while (rec->ev[k].type != LG_EV_CHAT) {
            k = (k + 1) % rec->n;
        }
        chat_send(c, rec->ev[k].text);
        if (L->res->chats_sent == before) {
            return;
        }
    }
}

/* After a rejoin: send again what was in flight, with the same ids. */
static void resend_inflight(struct conn *c)
{
    if (c->slots == NULL) {
        return;
    }
    for (uint64_t k = 0; k < LG_SLOTS; k++) {
        struct slot *s = &c->slots[k];
        if (s->busy) {
            s->retry = 0;
            s->sent_us = now_us();
            if (chat_frame(c, s) == 0) {
                c->L->res->chats_resent++;
            }
        }
    }
}

/* The chats refused `unavailable` go again, with the same ids (a resend of
 * one that was stored after all is answered as a duplicate). They keep
 * their first send time: the ack latency is what the sender waited. Away
 * from the room, the rejoin resends them (resend_inflight). */
static void retry_fired(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct conn *c = lws_container_of(w, struct conn, retry);
    if (c->st != CS_JOINED || c->slots == NULL) {
        return;
    }
    for (uint64_t k = 0; k < LG_SLOTS; k++) {
        struct slot *s = &c->slots[k];
        if (s->busy && s->retry && chat_frame(c, s) == 0) {
            s->retry = 0;
            c->L->res->chats_resent++;
        }
    }
}

/* Chat n of c was refused `unavailable`: like the browser client, wait
 * (here 1-2 s, jittered, so refused senders do not come back in step),
 * then send it again. Its window slot stays taken meanwhile, so a refused
 * sender slows down instead of offering more. */
static void chat_refused(struct conn *c, struct slot *s)
{
    s->retry = 1;
    c->L->res->chat_retries++;
    if (!ev_is_active(&c->retry)) {
        timer_arm(c->L, &c->retry, retry_fired,
                  CHAT_RETRY_US / 2 + (int64_t)randombytes_uniform(CHAT_RETRY_US / 2 + 1));
    }
}

/* ---- connecting ------------------------------------------------------------------------ */

static void conn_connect(struct conn *c);

/* The delay before the next attempt: RECONNECT_US doubling with each
 * attempt that failed since the last join, at most RECONNECT_MAX, with
 * jitter so that failed connections do not come back in lockstep. */
static lws_usec_t retry_delay(struct conn *c)
{
    lws_usec_t d = RECONNECT_US;
    for (unsigned k = 0; k < c->fails && d < RECONNECT_MAX; k++) {
        d *= 2;
    }
    if (d > RECONNECT_MAX) {
        d = RECONNECT_MAX;
    }
    if (c->fails < 32) {
        c->fails++;
    }
    return d / 2 + (lws_usec_t)randombytes_uniform((uint32_t)(d / 2) + 1);
}

static void reconnect_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    conn_connect(lws_container_of(w, struct conn, sul));
}

static void leave_connecting(struct conn *c, enum cstate st);

static void conn_connect(struct conn *c)
{
    struct loop *L = c->L;
    /* during the drain too: a connection lost late still recovers its messages */
    if (L->phase > PH_DRAIN || c->dead || c->st != CS_IDLE || c->queued) {
        return;
    }
    if (L->connecting >= CONNECTING_MAX) {
        c->queued = 1;
        c->wait_next = NULL;
        if (L->wait_tail != NULL) {
            L->wait_tail->wait_next = c;
        } else {
            L->wait_head = c;
        }
        L->wait_tail = c;
        return;
    }
    L->connecting++; /* until c leaves CS_CONNECTING */
    const struct lg_url *u = &L->cfg->urls[c->idx % L->cfg->n_urls];
    int sio = L->cfg->proto == LG_PROTO_SOCKETIO;
    char path[sizeof u->path + sizeof LG_SIO_QUERY];
    /* lws copies the connect info's strings: path may live on the stack */
    (void)snprintf(path, sizeof path, "%s%s", strcmp(u->path, "/") == 0 ? "" : u->path,
                   sio ? LG_SIO_QUERY : "");
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = L->ctx;
    ci.address = u->host;
    ci.port = u->port;
    ci.path = sio ? path : u->path;
    ci.host = u->host;
    ci.protocol = sio ? NULL : "coachroom.v1";
    ci.local_protocol_name = "lg";
    ci.opaque_user_data = c;
    ci.pwsi = &c->wsi;
    ci.iface = c->iface[0] ? c->iface : NULL;
    c->st = CS_CONNECTING;
    c->t_conn_us = now_us();
    c->rx_len = 0;
    c->rx_overflow = 0;
    L->res->conn_attempts++;
    if (lws_client_connect_via_info(&ci) == NULL && c->st == CS_CONNECTING) {
        /* failed before any callback */
        c->wsi = NULL;
        leave_connecting(c, CS_IDLE);
        L->res->conn_failed++;
        timer_arm(L, &c->sul, reconnect_cb, retry_delay(c));
    }
}

/* Start waiting attempts while slots are free. A timer callback, so that
 * a connect never starts inside another connection's lws callback. */
static void connect_pump(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct loop *L = lws_container_of(w, struct loop, pump);
    while (L->connecting < CONNECTING_MAX && L->wait_head != NULL) {
        struct conn *c = L->wait_head;
        L->wait_head = c->wait_next;
        if (L->wait_head == NULL) {
            L->wait_tail = NULL;
        }
        c->queued = 0;
        conn_connect(c);
    }
}

/* c's state becomes st; when that ends an attempt (upgraded, failed or
 * lost), the attempt's slot goes to the next one waiting. */
static void leave_connecting(struct conn *c, enum cstate st)
{
    if (c->st == CS_CONNECTING) {
        c->L->connecting--;
        if (c->L->wait_head != NULL && !ev_is_active(&c->L->pump)) {
            timer_arm(c->L, &c->L->pump, connect_pump, 1);
        }
    }
    c->st = st;
}

static void conn_lost(struct conn *c, int failed)
{
    struct loop *L = c->L;
    if (c->st == CS_JOINED) {
        L->joined_now--;
    }
    c->wsi = NULL;
    leave_connecting(c, CS_IDLE);
    out_clear(c);
    if (failed) {
        L->res->conn_failed++;
    }
    if (L->phase > PH_DRAIN || c->dead) {
        return;
    }
    L->res->reconnects += c->joined_once && !failed; /* an established one lost */
    /* a storm's reconnects spread over STORM_SPREAD_US, so some members
     * are back (and chatting) while others are still away */
    timer_arm(L, &c->sul, reconnect_cb,
              c->dropping ? 1 + (int64_t)randombytes_uniform(STORM_SPREAD_US) : retry_delay(c));
    c->dropping = 0;
}

static void conn_kill(struct conn *c)
{
    if (c->wsi != NULL) {
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
}

/* ---- the room -------------------------------------------------------------------------- */

static int64_t due_us(const struct room *r, size_t k)
{
    return r->t0_us + (int64_t)((double)r->rec->ev[k].at_ms * 1000.0 / r->L->cfg->speed);
}

static void room_event(struct room *r, const struct lg_event *ev)
{
    struct conn *c = &r->c[ev->who];
    struct lg_run_result *res = r->L->res;
    const char *room = r->fx->room;
    int storm = r->L->cfg->mode == LG_MODE_STORM;
    switch (ev->type) {
    case LG_EV_CHAT:
        if (!r->ended) {
            chat_send(c, ev->text);
        }
        break;
    case LG_EV_TYPING:
        if (!r->ended && send_json(c, json_pack("{ss ss sb}", "type", "typing", "room", room,
                                                "state", ev->state)) == 0) {
            res->typing_sent++;
        }
        break;
    case LG_EV_END:
        if (!storm && send_json(c, json_pack("{ss ss}", "type", "end", "room", room)) == 0) {
            res->ends_sent++;
        }
        break;
    case LG_EV_RATE: {
        json_t *o = json_pack("{ss ss si}", "type", "rate", "room", room, "rating", ev->rating);
        if (o != NULL && ev->text != NULL) {
            json_object_set_new(o, "comment", json_string(ev->text));
        }
        if (o != NULL && ev->tip != 0) {
            json_object_set_new(o, "tip", json_integer(ev->tip));
        }
        if (storm) {
            json_decref(o);
        } else if (send_json(c, o) == 0) {
            res->rates_sent++;
        }
        break;
    }
    }
}

static void room_fire(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct room *r = lws_container_of(w, struct room, sul);
    struct loop *L = r->L;
    if (L->phase != PH_TRAFFIC || r->done || L->cfg->mode == LG_MODE_IDLE ||
        L->cfg->mode == LG_MODE_UNTHROTTLED) {
        return;
    }
    int64_t now = now_us();
    while (r->next_ev < r->rec->n && due_us(r, r->next_ev) <= now) {
        const struct lg_event *ev = &r->rec->ev[r->next_ev];
        /* the sender must be there; the other member may be away (a storm):
         * it recovers what it missed with since */
        /* a rating waits (up to RATE_WAIT_US) for the end to be broadcast:
         * the end and the rating travel on different connections */
        int wait_end = ev->type == LG_EV_RATE && !r->ended &&
                       now < due_us(r, r->next_ev) + RATE_WAIT_US && L->cfg->mode != LG_MODE_STORM;
        if (r->c[ev->who].st != CS_JOINED || wait_end) {
            timer_arm(L, &r->sul, room_fire, ROOM_POLL_US);
            return;
        }
        room_event(r, ev);
        r->next_ev++;
    }
    if (r->next_ev == r->rec->n) {
        r->done = 1;
        L->res->rooms_finished++;
        return;
    }
    timer_arm(L, &r->sul, room_fire, due_us(r, r->next_ev) - now);
}

/* Both members joined for the first time: the room's traffic starts. */
static void room_start(struct room *r)
{
    struct loop *L = r->L;
    r->started = 1;
    L->res->rooms_started++;
    r->ver = lg_verify_new(2, r->base, VERIFY_MAX_SEQS);
    r->t0_us = now_us();
    if (L->cfg->mode == LG_MODE_UNTHROTTLED) {
        refill(&r->c[0]);
        refill(&r->c[1]);
    } else if (L->cfg->mode != LG_MODE_IDLE) {
        timer_arm(L, &r->sul, room_fire, 1);
    }
}

static void room_connect(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct room *r = lws_container_of(w, struct room, sul);
    conn_connect(&r->c[0]);
    conn_connect(&r->c[1]);
}

/* ---- frames in ------------------------------------------------------------------------- */

static void deliver_seq(struct conn *c, json_int_t seq)
{
    struct room *r = c->room;
    if (r->ver != NULL && seq > 0) {
        (void)lg_verify_deliver(r->ver, c->role, (uint64_t)seq);
    }
}

static void deliver(struct conn *c, json_t *m)
{
    deliver_seq(c, json_integer_value(json_object_get(m, "seq")));
}

/* A `message`: seq, clientMsgId (NULL: none) and from.role (NULL: none). */
static void on_message(struct conn *c, json_int_t seq, const char *cmid, const char *role)
{
    struct loop *L = c->L;
    L->res->messages_in++;
    deliver_seq(c, seq);
    uint64_t n;
    if (role == NULL || cmid_parse(L, cmid, &n)) {
        return;
    }
    enum lg_who from = strcmp(role, "coach") == 0 ? LG_WHO_COACH : LG_WHO_CLIENT;
    const struct conn *sender = &c->room->c[from];
    if (from != c->role && sender->slots != NULL && sender->slots[n % LG_SLOTS].n == n) {
        lg_hist_record(&L->res->delivery_us,
                       (uint64_t)(now_us() - sender->slots[n % LG_SLOTS].sent_us));
    }
}

/* An `ack`: its clientMsgId (NULL: none) and seq. */
static void on_ack(struct conn *c, const char *cmid, json_int_t seq)
{
    struct loop *L = c->L;
    uint64_t n;
    if (cmid_parse(L, cmid, &n) != 0 || c->slots == NULL || !c->slots[n % LG_SLOTS].busy ||
        c->slots[n % LG_SLOTS].n != n) {
        L->res->bad_frames++;
        return;
    }
    struct slot *s = &c->slots[n % LG_SLOTS];
    lg_hist_record(&L->res->ack_us, (uint64_t)(now_us() - s->sent_us));
    s->busy = 0;
    s->retry = 0;
    c->inflight--;
    L->res->acks++;
    if (c->room->ver != NULL && seq > 0) {
        (void)lg_verify_ack(c->room->ver, (uint64_t)seq, ((uint64_t)c->role << 40 | n) + 1);
    }
    refill(c);
}

static void on_error(struct conn *c, json_t *m)
{
    struct loop *L = c->L;
    const char *code = json_string_value(json_object_get(m, "code"));
    size_t k = 0;
    while (k < LG_N_CODES - 1 && (code == NULL || strcmp(code, lg_error_codes[k]) != 0)) {
        k++;
    }
    uint64_t n;
    struct slot *s = NULL;
    if (cmid_parse(L, json_string_value(json_object_get(m, "clientMsgId")), &n) == 0 &&
        c->slots != NULL && c->slots[n % LG_SLOTS].busy && c->slots[n % LG_SLOTS].n == n) {
        s = &c->slots[n % LG_SLOTS];
    }
    if (k == LG_ERR_UNAVAILABLE && s != NULL) {
        /* counted apart, as it loses nothing */
        chat_refused(c, s);
        return;
    }
    if (k == LG_ERR_UNAVAILABLE && (c->st == CS_JOINING || c->st == CS_OPEN)) {
        /* hello or join refused for now: reconnect with backoff, as the
         * browser client does; counted apart, as it loses nothing */
        L->res->signin_retries++;
        conn_kill(c);
        return;
    }
    L->res->errors[k]++;
    if (s != NULL) {
        s->busy = 0;
        c->inflight--;
        L->res->chat_errors++;
        refill(c);
    } else if (c->st == CS_JOINING || c->st == CS_OPEN) {
        /* refused at hello or join: this connection cannot take part */
        c->dead = 1;
        conn_kill(c);
    }
}

static void on_joined(struct conn *c, json_t *m)
{
    struct loop *L = c->L;
    struct room *r = c->room;
    int64_t now = now_us();
    if (c->st != CS_JOINED) {
        L->joined_now++;
    }
    c->st = CS_JOINED;
    c->fails = 0;
    if (L->joined_now > L->res->joined_peak) {
        L->res->joined_peak = L->joined_now;
    }
    if (!c->joined_once) {
        lg_hist_record(&L->res->join_us, (uint64_t)(now - c->t_conn_us));
        json_int_t last = json_integer_value(json_object_get(m, "lastSeq"));
        if (last > 0 && (uint64_t)last > r->base && r->ver == NULL) {
            r->base = (uint64_t)last;
        }
    } else {
        size_t i;
        json_t *h;
        json_array_foreach(json_object_get(m, "history"), i, h)
        {
            deliver(c, h);
            L->res->recovered++;
        }
        /* more than 1000 missed: the rest would need paging, which this tool
         * does not do; the verifier then reports them as lost */
        L->res->truncated += json_is_true(json_object_get(m, "truncated"));
        /* the reconnect itself (connect, hello, join with since), not the
         * wait before it (a storm's spread, a backoff) */
        lg_hist_record(&L->res->reconnect_us, (uint64_t)(now - c->t_conn_us));
        if (c->storm_away) {
            /* the storm's recovery: the last of them back ends it */
            c->storm_away = 0;
            L->res->storm_back++;
            L->res->storm_recovery_us = (uint64_t)(now - L->t_storm_us);
        }
        resend_inflight(c);
    }
    const char *st = json_string_value(json_object_get(json_object_get(m, "session"), "status"));
    if (st != NULL && (strcmp(st, "completed") == 0 || strcmp(st, "cancelled") == 0)) {
        r->ended = 1;
    }
    c->joined_once = 1;
    if (!r->started && r->c[0].st == CS_JOINED && r->c[1].st == CS_JOINED) {
        room_start(r);
    }
    refill(c);
}

static void on_welcome(struct conn *c)
{
    struct room *r = c->room;
    c->st = CS_JOINING;
    json_t *o = json_pack("{ss ss}", "type", "join", "room", r->fx->room);
    if (o != NULL && c->joined_once && r->ver != NULL) {
        json_object_set_new(o, "since", json_integer((json_int_t)lg_verify_last(r->ver, c->role)));
    }
    (void)send_json(c, o);
}

static void dispatch(struct conn *c, json_t *m)
{
    struct loop *L = c->L;
    const char *type = json_string_value(json_object_get(m, "type"));
    if (type == NULL) {
        L->res->bad_frames++;
    } else if (strcmp(type, "message") == 0) {
        on_message(c, json_integer_value(json_object_get(m, "seq")),
                   json_string_value(json_object_get(m, "clientMsgId")),
                   json_string_value(json_object_get(json_object_get(m, "from"), "role")));
    } else if (strcmp(type, "ack") == 0) {
        on_ack(c, json_string_value(json_object_get(m, "clientMsgId")),
               json_integer_value(json_object_get(m, "seq")));
    } else if (strcmp(type, "welcome") == 0) {
        on_welcome(c);
    } else if (strcmp(type, "joined") == 0) {
        on_joined(c, m);
    } else if (strcmp(type, "error") == 0) {
        on_error(c, m);
    } else if (strcmp(type, "session.ended") == 0) {
        c->room->ended = 1;
    } else if (strcmp(type, "rated") == 0) {
        L->res->rated++;
    }
}

static void hello(struct conn *c)
{
    (void)send_json(c, json_pack("{ss ss}", "type", "hello", "token", c->room->fx->token[c->role]));
}

/* --proto socketio: Engine.IO's control packets here, the rest dispatched. */
static void on_sio_frame(struct conn *c)
{
    json_t *m = NULL;
    switch (lg_sio_decode(c->rx, c->rx_len, &m)) {
    case LG_SIO_OBJ:
        dispatch(c, m);
        json_decref(m);
        break;
    case LG_SIO_OPEN:
        hello(c);
        break;
    case LG_SIO_PING:
        (void)send_text(c, lg_sio_pong(c->rx, c->rx_len));
        break;
    case LG_SIO_CLOSE:
        conn_kill(c);
        break;
    case LG_SIO_BAD:
        c->L->res->bad_frames++;
        break;
    case LG_SIO_SKIP:
        break;
    }
}

static void on_frame(struct conn *c)
{
    c->L->res->frames_in++;
    if (c->L->cfg->proto == LG_PROTO_SOCKETIO) {
        on_sio_frame(c);
        return;
    }
    /* most frames are acks and messages: read without a JSON tree */
    struct lg_scan q;
    if (lg_scan_frame(c->rx, c->rx_len, &q) == 0) {
        static const char *const roles[] = {NULL, "coach", "client", "other"};
        if (q.type == LG_SCAN_ACK) {
            on_ack(c, q.cmid[0] ? q.cmid : NULL, q.seq);
        } else {
            on_message(c, q.seq, q.cmid[0] ? q.cmid : NULL, roles[q.from_role]);
        }
        return;
    }
    json_t *m = json_loadb(c->rx, c->rx_len, 0, NULL);
    dispatch(c, m);
    json_decref(m);
}

static void on_rx(struct conn *c, const void *in, size_t len, int final)
{
    if (c->rx_overflow || c->rx_len + len > RX_MAX) {
        c->rx_overflow = 1;
    } else {
        if (c->rx_len + len > c->rx_cap) {
            size_t ncap = c->rx_cap ? c->rx_cap : 4096;
            while (ncap < c->rx_len + len) {
                ncap *= 2;
            }
            char *nb = realloc(c->rx, ncap);
            if (nb == NULL) {
                c->rx_overflow = 1;
            } else {
                c->rx = nb;
                c->rx_cap = ncap;
            }
        }
        if (!c->rx_overflow) {
            memcpy(c->rx + c->rx_len, in, len);
            c->rx_len += len;
        }
    }
    if (!final) {
        return;
    }
    if (c->rx_overflow) {
        c->L->res->bad_frames++;
    } else {
        on_frame(c);
    }
    c->rx_len = 0;
    c->rx_overflow = 0;
}

static void note_close(struct lg_run_result *res, const unsigned char *in, size_t len)
{
    int code = len >= 2 ? (in[0] << 8) | in[1] : 1005;
    for (int k = 0; k < LG_N_CLOSE; k++) {
        if (res->close_codes[k] == code || res->close_codes[k] == 0) {
            res->close_codes[k] = code;
            res->close_counts[k]++;
            return;
        }
    }
    res->close_counts[LG_N_CLOSE]++;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    (void)user;
    struct conn *c = lws_get_opaque_user_data(wsi);
    if (c == NULL || c->wsi != wsi) {
        return 0;
    }
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        conn_lost(c, 1);
        break;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        leave_connecting(c, CS_OPEN);
        lg_hist_record(&c->L->res->connect_us, (uint64_t)(now_us() - c->t_conn_us));
        if (c->L->cfg->proto == LG_PROTO_NATIVE) {
            hello(c); /* Socket.IO: after Engine.IO's open packet */
        }
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        on_rx(c, in, len, lws_is_final_fragment(wsi));
        break;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return on_writeable(c);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        note_close(c->L->res, in, len);
        break;
    case LWS_CALLBACK_CLIENT_CLOSED:
        conn_lost(c, 0);
        break;
    case LWS_CALLBACK_WSI_DESTROY:
        /* freed without a close or an error callback (lws does that for
         * some failures under load): never leave c->wsi dangling */
        conn_lost(c, c->st == CS_CONNECTING);
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"lg", callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- phases ---------------------------------------------------------------------------- */

static int all_settled(const struct loop *L)
{
    for (size_t i = 0; i < L->n; i++) {
        const struct room *r = &L->rooms[i];
        for (int k = 0; k < 2; k++) {
            const struct conn *c = &r->c[k];
            if (c->dead || !r->started) {
                continue;
            }
            if (c->inflight > 0 || (r->ver && lg_verify_pending(r->ver, (unsigned)k) > 0)) {
                return 0;
            }
        }
    }
    return 1;
}

static int any_open(const struct loop *L)
{
    for (size_t i = 0; i < L->n; i++) {
        if (L->rooms[i].c[0].wsi != NULL || L->rooms[i].c[1].wsi != NULL) {
            return 1;
        }
    }
    return 0;
}

static void storm_drop(struct loop *L)
{
    L->storm_done = 1;
    L->t_storm_us = now_us();
    for (size_t i = 0; i < L->n; i++) {
        for (int k = 0; k < 2; k++) {
            struct conn *c = &L->rooms[i].c[k];
            if (c->wsi != NULL) {
                c->dropping = 1;
                c->storm_away = 1;
                L->res->storm_dropped++;
                conn_kill(c);
            }
        }
    }
}

static void progress(struct loop *L, int64_t now)
{
    if (!L->cfg->progress || now - L->last_progress_us < 1000000) {
        return;
    }
    double dt = (double)(now - L->last_progress_us) / 1e6;
    uint64_t rooms = 0;
    for (size_t i = 0; i < L->n; i++) {
        rooms += L->rooms[i].c[0].st == CS_JOINED && L->rooms[i].c[1].st == CS_JOINED;
    }
    (void)fprintf(stderr,
                  "\r%6.1fs %s rooms %llu/%zu conns %llu msgs/s %.0f ack p99 %.1f ms errors %llu  ",
                  (double)(now - L->t_start_us) / 1e6, lg_mode_name(L->cfg->mode),
                  (unsigned long long)rooms, L->n, (unsigned long long)L->joined_now,
                  L->last_progress_us ? (double)(L->res->acks - L->last_acks) / dt : 0.0,
                  (double)lg_hist_percentile(&L->res->ack_us, 99) / 1000.0,
                  (unsigned long long)L->res->chat_errors);
    L->last_progress_us = now;
    L->last_acks = L->res->acks;
}

static void traffic_over(struct loop *L, int64_t now)
{
    L->phase = PH_DRAIN;
    L->t_traffic_end_us = now;
    L->t_phase_end_us = now + (int64_t)(L->cfg->drain_s * 1e6);
}

static void tick(lws_sorted_usec_list_t *sul)
{
    struct loop *L = lws_container_of(sul, struct loop, tick);
    const struct lg_run_cfg *cfg = L->cfg;
    int64_t now = now_us();
    int64_t t = now - L->t_start_us;
    if (cfg->stop != NULL && *cfg->stop && L->phase == PH_TRAFFIC) {
        L->res->interrupted = 1;
        traffic_over(L, now);
    }
    if (L->phase == PH_TRAFFIC) {
        if (cfg->mode == LG_MODE_STORM && !L->storm_done && t >= (int64_t)(cfg->storm_at_s * 1e6)) {
            storm_drop(L);
        }
        /* a storm happens even when the recordings end before it */
        int replaying =
            cfg->mode == LG_MODE_REPLAY || (cfg->mode == LG_MODE_STORM && L->storm_done);
        if (t >= (int64_t)(cfg->duration_s * 1e6) ||
            (replaying && L->res->rooms_finished == L->n)) {
            traffic_over(L, now);
        }
    } else if (L->phase == PH_DRAIN) {
        if (all_settled(L) || now >= L->t_phase_end_us) {
            L->phase = PH_CLOSING;
            L->t_phase_end_us = now + CLOSE_GRACE_US;
            for (size_t i = 0; i < L->n; i++) {
                conn_kill(&L->rooms[i].c[0]);
                conn_kill(&L->rooms[i].c[1]);
            }
        }
    } else if (L->phase == PH_CLOSING && (!any_open(L) || now >= L->t_phase_end_us)) {
        L->phase = PH_STOP;
    }
    progress(L, now);
    if (L->phase != PH_STOP) {
        lws_sul_schedule(L->ctx, 0, &L->tick, tick, TICK_US);
    } else {
        lws_cancel_service(L->ctx); /* wake lws_service() so lg_run returns */
    }
}

/* ---- setup and results ----------------------------------------------------------------- */

static void source_ip(unsigned k, char out[INET_ADDRSTRLEN])
{
    uint32_t ip = 0x7f000001u + k; /* 127.0.0.1 + k, inside 127.0.0.0/8 */
    (void)snprintf(out, INET_ADDRSTRLEN, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255,
                   ip & 255);
}

static int rooms_init(struct loop *L)
{
    const struct lg_run_cfg *cfg = L->cfg;
    L->rooms = calloc(L->n, sizeof *L->rooms);
    if (L->rooms == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < L->n; i++) {
        struct room *r = &L->rooms[i];
        r->L = L;
        r->idx = i;
        r->fx = &cfg->fx->v[cfg->first + i];
        r->rec = cfg->recs[i % cfg->n_recs];
        for (int k = 0; k < 2; k++) {
            struct conn *c = &r->c[k];
            c->L = L;
            c->room = r;
            c->idx = 2 * i + (size_t)k;
            c->role = (enum lg_who)k;
            if (cfg->sources > 1) {
                source_ip((unsigned)(c->idx % cfg->sources), c->iface);
            }
        }
    }
    return 0;
}

static void rooms_fini(struct loop *L)
{
    for (size_t i = 0; L->rooms != NULL && i < L->n; i++) {
        struct room *r = &L->rooms[i];
        for (int k = 0; k < 2; k++) {
            out_clear(&r->c[k]);
            free(r->c[k].rx);
            free(r->c[k].slots);
        }
        lg_verify_free(r->ver);
    }
    free(L->rooms);
}

static void collect(struct loop *L)
{
    struct lg_run_result *res = L->res;
    for (size_t i = 0; i < L->n; i++) {
        struct room *r = &L->rooms[i];
        res->unanswered += r->c[0].inflight + r->c[1].inflight;
        if (r->ver != NULL) {
            struct lg_verify_result vr;
            lg_verify_result(r->ver, &vr);
            lg_verify_add(&res->verify, &vr);
        }
    }
    int64_t end = L->t_traffic_end_us ? L->t_traffic_end_us : now_us();
    res->traffic_s = L->t_first_chat_us ? (double)(end - L->t_first_chat_us) / 1e6 : 0.0;
    res->elapsed_s = (double)(now_us() - L->t_start_us) / 1e6;
}

static void timers_stop(struct loop *L)
{
    ev_timer_stop(L->ev, &L->pump);
    for (size_t i = 0; i < L->n; i++) {
        struct room *r = &L->rooms[i];
        ev_timer_stop(L->ev, &r->sul);
        for (int k = 0; k < 2; k++) {
            ev_timer_stop(L->ev, &r->c[k].sul);
            ev_timer_stop(L->ev, &r->c[k].pace);
            ev_timer_stop(L->ev, &r->c[k].retry);
        }
    }
}

static void lws_log_quiet(int level, const char *line)
{
    (void)level;
    (void)line;
}

int lg_run(const struct lg_run_cfg *cfg, struct lg_run_result *res, struct lg_err *err)
{
    memset(res, 0, sizeof *res);
    lg_hist_init(&res->connect_us);
    lg_hist_init(&res->join_us);
    lg_hist_init(&res->ack_us);
    lg_hist_init(&res->delivery_us);
    lg_hist_init(&res->reconnect_us);
    if (cfg->n_rooms == 0 || cfg->first + cfg->n_rooms > cfg->fx->n || cfg->n_recs == 0 ||
        cfg->n_urls == 0 || !(cfg->speed > 0)) {
        (void)snprintf(err->msg, sizeof err->msg, "bad run configuration");
        return -EINVAL;
    }
    struct loop L = {.cfg = cfg, .res = res, .n = cfg->n_rooms};
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    for (int i = 0; i < TAG_LEN; i++) {
        L.tag[i] = alnum[randombytes_uniform(36)];
    }
    res->conns = 2 * L.n;
    if (rooms_init(&L) != 0) {
        (void)snprintf(err->msg, sizeof err->msg, "out of memory");
        return -ENOMEM;
    }
    lws_set_log_level(LLL_ERR, lws_log_quiet);
    /* EVFLAG_NOSIGMASK: main's SIGINT/SIGTERM handlers stay as they are */
    L.ev = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (L.ev == NULL) {
        rooms_fini(&L);
        (void)snprintf(err->msg, sizeof err->msg, "cannot create the event loop (libev)");
        return -ENOMEM;
    }
    void *loops[1] = {L.ev};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_LIBEV;
    info.foreign_loops = loops;
    /* fd_limit_per_thread stays 0: lws sizes its fd tables by the
     * process's open-files limit (main raised it), which covers every fd
     * number the process can get. A smaller table (2 per room) crashed
     * once fd numbers went past it, at 19 000 connections. */
    L.ctx = lws_create_context(&info);
    if (L.ctx == NULL) {
        ev_loop_destroy(L.ev);
        rooms_fini(&L);
        (void)snprintf(err->msg, sizeof err->msg,
                       "cannot create the lws context (its libev plugin comes with the package "
                       "libwebsockets-evlib-ev)");
        return -EIO;
    }
    L.t_start_us = now_us();
    for (size_t i = 0; i < L.n; i++) {
        int64_t at = L.n > 1 ? (int64_t)(cfg->ramp_s * 1e6 * (double)i / (double)L.n) : 0;
        timer_arm(&L, &L.rooms[i].sul, room_connect, at + 1);
    }
    lws_sul_schedule(L.ctx, 0, &L.tick, tick, TICK_US);
    /* lws arms its libev timer only after an event: wake the loop once */
    lws_cancel_service(L.ctx);
    while (L.phase != PH_STOP) {
        if (!ev_run(L.ev, EVRUN_ONCE)) {
            break; /* no watcher left: lws stopped */
        }
    }
    if (cfg->progress) {
        (void)fprintf(stderr, "\n");
    }
    collect(&L);
    L.phase = PH_STOP;
    timers_stop(&L);
    lws_context_destroy(L.ctx);
    ev_loop_destroy(L.ev);
    rooms_fini(&L);
    return 0;
}
