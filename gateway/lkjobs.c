/*
 * lkjobs.c: closing the LiveKit room when a session ends for any reason
 * other than LiveKit's own room_finished (protocol.md section 5).
 *
 * DESIGN: the ending transaction queues a coach_livekit_close row (store);
 * this file claims due rows (FOR UPDATE SKIP LOCKED with a lease, so a
 * crashed node's job is taken again), and makes one RoomService/DeleteRoom
 * call per claim over Twirp with a second instance of the ai module's
 * libcurl client (a thread of its own; the loop never waits on HTTP). Each
 * call carries a fresh 10-minute server token with the roomAdmin grant
 * for that room. The retry schedule is the AI job's (AI_MAX_ATTEMPTS,
 * exponential backoff, Retry-After); LiveKit's 404 (the room is gone
 * already) counts as done. Without LIVEKIT_URL, or without the API key and
 * secret, nothing is queued and nothing runs.
 */
#include <stdlib.h>
#include <string.h>

#include "ai.h"
#include "gw_int.h"
#include "livekit.h"

#define POLL_IDLE_MS   30000
#define CLAIM_MAX      8
#define CALL_TIMEOUT   10000
#define LEASE_MS       (CALL_TIMEOUT + 30000)
#define ADMIN_TTL_SEC  600

static void schedule_poll(struct gw_server *srv, int64_t in_ms)
{
    int64_t at = gw_now_ms() + (in_ms > 0 ? in_ms : 0);
    if (at < srv->lk_next_poll_ms || srv->lk_next_poll_ms == 0) {
        srv->lk_next_poll_ms = at;
    }
}

void gw_lk_kick(struct gw_server *srv)
{
    if (srv->lk != NULL) {
        schedule_poll(srv, 0);
    }
}

/* ---- results ------------------------------------------------------------------------------ */

static void result_done(struct store_req *req)
{
    if (req->rc != 0) {
        gw_log(GW_LOG_WARN, "livekit.close_not_recorded", "appointment=%s rc=%d",
               req->u.lk_result.appointment_id, req->rc);
    }
    store_req_free(req);
}

static void record(struct gw_server *srv, const char *appointment_id, int attempt,
                   enum store_lk_close_outcome outcome, int64_t next_unix_ms, const char *error)
{
    struct store_req *req = store_req_new(STORE_OP_LK_CLOSE_RESULT, result_done, srv);
    if (req == NULL) {
        return; /* the lease expires and the job is claimed again */
    }
    struct store_lk_close_result *r = &req->u.lk_result;
    snprintf(r->appointment_id, sizeof(r->appointment_id), "%s", appointment_id);
    r->attempt = attempt;
    r->outcome = outcome;
    r->next_unix_ms = next_unix_ms;
    snprintf(r->error, sizeof(r->error), "%s", error != NULL ? error : "");
    if (store_submit(srv->store, req, gw_now_ms()) != 0) {
        store_req_free(req);
    }
}

static void call_done(struct ai_job *job)
{
    struct gw_server *srv = job->arg;
    srv->lk_running--;
    const char *what = "failed";
    if (job->decision == AI_DONE_OK || job->http_status == 404) {
        what = "done";
        record(srv, job->id, job->attempt, STORE_LK_CLOSE_DONE, 0, NULL);
    } else if (job->decision == AI_RETRY) {
        what = "retry";
        record(srv, job->id, job->attempt, STORE_LK_CLOSE_RETRY, job->next_at_unix_ms,
               job->err.msg);
        schedule_poll(srv, job->next_at_unix_ms - gw_unix_ms());
    } else if (job->decision == AI_CANCELLED) {
        what = "cancelled"; /* shutting down: the lease brings it back */
    } else {
        record(srv, job->id, job->attempt, STORE_LK_CLOSE_FAILED, 0, job->err.msg);
    }
    gw_log(strcmp(what, "done") == 0 ? GW_LOG_INFO : GW_LOG_WARN, "livekit.close",
           "appointment=%s attempt=%d outcome=%s http=%ld", job->id, job->attempt, what,
           job->http_status);
    ai_job_free(job);
}

/* ---- claims ------------------------------------------------------------------------------- */

