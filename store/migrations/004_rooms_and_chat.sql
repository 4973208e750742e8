-- 004: the gateway's own tables for live rooms and durable chat.
--
-- coach_room: one row per appointment that has had a room; last_seq is the
-- room's newest message seq. Writers of a room take this row's lock
-- (SELECT ... FOR UPDATE) before they assign seqs, so seqs are contiguous
-- from 1 and follow commit order, across gateway nodes too.
--
-- coach_message: the seq and the idempotency key (user, clientMsgId) of each
-- "Message" row the gateway stores; the "Message" row itself is the message
-- (id, "sessionId" = the sender's Session row, "userId", sender, content,
-- "createdAt"). Both uniques are enforced here, by the database. A deleted
-- "Message" row takes its coach_message row with it.
--
-- Additive only: new tables, nothing of the application's is changed.
-- Runs in one transaction; IF NOT EXISTS keeps it idempotent.

CREATE TABLE IF NOT EXISTS coach_room (
    appointment_id TEXT PRIMARY KEY
        REFERENCES "Appointment"("id") ON DELETE CASCADE ON UPDATE CASCADE,
    last_seq BIGINT NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS coach_message (
    message_id TEXT PRIMARY KEY
        REFERENCES "Message"("id") ON DELETE CASCADE ON UPDATE CASCADE,
    appointment_id TEXT NOT NULL
        REFERENCES coach_room(appointment_id) ON DELETE CASCADE ON UPDATE CASCADE,
    seq BIGINT NOT NULL CHECK (seq > 0),
    user_id TEXT NOT NULL,
    client_msg_id TEXT NOT NULL,
    CONSTRAINT coach_message_appointment_id_seq_key UNIQUE (appointment_id, seq),
    CONSTRAINT coach_message_appointment_id_user_id_client_msg_id_key
        UNIQUE (appointment_id, user_id, client_msg_id)
);
