// bench/peer-node/server-sio.mjs: the Socket.IO variant of the reference
// peer (server.mjs), written the way a Node team that picks Socket.IO would
// write this room: npm `socket.io` 4 (Engine.IO v4, WebSocket or long
// polling), the token in the handshake's `auth`, checked by a middleware;
// one event per command, answered through Socket.IO's acknowledgement
// callback; chat delivered with `io.to(room).emit`, rooms as Socket.IO
// rooms. The same SQL as server.mjs (db.mjs: `pg` pool, one transaction per
// message). Event handlers run as Socket.IO calls them, concurrently, with
// no per-socket queue. Not a product: no TLS, no CORS, no rate limits, no
// clock.
//
// The contract, mapped onto Socket.IO (namespace "/"):
//   connect        auth {token}: a session token; refused: connect_error "unauthorized"
//   join  (ack)    {room, since?} -> the body of coachroom.v1's `joined`
//   chat  (ack)    {room, text, clientMsgId} -> {clientMsgId, seq, messageId, createdAt}
//   typing         {room, state}; the others get `typing`
//   leave (ack)    {room} -> {room}
//   end   (ack)    {room} (the coach) -> {room}; everyone gets `session.ended`
//   rate  (ack)    {room, rating, comment?, tip?} -> {room, sessionId, rating, tip}
//   events out     message, presence, typing, session.ended (coachroom.v1's bodies)
// A refused command's ack is {error: {code, message}} (and clientMsgId for chat).
//
//   node server-sio.mjs --listen 127.0.0.1:8091 --database-url <libpq URI or conninfo>
//   (or LISTEN / DATABASE_URL); POOL_MAX (default 10). GET /healthz; the
//   Socket.IO endpoint is /socket.io/. SIGTERM/SIGINT: disconnect, close
//   the pool, exit 0.
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import {
  authenticate, chatInvalid, endSession, findAppointment, history, iso, joinedJson, messageJson, openPool,
  options, rateSession, roleIn, sessionRow, storeChat,
} from './db.mjs';

const { listen, host, port, databaseUrl } = options('peer-node-sio');
const pool = openPool(databaseUrl);
const rooms = new Map(); // roomId -> { roomId, appt, lastSeq }

const fail = (code, message, extra) => ({ error: { code, message }, ...extra });
// Socket.IO calls a handler without a callback when the client asked for no ack.
const reply = (ack) => (typeof ack === 'function' ? ack : () => {});

async function loadRoom(roomId) {
  if (rooms.has(roomId)) return rooms.get(roomId);
  const appt = await findAppointment(pool, roomId);
  if (!appt) return null;
  if (!rooms.has(roomId)) rooms.set(roomId, { roomId, appt, lastSeq: Number(appt.last_seq) });
  return rooms.get(roomId);
}

async function members(roomId) {
  const seen = new Map();
  for (const s of await io.in(roomId).fetchSockets()) seen.set(s.data.user.id, s.data.user);
  return [...seen.values()].map((u) => ({ userId: u.id, displayName: u.displayName, role: u.role }));
}

function memberOf(socket, roomId) {
  return socket.rooms.has(roomId) ? rooms.get(roomId) : null;
}

async function onJoin(socket, msg, ack) {
  const user = socket.data.user;
  const room = await loadRoom(String(msg?.room ?? ''));
  if (!room) return ack(fail('not_found', 'no such room'));
  const role = roleIn(room.appt, user);
  if (!role) return ack(fail('forbidden', 'not a member of this room'));
  if (room.appt.status === 'cancelled') return ack(fail('closed', 'appointment cancelled'));
  const session = await sessionRow(pool, room, user);
  const hist = await history(pool, room, Number.isInteger(msg.since) ? msg.since : undefined);
  socket.join(room.roomId);
  const list = await members(room.roomId);
  ack(joinedJson(room, session, hist, list));
  socket.to(room.roomId).emit('presence', { room: room.roomId, event: 'join',
    member: { userId: user.id, displayName: user.displayName, role }, members: list });
}

