-- 007: several gateway nodes on one database (docs/operations.md).
--
-- coach_node: one row per running gateway node (NODE_ID), its heartbeat
--   renewed every NODE_HEARTBEAT_SEC; a row whose expires_at has passed is
--   a dead node: the next heartbeat of any node deletes it with its
--   presence rows, and tells the rooms concerned.
-- coach_presence: who is connected to which room on which node (one row
--   per user, room and node while the user has a connection there). The
--   other nodes read it to show members connected elsewhere and to count
--   participants for the idle end.
-- coach_room_lease: the one node that drives a running room's clock
--   (warnings, the end by time or idleness) until expires_at; renewed by
--   its holder, taken over by another node once it has expired.
-- coach_room.end_reason: why the session ended, so every node tells its
--   members the same reason.
-- coach_ai_job.claimed_by, coach_livekit_close.claimed_by: see below.
--
-- Additive only: new tables and a nullable column, nothing of the
-- application's is changed. Runs in one transaction; IF NOT EXISTS keeps
-- it idempotent.

CREATE TABLE IF NOT EXISTS coach_node (
    node_id TEXT PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS coach_presence (
    appointment_id TEXT NOT NULL
        REFERENCES "Appointment"("id") ON DELETE CASCADE ON UPDATE CASCADE,
    node_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('coach', 'client', 'observer')),
    since TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (appointment_id, node_id, user_id)
);
CREATE INDEX IF NOT EXISTS coach_presence_node_id_idx ON coach_presence (node_id);

CREATE TABLE IF NOT EXISTS coach_room_lease (
    appointment_id TEXT PRIMARY KEY
        REFERENCES "Appointment"("id") ON DELETE CASCADE ON UPDATE CASCADE,
    node_id TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS coach_room_lease_node_id_idx ON coach_room_lease (node_id);

ALTER TABLE coach_room ADD COLUMN IF NOT EXISTS end_reason TEXT;

-- The node running a claimed job: when that node is dead (no live
-- coach_node row) the job is claimed again at once, not after its lease.
ALTER TABLE coach_ai_job ADD COLUMN IF NOT EXISTS claimed_by TEXT;
ALTER TABLE coach_livekit_close ADD COLUMN IF NOT EXISTS claimed_by TEXT;
