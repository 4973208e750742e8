/*
 * server.c: the gateway's lws context, its loop, and the drain on shutdown.
 *
 * DESIGN: one lws context, one vhost, serviced by the main thread on a
 * libev loop that this file owns: epoll on Linux, so a wake-up costs what
 * the ready connections need, where lws's own loop called poll() over
 * every held connection. lws drives the loop through its libev event-lib
 * plugin (libwebsockets-evlib-ev), given it as a "foreign" loop: lws then
 * installs no signal watcher, and SIGINT/SIGTERM stay main.c's handlers,
 * which only set the stop flag. The store thread wakes the loop with
 * lws_cancel_service(); completions then run in
 * LWS_CALLBACK_EVENT_WAIT_CANCELLED (http.c). A 250 ms housekeeping timer
 * notices the stop flag. Draining: refuse new connections, wait (bounded by
 * STORE_TIMEOUT_MS) until every store request has completed and been
 * answered, then destroy the context, which closes the remaining
 * connections, then the loop.
 *
 * lws 4.1's libev glue re-arms its one timer only when it fires or after
 * an I/O event, and cannot move an armed timer earlier: a lws_sul due
 * sooner than the armed expiry runs at the next I/O event or at that
 * expiry. The tick re-arms every TICK_US, which bounds the delay.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "gw_int.h"

#define TICK_US         (250 * LWS_US_PER_MS)

/* lws gives each WebSocket connection a receive buffer of rx_buffer_size
 * (its default: 4096 bytes, held for the connection's life). Frames
 * arrive in pieces of at most this size and ws.c assembles them, so a
 * small buffer costs a few more callbacks for long chats and saves 3 KiB
 * per held connection. */
#define WS_RX_CHUNK 1024

/* The most lws 4.1 hands the socket in one send (its default is the
 * receive buffer's size: a 1.5 KiB `joined` would go out in two sends and
 * a copy). Only a limit: nothing is allocated per connection. */
#define WS_TX_PACKET (GW_WRITE_BATCH + LWS_PRE)

static const struct lws_protocols protocols[] = {
    {"http", gw_http_callback, sizeof(struct gw_http), 0, 0, NULL, 0},
    {"coachroom.v1", gw_ws_callback, sizeof(struct gw_conn), WS_RX_CHUNK, 0, NULL, WS_TX_PACKET},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int64_t gw_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void gw_iso8601(int64_t unix_ms, char *out, size_t cap)
{
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(unix_ms % 1000));
}

int64_t gw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void lws_log_emit(int level, const char *line)
{
    enum gw_log_level l = level == LLL_ERR ? GW_LOG_ERROR : GW_LOG_WARN;
    gw_log(l, "lws", "msg=\"%.200s\"", line);
}

static void store_log(void *arg, int level, const char *event, const char *msg)
{
    (void)arg;
    if (msg != NULL && msg[0] != '\0') {
        gw_log((enum gw_log_level)level, event, "msg=\"%s\"", msg);
    } else {
        gw_log((enum gw_log_level)level, event, NULL);
    }
}

static void store_wake(void *arg)
{
    lws_cancel_service(arg);
}

/* Try to bind the listen address ourselves first, so that "address in use"
 * is reported as one clear line rather than lws's internal messages. */
static int probe_listen(const char *host, int port, struct gw_err *err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char port_s[8];
    snprintf(port_s, sizeof(port_s), "%d", port);
    int rc = getaddrinfo(host, port_s, &hints, &ai);
    if (rc != 0) {
        return gw_err_set(err, -EINVAL, "LISTEN: cannot resolve host '%s': %s", host,
                          gai_strerror(rc));
    }
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    int one = 1;
    int bound = fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
                bind(fd, ai->ai_addr, ai->ai_addrlen) == 0;
    int e = errno;
    if (fd >= 0) {
        close(fd);
    }
    freeaddrinfo(ai);
    if (!bound) {
        char why[128];
        strerror_r(e, why, sizeof(why));
        return gw_err_set(err, -e, "LISTEN %s:%d: cannot listen: %s%s", host, port, why,
                          e == EADDRINUSE ? " (another process holds the port; stop it or "
                                            "set LISTEN to another port)"
                                          : "");
    }
    return 0;
}

