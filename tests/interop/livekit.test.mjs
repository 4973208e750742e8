// tests/interop/livekit.test.mjs: the gateway against the official LiveKit
// server SDK (npm livekit-server-sdk v2 and @livekit/protocol), the judge
// of interoperability:
//  - webhooks built and signed the way LiveKit's server does (WebhookEvent
//    serialized to JSON, an HS256 AccessToken with the sha256 claim, 5
//    minutes, bare Authorization, application/webhook+json), which the
//    SDK's own WebhookReceiver accepts too;
//  - access tokens minted by the gateway, checked by the SDK's TokenVerifier;
//  - a fake RoomService (real HTTP) receiving DeleteRoom and checking its
//    token with TokenVerifier.
// Plus every refusal of the webhook route, and what the database holds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { AccessToken, TokenVerifier, WebhookReceiver } from 'livekit-server-sdk';
import {
  DisconnectReason, ParticipantInfo, ParticipantInfo_Kind, Room, WebhookEvent,
} from '@livekit/protocol';
import {
  connectRoom, createDatabase, freePort, seedAppointment, sleep, startGateway,
} from '../support/gateway.mjs';

const KEY = 'APIinterop01';
const SECRET = randomBytes(24).toString('base64url');

let db;
let gw;
let roomService;
let lkUrl;

// ---- a fake LiveKit RoomService (Twirp over HTTP) -------------------------------------

function startRoomService(port) {
  const calls = [];
  const script = []; // statuses to answer, in order; 200 when empty
  const verifier = new TokenVerifier(KEY, SECRET);
  const server = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    const call = { method: req.method, path: req.url, body, type: req.headers['content-type'] };
    try {
      const auth = String(req.headers.authorization ?? '');
      assert.match(auth, /^Bearer /);
      call.claims = await verifier.verify(auth.slice(7));
    } catch (e) {
      call.authError = String(e);
    }
    calls.push(call);
    const status = call.authError ? 401 : (script.shift() ?? 200);
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(status === 200 ? '{}' : '{"code":"unavailable","msg":"try again"}');
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve({
    calls, script, close: () => new Promise((r) => server.close(r)),
  })));
}

// ---- webhooks as LiveKit's server sends them ----------------------------------------------

let evSeq = 0;
const eventId = () => `EV_${process.pid}_${++evSeq}_${randomBytes(3).toString('hex')}`;
const nowSec = () => BigInt(Math.floor(Date.now() / 1000));

function roomInfo(roomId, sid = 'RM_current', createdSec = nowSec()) {
  return new Room({ name: roomId, sid, creationTime: createdSec, creationTimeMs: createdSec * 1000n });
}

function participantEvent(event, roomId, identity, sid, extra = {}) {
  return new WebhookEvent({
    event,
    id: eventId(),
    createdAt: nowSec(),
    room: roomInfo(roomId, extra.roomSid, extra.roomCreated),
    participant: new ParticipantInfo({
      sid, identity, name: identity, kind: extra.kind ?? ParticipantInfo_Kind.STANDARD,
      disconnectReason: extra.reason ?? DisconnectReason.UNKNOWN_REASON,
    }),
  }).toJsonString();
}

function roomEvent(event, roomId, sid, createdSec) {
  return new WebhookEvent({ event, id: eventId(), createdAt: nowSec(), room: roomInfo(roomId, sid, createdSec) })
    .toJsonString();
}

// The webhook's Authorization, exactly as LiveKit's server makes it.
async function sign(body, { key = KEY, secret = SECRET } = {}) {
  const at = new AccessToken(key, secret, { ttl: '5m' });
  at.sha256 = createHash('sha256').update(body).digest('base64');
  return at.toJwt();
}

async function post(body, auth, type = 'application/webhook+json') {
  const headers = { 'content-type': type };
  if (auth !== undefined) headers.authorization = auth;
  const res = await fetch(`${gw.base}/webhooks/livekit`, { method: 'POST', headers, body });
  return { status: res.status, json: await res.json() };
}

async function deliver(body) {
  const auth = await sign(body);
  // The SDK's own receiver accepts the very same request: the test signs like LiveKit.
  const ev = await new WebhookReceiver(KEY, SECRET).receive(body, auth);
  assert.equal(ev.event, JSON.parse(body).event);
  return post(body, auth);
}

const count = (sql) => Number(db.query(sql)[0][0]);
const eventsRecorded = () => count('SELECT count(*) FROM coach_livekit_event');

// ---- suite ------------------------------------------------------------------------------

before(async () => {
  db = await createDatabase();
  const lkPort = await freePort();
  roomService = await startRoomService(lkPort);
  lkUrl = `ws://127.0.0.1:${lkPort}`;
  gw = await startGateway(db, {
    LIVEKIT_API_KEY: KEY,
    LIVEKIT_API_SECRET: SECRET,
    LIVEKIT_URL: lkUrl,
  });
});

