/*
 * aijobs.c: the durable AI summary jobs, driven from the loop thread.
 *
 * DESIGN: the database holds the jobs (coach_ai_job) and their retry
 * schedule; the ai client makes one HTTP attempt per submission. The loop
 * claims due jobs through the store (FOR UPDATE SKIP LOCKED, with a lease
 * longer than AI_TIMEOUT_MS, so a job left running by a crashed process is
 * taken again), builds each prompt, submits it, and records the outcome
 * (done, retry at a time, failed) through the store. A done summary goes
 * to the coach's connections as a `summary` event. Polling: when an ending
 * queued a job (gw_ai_kick), when the earliest due time comes, and every
 * 30 s regardless. Without AI_SUMMARY_URL nothing runs: endings record
 * their jobs as skipped.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ai.h"
#include "gw_int.h"

#define POLL_IDLE_MS   30000
#define CLAIM_MAX      4
#define LEASE_SLACK_MS 30000

static void schedule_poll(struct gw_server *srv, int64_t in_ms)
{
    int64_t at = gw_now_ms() + (in_ms > 0 ? in_ms : 0);
    if (at < srv->ai_next_poll_ms || srv->ai_next_poll_ms == 0) {
        srv->ai_next_poll_ms = at;
    }
}

void gw_ai_kick(struct gw_server *srv)
{
    if (srv->ai != NULL) {
        schedule_poll(srv, 0);
    }
}

/* ---- results ------------------------------------------------------------------------------ */

static void send_summary(struct gw_server *srv, const struct store_ai_result *r, const char *text)
{
    struct gw_room *g = gw_map_get(srv->rooms, r->room_id, strlen(r->room_id));
    if (g == NULL || g->core == NULL) {
        return; /* nobody here: GET /api/sessions/{id} shows it */
    }
    struct room_fx all = {.room = g->core, .to = {.kind = ROOM_TO_MEMBERS}};
    struct room_conn *rcs[256];
    size_t n = room_fx_recipients(&all, rcs, 256);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "type", "summary", "room", g->room_id,
                          "sessionId", r->session_id, "text", text);
    struct gw_frame *f = o != NULL ? gw_frame_from_json(o) : NULL;
    json_decref(o);
    for (size_t i = 0; f != NULL && i < n && i < 256; i++) {
        if (room_conn_role(g->core, rcs[i]) == ROOM_ROLE_COACH) {
            gw_conn_send(rcs[i]->user, f);
        }
    }
    gw_frame_unref(f);
}

static void result_done(struct store_req *req)
{
    struct gw_server *srv = req->arg;
    struct store_ai_result *r = &req->u.ai_result;
    if (req->rc != 0) {
        gw_log(GW_LOG_WARN, "ai.result_not_recorded", "job=%s rc=%d", r->job_id, req->rc);
    } else if (r->outcome == STORE_AI_DONE) {
        send_summary(srv, r, r->summary);
    }
    store_req_free(req);
}

static void record(struct gw_server *srv, const char *job_id, int attempt,
                   enum store_ai_outcome outcome, char *summary_take, int64_t next_unix_ms,
                   const char *error)
{
    struct store_req *req = store_req_new(STORE_OP_AI_RESULT, result_done, srv);
    if (req == NULL) {
        free(summary_take);
        return; /* the lease expires and the job is claimed again */
    }
    struct store_ai_result *r = &req->u.ai_result;
    snprintf(r->job_id, sizeof(r->job_id), "%s", job_id);
    r->attempt = attempt;
    r->outcome = outcome;
    r->summary = summary_take;
    r->next_unix_ms = next_unix_ms;
    snprintf(r->error, sizeof(r->error), "%s", error != NULL ? error : "");
    if (store_submit(srv->store, req, gw_now_ms()) != 0) {
        store_req_free(req);
    }
}

static void attempt_done(struct ai_job *job)
{
    struct gw_server *srv = job->arg;
    srv->ai_running--;
    const char *what = "failed";
    switch (job->decision) {
    case AI_DONE_OK:
        what = "done";
        record(srv, job->id, job->attempt, STORE_AI_DONE, job->summary, 0, NULL);
        job->summary = NULL;
        break;
    case AI_RETRY:
        what = "retry";
        record(srv, job->id, job->attempt, STORE_AI_RETRY, NULL, job->next_at_unix_ms,
               job->err.msg);
        schedule_poll(srv, job->next_at_unix_ms - gw_unix_ms());
        break;
    case AI_CANCELLED:
        what = "cancelled"; /* shutting down: the lease brings it back */
        break;
    case AI_FAIL_PERMANENT:
    case AI_FAIL_EXHAUSTED:
        record(srv, job->id, job->attempt, STORE_AI_FAILED, NULL, 0, job->err.msg);
        break;
    }
    gw_log(job->decision == AI_DONE_OK ? GW_LOG_INFO : GW_LOG_WARN, "ai.attempt",
           "job=%s attempt=%d outcome=%s http=%ld", job->id, job->attempt, what, job->http_status);
    ai_job_free(job);
}

