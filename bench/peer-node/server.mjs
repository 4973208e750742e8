// bench/peer-node/server.mjs: the reference peer for the benchmarks. The
// same protocol subset as coach-gateway (coachroom.v1: welcome, join with
// history and `since`, chat with ack and delivery to every member, typing,
// leave, ping, end, rate), written the way the platform's existing Node
// backend would write it: npm `ws` for the sockets, npm `pg` with a pool,
// one transaction per message (lock the room's row, INSERT the message and
// its seq, UPDATE the room), rooms in a Map. It writes the same rows as the
// gateway, so both run against the same database, fixtures and load tool.
// Not a product: no TLS, no Origin checks, no rate limits, no clock.
//
//   node server.mjs --listen 127.0.0.1:8090 --database-url <libpq URI or conninfo>
//   (or LISTEN / DATABASE_URL in the environment); POOL_MAX (default 10).
//   SIGTERM/SIGINT: close the sockets (1001) and the pool, exit 0.
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { WebSocketServer } from 'ws';

function arg(name, env, def) {
  const i = process.argv.indexOf(name);
  if (i > 0 && process.argv[i + 1]) return process.argv[i + 1];
  return process.env[env] ?? def;
}

const listen = arg('--listen', 'LISTEN', '127.0.0.1:8090');
const databaseUrl = arg('--database-url', 'DATABASE_URL', '');
if (!databaseUrl) {
  console.error('peer-node: DATABASE_URL (or --database-url) is required');
  process.exit(2);
}
const [host, portText] = [listen.slice(0, listen.lastIndexOf(':')), listen.slice(listen.lastIndexOf(':') + 1)];

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
const pool = new pg.Pool({ ...pgConfig(databaseUrl), max: Number(process.env.POOL_MAX ?? 10) });

const cuid = () => `c${Date.now().toString(36)}${randomBytes(8).toString('hex')}`.slice(0, 25);
const iso = (d) => new Date(d).toISOString();
const rooms = new Map(); // roomId -> { appt, conns: Set<ws>, lastSeq }

function send(ws, obj) {
  if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(obj));
}
function error(ws, code, message, id) {
  send(ws, { type: 'error', code, message, ...(id ? { id } : {}) });
}
function broadcast(room, obj, except) {
  const text = JSON.stringify(obj);
  for (const ws of room.conns) if (ws !== except && ws.readyState === ws.OPEN) ws.send(text);
}
function members(room) {
  const seen = new Map();
  for (const ws of room.conns) seen.set(ws.user.id, ws.user);
  return [...seen.values()].map((u) => ({ userId: u.id, displayName: u.displayName, role: u.role }));
}

async function authenticate(token) {
  const { rows } = await pool.query(
    `SELECT u.id, u."displayName", u.role FROM "UserSession" s
       JOIN "User" u ON u."skoolUserId" = s."skoolUserId"
      WHERE s."sessionId" = $1 AND s."isActive" AND s."expiresAt" > (now() AT TIME ZONE 'UTC')`, [token]);
  return rows[0] ?? null;
}

async function loadRoom(roomId) {
  let room = rooms.get(roomId);
  if (room) return room;
  const { rows } = await pool.query(
    `SELECT a.id, a."scheduledFor", a."durationMin", a.status, a."coachId", co."displayName" AS coach,
            a."clientId", cl."displayName" AS client, coalesce(r.last_seq, 0) AS last_seq
       FROM "Appointment" a JOIN "User" co ON co.id = a."coachId" JOIN "User" cl ON cl.id = a."clientId"
       LEFT JOIN coach_room r ON r.appointment_id = a.id WHERE a."roomId" = $1`, [roomId]);
  if (rows.length === 0) return null;
  room = rooms.get(roomId) ?? { roomId, appt: rows[0], conns: new Set(), lastSeq: Number(rows[0].last_seq) };
  rooms.set(roomId, room);
  return room;
}

async function sessionRow(room, user) {
  await pool.query(`INSERT INTO coach_room (appointment_id) VALUES ($1) ON CONFLICT DO NOTHING`, [room.appt.id]);
  const { rows } = await pool.query(
    `INSERT INTO "Session" (id, "roomId", "appointmentId", "userId", "durationMinutes", status)
     VALUES ($1, $2, $3, $4, $5, 'active')
     ON CONFLICT ("appointmentId", "userId") DO UPDATE SET status = "Session".status
     RETURNING id, status, "startedAt", "endedAt"`,
    [cuid(), room.roomId, room.appt.id, user.id, room.appt.durationMin > 0 ? room.appt.durationMin : 20]);
  return rows[0];
}