after(async () => {
  const code = await gw.stop();
  await roomService.close();
  db.drop();
  assert.equal(code, 0, 'the gateway exits cleanly');
});

test('a participant_joined signed like LiveKit starts the session once; a redelivery changes nothing', async () => {
  const a = seedAppointment(db);
  const body = participantEvent('participant_joined', a.roomId, a.coach.id, 'PA_coach1');
  const first = await deliver(body);
  assert.deepEqual(first, { status: 200, json: { status: 'ok' } });
  const rows = db.query(`SELECT s.status, a.status FROM "Session" s JOIN "Appointment" a ON a.id = s."appointmentId"
                         WHERE a."roomId" = '${a.roomId}' AND s."userId" = '${a.coach.id}'`);
  assert.deepEqual(rows, [['active', 'active']]);
  const before2 = eventsRecorded();
  const again = await deliver(body); // same bytes, same id, a fresh signature
  assert.deepEqual(again, { status: 200, json: { status: 'duplicate' } });
  assert.equal(eventsRecorded(), before2);
  assert.equal(count(`SELECT count(*) FROM coach_livekit_participant WHERE room_id = '${a.roomId}'`), 1);
  assert.equal(count(`SELECT count(*) FROM "Session" WHERE "roomId" = '${a.roomId}'`), 1);
});

test('media presence: once per user across tabs, DUPLICATE_IDENTITY replacement, last one leaves', async () => {
  const a = seedAppointment(db);
  const client = await connectRoom(gw, a.client.token);
  client.send({ type: 'join', room: a.roomId });
  await client.next('joined');
  assert.equal((await deliver(participantEvent('participant_joined', a.roomId, a.coach.id, 'PA_t1'))).status, 200);
  const m1 = await client.next('media');
  assert.deepEqual(m1, { type: 'media', room: a.roomId, userId: a.coach.id, state: 'joined' });
  // A second tab replaces the first: left (DUPLICATE_IDENTITY) then joined, in either order.
  await deliver(participantEvent('participant_left', a.roomId, a.coach.id, 'PA_t1',
    { reason: DisconnectReason.DUPLICATE_IDENTITY }));
  await deliver(participantEvent('participant_joined', a.roomId, a.coach.id, 'PA_t2'));
  await client.none('media');
  // The other order: the replacement's joined arrives before the old one's left.
  await deliver(participantEvent('participant_joined', a.roomId, a.coach.id, 'PA_t2b'));
  await deliver(participantEvent('participant_left', a.roomId, a.coach.id, 'PA_t2',
    { reason: DisconnectReason.DUPLICATE_IDENTITY }));
  await client.none('media');
  // A third participant for the same user, then two leaves: left only after the last.
  await deliver(participantEvent('participant_joined', a.roomId, a.coach.id, 'PA_t3'));
  await deliver(participantEvent('participant_left', a.roomId, a.coach.id, 'PA_t2b'));
  await client.none('media');
  await deliver(participantEvent('participant_connection_aborted', a.roomId, a.coach.id, 'PA_t3'));
  await deliver(participantEvent('participant_left', a.roomId, a.coach.id, 'PA_t3'));
  assert.deepEqual(await client.next('media'), { type: 'media', room: a.roomId, userId: a.coach.id, state: 'left' });
  await client.close();
});

test('room_finished: ignored for a stale instance, media left while members are connected, ends the session otherwise', async () => {
  const a = seedAppointment(db);
  const created = nowSec();
  await deliver(participantEvent('participant_joined', a.roomId, a.client.id, 'PA_c1',
    { roomSid: 'RM_new', roomCreated: created }));
  const coach = await connectRoom(gw, a.coach.token);
  coach.send({ type: 'join', room: a.roomId });
  const joined = await coach.next('joined');
  assert.equal(joined.session.status, 'active');
  // Joining after the client's LiveKit join: told who has video right away.
  assert.deepEqual(await coach.next('media'), { type: 'media', room: a.roomId, userId: a.client.id, state: 'joined' });
  // An older instance's room_finished arrives late: stale.
  assert.deepEqual(await deliver(roomEvent('room_finished', a.roomId, 'RM_old', created - 100n)),
    { status: 200, json: { status: 'ignored' } });
  // The current instance finishes while the coach is connected: the session goes on.
  assert.deepEqual(await deliver(roomEvent('room_finished', a.roomId, 'RM_new', created)),
    { status: 200, json: { status: 'ok' } });
  assert.deepEqual(await coach.next('media'), { type: 'media', room: a.roomId, userId: a.client.id, state: 'left' });
  await coach.none('session.ended');
  assert.equal(db.query(`SELECT status FROM "Appointment" WHERE id = '${a.appointmentId}'`)[0][0], 'active');
  // LiveKit starts a new instance, which finishes with nobody connected to the gateway.
  await coach.close();
  await sleep(200);
  const later = created + 10n;
  await deliver(participantEvent('participant_joined', a.roomId, a.client.id, 'PA_c2',
    { roomSid: 'RM_newer', roomCreated: later }));
  assert.deepEqual(await deliver(roomEvent('room_finished', a.roomId, 'RM_newer', later)),
    { status: 200, json: { status: 'ok' } });
  let status;
  for (let i = 0; i < 50 && status !== 'completed'; i++) {
    await sleep(100);
    status = db.query(`SELECT status FROM "Appointment" WHERE id = '${a.appointmentId}'`)[0][0];
  }
  assert.equal(status, 'completed');
  // Ended by LiveKit itself: no close job was queued, so no DeleteRoom will come.
  assert.equal(count(`SELECT count(*) FROM coach_livekit_close WHERE appointment_id = '${a.appointmentId}'`), 0);
  assert.equal(roomService.calls.filter((c) => c.body.includes(a.roomId)).length, 0);
});

