-- 005: coach_ai_job, the durable queue of AI summary jobs.
--
-- One row per appointment whose session ended with at least one message:
-- 'pending' when the gateway has an AI endpoint, 'skipped' when it has
-- none. A worker claims due rows (status 'pending' or 'retry' with
-- next_at <= now(), or 'running' with an expired lease: its worker
-- crashed) with FOR UPDATE SKIP LOCKED, marks them 'running' with a lease,
-- and records the outcome: 'done', 'retry' (due again at next_at) or
-- 'failed'. The unique appointment_id makes ending a session idempotent:
-- a second end cannot queue a second job. Deleting the appointment
-- deletes its job.
--
-- Times are TIMESTAMPTZ (the gateway's own table): absolute instants,
-- compared with now().
--
-- Additive only: a new table, nothing of the application's is changed.
-- Runs in one transaction; IF NOT EXISTS keeps it idempotent.

CREATE TABLE IF NOT EXISTS coach_ai_job (
    id TEXT PRIMARY KEY,
    appointment_id TEXT NOT NULL UNIQUE
        REFERENCES "Appointment"("id") ON DELETE CASCADE ON UPDATE CASCADE,
    status TEXT NOT NULL
        CHECK (status IN ('pending', 'running', 'retry', 'done', 'failed', 'skipped')),
    attempts INT NOT NULL DEFAULT 0,
    next_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_until TIMESTAMPTZ,
    reason TEXT,
    last_error TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The claim's look-up: due jobs by status, oldest first.
CREATE INDEX IF NOT EXISTS coach_ai_job_status_next_at_idx ON coach_ai_job (status, next_at);
