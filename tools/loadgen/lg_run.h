/*
 * lg_run.h: one coach-loadgen run: its configuration, its results, and the
 * libwebsockets client loop that produces them (lg_client.c).
 *
 * Modes:
 * - replay: each room replays a recording (chats, typing, end, rate) at
 *   cfg.speed times real time; a room starts once both members joined.
 * - unthrottled: each connection keeps cfg.window chats in flight, sending
 *   the next as soon as an ack or error frees a slot; the server's rate
 *   limit shows as rate_limited errors and 1008 closes, counted apart.
 * - idle: connect, authenticate, join, hold until the duration ends.
 * - storm: replay without end/rate; at cfg.storm_at_s every connection is
 *   dropped at once and reconnects, joining with since = the last seq it
 *   saw; in-flight chats are resent with their clientMsgId.
 * Every mode reconnects a connection that the server closes (with since).
 */
#ifndef COACH_LG_RUN_H
#define COACH_LG_RUN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "lg_fix.h"
#include "lg_hist.h"
#include "lg_rec.h"
#include "lg_url.h"
#include "lg_verify.h"

enum lg_mode { LG_MODE_REPLAY, LG_MODE_UNTHROTTLED, LG_MODE_IDLE, LG_MODE_STORM };

/* How frames travel: coachroom.v1 JSON (the gateway), or the same commands
 * and events as Socket.IO packets (lg_sio.h; bench/peer-node/server-sio.mjs). */
enum lg_proto { LG_PROTO_NATIVE, LG_PROTO_SOCKETIO };

#define LG_MAX_URLS         16
#define LG_MAX_WINDOW       100 /* unthrottled: chats in flight per connection */
#define LG_N_CODES          12  /* the protocol's error codes, then "other" */
#define LG_ERR_RATE_LIMITED 7   /* its index in lg_error_codes */
#define LG_ERR_UNAVAILABLE  8
#define LG_N_CLOSE          8   /* close codes tracked one by one, then "other" */

struct lg_run_cfg {
    enum lg_mode mode;
    enum lg_proto proto;
    const struct lg_fixtures *fx;
    size_t first;   /* the first fixture room to use */
    size_t n_rooms; /* how many */
    struct lg_rec *const *recs;
    size_t n_recs;
    const struct lg_url *urls;
    size_t n_urls;
    double speed;                      /* replay time compression, > 0 */
    double ramp_s;                     /* rooms start spread over this */
    double duration_s;                 /* hard cap of the traffic phase */
    double storm_at_s;                 /* storm: when to drop everyone (from the start) */
    double drain_s;                    /* after traffic: wait this long for acks and deliveries */
    unsigned window;                   /* unthrottled: chats in flight per connection */
    double rate;                       /* unthrottled: chats a second per connection at most,
                                          evenly paced; 0: as fast as the window allows */
    unsigned sources;                  /* >1: bind connection i to 127.0.0.(1 + i % sources)... */
    int progress;                      /* print a live line on stderr */
    const volatile sig_atomic_t *stop; /* set (by a signal handler) to stop early */
};

struct lg_run_result {
    struct lg_hist connect_us;   /* connect start -> upgrade done */
    struct lg_hist join_us;      /* connect start -> joined */
    struct lg_hist ack_us;       /* chat sent -> ack */
    struct lg_hist delivery_us;  /* chat sent -> the peer's message */
    struct lg_hist reconnect_us; /* a reconnect attempt starts -> joined again (since) */
    uint64_t conns;              /* connections wanted */
    uint64_t conn_attempts, conn_failed, joined_peak, reconnects;
    uint64_t rooms_started, rooms_finished;
    uint64_t chats_sent, chats_resent, acks, chat_errors, unanswered, skipped_full;
    uint64_t typing_sent, ends_sent, rates_sent, rated;
    uint64_t messages_in, frames_in, frames_out, bad_frames;
    uint64_t recovered; /* messages received in joined.history after a rejoin (since) */
    uint64_t truncated; /* rejoins whose history was truncated (not paged) */
    uint64_t signin_retries; /* hello or join answered `unavailable`: reconnected later */
    uint64_t chat_retries;   /* chats answered `unavailable`: sent again later */
    uint64_t storm_dropped;     /* storm: connections dropped */
    uint64_t storm_back;        /* storm: of those, joined again (with since) */
    uint64_t storm_recovery_us; /* storm: the drop -> the last of them joined again */
    uint64_t errors[LG_N_CODES];
    int close_codes[LG_N_CLOSE];
    uint64_t close_counts[LG_N_CLOSE + 1];
    struct lg_verify_result verify;
    double elapsed_s; /* the whole run */
    double traffic_s; /* the first chat to the end of the traffic phase */
    int interrupted;  /* SIGINT */
};

extern const char *const lg_error_codes[LG_N_CODES];

const char *lg_mode_name(enum lg_mode m);
const char *lg_proto_name(enum lg_proto p);

/* Run one load test. Blocks until it is over (duration + drain at most).
 * res is overwritten. 0 when the run happened (look at res for its
 * outcome), negative when it could not start (err says why). */
int lg_run(const struct lg_run_cfg *cfg, struct lg_run_result *res, struct lg_err *err);

#endif