async function history(room, since) {
  const cols = `SELECT cm.seq, cm.message_id, cm.client_msg_id, m."userId", u."displayName", m.content, m."createdAt"
                  FROM coach_message cm JOIN "Message" m ON m.id = cm.message_id JOIN "User" u ON u.id = m."userId"`;
  const { rows } = since !== undefined
    ? await pool.query(`${cols} WHERE cm.appointment_id = $1 AND cm.seq > $2 ORDER BY cm.seq LIMIT 1000`, [room.appt.id, since])
    : await pool.query(`SELECT * FROM (${cols} WHERE cm.appointment_id = $1 ORDER BY cm.seq DESC LIMIT 50) h ORDER BY seq`, [room.appt.id]);
  return rows.map((r) => messageJson(room, r));
}

function messageJson(room, r) {
  const role = r.userId === room.appt.coachId ? 'coach' : 'client';
  return {
    type: 'message', room: room.roomId, seq: Number(r.seq), messageId: r.message_id, clientMsgId: r.client_msg_id,
    from: { userId: r.userId, displayName: r.displayName, role }, text: r.content, createdAt: iso(r.createdAt),
  };
}

async function onJoin(ws, msg) {
  const room = await loadRoom(String(msg.room ?? ''));
  if (!room) return error(ws, 'not_found', 'no such room', msg.id);
  const role = ws.user.id === room.appt.coachId ? 'coach' : ws.user.id === room.appt.clientId ? 'client' : null;
  if (!role) return error(ws, 'forbidden', 'not a member of this room', msg.id);
  if (room.appt.status === 'cancelled') return error(ws, 'closed', 'appointment cancelled', msg.id);
  const session = await sessionRow(room, ws.user);
  const hist = await history(room, Number.isInteger(msg.since) ? msg.since : undefined);
  room.conns.add(ws);
  ws.rooms.add(room);
  const a = room.appt;
  send(ws, {
    type: 'joined', room: room.roomId, ...(msg.id ? { id: msg.id } : {}),
    appointment: { id: a.id, scheduledFor: iso(a.scheduledFor), durationMin: a.durationMin,
      coach: { id: a.coachId, displayName: a.coach }, client: { id: a.clientId, displayName: a.client } },
    session: { id: session.id, status: session.status, startedAt: iso(session.startedAt), endsAt: null,
      endedAt: session.endedAt ? iso(session.endedAt) : null },
    members: members(room), lastSeq: room.lastSeq, history: hist.map(({ type, room: _r, ...m }) => m),
    truncated: hist.length === 1000,
  });
  broadcast(room, { type: 'presence', room: room.roomId, event: 'join',
    member: { userId: ws.user.id, displayName: ws.user.displayName, role }, members: members(room) }, ws);
}

