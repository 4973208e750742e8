/*
 * metrics.c: counters kept by the loop thread and their Prometheus text
 * exposition for GET /metrics. The loop thread is the only writer and the
 * only reader, so nothing here is locked.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_int.h"

static const char *const error_codes[] = {
    "bad_request", "unauthorized", "forbidden", "not_found",   "not_open", "closed",
    "conflict",    "rate_limited", "too_large", "unavailable", "internal",
};
#define N_ERROR_CODES (sizeof(error_codes) / sizeof(error_codes[0]))

/* Upper bounds of the persist latency histogram, in microseconds. */
static const int64_t persist_le_us[] = {250,   500,   1000,   2500,   5000,   10000,
                                        25000, 50000, 100000, 250000, 1000000};
#define N_BUCKETS (sizeof(persist_le_us) / sizeof(persist_le_us[0]))

_Static_assert(N_ERROR_CODES <= sizeof(((struct gw_stats *)0)->errors) / sizeof(uint64_t),
               "errors[] holds every code");
_Static_assert(N_BUCKETS + 1 <= sizeof(((struct gw_stats *)0)->persist_hist) / sizeof(uint64_t),
               "persist_hist[] holds every bucket");

void gw_stats_error(struct gw_stats *st, const char *code)
{
    for (size_t i = 0; i < N_ERROR_CODES; i++) {
        if (strcmp(code, error_codes[i]) == 0) {
            st->errors[i]++;
            return;
        }
    }
}

void gw_stats_persist(struct gw_stats *st, int64_t commit_us)
{
    size_t i = 0;
    while (i < N_BUCKETS && commit_us > persist_le_us[i]) {
        i++;
    }
    st->persist_hist[i]++;
}

struct buf {
    char *p;
    size_t len, cap;
    int failed;
};

__attribute__((format(printf, 2, 3))) static void put(struct buf *b, const char *fmt, ...)
{
    for (int attempt = 0; attempt < 2 && !b->failed; attempt++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
        } else if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        } else {
            size_t cap = (b->cap + (size_t)n) * 2;
            char *p = realloc(b->p, cap);
            if (p == NULL) {
                b->failed = 1;
            } else {
                b->p = p;
                b->cap = cap;
            }
        }
    }
}

static void counter(struct buf *b, const char *name, const char *help, uint64_t v)
{
    put(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
        (unsigned long long)v);
}

static void gauge(struct buf *b, const char *name, const char *help, uint64_t v)
{
    put(b, "# HELP %s %s\n# TYPE %s gauge\n%s %llu\n", name, help, name, name,
        (unsigned long long)v);
}

static void persist_histogram(struct buf *b, const struct gw_stats *st)
{
    const char *n = "coach_persist_seconds";
    put(b, "# HELP %s Time to commit a chat batch to PostgreSQL.\n# TYPE %s histogram\n", n, n);
    uint64_t cum = 0;
    for (size_t i = 0; i < N_BUCKETS; i++) {
        cum += st->persist_hist[i];
        put(b, "%s_bucket{le=\"%g\"} %llu\n", n, (double)persist_le_us[i] / 1e6,
            (unsigned long long)cum);
    }
    cum += st->persist_hist[N_BUCKETS];
    put(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", n, (unsigned long long)cum,
        n, (double)st->persist_sum_us / 1e6, n, (unsigned long long)st->persist_count);
}

