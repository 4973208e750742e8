-- 006: what the gateway keeps about LiveKit (protocol.md section 5).
--
-- coach_livekit_event: every webhook event id accepted, stored in the same
--   transaction as the event's effects, so a redelivery (same id) changes
--   nothing. Rows older than 7 days are deleted by the periodic cleanup
--   (LiveKit retries a delivery for minutes, never days).
-- coach_livekit_room: the latest LiveKit room instance (room.sid) seen for
--   each roomId, by the instance's creation time; a room_finished of any
--   other instance is stale.
-- coach_livekit_participant: the LiveKit participants (participant.sid)
--   present in a room, by user: `media joined` goes out for a user's first
--   one, `media left` when the last one is gone.
-- coach_livekit_close: the durable jobs that close a LiveKit room
--   (RoomService/DeleteRoom) when a session ends for a reason other than
--   livekit; claimed like coach_ai_job (FOR UPDATE SKIP LOCKED, leases).
--
-- Additive only: new tables, nothing of the application's is changed.
-- Runs in one transaction; IF NOT EXISTS keeps it idempotent.

CREATE TABLE IF NOT EXISTS coach_livekit_event (
    id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    room_id TEXT NOT NULL DEFAULT '',
    received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS coach_livekit_event_received_at_idx
    ON coach_livekit_event (received_at);

CREATE TABLE IF NOT EXISTS coach_livekit_room (
    room_id TEXT PRIMARY KEY,
    room_sid TEXT NOT NULL,
    created_ms BIGINT NOT NULL DEFAULT 0,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS coach_livekit_participant (
    participant_sid TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    room_sid TEXT NOT NULL,
    user_id TEXT NOT NULL,
    joined_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS coach_livekit_participant_room_user_idx
    ON coach_livekit_participant (room_id, user_id);

CREATE TABLE IF NOT EXISTS coach_livekit_close (
    appointment_id TEXT PRIMARY KEY
        REFERENCES "Appointment"("id") ON DELETE CASCADE ON UPDATE CASCADE,
    room_id TEXT NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('pending', 'running', 'retry', 'done', 'failed')),
    attempts INT NOT NULL DEFAULT 0,
    next_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_until TIMESTAMPTZ,
    last_error TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS coach_livekit_close_status_next_at_idx
    ON coach_livekit_close (status, next_at);