// One transaction per message, as an ORM-style backend does it.
async function storeChat(room, user, text, clientMsgId) {
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

async function onChat(ws, msg) {
  const room = [...ws.rooms].find((r) => r.roomId === msg.room);
  if (!room) return error(ws, 'not_found', 'join the room first', msg.id);
  const text = typeof msg.text === 'string' ? msg.text.trim() : '';
  const cmid = msg.clientMsgId;
  if (!text || Buffer.byteLength(text) > 4000 || typeof cmid !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(cmid)) {
    return error(ws, 'bad_request', 'text 1..4000 bytes and clientMsgId required', msg.id);
  }
  const r = await storeChat(room, ws.user, text, cmid);
  send(ws, { type: 'ack', clientMsgId: cmid, seq: r.seq, messageId: r.messageId, createdAt: iso(r.createdAt), ...(msg.id ? { id: msg.id } : {}) });
  if (r.duplicate) return;
  if (r.seq > room.lastSeq) room.lastSeq = r.seq;
  broadcast(room, messageJson(room, { seq: r.seq, message_id: r.messageId, client_msg_id: cmid, userId: ws.user.id,
    displayName: ws.user.displayName, content: text, createdAt: r.createdAt }));
}

async function onEnd(ws, msg) {
  const room = [...ws.rooms].find((r) => r.roomId === msg.room);
  if (!room) return error(ws, 'not_found', 'join the room first', msg.id);
  if (ws.user.id !== room.appt.coachId) return error(ws, 'forbidden', 'only the coach ends a session', msg.id);
  const { rows: [e] } = await pool.query(
    `WITH s AS (UPDATE "Session" SET status = 'completed', "endedAt" = coalesce("endedAt", now() AT TIME ZONE 'UTC')
                 WHERE "appointmentId" = $1 RETURNING "endedAt")
     , a AS (UPDATE "Appointment" SET status = 'completed' WHERE id = $1)
     SELECT max("endedAt") AS ended FROM s`, [room.appt.id]);
  room.appt.status = 'completed';
  for (const c of room.conns) {
    send(c, { type: 'session.ended', room: room.roomId, reason: 'coach', endedAt: iso(e.ended ?? Date.now()),
      rateable: c.user.id === room.appt.clientId });
  }
}

async function onRate(ws, msg) {
  const room = [...ws.rooms].find((r) => r.roomId === msg.room);
  if (!room) return error(ws, 'not_found', 'join the room first', msg.id);
  if (ws.user.id !== room.appt.clientId) return error(ws, 'forbidden', 'only the client rates', msg.id);
  if (!Number.isInteger(msg.rating) || msg.rating < 1 || msg.rating > 5) return error(ws, 'bad_request', 'rating 1..5', msg.id);
  try {
    const { rows: [s] } = await pool.query(
      `INSERT INTO "SessionRating" (id, "sessionId", rating, comment, "tipAmount")
       SELECT $1, id, $3, $4, $5 FROM "Session" WHERE "appointmentId" = $2 AND "userId" = $6 AND status = 'completed'
       RETURNING "sessionId"`,
      [cuid(), room.appt.id, msg.rating, msg.comment ?? null, msg.tip ?? null, ws.user.id]);
    if (!s) return error(ws, 'not_open', 'the session has not ended', msg.id);
    send(ws, { type: 'rated', room: room.roomId, sessionId: s.sessionId, rating: msg.rating, tip: msg.tip ?? null });
  } catch (e) {
    if (e.code === '23505') return error(ws, 'conflict', 'already rated', msg.id);
    throw e;
  }
}

function onLeave(ws, room) {
  room.conns.delete(ws);
  ws.rooms.delete(room);
  if (![...room.conns].some((c) => c.user.id === ws.user.id)) {
    broadcast(room, { type: 'presence', room: room.roomId, event: 'leave',
      member: { userId: ws.user.id, displayName: ws.user.displayName }, members: members(room) });
  }
}

async function onMessage(ws, data) {
  let msg;
  try {
    msg = JSON.parse(String(data));
  } catch {
    return error(ws, 'bad_request', 'not JSON');
  }
  if (!ws.user) {
    if (msg.type !== 'hello') return error(ws, 'unauthorized', 'hello first');
    ws.user = await authenticate(String(msg.token ?? ''));
    if (!ws.user) return ws.close(1008, 'unauthorized');
    return send(ws, { type: 'welcome', user: ws.user, serverTime: iso(Date.now()), heartbeatSec: 25 });
  }
  switch (msg.type) {
    case 'join': return onJoin(ws, msg);
    case 'chat': return onChat(ws, msg);
    case 'typing': {
      const room = [...ws.rooms].find((r) => r.roomId === msg.room);
      if (room) broadcast(room, { type: 'typing', room: room.roomId, userId: ws.user.id, state: !!msg.state }, ws);
      return undefined;
    }
    case 'leave': {
      const room = [...ws.rooms].find((r) => r.roomId === msg.room);
      if (room) onLeave(ws, room);
      return send(ws, { type: 'left', room: msg.room });
    }
    case 'end': return onEnd(ws, msg);
    case 'rate': return onRate(ws, msg);
    case 'ping': return send(ws, { type: 'pong', serverTime: iso(Date.now()) });
    default: return error(ws, 'bad_request', 'unknown type', msg.id);
  }
}

const http = createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end('{"status":"ok"}');
  }
  res.writeHead(404).end();
});
const wss = new WebSocketServer({
  server: http, path: '/ws',
  handleProtocols: (protocols) => (protocols.has('coachroom.v1') ? 'coachroom.v1' : false),
});
wss.on('connection', async (ws, req) => {
  ws.rooms = new Set();
  // Messages are handled one at a time per connection, in order.
  let chain = Promise.resolve();
  ws.on('message', (data) => {
    chain = chain.then(() => onMessage(ws, data)).catch((e) => {
      console.error(`peer-node: ${e.message}`);
      error(ws, 'unavailable', 'try again');
    });
  });
  ws.on('close', () => { for (const room of [...ws.rooms]) onLeave(ws, room); });
  const auth = req.headers.authorization ?? '';
  if (auth.startsWith('Bearer ')) {
    chain = chain.then(async () => {
      ws.user = await authenticate(auth.slice(7));
      if (!ws.user) return ws.close(1008, 'unauthorized');
      return send(ws, { type: 'welcome', user: ws.user, serverTime: iso(Date.now()), heartbeatSec: 25 });
    }).catch(() => ws.close(1011, 'database'));
  }
});

http.listen(Number(portText), host.replace(/^\[|\]$/g, ''), () => {
  console.error(`peer-node: listening on ${listen}`);
});

function stop() {
  for (const ws of wss.clients) ws.close(1001, 'server shutting down');
  http.close();
  pool.end().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 3000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
