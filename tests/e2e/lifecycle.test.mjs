// tests/e2e/lifecycle.test.mjs: a session's life in the browser: the room
// clock's warnings and its end, the coach ending a session (with the AI
// summary from a fake endpoint), the client's rating stored in PostgreSQL,
// and a rated session shown as such when the client comes back.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createDatabase, startGateway, seedAppointment } from '../support/gateway.mjs';
import { launchBrowser, openRoom, waitJoined, say, screenshot, startFakeAi } from './browser.mjs';

const SUMMARY = 'Sam slept better this week. Next: keep the evening routine.';

let db;
let gw;
let ai;
let browser;

before(async () => {
  db = await createDatabase();
  ai = await startFakeAi(SUMMARY);
  // Warnings at 10 s and 5 s before the end, so a short session shows both.
  gw = await startGateway(db, { TIMER_WARNINGS: '10,5', AI_SUMMARY_URL: ai.url, AI_API_KEY: 'test-key' });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  if (gw) assert.equal(await gw.stop(), 0, 'the gateway exits cleanly');
  await ai?.close();
  db?.drop();
});

test('a 1-minute session shows its warnings and ends by the clock', async () => {
  // The clock started 42 s ago: 18 s are left, the first warning is 8 s
  // away (time enough for both pages to join on a busy machine).
  const a = seedAppointment(db, { durationMin: 1, runningForSec: 42 });
  const coach = await openRoom(browser, gw.base, { room: a.roomId, token: a.coach.token });
  const client = await openRoom(browser, gw.base, { room: a.roomId, token: a.client.token });
  await waitJoined(coach.page);
  await waitJoined(client.page);
  for (const p of [coach.page, client.page]) {
    const left = await p.locator('#countdown-value').textContent();
    assert.match(left, /^0:1\d left$/, `countdown: ${left}`);
  }
  const warned = (secs) => `#banner[data-kind="warning"]:has-text("${secs} seconds left in this session.")`;
  await client.page.locator(warned(10)).waitFor({ timeout: 15000 });
  await coach.page.locator(warned(10)).waitFor();
  await client.page.locator(warned(5)).waitFor({ timeout: 10000 });
  await coach.page.locator(warned(5)).waitFor();

  await client.page.locator('#after-reason', { hasText: 'The time is up.' }).waitFor({ timeout: 10000 });
  await coach.page.locator('#after-reason', { hasText: 'The time is up.' }).waitFor();
  for (const p of [coach.page, client.page]) {
    assert.equal(await p.locator('#composer-text').isDisabled(), true, 'the chat is closed');
    assert.equal(await p.locator('#countdown-value').textContent(), 'Ended');
  }
  await client.page.locator('#rating-form').waitFor();
  // No message: no summary to wait for.
  await coach.page.locator('#summary-status', { hasText: 'no messages' }).waitFor();
  const [[status, warnings, reason]] = db.query(`SELECT s.status, s."warningsSent", a.status
    FROM "Session" s JOIN "Appointment" a ON a.id = s."appointmentId"
    WHERE s."userId" = '${a.client.id}' AND a.id = '${a.appointmentId}'`);
  assert.deepEqual([status, warnings, reason], ['completed', '2', 'completed']);
  coach.assertClean();
  client.assertClean();
  await coach.context.close();
  await client.context.close();
});

