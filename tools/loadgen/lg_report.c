/*
 * lg_report.c: the summary of a coach-loadgen run, as text and as JSON.
 * Latencies are kept in microseconds and shown in milliseconds.
 */
#include "lg_report.h"

#include <errno.h>
#include <stdlib.h>

#include <jansson.h>

static const double PCTS[] = {50, 90, 99, 99.9};
static const char *const PCT_NAMES[] = {"p50", "p90", "p99", "p99_9"};
#define N_PCTS (sizeof PCTS / sizeof PCTS[0])

uint64_t lg_report_unexpected_errors(const struct lg_run_cfg *cfg, const struct lg_run_result *res)
{
    uint64_t n = 0;
    for (int k = 0; k < LG_N_CODES; k++) {
        if (!(cfg->mode == LG_MODE_UNTHROTTLED && k == LG_ERR_RATE_LIMITED)) {
            n += res->errors[k];
        }
    }
    return n;
}

int lg_report_ok(const struct lg_run_cfg *cfg, const struct lg_run_result *res)
{
    if (!lg_verify_ok(&res->verify) || res->unanswered > 0 ||
        lg_report_unexpected_errors(cfg, res) > 0) {
        return 0;
    }
    if (cfg->mode == LG_MODE_IDLE) {
        return res->joined_peak == res->conns;
    }
    if (cfg->mode == LG_MODE_STORM && !res->interrupted &&
        (res->storm_dropped == 0 || res->storm_back < res->storm_dropped)) {
        return 0; /* the storm must have happened, and everyone come back */
    }
    /* every room must have started, unless the run was cut short */
    return res->rooms_started > 0 && (res->interrupted || res->rooms_started == cfg->n_rooms);
}

static double ms(uint64_t us)
{
    return (double)us / 1000.0;
}

static void hist_line(FILE *out, const char *name, const struct lg_hist *h)
{
    if (h->count == 0) {
        (void)fprintf(out, "  %-10s (none)\n", name);
        return;
    }
    (void)fprintf(out, "  %-10s n=%llu p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f ms\n",
                  name, (unsigned long long)h->count, ms(lg_hist_percentile(h, 50)),
                  ms(lg_hist_percentile(h, 90)), ms(lg_hist_percentile(h, 99)),
                  ms(lg_hist_percentile(h, 99.9)), ms(h->max));
}

static double per_s(uint64_t n, double s)
{
    return s > 0 ? (double)n / s : 0.0;
}