async function onChat(socket, msg, ack) {
  const user = socket.data.user;
  const cmid = msg?.clientMsgId;
  const room = memberOf(socket, msg?.room);
  if (!room) return ack(fail('not_found', 'join the room first', { clientMsgId: cmid }));
  const text = typeof msg.text === 'string' ? msg.text.trim() : '';
  const invalid = chatInvalid(text, cmid);
  if (invalid) return ack(fail('bad_request', invalid, { clientMsgId: cmid }));
  const r = await storeChat(pool, room, user, text, cmid);
  ack({ clientMsgId: cmid, seq: r.seq, messageId: r.messageId, createdAt: iso(r.createdAt) });
  if (r.duplicate) return undefined;
  if (r.seq > room.lastSeq) room.lastSeq = r.seq;
  const { type, ...m } = messageJson(room, { seq: r.seq, message_id: r.messageId, client_msg_id: cmid,
    userId: user.id, displayName: user.displayName, content: text, createdAt: r.createdAt });
  io.to(room.roomId).emit('message', m);
  return undefined;
}

async function onEnd(socket, msg, ack) {
  const room = memberOf(socket, msg?.room);
  if (!room) return ack(fail('not_found', 'join the room first'));
  if (socket.data.user.id !== room.appt.coachId) return ack(fail('forbidden', 'only the coach ends a session'));
  const endedAt = await endSession(pool, room);
  ack({ room: room.roomId });
  io.to(room.roomId).emit('session.ended', { room: room.roomId, reason: 'coach', endedAt });
  return undefined;
}

async function onRate(socket, msg, ack) {
  const user = socket.data.user;
  const room = memberOf(socket, msg?.room);
  if (!room) return ack(fail('not_found', 'join the room first'));
  if (user.id !== room.appt.clientId) return ack(fail('forbidden', 'only the client rates'));
  if (!Number.isInteger(msg.rating) || msg.rating < 1 || msg.rating > 5) return ack(fail('bad_request', 'rating 1..5'));
  try {
    const sessionId = await rateSession(pool, room, user, msg);
    if (!sessionId) return ack(fail('not_open', 'the session has not ended'));
    return ack({ room: room.roomId, sessionId, rating: msg.rating, tip: msg.tip ?? null });
  } catch (e) {
    if (e.code === '23505') return ack(fail('conflict', 'already rated'));
    throw e;
  }
}

// A presence leave for each room the socket is in, when it was the user's last socket there.
async function leaveRooms(socket, roomIds) {
  const user = socket.data.user;
  for (const roomId of roomIds) {
    if (!rooms.has(roomId)) continue;
    socket.leave(roomId);
    const list = await members(roomId);
    if (!list.some((m) => m.userId === user.id)) {
      io.to(roomId).emit('presence', { room: roomId, event: 'leave',
        member: { userId: user.id, displayName: user.displayName }, members: list });
    }
  }
}

// A handler whose failure is answered (unavailable) instead of lost.
function handle(socket, fn) {
  return (msg, ack) => {
    const done = reply(ack);
    fn(socket, msg ?? {}, done).catch((e) => {
      console.error(`peer-node-sio: ${e.message}`);
      done(fail('unavailable', 'try again', msg?.clientMsgId ? { clientMsgId: msg.clientMsgId } : {}));
    });
  };
}

const http = createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end('{"status":"ok"}');
  }
  res.writeHead(404).end();
});
const io = new Server(http, { serveClient: false });

io.use((socket, next) => {
  authenticate(pool, String(socket.handshake.auth?.token ?? ''))
    .then((user) => {
      if (!user) return next(new Error('unauthorized'));
      socket.data.user = user;
      return next();
    })
    .catch(() => next(new Error('unavailable')));
});

io.on('connection', (socket) => {
  socket.on('join', handle(socket, onJoin));
  socket.on('chat', handle(socket, onChat));
  socket.on('end', handle(socket, onEnd));
  socket.on('rate', handle(socket, onRate));
  socket.on('typing', (msg) => {
    if (!memberOf(socket, msg?.room)) return;
    socket.to(msg.room).emit('typing', { room: msg.room, userId: socket.data.user.id, state: !!msg.state });
  });
  socket.on('leave', handle(socket, async (s, msg, ack) => {
    await leaveRooms(s, s.rooms.has(msg.room) ? [msg.room] : []);
    ack({ room: msg.room });
  }));
  socket.on('disconnecting', () => {
    const joined = [...socket.rooms].filter((r) => r !== socket.id);
    leaveRooms(socket, joined).catch(() => {});
  });
});

http.listen(port, host, () => {
  console.error(`peer-node-sio: listening on ${listen}`);
});

function stop() {
  io.disconnectSockets(true);
  io.close();
  pool.end().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 3000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
