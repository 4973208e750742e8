// bench/peer-node/db.mjs: what the two reference peers share: the command
// line, the `pg` pool, and every SQL statement (authenticate a session
// token, load a room, create the caller's Session row, read history, store
// a chat in one transaction, end a session, rate it). server.mjs (npm ws)
// and server-sio.mjs (npm socket.io) differ only in how they talk to the
// client. The rows written are the gateway's, so all of them run against
// the same database, fixtures and load tool.
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export function arg(name, env, def) {
  const i = process.argv.indexOf(name);
  if (i > 0 && process.argv[i + 1]) return process.argv[i + 1];
  return process.env[env] ?? def;
}

// --listen HOST:PORT and --database-url (or LISTEN, DATABASE_URL); exits 2
// without a database.
export function options(who) {
  const listen = arg('--listen', 'LISTEN', '127.0.0.1:8090');
  const databaseUrl = arg('--database-url', 'DATABASE_URL', '');
  if (!databaseUrl) {
    console.error(`${who}: DATABASE_URL (or --database-url) is required`);
    process.exit(2);
  }
  const at = listen.lastIndexOf(':');
  return { listen, host: listen.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(listen.slice(at + 1)), databaseUrl };
}

// libpq keyword/value strings ("host=/tmp port=5432 dbname=x") as pg config.
function pgConfig(url) {
  if (/^postgres(ql)?:\/\//.test(url)) return { connectionString: url };
  const cfg = {};
  for (const m of url.matchAll(/(\w+)=('(?:[^'\\]|\\.)*'|\S+)/g)) {
    cfg[m[1] === 'dbname' ? 'database' : m[1]] = m[2].replace(/^'|'$/g, '');
  }
  if (cfg.port) cfg.port = Number(cfg.port);
  return cfg;
}

export function openPool(databaseUrl) {
  return new pg.Pool({ ...pgConfig(databaseUrl), max: Number(process.env.POOL_MAX ?? 10) });
}

export const cuid = () => `c${Date.now().toString(36)}${randomBytes(8).toString('hex')}`.slice(0, 25);
export const iso = (d) => new Date(d).toISOString();

// The user of an active session token, or null.
export async function authenticate(pool, token) {
  const { rows } = await pool.query(
    `SELECT u.id, u."displayName", u.role FROM "UserSession" s
       JOIN "User" u ON u."skoolUserId" = s."skoolUserId"
      WHERE s."sessionId" = $1 AND s."isActive" AND s."expiresAt" > (now() AT TIME ZONE 'UTC')`, [token]);
  return rows[0] ?? null;
}

// The appointment behind roomId with its names and the room's last seq, or null.
export async function findAppointment(pool, roomId) {
  const { rows } = await pool.query(
    `SELECT a.id, a."scheduledFor", a."durationMin", a.status, a."coachId", co."displayName" AS coach,
            a."clientId", cl."displayName" AS client, coalesce(r.last_seq, 0) AS last_seq
       FROM "Appointment" a JOIN "User" co ON co.id = a."coachId" JOIN "User" cl ON cl.id = a."clientId"
       LEFT JOIN coach_room r ON r.appointment_id = a.id WHERE a."roomId" = $1`, [roomId]);
  return rows[0] ?? null;
}

export function roleIn(appt, user) {
  return user.id === appt.coachId ? 'coach' : user.id === appt.clientId ? 'client' : null;
}

// The caller's Session row, created on the first join. room: {roomId, appt}.
export async function sessionRow(pool, room, user) {
  await pool.query(`INSERT INTO coach_room (appointment_id) VALUES ($1) ON CONFLICT DO NOTHING`, [room.appt.id]);
  const { rows } = await pool.query(
    `INSERT INTO "Session" (id, "roomId", "appointmentId", "userId", "durationMinutes", status)
     VALUES ($1, $2, $3, $4, $5, 'active')
     ON CONFLICT ("appointmentId", "userId") DO UPDATE SET status = "Session".status
     RETURNING id, status, "startedAt", "endedAt"`,
    [cuid(), room.roomId, room.appt.id, user.id, room.appt.durationMin > 0 ? room.appt.durationMin : 20]);
  return rows[0];
}

export function messageJson(room, r) {
  const role = r.userId === room.appt.coachId ? 'coach' : 'client';
  return {
    type: 'message', room: room.roomId, seq: Number(r.seq), messageId: r.message_id, clientMsgId: r.client_msg_id,
    from: { userId: r.userId, displayName: r.displayName, role }, text: r.content, createdAt: iso(r.createdAt),
  };
}

// The messages after since (at most 1000), or the last 50.
export async function history(pool, room, since) {
  const cols = `SELECT cm.seq, cm.message_id, cm.client_msg_id, m."userId", u."displayName", m.content, m."createdAt"
                  FROM coach_message cm JOIN "Message" m ON m.id = cm.message_id JOIN "User" u ON u.id = m."userId"`;
  const { rows } = since !== undefined
    ? await pool.query(`${cols} WHERE cm.appointment_id = $1 AND cm.seq > $2 ORDER BY cm.seq LIMIT 1000`, [room.appt.id, since])
    : await pool.query(`SELECT * FROM (${cols} WHERE cm.appointment_id = $1 ORDER BY cm.seq DESC LIMIT 50) h ORDER BY seq`, [room.appt.id]);
  return rows.map((r) => messageJson(room, r));
}

// The body of `joined` (without type and id), from the caller's Session row,
// the history and the members.
export function joinedJson(room, session, hist, members) {
  const a = room.appt;
  return {
    room: room.roomId,
    appointment: { id: a.id, scheduledFor: iso(a.scheduledFor), durationMin: a.durationMin,
      coach: { id: a.coachId, displayName: a.coach }, client: { id: a.clientId, displayName: a.client } },
    session: { id: session.id, status: session.status, startedAt: iso(session.startedAt), endsAt: null,
      endedAt: session.endedAt ? iso(session.endedAt) : null },
    members, lastSeq: room.lastSeq, history: hist.map(({ type, room: _r, ...m }) => m),
    truncated: hist.length === 1000,
  };
}

// chat's text and clientMsgId checks: null when valid, else the error message.
export function chatInvalid(text, cmid) {
  if (!text || Buffer.byteLength(text) > 4000 || typeof cmid !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(cmid)) {
    return 'text 1..4000 bytes and clientMsgId required';
  }
  return null;
}

// One transaction per message, as an ORM-style backend does it.
export async function storeChat(pool, room, user, text, clientMsgId) {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(`INSERT INTO coach_room (appointment_id) VALUES ($1) ON CONFLICT DO NOTHING`, [room.appt.id]);
    const { rows: [r] } = await client.query(`SELECT last_seq FROM coach_room WHERE appointment_id = $1 FOR UPDATE`, [room.appt.id]);
    const dup = await client.query(
      `SELECT cm.seq, cm.message_id, m."createdAt" FROM coach_message cm JOIN "Message" m ON m.id = cm.message_id
        WHERE cm.appointment_id = $1 AND cm.user_id = $2 AND cm.client_msg_id = $3`, [room.appt.id, user.id, clientMsgId]);
    if (dup.rows.length > 0) {
      await client.query('ROLLBACK');
      return { duplicate: true, seq: Number(dup.rows[0].seq), messageId: dup.rows[0].message_id, createdAt: dup.rows[0].createdAt };
    }
    const seq = Number(r.last_seq) + 1;
    const id = cuid();
    const { rows: [m] } = await client.query(
      `INSERT INTO "Message" (id, "sessionId", "userId", sender, content)
       VALUES ($1, (SELECT id FROM "Session" WHERE "appointmentId" = $2 AND "userId" = $3), $3, $4, $5)
       RETURNING "createdAt"`, [id, room.appt.id, user.id, user.id === room.appt.coachId ? 'coach' : 'client', text]);
    await client.query(`INSERT INTO coach_message (message_id, appointment_id, seq, user_id, client_msg_id) VALUES ($1, $2, $3, $4, $5)`,
      [id, room.appt.id, seq, user.id, clientMsgId]);
    await client.query(`UPDATE coach_room SET last_seq = $2 WHERE appointment_id = $1`, [room.appt.id, seq]);
    await client.query('COMMIT');
    return { duplicate: false, seq, messageId: id, createdAt: m.createdAt };
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw e;
  } finally {
    client.release();
  }
}

// Ends the appointment's sessions (by the coach); returns endedAt.
export async function endSession(pool, room) {
  const { rows: [e] } = await pool.query(
    `WITH s AS (UPDATE "Session" SET status = 'completed', "endedAt" = coalesce("endedAt", now() AT TIME ZONE 'UTC')
                 WHERE "appointmentId" = $1 RETURNING "endedAt")
     , a AS (UPDATE "Appointment" SET status = 'completed' WHERE id = $1)
     SELECT max("endedAt") AS ended FROM s`, [room.appt.id]);
  room.appt.status = 'completed';
  return iso(e.ended ?? Date.now());
}

// The client's rating: the rated Session's id, null when the session has
// not ended; throws pg's 23505 when already rated.
export async function rateSession(pool, room, user, msg) {
  const { rows: [s] } = await pool.query(
    `INSERT INTO "SessionRating" (id, "sessionId", rating, comment, "tipAmount")
     SELECT $1, id, $3, $4, $5 FROM "Session" WHERE "appointmentId" = $2 AND "userId" = $6 AND status = 'completed'
     RETURNING "sessionId"`,
    [cuid(), room.appt.id, msg.rating, msg.comment ?? null, msg.tip ?? null, user.id]);
  return s ? s.sessionId : null;
}