static void start_call(struct gw_server *srv, const struct store_lk_close_job *sj)
{
    const struct gw_config *cfg = srv->cfg;
    struct ai_job *job = ai_job_new(call_done, srv);
    json_t *body = json_pack("{s:s}", "room", sj->room_id);
    if (job != NULL && body != NULL) {
        job->body = json_dumps(body, JSON_COMPACT);
        job->bearer = gw_lk_admin_token(cfg->livekit_api_key, cfg->livekit_api_secret,
                                        sj->room_id, gw_unix_ms() / 1000, ADMIN_TTL_SEC);
    }
    json_decref(body);
    if (job == NULL || job->body == NULL || job->bearer == NULL) {
        ai_job_free(job);
        return; /* out of memory: the lease expires and the job is claimed again */
    }
    snprintf(job->id, sizeof(job->id), "%s", sj->appointment_id);
    job->attempt = sj->attempt;
    job->plain = 1;
    if (ai_submit(srv->lk, job) != 0) {
        ai_job_free(job);
        record(srv, sj->appointment_id, sj->attempt, STORE_LK_CLOSE_RETRY, gw_unix_ms() + 5000,
               "the HTTP client was busy");
        return;
    }
    srv->lk_running++;
}

static void claim_done(struct store_req *req)
{
    struct gw_server *srv = req->arg;
    const struct store_lk_close_claim *c = &req->u.lk_claim;
    srv->lk_claiming = false;
    srv->lk_next_poll_ms = 0;
    if (req->rc == 0) {
        for (size_t i = 0; i < c->n_jobs; i++) {
            start_call(srv, &c->jobs[i]);
        }
        int64_t wait = POLL_IDLE_MS;
        if (c->n_jobs == CLAIM_MAX) {
            wait = 0;
        } else if (c->next_due_unix_ms > 0 && c->next_due_unix_ms - gw_unix_ms() < wait) {
            wait = c->next_due_unix_ms - gw_unix_ms();
        }
        schedule_poll(srv, wait);
    } else {
        schedule_poll(srv, POLL_IDLE_MS / 6);
    }
    store_req_free(req);
}

void gw_lk_poll(struct gw_server *srv)
{
    if (srv->lk == NULL || !srv->node.alive || srv->lk_claiming || srv->draining ||
        srv->lk_next_poll_ms == 0 ||
        gw_now_ms() < srv->lk_next_poll_ms || srv->lk_running >= 2 * CLAIM_MAX) {
        return;
    }
    struct store_req *req = store_req_new(STORE_OP_LK_CLOSE_CLAIM, claim_done, srv);
    if (req == NULL) {
        return;
    }
    req->u.lk_claim.max_jobs = CLAIM_MAX;
    req->u.lk_claim.lease_ms = LEASE_MS;
    snprintf(req->u.lk_claim.node_id, sizeof(req->u.lk_claim.node_id), "%s", srv->cfg->node_id);
    if (store_submit(srv->store, req, gw_now_ms()) != 0) {
        store_req_free(req);
        return;
    }
    srv->lk_claiming = true;
}

/* ---- the client ----------------------------------------------------------------------------- */

static void lk_log(void *arg, int level, const char *event, const char *msg)
{
    (void)arg;
    gw_log((enum gw_log_level)level, event, "client=livekit msg=\"%s\"", msg != NULL ? msg : "");
}

static void lk_wake(void *arg)
{
    lws_cancel_service(arg);
}

int gw_lk_open(struct gw_server *srv, struct gw_err *err)
{
    const struct gw_config *cfg = srv->cfg;
    if (cfg->livekit_url == NULL || cfg->livekit_api_key == NULL ||
        cfg->livekit_api_secret == NULL) {
        return 0;
    }
    char url[1024];
    if (gw_lk_twirp_url(cfg->livekit_url, "DeleteRoom", url, sizeof(url)) != 0) {
        return gw_err_set(err, -22, "LIVEKIT_URL: a ws://, wss://, http:// or https:// URL needed");
    }
    struct ai_cfg acfg = {
        .url = url,
        .timeout_ms = CALL_TIMEOUT,
        .policy = {.max_attempts = cfg->ai_max_attempts},
        .queue_cap = 64,
        .wake = lk_wake,
        .wake_arg = srv->ctx,
        .log = lk_log,
    };
    struct ai_err aerr = {0};
    int rc = ai_client_open(&acfg, &srv->lk, &aerr);
    if (rc != 0) {
        return gw_err_set(err, rc, "LiveKit client: %s", aerr.msg);
    }
    srv->lk_next_poll_ms = gw_now_ms(); /* jobs left from before a restart */
    return 0;
}

void gw_lk_close(struct gw_server *srv)
{
    if (srv->lk != NULL) {
        ai_client_close(srv->lk);
        srv->lk = NULL;
    }
}