char *gw_metrics_render(const struct gw_server *srv, size_t *len)
{
    struct buf b = {.p = malloc(4096), .cap = 4096};
    if (b.p == NULL) {
        return NULL;
    }
    const struct gw_stats *st = &srv->stats;
    gauge(&b, "coach_connections", "Open WebSocket connections.", srv->n_conns);
    counter(&b, "coach_connections_total", "WebSocket connections accepted.", st->conns_total);
    gauge(&b, "coach_rooms", "Rooms loaded in memory.", gw_map_count(srv->rooms));
    counter(&b, "coach_frames_in_total", "Text frames received.", st->frames_in);
    counter(&b, "coach_frames_out_total", "Frames written.", st->frames_out);
    counter(&b, "coach_ws_writes_total", "WebSocket writes (frames queued together share one).",
            st->ws_writes);
    counter(&b, "coach_bytes_out_total", "Payload bytes written.", st->bytes_out);
    counter(&b, "coach_messages_in_total", "Chat frames received.", st->msgs_in);
    counter(&b, "coach_messages_out_total", "Chat messages delivered to connections.",
            st->msgs_out);
    counter(&b, "coach_slow_consumer_closes_total", "Connections closed with 4008.",
            st->closes_slow);
    gauge(&b, "coach_store_queue_depth", "Store requests in flight.", store_in_flight(srv->store));
    put(&b, "# HELP coach_errors_total Error frames sent, by code.\n"
            "# TYPE coach_errors_total counter\n");
    for (size_t i = 0; i < N_ERROR_CODES; i++) {
        put(&b, "coach_errors_total{code=\"%s\"} %llu\n", error_codes[i],
            (unsigned long long)st->errors[i]);
    }
    static const char *const hook_results[] = {"ok",           "duplicate",  "ignored",
                                               "unauthorized", "bad_request", "unavailable"};
    put(&b, "# HELP coach_livekit_webhooks_total LiveKit webhooks answered, by result.\n"
            "# TYPE coach_livekit_webhooks_total counter\n");
    for (size_t i = 0; i < sizeof(hook_results) / sizeof(hook_results[0]); i++) {
        put(&b, "coach_livekit_webhooks_total{result=\"%s\"} %llu\n", hook_results[i],
            (unsigned long long)srv->lk_hooks[i]);
    }
    put(&b, "# HELP coach_maintenance_runs_total Cleanup runs, by outcome.\n"
            "# TYPE coach_maintenance_runs_total counter\n"
            "coach_maintenance_runs_total{outcome=\"done\"} %llu\n"
            "coach_maintenance_runs_total{outcome=\"skipped_locked\"} %llu\n"
            "coach_maintenance_runs_total{outcome=\"failed\"} %llu\n",
        (unsigned long long)st->maint_runs, (unsigned long long)st->maint_skipped,
        (unsigned long long)st->maint_failed);
    put(&b, "# HELP coach_maintenance_deleted_total Rows deleted by the cleanup, by kind.\n"
            "# TYPE coach_maintenance_deleted_total counter\n"
            "coach_maintenance_deleted_total{kind=\"user_sessions\"} %llu\n"
            "coach_maintenance_deleted_total{kind=\"auth_codes\"} %llu\n"
            "coach_maintenance_deleted_total{kind=\"livekit_events\"} %llu\n",
        (unsigned long long)st->maint_deleted[0], (unsigned long long)st->maint_deleted[1],
        (unsigned long long)st->maint_deleted[2]);
    if (srv->job_stats_known) {
        put(&b, "# HELP coach_jobs Durable jobs by queue and state (counted every 5 s).\n"
                "# TYPE coach_jobs gauge\n");
        for (size_t k = 0; k < STORE_JOB_STATES; k++) {
            put(&b, "coach_jobs{queue=\"ai\",state=\"%s\"} %lld\n", store_job_states[k],
                (long long)srv->job_stats.ai[k]);
        }
        for (size_t k = 0; k < STORE_JOB_STATES - 1; k++) { /* close jobs are never skipped */
            put(&b, "coach_jobs{queue=\"livekit_close\",state=\"%s\"} %lld\n",
                store_job_states[k], (long long)srv->job_stats.livekit[k]);
        }
    }
    gauge(&b, "coach_ai_running", "AI summary requests in flight.", (uint64_t)srv->ai_running);
    gauge(&b, "coach_node_peers", "Other live gateway nodes on the database, as of the last "
          "heartbeat.", (uint64_t)srv->node.peers);
    gauge(&b, "coach_room_clock_leases", "Room clocks this node drives (leases held).",
          (uint64_t)srv->node.n_held);
    gauge(&b, "coach_livekit_close_running", "LiveKit DeleteRoom calls in flight.",
          (uint64_t)srv->lk_running);
    persist_histogram(&b, st);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