static void close_for_drain(void *value, void *arg)
{
    (void)arg;
    gw_conn_close(value, 1001, "server shutting down");
}

/* Durable jobs by state for /metrics: one count every JOB_STATS_MS. */
#define JOB_STATS_MS 5000

static void job_stats_done(struct store_req *req)
{
    struct gw_server *srv = req->arg;
    srv->job_stats_pending = false;
    if (req->rc == 0) {
        srv->job_stats = req->u.job_stats;
        srv->job_stats_known = true;
    }
    store_req_free(req);
}

static void job_stats_tick(struct gw_server *srv)
{
    if (srv->draining || srv->job_stats_pending || gw_now_ms() < srv->next_job_stats_ms) {
        return;
    }
    srv->next_job_stats_ms = gw_now_ms() + JOB_STATS_MS;
    struct store_req *req = store_req_new(STORE_OP_JOB_STATS, job_stats_done, srv);
    if (req != NULL && store_submit(srv->store, req, gw_now_ms()) == 0) {
        srv->job_stats_pending = true;
    } else {
        store_req_free(req);
    }
}

static void tick(lws_sorted_usec_list_t *sul)
{
    struct gw_server *srv = lws_container_of(sul, struct gw_server, tick);
    if (*srv->stop && !srv->draining) {
        srv->draining = true;
        srv->drain_deadline_ms = gw_now_ms() + srv->cfg->store_timeout_ms + 1000;
        gw_log(GW_LOG_NOTICE, "gw.draining", "in_flight=%zu connections=%zu",
               store_in_flight(srv->store), srv->n_conns);
    }
    gw_ai_poll(srv);
    gw_lk_poll(srv);
    gw_maint_tick(srv);
    job_stats_tick(srv);
    if (!srv->draining && gw_now_ms() >= srv->next_sweep_ms) {
        srv->next_sweep_ms = gw_now_ms() + 60000;
        gw_rooms_sweep(srv);
    }
    if (srv->draining && store_in_flight(srv->store) == 0) {
        /* Work finished: say goodbye (1001) behind what each outbox holds. */
        gw_map_each(srv->conns_by_id, close_for_drain, NULL);
    }
    lws_sul_schedule(srv->ctx, 0, &srv->tick, tick, TICK_US);
}

/* The loop lws runs on. EVFLAG_NOSIGMASK: libev leaves the signal mask
 * and the handlers alone (we start no signal watcher). */
static int create_loop(struct gw_server *srv, struct gw_err *err)
{
    srv->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (srv->loop == NULL) {
        return gw_err_set(err, -ENOMEM, "cannot create the event loop (libev)");
    }
    return 0;
}

static const char *loop_backend(struct ev_loop *loop)
{
    switch (ev_backend(loop)) {
    case EVBACKEND_EPOLL:
        return "epoll";
    case EVBACKEND_POLL:
        return "poll";
    case EVBACKEND_SELECT:
        return "select";
    default:
        return "other";
    }
}

