// bench/peer-node/server.mjs: the reference peer for the benchmarks. The
// same protocol subset as coach-gateway (coachroom.v1: welcome, join with
// history and `since`, chat with ack and delivery to every member, typing,
// leave, ping, end, rate), written the way the platform's existing Node
// backend would write it: npm `ws` for the sockets, npm `pg` with a pool,
// one transaction per message (lock the room's row, INSERT the message and
// its seq, UPDATE the room), rooms in a Map. It writes the same rows as the
// gateway, so both run against the same database, fixtures and load tool.
// The SQL lives in db.mjs, shared with the Socket.IO variant (server-sio.mjs).
// Not a product: no TLS, no Origin checks, no rate limits, no clock.
//
//   node server.mjs --listen 127.0.0.1:8090 --database-url <libpq URI or conninfo>
//   (or LISTEN / DATABASE_URL in the environment); POOL_MAX (default 10).
//   SIGTERM/SIGINT: close the sockets (1001) and the pool, exit 0.
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';
import {
  authenticate as authenticateIn, chatInvalid, endSession, findAppointment, history as historyIn, iso,
  joinedJson, messageJson, openPool, options, rateSession, sessionRow as sessionRowIn, storeChat as storeChatIn,
} from './db.mjs';

const { listen, host, port, databaseUrl } = options('peer-node');
const pool = openPool(databaseUrl);
const authenticate = (token) => authenticateIn(pool, token);
const sessionRow = (room, user) => sessionRowIn(pool, room, user);
const history = (room, since) => historyIn(pool, room, since);
const storeChat = (room, user, text, cmid) => storeChatIn(pool, room, user, text, cmid);
const rooms = new Map(); // roomId -> { roomId, appt, conns: Set<ws>, lastSeq }

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

async function loadRoom(roomId) {
  let room = rooms.get(roomId);
  if (room) return room;
  const appt = await findAppointment(pool, roomId);
  if (!appt) return null;
  room = rooms.get(roomId) ?? { roomId, appt, conns: new Set(), lastSeq: Number(appt.last_seq) };
  rooms.set(roomId, room);
  return room;
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
  send(ws, { type: 'joined', ...(msg.id ? { id: msg.id } : {}), ...joinedJson(room, session, hist, members(room)) });
  broadcast(room, { type: 'presence', room: room.roomId, event: 'join',
    member: { userId: ws.user.id, displayName: ws.user.displayName, role }, members: members(room) }, ws);
}

async function onChat(ws, msg) {
  const room = [...ws.rooms].find((r) => r.roomId === msg.room);
  if (!room) return error(ws, 'not_found', 'join the room first', msg.id);
  const text = typeof msg.text === 'string' ? msg.text.trim() : '';
  const cmid = msg.clientMsgId;
  const invalid = chatInvalid(text, cmid);
  if (invalid) return error(ws, 'bad_request', invalid, msg.id);
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
  const endedAt = await endSession(pool, room);
  for (const c of room.conns) {
    send(c, { type: 'session.ended', room: room.roomId, reason: 'coach', endedAt,
      rateable: c.user.id === room.appt.clientId });
  }
}

async function onRate(ws, msg) {
  const room = [...ws.rooms].find((r) => r.roomId === msg.room);
  if (!room) return error(ws, 'not_found', 'join the room first', msg.id);
  if (ws.user.id !== room.appt.clientId) return error(ws, 'forbidden', 'only the client rates', msg.id);
  if (!Number.isInteger(msg.rating) || msg.rating < 1 || msg.rating > 5) return error(ws, 'bad_request', 'rating 1..5', msg.id);
  try {
    const sessionId = await rateSession(pool, room, ws.user, msg);
    if (!sessionId) return error(ws, 'not_open', 'the session has not ended', msg.id);
    send(ws, { type: 'rated', room: room.roomId, sessionId, rating: msg.rating, tip: msg.tip ?? null });
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

http.listen(port, host, () => {
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