/* ---- claims ------------------------------------------------------------------------------- */

static void start_attempt(struct gw_server *srv, const struct store_ai_job *sj)
{
    struct ai_context ctx = {
        .client_name = sj->client_name,
        .coach_name = sj->coach_name,
        .client_facts = sj->client_facts,
        .n_client_facts = sj->n_client_facts,
        .challenges = sj->challenges,
        .n_challenges = sj->n_challenges,
        .intake_goals = sj->goals,
        .intake_symptoms = sj->symptoms,
        .last_summary = sj->last_summary,
    };
    char *body = NULL;
    int rc = ai_prompt_build(&ctx, sj->transcript != NULL ? sj->transcript : "", srv->cfg->ai_model,
                             &body);
    if (rc != 0) {
        record(srv, sj->job_id, sj->attempt, STORE_AI_FAILED, NULL, 0, ai_strerror(rc));
        return;
    }
    struct ai_job *job = ai_job_new(attempt_done, srv);
    if (job == NULL) {
        free(body);
        return; /* the lease expires and the job is claimed again */
    }
    snprintf(job->id, sizeof(job->id), "%s", sj->job_id);
    job->body = body;
    job->attempt = sj->attempt;
    if (ai_submit(srv->ai, job) != 0) {
        ai_job_free(job);
        record(srv, sj->job_id, sj->attempt, STORE_AI_RETRY, NULL, gw_unix_ms() + 5000,
               "the AI client was busy");
        return;
    }
    srv->ai_running++;
}

static void claim_done(struct store_req *req)
{
    struct gw_server *srv = req->arg;
    const struct store_ai_claim *c = &req->u.ai_claim;
    srv->ai_claiming = false;
    if (req->rc == 0) {
        for (size_t i = 0; i < c->n_jobs; i++) {
            start_attempt(srv, &c->jobs[i]);
        }
        int64_t until_due = c->next_due_unix_ms > 0 ? c->next_due_unix_ms - gw_unix_ms() : 0;
        srv->ai_next_poll_ms = 0;
        schedule_poll(srv, c->n_jobs == CLAIM_MAX ? 0
                           : c->next_due_unix_ms > 0
                               ? (until_due < POLL_IDLE_MS ? until_due : POLL_IDLE_MS)
                               : POLL_IDLE_MS);
    } else {
        srv->ai_next_poll_ms = 0;
        schedule_poll(srv, POLL_IDLE_MS / 6);
    }
    store_req_free(req);
}

void gw_ai_poll(struct gw_server *srv)
{
    /* Jobs are claimed under this node's name once its row exists. */
    if (srv->ai == NULL || !srv->node.alive || srv->ai_claiming || srv->draining ||
        srv->ai_next_poll_ms == 0 ||
        gw_now_ms() < srv->ai_next_poll_ms || srv->ai_running >= 2 * CLAIM_MAX) {
        return;
    }
    struct store_req *req = store_req_new(STORE_OP_AI_CLAIM, claim_done, srv);
    if (req == NULL) {
        return;
    }
    req->u.ai_claim.max_jobs = CLAIM_MAX;
    req->u.ai_claim.lease_ms = srv->cfg->ai_timeout_ms + LEASE_SLACK_MS;
    snprintf(req->u.ai_claim.node_id, sizeof(req->u.ai_claim.node_id), "%s", srv->cfg->node_id);
    if (store_submit(srv->store, req, gw_now_ms()) != 0) {
        store_req_free(req);
        return;
    }
    srv->ai_claiming = true;
}

/* ---- the client ----------------------------------------------------------------------------- */

static void ai_log(void *arg, int level, const char *event, const char *msg)
{
    (void)arg;
    gw_log((enum gw_log_level)level, event, "msg=\"%s\"", msg != NULL ? msg : "");
}

static void ai_wake(void *arg)
{
    lws_cancel_service(arg);
}

int gw_ai_open(struct gw_server *srv, struct gw_err *err)
{
    const struct gw_config *cfg = srv->cfg;
    if (cfg->ai_summary_url == NULL) {
        return 0;
    }
    struct ai_cfg acfg = {
        .url = cfg->ai_summary_url,
        .api_key = cfg->ai_api_key,
        .timeout_ms = cfg->ai_timeout_ms,
        .policy = {.max_attempts = cfg->ai_max_attempts},
        .queue_cap = 64,
        .wake = ai_wake,
        .wake_arg = srv->ctx,
        .log = ai_log,
    };
    struct ai_err aerr = {0};
    int rc = ai_client_open(&acfg, &srv->ai, &aerr);
    if (rc != 0) {
        return gw_err_set(err, rc, "AI client: %s", aerr.msg);
    }
    srv->ai_next_poll_ms = gw_now_ms(); /* jobs left from before a restart */
    return 0;
}

void gw_ai_close(struct gw_server *srv)
{
    if (srv->ai != NULL) {
        ai_client_close(srv->ai);
        srv->ai = NULL;
    }
}