void lg_report_text(FILE *out, const struct lg_run_cfg *cfg, const struct lg_run_result *res)
{
    const struct lg_verify_result *v = &res->verify;
    (void)fprintf(out,
                  "coach-loadgen %s%s: %zu rooms, %llu connections over %zu URL(s), %.1f s%s\n",
                  lg_mode_name(cfg->mode), cfg->proto == LG_PROTO_SOCKETIO ? " (socketio)" : "",
                  cfg->n_rooms, (unsigned long long)res->conns, cfg->n_urls, res->elapsed_s,
                  res->interrupted ? " (interrupted)" : "");
    (void)fprintf(out,
                  "  connections: %llu attempts, %llu failed, %llu joined at peak, %llu "
                  "reconnects, %llu messages recovered with since, %llu hellos/joins "
                  "retried after `unavailable`\n",
                  (unsigned long long)res->conn_attempts, (unsigned long long)res->conn_failed,
                  (unsigned long long)res->joined_peak, (unsigned long long)res->reconnects,
                  (unsigned long long)res->recovered, (unsigned long long)res->signin_retries);
    (void)fprintf(out,
                  "  chats: %llu sent, %llu resent, %llu acked (%.1f/s over %.1f s), %llu "
                  "answered `unavailable` (sent again later), %llu refused, %llu unanswered, "
                  "%llu not sent (window/outbox full)\n",
                  (unsigned long long)res->chats_sent, (unsigned long long)res->chats_resent,
                  (unsigned long long)res->acks, per_s(res->acks, res->traffic_s), res->traffic_s,
                  (unsigned long long)res->chat_retries, (unsigned long long)res->chat_errors,
                  (unsigned long long)res->unanswered,
                  (unsigned long long)res->skipped_full);
    (void)fprintf(out,
                  "  messages received: %llu (%.1f/s); typing %llu, end %llu, rate %llu/%llu\n",
                  (unsigned long long)res->messages_in, per_s(res->messages_in, res->traffic_s),
                  (unsigned long long)res->typing_sent, (unsigned long long)res->ends_sent,
                  (unsigned long long)res->rated, (unsigned long long)res->rates_sent);
    hist_line(out, "connect", &res->connect_us);
    hist_line(out, "join", &res->join_us);
    hist_line(out, "ack", &res->ack_us);
    hist_line(out, "delivery", &res->delivery_us);
    hist_line(out, "reconnect", &res->reconnect_us);
    (void)fprintf(out, "  errors:");
    int any = 0;
    for (int k = 0; k < LG_N_CODES; k++) {
        if (res->errors[k] > 0) {
            (void)fprintf(out, " %s=%llu", lg_error_codes[k], (unsigned long long)res->errors[k]);
            any = 1;
        }
    }
    for (int k = 0; k < LG_N_CLOSE && res->close_codes[k] != 0; k++) {
        (void)fprintf(out, " close%d=%llu", res->close_codes[k],
                      (unsigned long long)res->close_counts[k]);
        any = 1;
    }
    (void)fprintf(out, "%s\n", any ? "" : " none");
    if (res->truncated > 0) {
        (void)fprintf(out,
                      "  note: %llu rejoins missed more than the 1000 messages a join with since "
                      "returns; the rest (not paged) shows as lost\n",
                      (unsigned long long)res->truncated);
    }
    if (lg_report_unexpected_errors(cfg, res) > 0) {
        (void)fprintf(out,
                      "  FAILED: %llu error frames (the recordings are valid: none is expected)\n",
                      (unsigned long long)lg_report_unexpected_errors(cfg, res));
    }
    if (cfg->mode != LG_MODE_IDLE && res->rooms_started < cfg->n_rooms) {
        (void)fprintf(out, "  %s: %llu of %zu rooms started (both members joined)\n",
                      res->interrupted ? "note" : "FAILED", (unsigned long long)res->rooms_started,
                      cfg->n_rooms);
    }
    if (cfg->mode == LG_MODE_STORM) {
        int all = res->storm_dropped > 0 && res->storm_back == res->storm_dropped;
        (void)fprintf(out,
                      "  %s: %llu of %llu connections dropped by the storm joined again; the "
                      "last %.2f s after the drop\n",
                      all || res->interrupted ? "storm" : "FAILED: storm",
                      (unsigned long long)res->storm_back, (unsigned long long)res->storm_dropped,
                      (double)res->storm_recovery_us / 1e6);
    }
    if (res->errors[LG_ERR_RATE_LIMITED] > 0) {
        (void)fprintf(out,
                      "  note: %llu chats were refused by the server's per-connection rate "
                      "limit (10/s, burst 20)\n",
                      (unsigned long long)res->errors[LG_ERR_RATE_LIMITED]);
    }
    (void)fprintf(out,
                  "  verify: %s: %llu acked, %llu/%llu deliveries, %llu lost, %llu duplicated, "
                  "%llu reordered, %llu duplicate acks, %llu delivered unacked\n",
                  lg_verify_ok(v) && res->unanswered == 0 ? "OK" : "FAILED",
                  (unsigned long long)v->acked, (unsigned long long)v->delivered,
                  (unsigned long long)v->expected, (unsigned long long)v->lost,
                  (unsigned long long)v->duplicated, (unsigned long long)v->reordered,
                  (unsigned long long)v->dup_acks, (unsigned long long)v->unacked);
    (void)fprintf(out, "RESULT %s\n", lg_report_ok(cfg, res) ? "ok" : "FAILED");
}

static json_t *hist_json(const struct lg_hist *h)
{
    json_t *o = json_object();
    json_object_set_new(o, "count", json_integer((json_int_t)h->count));
    for (size_t i = 0; i < N_PCTS; i++) {
        json_object_set_new(o, PCT_NAMES[i], json_real(ms(lg_hist_percentile(h, PCTS[i]))));
    }
    json_object_set_new(o, "max", json_real(ms(h->max)));
    json_object_set_new(o, "mean", json_real(lg_hist_mean(h) / 1000.0));
    return o;
}

#define J_INT(o, k, v) json_object_set_new(o, k, json_integer((json_int_t)(v)))

static json_t *verify_json(const struct lg_run_result *res)
{
    const struct lg_verify_result *v = &res->verify;
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_boolean(lg_verify_ok(v) && res->unanswered == 0));
    J_INT(o, "acked", v->acked);
    J_INT(o, "expected_deliveries", v->expected);
    J_INT(o, "deliveries", v->delivered);
    J_INT(o, "lost", v->lost);
    J_INT(o, "duplicated", v->duplicated);
    J_INT(o, "reordered", v->reordered);
    J_INT(o, "duplicate_acks", v->dup_acks);
    J_INT(o, "delivered_unacked", v->unacked);
    J_INT(o, "unanswered", res->unanswered);
    J_INT(o, "overflow", v->overflow);
    return o;
}