test('access tokens pass the SDK TokenVerifier with the right identity and grant', async () => {
  const a = seedAppointment(db, { durationMin: 30 });
  const verifier = new TokenVerifier(KEY, SECRET);
  const get = (token, roomId = a.roomId) => fetch(`${gw.base}/api/rooms/${roomId}/livekit-token`,
    { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const res = await get(a.coach.token);
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.deepEqual(Object.keys(body).sort(), ['expiresAt', 'identity', 'room', 'token', 'url']);
  assert.equal(body.identity, a.coach.id);
  assert.equal(body.room, a.roomId);
  assert.equal(body.url, lkUrl);
  const claims = await verifier.verify(body.token);
  assert.equal(claims.sub, a.coach.id);
  assert.equal(claims.iss, KEY);
  assert.equal(claims.name, 'Dana Coach');
  assert.deepEqual(claims.video, {
    room: a.roomId, roomJoin: true, canPublish: true, canSubscribe: true, canPublishData: true,
  });
  const header = JSON.parse(Buffer.from(body.token.split('.')[0], 'base64url'));
  assert.deepEqual(header, { alg: 'HS256', typ: 'JWT' });
  // exp = min(session end + 15 min, now + 6 h): the session is not started, 30 minutes planned.
  const now = Date.now() / 1000;
  assert.ok(Math.abs(claims.exp - (now + 45 * 60)) < 5, `exp ${claims.exp} vs now ${now}`);
  assert.ok(Math.abs(claims.nbf - now) < 5);
  assert.equal(new Date(body.expiresAt).getTime() / 1000, claims.exp);

  const client = await (await get(a.client.token)).json();
  assert.equal((await verifier.verify(client.token)).video.canPublish, true);

  db.query(`UPDATE "User" SET role = 'admin' WHERE id = '${a.stranger.id}'`);
  const obs = await get(a.stranger.token);
  assert.equal(obs.status, 200);
  const oc = await verifier.verify((await obs.json()).token);
  assert.equal(oc.video.canPublish, false);
  assert.equal(oc.video.canSubscribe, true);
  db.query(`UPDATE "User" SET role = 'client' WHERE id = '${a.stranger.id}'`);

  assert.equal((await get(a.stranger.token)).status, 403);
  assert.equal((await get(undefined)).status, 401);
  assert.equal((await get('not-a-token')).status, 401);
  assert.equal((await get(a.coach.token, 'no-such-room')).status, 404);
  db.query(`UPDATE "Appointment" SET status = 'cancelled' WHERE id = '${a.appointmentId}'`);
  const cancelled = await get(a.coach.token);
  assert.equal(cancelled.status, 409);
  assert.equal((await cancelled.json()).error.code, 'conflict');
});

test('a session the coach ends closes its LiveKit room through DeleteRoom, retried after a 503', async () => {
  const a = seedAppointment(db);
  roomService.script.push(503);
  const coach = await connectRoom(gw, a.coach.token);
  coach.send({ type: 'join', room: a.roomId });
  await coach.next('joined');
  coach.send({ type: 'end', room: a.roomId });
  assert.equal((await coach.next('session.ended')).reason, 'coach');
  const mine = () => roomService.calls.filter((c) => JSON.parse(c.body || '{}').room === a.roomId);
  for (let i = 0; i < 100 && mine().length < 2; i++) await sleep(100);
  const calls = mine();
  assert.equal(calls.length, 2, `DeleteRoom calls: ${JSON.stringify(calls)}`);
  for (const c of calls) {
    assert.equal(c.method, 'POST');
    assert.equal(c.path, '/twirp/livekit.RoomService/DeleteRoom');
    assert.equal(c.type, 'application/json');
    assert.equal(c.authError, undefined);
    assert.equal(c.claims.video.room, a.roomId);
    assert.equal(c.claims.video.roomAdmin, true);
    assert.ok(c.claims.exp - c.claims.nbf <= 600);
  }
  let st;
  for (let i = 0; i < 30 && st !== 'done'; i++) {
    await sleep(100);
    st = db.query(`SELECT status, attempts FROM coach_livekit_close WHERE appointment_id = '${a.appointmentId}'`)[0];
    st = st && st[0] === 'done' && st[1] === '2' ? 'done' : st;
  }
  assert.equal(st, 'done');
  await coach.close();
});

test('refusals: 401 before parsing, 400 for bodies that are no event, 413 above 64 KiB; nothing recorded', async () => {
  const a = seedAppointment(db);
  const body = participantEvent('participant_joined', a.roomId, a.coach.id, 'PA_bad');
  const good = await sign(body);
  const recorded = eventsRecorded();
  const expect401 = async (auth, b = body, why = '') => {
    const r = await post(b, auth);
    assert.equal(r.status, 401, `${why}: ${JSON.stringify(r.json)}`);
    assert.equal(r.json.error.code, 'unauthorized');
  };
  await expect401(undefined, body, 'no Authorization');
  await expect401('', body, 'empty');
  await expect401('garbage', body, 'garbled');
  await expect401(`${good}x`, body, 'bad signature');
  await expect401(await sign(body, { key: 'APIother' }), body, 'other key');
  await expect401(await sign(body, { secret: 'another-secret' }), body, 'other secret');
  await expect401(good, body.replace('PA_bad', 'PA_bzd'), 'tampered body');
  // Expired (exp 2 minutes ago, beyond the 60 s leeway), signed by hand.
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const t = Math.floor(Date.now() / 1000);
  const h = b64({ alg: 'HS256', typ: 'JWT' });
  const p = b64({ iss: KEY, nbf: t - 420, exp: t - 120, sha256: createHash('sha256').update(body).digest('base64') });
  const sig = createHmac('sha256', SECRET).update(`${h}.${p}`).digest('base64url');
  await expect401(`${h}.${p}.${sig}`, body, 'expired');
  assert.equal(eventsRecorded(), recorded, 'nothing recorded for refused webhooks');

  // "Bearer " is accepted.
  assert.equal((await post(body, `Bearer ${good}`)).status, 200);

  const notJson = 'this is not json';
  const r1 = await post(notJson, await sign(notJson));
  assert.equal(r1.status, 400);
  assert.equal(r1.json.error.code, 'bad_request');
  const noId = '{"event":"room_finished","room":{"name":"x"}}';
  assert.equal((await post(noId, await sign(noId))).status, 400);
  const typed = await post(body, await sign(body), 'text/plain');
  assert.equal(typed.status, 400);

  const huge = JSON.stringify({ event: 'room_started', id: eventId(), pad: 'x'.repeat(70000) });
  const r2 = await post(huge, await sign(huge));
  assert.equal(r2.status, 413);
  assert.equal(r2.json.error.code, 'too_large');
  const recordedAfter = eventsRecorded();

  // Ignored with 200 (LiveKit must not retry): unknown event, room, identity, non-user kinds.
  const ignored = [
    roomEvent('track_published', a.roomId, 'RM_x', nowSec()),
    participantEvent('participant_joined', 'no-such-room', a.coach.id, 'PA_x'),
    participantEvent('participant_joined', a.roomId, 'cnobody0000000000000000000', 'PA_y'),
    participantEvent('participant_joined', a.roomId, 'EG_recorder', 'PA_z', { kind: ParticipantInfo_Kind.EGRESS }),
    participantEvent('participant_joined', a.roomId, 'agent-1', 'PA_w', { kind: ParticipantInfo_Kind.AGENT }),
    participantEvent('participant_joined', a.roomId, 'sip-1', 'PA_v', { kind: ParticipantInfo_Kind.SIP }),
  ];
  for (const b of ignored) {
    assert.deepEqual(await deliver(b), { status: 200, json: { status: 'ignored' } }, b);
  }
  assert.equal(count(`SELECT count(*) FROM coach_livekit_participant WHERE room_id = '${a.roomId}'`), 1);
  // Unknown room and identity: their ids are recorded (the event was handled); the rest write nothing.
  assert.equal(eventsRecorded(), recordedAfter + 2);

  const metrics = await (await fetch(`${gw.base}/metrics`)).text();
  assert.match(metrics, /coach_livekit_webhooks_total\{result="unauthorized"\} [1-9]/);
  assert.match(metrics, /coach_livekit_webhooks_total\{result="duplicate"\} [1-9]/);
  assert.doesNotMatch(gw.log(), new RegExp(SECRET));
});
