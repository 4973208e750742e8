// tests/e2e/room.test.mjs: the coaching room page in a real browser against
// the real gateway and PostgreSQL: signing in by link and by token, the
// chat both ways with typing and presence, the character limit, hostile
// text shown as text, and a page that stays clean (no console errors, no
// failed requests).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createDatabase, startGateway, seedAppointment } from '../support/gateway.mjs';
import { launchBrowser, openRoom, waitJoined, say, messageTexts, screenshot } from './browser.mjs';

let db;
let gw;
let browser;

before(async () => {
  db = await createDatabase();
  gw = await startGateway(db);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  if (gw) assert.equal(await gw.stop(), 0, 'the gateway exits cleanly');
  db?.drop();
});

test('coach and client chat both ways in the room', async () => {
  const a = seedAppointment(db, { coachName: 'Dana Coach', clientName: 'Sam Client' });
  const coach = await openRoom(browser, gw.base, { room: a.roomId, token: a.coach.token });
  const client = await openRoom(browser, gw.base, { room: a.roomId, token: a.client.token, phone: true });
  const cp = coach.page;
  const kp = client.page;
  await waitJoined(cp);
  await waitJoined(kp);

  // The token left the address bar; the header names both people.
  assert.equal(new URL(cp.url()).hash, '');
  assert.ok(!cp.url().includes(a.coach.token));
  assert.equal(await cp.locator('#title').textContent(), 'Dana Coach & Sam Client');
  assert.match(await cp.locator('#subtitle').textContent(), /You are the coach/);
  assert.match(await kp.locator('#subtitle').textContent(), /You are the client/);
  assert.equal(await cp.locator('#end-btn').isVisible(), true, 'the coach can end');
  assert.equal(await kp.locator('#end-btn').isVisible(), false, 'the client cannot');

  // Phone-sized: nothing wider than the screen. Screen readers: the list
  // is a live log, the composer has a label.
  assert.equal(await kp.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), true);
  assert.equal(await kp.locator('#messages').getAttribute('role'), 'log');
  assert.equal(await kp.locator('#messages').getAttribute('aria-live'), 'polite');
  assert.equal(await kp.getByLabel('Message', { exact: true }).count(), 1);

  // Presence: the coach sees the client arrive.
  await cp.locator('#members li.present', { hasText: 'Sam Client' }).waitFor();
  await kp.locator('#members li.present', { hasText: 'Dana Coach' }).waitFor();

  // Coach -> client.
  await say(cp, 'Hello Sam, how was your week?');
  await kp.locator('#messages .msg.theirs', { hasText: 'Hello Sam, how was your week?' }).waitFor();
  assert.equal(await kp.locator('#messages .msg.theirs .msg-who').first().textContent(), 'Dana Coach');
  await cp.locator('#messages .msg.mine:not(.pending)', { hasText: 'how was your week' }).waitFor();
  assert.match(await cp.locator('#messages .msg.mine time').first().textContent(), /\d/);

  // Typing shows on the other side.
  await kp.locator('#composer-text').pressSequentially('Bus');
  await cp.locator('#typing', { hasText: 'Sam Client is typing…' }).waitFor();

  // Client -> coach, with Shift+Enter for a new line.
  await kp.locator('#composer-text').fill('Busy but good.');
  await kp.locator('#composer-text').press('Shift+Enter');
  await kp.locator('#composer-text').pressSequentially('Slept better.');
  assert.equal(await kp.locator('#messages .msg').count(), 1, 'Shift+Enter did not send');
  await kp.locator('#composer-text').press('Enter');
  await cp.locator('#messages .msg.theirs', { hasText: 'Slept better.' }).waitFor();
  assert.deepEqual(await messageTexts(cp), ['Hello Sam, how was your week?', 'Busy but good.\nSlept better.']);
  await cp.locator('#typing:empty').waitFor();

  // Hostile text stays text.
  const evil = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><b>bold?</b>';
  await say(kp, evil);
  await cp.locator('#messages .msg-text', { hasText: '<script>' }).waitFor();
  assert.equal(await cp.locator('#messages .msg-text').last().textContent(), evil);
  for (const p of [cp, kp]) {
    assert.equal(await p.locator('#messages script, #messages img, #messages b').count(), 0, 'nothing injected');
    assert.equal(await p.evaluate(() => window.__pwned), undefined);
  }

  await cp.locator('#typing:empty').waitFor();
  await kp.locator('#typing:empty').waitFor();
  await screenshot(cp, 'coach-room');
  await screenshot(kp, 'client-room-phone');

  // The limit: 4000 bytes after trimming, counted as the gateway counts.
  await cp.locator('#composer-text').fill('é'.repeat(2000));
  assert.equal(await cp.locator('#composer-count').textContent(), '4000 / 4000');
  assert.equal(await cp.locator('#send').isDisabled(), false);
  await cp.locator('#composer-text').fill('é'.repeat(2001));
  assert.equal(await cp.locator('#composer-count').textContent(), '4002 / 4000');
  assert.equal(await cp.locator('#send').isDisabled(), true);
  await cp.locator('#composer-text').press('Enter');
  await cp.locator('#composer-text').fill('');

  // Exactly the three messages, in the database and on both pages.
  const [[n]] = db.query(`SELECT count(*) FROM coach_message WHERE appointment_id = '${a.appointmentId}'`);
  assert.equal(n, '3');
  assert.equal((await messageTexts(kp)).length, 3);
  assert.equal((await messageTexts(cp)).length, 3);

  coach.assertClean();
  client.assertClean();
  await coach.context.close();
  await client.context.close();
});