static int create_context(struct gw_server *srv, struct gw_err *err)
{
    struct lws_context_creation_info info;
    void *loops[1] = {srv->loop}; /* read during lws_create_context only */
    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_VALIDATE_UTF8 |
                   LWS_SERVER_OPTION_LIBEV;
    if (srv->cfg->tls_cert != NULL) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    }
    info.foreign_loops = loops;
    info.user = srv;
    srv->ctx = lws_create_context(&info);
    if (srv->ctx == NULL) {
        return gw_err_set(err, -ENOMEM,
                          "cannot create the lws context (its libev plugin comes with "
                          "the package libwebsockets-evlib-ev)");
    }
    memset(&info, 0, sizeof(info));
    info.port = srv->cfg->listen_port;
    info.iface = srv->cfg->listen_host;
    info.protocols = protocols;
    info.vhost_name = "coach-gateway";
    info.keepalive_timeout = 30;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    if (srv->cfg->tls_cert != NULL) {
        /* HTTP/1.1 only: every response is written as one HTTP/1 message. */
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = srv->cfg->tls_cert;
        info.ssl_private_key_filepath = srv->cfg->tls_key;
        info.alpn = "http/1.1";
    }
    info.timeout_secs = 30;
    /* An IPv4 LISTEN address: an IPv4 socket. lws 4.1 otherwise makes an
     * IPv6 one, fails to put the IPv4 address on it and binds [::], every
     * interface (LISTEN=127.0.0.1 answered on the machine's public
     * addresses). */
    struct in_addr v4;
    if (inet_pton(AF_INET, srv->cfg->listen_host, &v4) == 1) {
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    }
    srv->vhost = lws_create_vhost(srv->ctx, &info);
    if (srv->vhost == NULL) {
        return gw_err_set(err, -EADDRINUSE, "LISTEN %s:%d: cannot listen", srv->cfg->listen_host,
                          srv->cfg->listen_port);
    }
    srv->port = lws_get_vhost_listen_port(srv->vhost);
    return 0;
}

