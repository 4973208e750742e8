// tests/e2e/reconnect.test.mjs: the network drops under the coach's page
// (a TCP proxy between browser and gateway is cut, then restored). The page
// shows that it is reconnecting, comes back by itself, recovers with
// `since` the messages sent meanwhile, and delivers what was written while
// offline, each exactly once; a message stored but whose ack was lost is
// recognised in the recovered history and shown once; a message lost on
// the way is resent under the same clientMsgId and stored once.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createDatabase, startGateway, seedAppointment } from '../support/gateway.mjs';
import { launchBrowser, openRoom, waitJoined, say, messageTexts, startProxy, screenshot } from './browser.mjs';

let db;
let gw;
let proxy;
let browser;

before(async () => {
  db = await createDatabase();
  gw = await startGateway(db);
  proxy = await startProxy(gw.port);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await proxy?.close();
  if (gw) assert.equal(await gw.stop(), 0, 'the gateway exits cleanly');
  db?.drop();
});

const count = (texts, t) => texts.filter((x) => x === t).length;

test('a cut connection recovers every message exactly once', async () => {
  const a = seedAppointment(db);
  // The coach's page goes through the proxy; the client's does not.
  const coach = await openRoom(browser, proxy.base, { room: a.roomId, token: a.coach.token });
  const client = await openRoom(browser, gw.base, { room: a.roomId, token: a.client.token });
  const cp = coach.page;
  const kp = client.page;
  // While the network is down Chromium itself logs the failed WebSocket
  // handshakes of the page's retries: expected then, and only then.
  let outage = false;
  coach.allow = (text) => outage && /WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/ws' failed/.test(text);
  await waitJoined(cp);
  await waitJoined(kp);
  await say(kp, 'before the drop');
  await cp.locator('#messages .msg-text', { hasText: 'before the drop' }).waitFor();

  // Cut. The page notices and says so.
  outage = true;
  proxy.cut();
  await cp.locator('#conn[data-state="reconnecting"]', { hasText: 'Reconnecting' }).waitFor({ timeout: 5000 });
  await screenshot(cp, 'coach-reconnecting');

  // Meanwhile: the client writes twice, the coach once (queued on the page).
  await say(kp, 'while you were away 1');
  await say(kp, 'while you were away 2');
  await kp.locator('#messages .msg.mine:not(.pending)', { hasText: 'while you were away 2' }).waitFor();
  await say(cp, 'written offline');
  await cp.locator('#messages .msg.pending', { hasText: 'written offline' }).waitFor();
  assert.match(await cp.locator('#messages .msg.pending .msg-status').textContent(), /Waiting for the connection/);

  // Restore: the page reconnects by itself, recovers and sends.
  proxy.restore();
  await cp.locator('#conn[data-state="connected"]').waitFor({ timeout: 15000 });
  outage = false;
  await cp.locator('#messages .msg-text', { hasText: 'while you were away 2' }).waitFor();
  await cp.locator('#messages .msg.mine:not(.pending)', { hasText: 'written offline' }).waitFor();
  await kp.locator('#messages .msg-text', { hasText: 'written offline' }).waitFor();

  const want = ['before the drop', 'while you were away 1', 'while you were away 2', 'written offline'];
  assert.deepEqual(await messageTexts(cp), want, 'the coach sees each message once, in order');
  assert.deepEqual(await messageTexts(kp), want, 'so does the client');
  const [[n]] = db.query(`SELECT count(*) FROM coach_message WHERE appointment_id = '${a.appointmentId}'`);
  assert.equal(n, '4');

  // An ack lost on the way: the gateway stores the chat, the answer never
  // reaches the page, the connection dies. After the reconnect the page
  // finds its message (by clientMsgId) in the history of `joined`.
  proxy.muteDownstream();
  await say(cp, 'ack lost');
  await kp.locator('#messages .msg-text', { hasText: 'ack lost' }).waitFor();
  assert.equal(await cp.locator('#messages .msg.pending', { hasText: 'ack lost' }).count(), 1, 'no ack seen yet');
  outage = true;
  proxy.cut();
  await cp.locator('#conn[data-state="reconnecting"]').waitFor({ timeout: 5000 });
  proxy.restore();
  await cp.locator('#conn[data-state="connected"]').waitFor({ timeout: 15000 });
  outage = false;
  await cp.locator('#messages .msg.mine:not(.pending)', { hasText: 'ack lost' }).waitFor();
  const texts = await messageTexts(cp);
  assert.equal(count(texts, 'ack lost'), 1, 'shown once');
  assert.equal(count(await messageTexts(kp), 'ack lost'), 1, 'delivered once');
  const [[m]] = db.query(`SELECT count(*) FROM coach_message WHERE appointment_id = '${a.appointmentId}'`);
  assert.equal(m, '5', 'stored once');

  // A chat lost on the way (the socket looks open, nothing gets through):
  // after the drop the page sends it again with the same clientMsgId.
  const chats = [];
  cp.on('websocket', (ws) => ws.on('framesent', ({ payload }) => {
    const f = JSON.parse(String(payload));
    if (f.type === 'chat') chats.push(f);
  }));
  const sockets = [];
  cp.on('websocket', (ws) => sockets.push(ws));
  // A fresh socket that the listeners see: drop the current one first.
  outage = true;
  proxy.cut();
  await cp.locator('#conn[data-state="reconnecting"]').waitFor({ timeout: 5000 });
  proxy.restore();
  await cp.locator('#conn[data-state="connected"]').waitFor({ timeout: 15000 });
  proxy.blackhole();
  await say(cp, 'lost on the way');
  await cp.locator('#messages .msg.pending', { hasText: 'lost on the way' }).waitFor();
  proxy.cut();
  await cp.locator('#conn[data-state="reconnecting"]').waitFor({ timeout: 5000 });
  proxy.restore();
  await cp.locator('#conn[data-state="connected"]').waitFor({ timeout: 15000 });
  outage = false;
  await cp.locator('#messages .msg.mine:not(.pending)', { hasText: 'lost on the way' }).waitFor();
  await kp.locator('#messages .msg-text', { hasText: 'lost on the way' }).waitFor();
  const lost = chats.filter((f) => f.text === 'lost on the way');
  assert.equal(lost.length, 2, 'sent, then resent after the drop');
  assert.equal(lost[0].clientMsgId, lost[1].clientMsgId, 'under the same clientMsgId');
  assert.ok(sockets.length >= 2, 'on two sockets');
  assert.equal(count(await messageTexts(cp), 'lost on the way'), 1);
  assert.equal(count(await messageTexts(kp), 'lost on the way'), 1);
  const [[k]] = db.query(`SELECT count(*) FROM coach_message WHERE appointment_id = '${a.appointmentId}'`);
  assert.equal(k, '6', 'stored once');

  coach.assertClean();
  client.assertClean();
  await coach.context.close();
  await client.context.close();
});
