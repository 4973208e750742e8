// tests/e2e/browser.mjs: what the browser suites share: headless Chromium
// through playwright-core, a room page that records every console error,
// page error, failed request and HTTP error it meets, a TCP proxy whose
// connections the test can cut (a real network drop for the page), and a
// fake OpenAI-compatible summary endpoint.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, connect } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const OUT_DIR = join(dirname(fileURLToPath(import.meta.url)), 'out');

export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-dev-shm-usage'],
  });
}

// Open base/#room=..&token=.. (or base alone without a token) in a context
// of its own. problems collects what a clean page never shows; allow(text)
// may excuse an entry (e.g. the browser's own log of a cut connection).
// setup(page) (optional) runs before the page loads (e.g. routeWebSocket).
export async function openRoom(browser, base, { room, token, phone = false, setup = null } = {}) {
  const context = await browser.newContext(phone
    ? { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 }
    : { viewport: { width: 1100, height: 760 } });
  const page = await context.newPage();
  const rec = { page, context, problems: [], allow: () => false };
  const note = (text) => { if (!rec.allow(text)) rec.problems.push(text); };
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') note(`console.${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => note(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => note(`requestfailed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => { if (r.status() >= 400) note(`HTTP ${r.status()}: ${r.url()}`); });
  if (setup) await setup(page);
  const hash = token ? `#room=${encodeURIComponent(room)}&token=${encodeURIComponent(token)}` : '';
  await page.goto(`${base}/${hash}`);
  rec.assertClean = () => assert.deepEqual(rec.problems, [], 'the page met no errors');
  return rec;
}

// Wait until the page shows the room (joined answered).
export async function waitJoined(page) {
  await page.locator('#conn[data-state="connected"]').waitFor({ timeout: 15000 });
}

export async function screenshot(page, name) {
  mkdirSync(OUT_DIR, { recursive: true });
  await page.screenshot({ path: join(OUT_DIR, `${name}.png`), fullPage: true });
}

// Type text into the composer and press Enter.
export async function say(page, text) {
  await page.locator('#composer-text').fill(text);
  await page.locator('#composer-text').press('Enter');
}

// The texts of the messages shown, in order.
export function messageTexts(page) {
  return page.locator('#messages .msg-text').allTextContents();
}

// A TCP proxy 127.0.0.1:<port> -> 127.0.0.1:targetPort. cut() destroys
// every connection and refuses new ones until restore(); muteDownstream()
// keeps forwarding what the browser sends but drops what comes back (an
// answer lost on the way); blackhole() drops both ways (the connection
// looks open but nothing gets through).
export async function startProxy(targetPort) {
  const pairs = new Set();
  let down = false;
  let mute = false;
  let muteUp = false;
  const server = createServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, '127.0.0.1');
    const pair = { client, upstream };
    pairs.add(pair);
    const close = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on('data', (d) => { if (!muteUp) upstream.write(d); });
    upstream.on('data', (d) => { if (!mute) client.write(d); });
    client.on('close', close);
    upstream.on('close', close);
    client.on('error', close);
    upstream.on('error', close);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    cut() {
      down = true;
      mute = false;
      muteUp = false;
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      pairs.clear();
    },
    muteDownstream() { mute = true; },
    blackhole() { mute = true; muteUp = true; },
    restore() { down = false; mute = false; muteUp = false; },
    close: () => new Promise((resolve) => {
      for (const p of pairs) { p.client.destroy(); p.upstream.destroy(); }
      server.close(resolve);
    }),
  };
}

// A fake chat-completions endpoint: every POST answers with summaryText,
// or 400 while fake.fail is set. requests counts the calls.
export async function startFakeAi(summaryText) {
  const fake = { requests: 0, fail: false };
  const server = createHttpServer((req, res) => {
    req.resume();
    req.on('end', () => {
      fake.requests++;
      if (fake.fail) {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end('{"error":{"message":"bad request"}}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ choices: [{ message: { role: 'assistant', content: summaryText } }] }));
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.url = `http://127.0.0.1:${server.address().port}/v1/chat/completions`;
  fake.close = () => new Promise((resolve) => server.close(resolve));
  return fake;
}