int gw_server_new(const struct gw_config *cfg, struct gw_server **out, struct gw_err *err)
{
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
    int rc = probe_listen(cfg->listen_host, cfg->listen_port, err);
    if (rc != 0) {
        return rc;
    }
    struct gw_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        return gw_err_set(err, -ENOMEM, "out of memory");
    }
    srv->cfg = cfg;
    srv->wbuf = malloc(LWS_PRE + GW_WRITE_BATCH);
    srv->conns_by_id = gw_map_new(1 << 16);
    srv->rooms = gw_map_new(1 << 14);
    srv->user_conns = gw_map_new(1 << 16);
    room_cfg_default(&srv->room_cfg);
    srv->room_cfg.early_join_min = cfg->early_join_min;
    srv->room_cfg.idle_end_sec = cfg->idle_end_sec;
    srv->room_cfg.n_warnings = cfg->n_timer_warnings;
    memcpy(srv->room_cfg.warnings_sec, cfg->timer_warnings_sec,
           sizeof(int) * cfg->n_timer_warnings);
    rc = srv->conns_by_id && srv->rooms && srv->user_conns && srv->wbuf
             ? gw_static_open(cfg->web_root, &srv->web, err)
             : gw_err_set(err, -ENOMEM, "out of memory");
    if (rc == 0) {
        rc = create_loop(srv, err);
    }
    if (rc == 0) {
        rc = create_context(srv, err);
    }
    if (rc == 0) {
        struct store_cfg scfg = {
            .conninfo = cfg->database_url,
            .connections = cfg->store_connections,
            .timeout_ms = cfg->store_timeout_ms,
            .queue_cap = (size_t)cfg->store_queue_max,
            .wake = store_wake,
            .wake_arg = srv->ctx,
            .log = store_log,
        };
        struct store_err serr = {0};
        rc = store_open(&scfg, &srv->store, &serr);
        if (rc != 0) {
            gw_err_set(err, rc, "%s", serr.msg);
        } else {
            rc = gw_ai_open(srv, err);
        }
        if (rc == 0) {
            rc = gw_lk_open(srv, err);
        }
        if (rc == 0) {
            struct store_listen_cfg lcfg = {
                .conninfo = cfg->database_url,
                .self = srv->store,
                .wake = store_wake,
                .wake_arg = srv->ctx,
                .log = store_log,
            };
            rc = store_listen_open(&lcfg, &srv->listen, &serr);
            if (rc != 0) {
                gw_err_set(err, rc, "%s", serr.msg);
            }
        }
    }
    if (rc != 0) {
        gw_server_free(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

int gw_server_port(const struct gw_server *srv)
{
    return srv->port;
}

/* ---- timers on the loop (gw_timer) ----------------------------------------------------- */

static void timer_fired(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct gw_timer *t = (struct gw_timer *)w;
    t->fire(t);
}

void gw_timer_arm(struct gw_server *srv, struct gw_timer *t, void (*fire)(struct gw_timer *t),
                  int64_t us)
{
    ev_timer_stop(srv->loop, &t->w);
    /* the loop's cached time may be a whole batch of events old */
    ev_now_update(srv->loop);
    ev_timer_init(&t->w, timer_fired, (ev_tstamp)(us > 0 ? us : 1) / 1e6, 0.);
    t->fire = fire;
    ev_timer_start(srv->loop, &t->w);
}

void gw_timer_cancel(struct gw_server *srv, struct gw_timer *t)
{
    if (srv->loop != NULL) {
        ev_timer_stop(srv->loop, &t->w);
    }
}

static bool drained(struct gw_server *srv)
{
    if (store_in_flight(srv->store) == 0 && srv->n_conns == 0) {
        return gw_node_drained(srv); /* then this node's rows go */
    }
    if (gw_now_ms() > srv->drain_deadline_ms) {
        gw_log(GW_LOG_WARN, "gw.drain_timeout", "in_flight=%zu connections=%zu",
               store_in_flight(srv->store), srv->n_conns);
        return true;
    }
    return false;
}

int gw_server_run(struct gw_server *srv, volatile sig_atomic_t *stop)
{
    srv->stop = stop;
    lws_sul_schedule(srv->ctx, 0, &srv->tick, tick, TICK_US);
    gw_node_start(srv);
    /* lws arms its libev timer only after an event: wake the loop once, so
     * that the tick and lws's own start-up timer run without waiting for a
     * first connection. */
    lws_cancel_service(srv->ctx);
    gw_log(GW_LOG_NOTICE, "gw.listening", "addr=%s:%d tls=%s loop=%s", srv->cfg->listen_host,
           srv->port, srv->cfg->tls_cert != NULL ? "on" : "off", loop_backend(srv->loop));
    /* One pass per wake-up, as lws_service() did: the tick wakes the loop
     * at least every TICK_US, so the drain condition is seen in time. No
     * active watcher left would mean lws stopped serving. */
    bool alive = true;
    while (alive && !(srv->draining && drained(srv))) {
        alive = ev_run(srv->loop, EVRUN_ONCE) != 0;
    }
    /* Answer what completed last, then let lws close every connection. */
    store_run_done(srv->store);
    lws_sul_cancel(&srv->tick);
    gw_log(GW_LOG_NOTICE, "gw.stopped", NULL);
    return alive ? 0 : -EIO;
}

void gw_server_free(struct gw_server *srv)
{
    if (srv == NULL) {
        return;
    }
    /* The threads that wake the loop (lws_cancel_service on the context)
     * stop before the context goes; the HTTP clients' last completions
     * still record through the store. */
    store_listen_close(srv->listen);
    srv->listen = NULL;
    gw_ai_close(srv);
    gw_lk_close(srv);
    if (srv->ctx != NULL) {
        gw_node_stop(srv);
        if (srv->rooms != NULL) {
            gw_rooms_stop_timers(srv);
        }
        /* With a foreign libev loop this runs to the end here: every
         * connection is closed and lws's watchers are stopped. */
        lws_context_destroy(srv->ctx);
        srv->ctx = NULL;
    }
    if (srv->loop != NULL) {
        ev_loop_destroy(srv->loop);
        srv->loop = NULL;
    }
    /* After the context: no connection can reference a request any more. */
    store_close(srv->store);
    if (srv->rooms != NULL) {
        gw_rooms_free(srv);
    }
    gw_map_free(srv->rooms);
    gw_map_free(srv->conns_by_id);
    gw_map_free(srv->user_conns);
    gw_static_free(srv->web);
    free(srv->wbuf);
    free(srv);
}