static json_t *errors_json(const struct lg_run_cfg *cfg, const struct lg_run_result *res)
{
    json_t *e = json_object();
    for (int k = 0; k < LG_N_CODES; k++) {
        J_INT(e, lg_error_codes[k], res->errors[k]);
    }
    json_t *c = json_object();
    for (int k = 0; k < LG_N_CLOSE && res->close_codes[k] != 0; k++) {
        char key[16];
        (void)snprintf(key, sizeof key, "%d", res->close_codes[k]);
        J_INT(c, key, res->close_counts[k]);
    }
    if (res->close_counts[LG_N_CLOSE] > 0) {
        J_INT(c, "other", res->close_counts[LG_N_CLOSE]);
    }
    json_t *o = json_object();
    json_object_set_new(o, "by_code", e);
    json_object_set_new(o, "closes", c);
    J_INT(o, "rate_limited", res->errors[LG_ERR_RATE_LIMITED]);
    J_INT(o, "unexpected", lg_report_unexpected_errors(cfg, res));
    J_INT(o, "bad_frames", res->bad_frames);
    return o;
}

static json_t *counts_json(const struct lg_run_result *res)
{
    json_t *o = json_object();
    J_INT(o, "connections", res->conns);
    J_INT(o, "connect_attempts", res->conn_attempts);
    J_INT(o, "connect_failed", res->conn_failed);
    J_INT(o, "joined_peak", res->joined_peak);
    J_INT(o, "reconnects", res->reconnects);
    J_INT(o, "rooms_started", res->rooms_started);
    J_INT(o, "rooms_finished", res->rooms_finished);
    J_INT(o, "chats_sent", res->chats_sent);
    J_INT(o, "chats_resent", res->chats_resent);
    J_INT(o, "acked", res->acks);
    J_INT(o, "chats_refused", res->chat_errors);
    J_INT(o, "not_sent_full", res->skipped_full);
    J_INT(o, "messages_received", res->messages_in);
    J_INT(o, "recovered_by_since", res->recovered);
    J_INT(o, "recovery_truncated", res->truncated);
    J_INT(o, "signin_retries", res->signin_retries);
    J_INT(o, "chat_retries", res->chat_retries);
    J_INT(o, "storm_dropped", res->storm_dropped);
    J_INT(o, "storm_back", res->storm_back);
    J_INT(o, "typing_sent", res->typing_sent);
    J_INT(o, "ends_sent", res->ends_sent);
    J_INT(o, "rates_sent", res->rates_sent);
    J_INT(o, "rated", res->rated);
    J_INT(o, "frames_in", res->frames_in);
    J_INT(o, "frames_out", res->frames_out);
    return o;
}

int lg_report_json(FILE *out, const struct lg_run_cfg *cfg, const struct lg_run_result *res)
{
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_boolean(lg_report_ok(cfg, res)));
    json_object_set_new(o, "mode", json_string(lg_mode_name(cfg->mode)));
    json_object_set_new(o, "proto", json_string(lg_proto_name(cfg->proto)));
    J_INT(o, "rooms", cfg->n_rooms);
    json_object_set_new(o, "speed", json_real(cfg->speed));
    json_object_set_new(o, "elapsed_s", json_real(res->elapsed_s));
    json_object_set_new(o, "traffic_s", json_real(res->traffic_s));
    json_object_set_new(o, "interrupted", json_boolean(res->interrupted));
    if (cfg->mode == LG_MODE_STORM) {
        json_object_set_new(o, "storm_recovery_s", json_real((double)res->storm_recovery_us / 1e6));
    }
    json_object_set_new(o, "acked_per_s",
                        json_real(res->traffic_s > 0 ? (double)res->acks / res->traffic_s : 0));
    json_object_set_new(o, "counts", counts_json(res));
    json_t *lat = json_object();
    json_object_set_new(lat, "connect", hist_json(&res->connect_us));
    json_object_set_new(lat, "join", hist_json(&res->join_us));
    json_object_set_new(lat, "ack", hist_json(&res->ack_us));
    json_object_set_new(lat, "delivery", hist_json(&res->delivery_us));
    json_object_set_new(lat, "reconnect", hist_json(&res->reconnect_us));
    json_object_set_new(o, "latency_ms", lat);
    json_object_set_new(o, "errors", errors_json(cfg, res));
    json_object_set_new(o, "verify", verify_json(res));
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (s == NULL) {
        return -ENOMEM;
    }
    (void)fprintf(out, "%s\n", s);
    free(s);
    return 0;
}
