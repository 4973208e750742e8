/*
 * maint.c: the periodic database cleanup (protocol.md section 7): expired
 * user sessions and spent auth codes, deleted by STORE_OP_MAINTENANCE.
 *
 * DESIGN: driven by the housekeeping tick on the loop thread. The first
 * run comes min(MAINTENANCE_INTERVAL_SEC, 60 s) after start, so that a
 * node restarted more often than the interval (deploys) still cleans up;
 * then every MAINTENANCE_INTERVAL_SEC, counted from the end of the last
 * run. At most one run is in flight per node (next_maint_ms is
 * MAINT_IN_FLIGHT meanwhile); across nodes the store's advisory lock lets
 * one at a time do the work and the others skip. A full store queue is
 * tried again on the next tick; a failed run after at most 60 s. Nothing
 * new starts while draining.
 */
#include <inttypes.h>

#include "gw_int.h"

#define MAINT_FIRST_MAX_MS 60000
#define MAINT_IN_FLIGHT    INT64_MAX

static int64_t interval_ms(const struct gw_server *srv)
{
    return (int64_t)srv->cfg->maintenance_interval_sec * 1000;
}

static int64_t short_delay_ms(const struct gw_server *srv)
{
    int64_t iv = interval_ms(srv);
    return iv < MAINT_FIRST_MAX_MS ? iv : MAINT_FIRST_MAX_MS;
}

static void maint_done(struct store_req *req)
{
    struct gw_server *srv = req->arg;
    const struct store_maintenance *m = &req->u.maint;
    int64_t next_in_ms = interval_ms(srv);
    if (req->rc != 0) {
        gw_log(GW_LOG_WARN, "maint.failed", "rc=%d err=%s", req->rc, req->err.msg);
        next_in_ms = short_delay_ms(srv);
    } else if (m->skipped_locked) {
        gw_log(GW_LOG_INFO, "maint.skipped", "reason=locked_by_another_node");
    } else if (m->sessions_deleted > 0 || m->codes_deleted > 0 || m->events_deleted > 0) {
        gw_log(GW_LOG_NOTICE, "maint.deleted",
               "sessions=%" PRId64 " auth_codes=%" PRId64 " livekit_events=%" PRId64,
               m->sessions_deleted, m->codes_deleted, m->events_deleted);
    } else {
        gw_log(GW_LOG_DEBUG, "maint.nothing", NULL);
    }
    if (req->rc == 0 && !m->skipped_locked) {
        srv->stats.maint_runs++;
        srv->stats.maint_deleted[0] += (uint64_t)m->sessions_deleted;
        srv->stats.maint_deleted[1] += (uint64_t)m->codes_deleted;
        srv->stats.maint_deleted[2] += (uint64_t)m->events_deleted;
    } else if (req->rc == 0) {
        srv->stats.maint_skipped++;
    } else {
        srv->stats.maint_failed++;
    }
    srv->next_maint_ms = gw_now_ms() + next_in_ms;
    store_req_free(req);
}

void gw_maint_tick(struct gw_server *srv)
{
    int64_t now_ms = gw_now_ms();
    if (srv->draining || srv->next_maint_ms == MAINT_IN_FLIGHT) {
        return;
    }
    if (srv->next_maint_ms == 0) {
        srv->next_maint_ms = now_ms + short_delay_ms(srv);
        return;
    }
    if (now_ms < srv->next_maint_ms) {
        return;
    }
    struct store_req *req = store_req_new(STORE_OP_MAINTENANCE, maint_done, srv);
    if (req == NULL) {
        return; /* out of memory: try on the next tick */
    }
    int rc = store_submit(srv->store, req, now_ms);
    if (rc != 0) {
        store_req_free(req); /* STORE_E_FULL: the next tick tries again */
        return;
    }
    srv->next_maint_ms = MAINT_IN_FLIGHT;
}