test('without a link, a token can be pasted; a bad token is explained', async () => {
  const a = seedAppointment(db);
  const r = await openRoom(browser, gw.base);
  const p = r.page;
  await p.locator('#signin').waitFor();
  assert.equal(await p.locator('#room').isVisible(), false);
  await p.locator('#signin-room').fill(a.roomId);
  await p.locator('#signin-token').fill(a.client.token);
  await p.locator('#signin-token').press('Enter');
  await waitJoined(p);
  assert.equal(await p.locator('#title').textContent(), 'Dana Coach & Sam Client');
  r.assertClean();
  await r.context.close();

  const bad = await openRoom(browser, gw.base, { room: a.roomId, token: 'not-a-real-token-0000000000000000000000000' });
  await bad.page.locator('#banner', { hasText: 'This link is not valid any more' }).waitFor();
  await bad.page.locator('#conn[data-state="fatal"]').waitFor();
  bad.assertClean();
  await bad.context.close();

  const stranger = await openRoom(browser, gw.base, { room: a.roomId, token: a.stranger.token });
  await stranger.page.locator('#banner', { hasText: 'You are not a member of this coaching room.' }).waitFor();
  stranger.assertClean();
  await stranger.context.close();
});

test('a room that is not open yet, or cancelled, says so', async () => {
  const early = seedAppointment(db, { startOffsetSec: 3600 });
  const r1 = await openRoom(browser, gw.base, { room: early.roomId, token: early.client.token });
  await r1.page.locator('#banner', { hasText: 'This room is not open yet' }).waitFor();
  assert.equal(await r1.page.locator('#composer-text').isDisabled(), true);
  r1.assertClean();
  await r1.context.close();

  const cancelled = seedAppointment(db, { status: 'cancelled' });
  const r2 = await openRoom(browser, gw.base, { room: cancelled.roomId, token: cancelled.coach.token });
  await r2.page.locator('#banner', { hasText: 'This appointment was cancelled.' }).waitFor();
  r2.assertClean();
  await r2.context.close();
});

// The gateway has no LiveKit webhook yet, so nothing real sends `media`:
// the page's socket is routed through Playwright, which forwards every
// frame and adds the two `media` frames the gateway would send.
test('who is on video follows media events', async () => {
  const a = seedAppointment(db);
  let route = null;
  const setup = (page) => page.routeWebSocket(/\/ws$/, (ws) => {
    route = ws;
    ws.connectToServer();
  });
  const coach = await openRoom(browser, gw.base, { room: a.roomId, token: a.coach.token, setup });
  const p = coach.page;
  await waitJoined(p);
  const client = p.locator('#members li', { hasText: 'Sam Client' });
  assert.match(await client.textContent(), /away/);
  assert.doesNotMatch(await client.textContent(), /on video/);
  route.send(JSON.stringify({ type: 'media', room: a.roomId, userId: a.client.id, state: 'joined' }));
  await p.locator('#members li', { hasText: 'on video' }).waitFor();
  assert.match(await client.textContent(), /Sam Client.*on video/);
  route.send(JSON.stringify({ type: 'media', room: 'another-room', userId: a.coach.id, state: 'joined' }));
  route.send(JSON.stringify({ type: 'media', room: a.roomId, userId: a.client.id, state: 'left' }));
  await p.locator('#members li', { hasText: 'on video' }).waitFor({ state: 'detached' });
  coach.assertClean();
  await coach.context.close();
});

test('earlier messages load on demand', async () => {
  const a = seedAppointment(db, { runningForSec: 60 });
  const [[sid]] = db.query(`SELECT id FROM "Session"
    WHERE "appointmentId" = '${a.appointmentId}' AND "userId" = '${a.client.id}'`);
  // 60 messages already in the room (as the gateway stores them).
  const id = (g) => `'cmsg' || lpad(${g}::text, 21, '0')`;
  db.query(`
    INSERT INTO coach_room(appointment_id, last_seq) VALUES ('${a.appointmentId}', 60);
    INSERT INTO "Message"(id, "sessionId", "userId", sender, content, "createdAt")
      SELECT ${id('g')}, '${sid}', '${a.client.id}', 'client', 'old message ' || g,
             (now() at time zone 'UTC') - make_interval(secs => 120 - g)
      FROM generate_series(1, 60) g;
    INSERT INTO coach_message(message_id, appointment_id, seq, user_id, client_msg_id)
      SELECT ${id('g')}, '${a.appointmentId}', g, '${a.client.id}', 'seed-' || g
      FROM generate_series(1, 60) g;`);
  const r = await openRoom(browser, gw.base, { room: a.roomId, token: a.coach.token });
  const p = r.page;
  await waitJoined(p);
  let texts = await messageTexts(p);
  assert.equal(texts.length, 50, 'joined brings the last 50');
  assert.equal(texts[0], 'old message 11');
  await p.locator('#load-earlier').click();
  await p.locator('#messages .msg-text', { hasText: /^old message 1$/ }).waitFor();
  texts = await messageTexts(p);
  assert.deepEqual(texts, Array.from({ length: 60 }, (_, i) => `old message ${i + 1}`));
  assert.equal(await p.locator('#load-earlier').isVisible(), false, 'nothing more to load');
  r.assertClean();
  await r.context.close();
});

test('the static files are served with their types and security headers', async () => {
  const r = await fetch(`${gw.base}/`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/html/);
  assert.match(r.headers.get('content-security-policy'), /script-src 'self'/);
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  for (const [path, type] of [['/app.js', /^text\/javascript/], ['/style.css', /^text\/css/],
    ['/favicon.svg', /^image\/svg\+xml/]]) {
    const f = await fetch(`${gw.base}${path}`);
    assert.equal(f.status, 200, path);
    assert.match(f.headers.get('content-type'), type, path);
  }
});