test('the coach ends the session; the summary arrives; the client rates it', async () => {
  const a = seedAppointment(db);
  const coach = await openRoom(browser, gw.base, { room: a.roomId, token: a.coach.token });
  const client = await openRoom(browser, gw.base, { room: a.roomId, token: a.client.token, phone: true });
  const cp = coach.page;
  const kp = client.page;
  await waitJoined(cp);
  await waitJoined(kp);
  await say(kp, 'I slept better this week.');
  await cp.locator('#messages .msg-text', { hasText: 'I slept better' }).waitFor();
  await say(cp, 'Great progress. Keep the evening routine.');
  await kp.locator('#messages .msg-text', { hasText: 'Great progress' }).waitFor();
  await screenshot(cp, 'coach-live');

  // A change of mind first: the dialog's cancel keeps the session going.
  await cp.locator('#end-btn').click();
  await cp.locator('#end-dialog').waitFor();
  await cp.getByRole('button', { name: 'Keep going' }).click();
  assert.equal(await cp.locator('#end-dialog').isVisible(), false);
  assert.equal(await cp.locator('#after').isVisible(), false, 'not ended');

  // With the keyboard: Enter opens the dialog, Escape cancels, then Enter
  // again, Tab to the confirmation, Enter ends the session.
  await cp.locator('#end-btn').focus();
  await cp.keyboard.press('Enter');
  await cp.locator('#end-dialog').waitFor();
  assert.equal(await cp.evaluate(() => document.activeElement.textContent), 'Keep going', 'the safe choice has the focus');
  await cp.keyboard.press('Escape');
  await cp.locator('#end-dialog').waitFor({ state: 'hidden' });
  assert.equal(await cp.locator('#after').isVisible(), false, 'Escape did not end it');
  await cp.locator('#end-btn').focus();
  await cp.keyboard.press('Enter');
  await cp.locator('#end-dialog').waitFor();
  await cp.keyboard.press('Tab');
  assert.equal(await cp.evaluate(() => document.activeElement.id), 'end-confirm');
  await cp.keyboard.press('Enter');
  await kp.locator('#after-reason', { hasText: 'The coach ended it.' }).waitFor();
  await cp.locator('#after-reason', { hasText: 'The coach ended it.' }).waitFor();
  assert.equal(await cp.locator('#end-btn').isVisible(), false);
  assert.equal(await cp.locator('#rating-form').isVisible(), false, 'the coach does not rate');

  // The coach gets the AI summary (the fake endpoint's answer) as text.
  await cp.locator('#summary-text', { hasText: SUMMARY }).waitFor({ timeout: 20000 });
  assert.ok(ai.requests >= 1);
  assert.equal(await kp.locator('#summary').isVisible(), false, 'the client sees no summary');
  await screenshot(cp, 'coach-ended-summary');

  // The client rates: 4 stars, a comment, a $3 tip.
  await kp.locator('#rating-form').waitFor();
  // (A second window of the client's, open on the form too.)
  const second = await openRoom(browser, gw.base, { room: a.roomId, token: a.client.token });
  await second.page.locator('#rating-form').waitFor();
  await screenshot(kp, 'client-rating-phone');
  // Keyboard only: arrows in the star group, Tab to the comment, arrows in
  // the tips, Tab to the button, Enter.
  await kp.locator('#star-1').focus();
  await kp.keyboard.press('Space');
  for (let i = 0; i < 3; i++) await kp.keyboard.press('ArrowRight');
  assert.equal(await kp.locator('#star-4').isChecked(), true);
  assert.equal(await kp.locator('label.lit').count(), 4, 'four stars lit');
  await kp.keyboard.press('Tab');
  assert.equal(await kp.evaluate(() => document.activeElement.id), 'rating-comment');
  await kp.keyboard.type('Very helpful, thank you.');
  await kp.keyboard.press('Tab');
  assert.equal(await kp.evaluate(() => document.activeElement.id), 'tip-0');
  await kp.keyboard.press('ArrowRight');
  await kp.keyboard.press('ArrowRight');
  assert.equal(await kp.locator('#tip-3').isChecked(), true);
  await kp.keyboard.press('Tab');
  assert.equal(await kp.evaluate(() => document.activeElement.id), 'rating-submit');
  await kp.keyboard.press('Enter');
  await kp.locator('#rated', { hasText: 'Thank you! You rated this session 4 out of 5 and a $3 tip.' }).waitFor();
  assert.equal(await kp.locator('#rating-form').isVisible(), false);
  await screenshot(kp, 'client-rated-phone');

  const rows = db.query(`SELECT r.rating, r."tipAmount", r.comment FROM "SessionRating" r
    JOIN "Session" s ON s.id = r."sessionId"
    WHERE s."appointmentId" = '${a.appointmentId}' AND s."userId" = '${a.client.id}'`);
  assert.deepEqual(rows, [['4', '3', 'Very helpful, thank you.']]);

  // The second window's rating is refused (conflict) and said so.
  await second.page.locator('label[for="star-2"]').click();
  await second.page.locator('#rating-submit').click();
  await second.page.locator('#rated', { hasText: 'You have already rated this session.' }).waitFor();
  assert.equal(await second.page.locator('#rating-form').isVisible(), false);
  second.assertClean();
  await second.context.close();
  assert.deepEqual(db.query(`SELECT count(*) FROM "SessionRating" r JOIN "Session" s ON s.id = r."sessionId"
    WHERE s."appointmentId" = '${a.appointmentId}'`), [['1']]);

  // Coming back later: the session shows as rated, with no form.
  const again = await openRoom(browser, gw.base, { room: a.roomId, token: a.client.token });
  await again.page.locator('#rated', { hasText: 'You rated this session 4 out of 5 and a $3 tip.' }).waitFor();
  assert.equal(await again.page.locator('#rating-form').isVisible(), false);
  assert.equal(await again.page.locator('#composer-text').isDisabled(), true);
  // A chat after the end is refused by the page itself.
  assert.equal(await again.page.locator('#send').isDisabled(), true);

  coach.assertClean();
  client.assertClean();
  again.assertClean();
  await coach.context.close();
  await client.context.close();
  await again.context.close();
});

test('a summary that could not be written is said so', async () => {
  const a = seedAppointment(db);
  const coach = await openRoom(browser, gw.base, { room: a.roomId, token: a.coach.token });
  await waitJoined(coach.page);
  await say(coach.page, 'A short session.');
  await coach.page.locator('#messages .msg.mine:not(.pending)').waitFor();
  ai.fail = true;
  try {
    await coach.page.locator('#end-btn').click();
    await coach.page.locator('#end-confirm').click();
    await coach.page.locator('#summary').waitFor();
    // The page asks again after 5 s; the job fails on the first 400.
    await coach.page.locator('#summary-status', { hasText: 'The AI summary could not be written.' })
      .waitFor({ timeout: 15000 });
  } finally {
    ai.fail = false;
  }
  assert.equal(await coach.page.locator('#summary-text').textContent(), '');
  coach.assertClean();
  await coach.context.close();
});
