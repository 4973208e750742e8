// tests/support/gateway.mjs: what the Node.js suites (tests/interop,
// tests/e2e) share: a database of their own cloned from the `pg` fixture's
// migrated template, the real coach-gateway binary on a free port, and
// appointments seeded with psql.
//
// Environment (set by ctest, see tests/CMakeLists.txt): COACH_TEST_PG_FILE
// (the fixture's maintenance conninfo) and COACH_GATEWAY_BIN.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, mkdtempSync, openSync, closeSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const TEMPLATE = 'coach_template';

function adminConninfo() {
  if (process.env.COACH_TEST_PG) return process.env.COACH_TEST_PG;
  const file = process.env.COACH_TEST_PG_FILE;
  if (!file) throw new Error('COACH_TEST_PG_FILE is not set: run the suite through ctest');
  return readFileSync(file, 'utf8').trim();
}

function conninfoFor(dbname) {
  return adminConninfo().replace(/dbname=\S+/, `dbname=${dbname}`);
}

// Run sql with psql on conninfo; the rows as arrays of strings.
export function psql(conninfo, sql) {
  const out = execFileSync('psql', ['-X', '-q', '-tA', '-v', 'ON_ERROR_STOP=1', '-F', '\t',
    '-d', conninfo, '-c', sql], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return out.split('\n').filter((l) => l !== '').map((l) => l.split('\t'));
}

// A fresh database cloned from the migrated template (retried while the
// template is busy being cloned by another test).
export async function createDatabase() {
  const name = `node_${process.pid}_${randomBytes(4).toString('hex')}`;
  for (let attempt = 0; ; attempt++) {
    try {
      psql(adminConninfo(), `CREATE DATABASE ${name} TEMPLATE ${TEMPLATE}`);
      break;
    } catch (e) {
      if (attempt >= 50 || !/being accessed by other users/.test(String(e.stderr))) throw e;
      await sleep(100 + Math.random() * 200);
    }
  }
  const conninfo = conninfoFor(name);
  return {
    name,
    conninfo,
    query: (sql) => psql(conninfo, sql),
    drop: () => psql(adminConninfo(), `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A port below the kernel's ephemeral range (32768 and up), so outgoing
// connections opened meanwhile by other tests cannot take it.
export async function freePort() {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const free = await new Promise((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free port found');
}

// Start the gateway against db with extra environment; resolves once
// /healthz answers (on another free port when the one picked was taken
// meanwhile). stop() sends SIGTERM, resolves with the exit code and removes
// the log's directory.
export async function startGateway(db, env = {}) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await startOnce(db, env);
    } catch (e) {
      if (!e.portTaken || attempt >= 4) throw e;
    }
  }
}

async function startOnce(db, env) {
  const bin = process.env.COACH_GATEWAY_BIN;
  if (!bin) throw new Error('COACH_GATEWAY_BIN is not set: run the suite through ctest');
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'coach-gw-'));
  const logPath = join(dir, 'gateway.log');
  const fd = openSync(logPath, 'w');
  const child = spawn(bin, ['serve'], {
    env: {
      ...process.env,
      DATABASE_URL: db.conninfo,
      LISTEN: `127.0.0.1:${port}`,
      LOG_LEVEL: 'debug',
      ...env,
    },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const exited = new Promise((resolve) => child.once('exit', (code, sig) => resolve(code ?? 128)));
  const base = `http://127.0.0.1:${port}`;
  const log = () => readFileSync(logPath, 'utf8');
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) {
      const text = log();
      rmSync(dir, { recursive: true, force: true });
      const err = new Error(`gateway exited at start:\n${text}`);
      err.portTaken = /already in use|ERROR on binding/.test(text);
      throw err;
    }
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch { /* not listening yet */ }
    if (i > 200) throw new Error(`gateway did not answer /healthz:\n${log()}`);
    await sleep(100);
  }
  return {
    port,
    base,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    log,
    kill: () => child.kill('SIGKILL'),
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const code = await exited;
      const text = log();
      rmSync(dir, { recursive: true, force: true });
      if (/AddressSanitizer|LeakSanitizer|runtime error:/.test(text)) {
        process.stderr.write(text);
        throw new Error('the gateway reported a sanitizer finding (log above)');
      }
      return code;
    },
  };
}

let seq = 0;
const cuid = () => `c${randomBytes(12).toString('hex').slice(0, 24)}`;
const token = () => randomBytes(32).toString('base64url');
const q = (s) => `'${String(s).replaceAll("'", "''")}'`;

// Seed a coach, a client (optionally an observer/admin) with session tokens
// and an appointment starting startOffsetSec from now (negative: in the
// past) lasting durationMin. Returns their ids, tokens and the roomId.
// runningForSec (optional): the room clock already runs: the appointment is
// active and both participants have an active Session row that started
// that many seconds ago (so a short session ends within a test).
export function seedAppointment(db, { durationMin = 20, startOffsetSec = 0, status = 'scheduled',
  coachName = 'Dana Coach', clientName = 'Sam Client', runningForSec = null } = {}) {
  const n = `${process.pid}${++seq}${randomBytes(3).toString('hex')}`;
  const coach = { id: cuid(), token: token(), name: coachName, skool: `sk-co-${n}` };
  const client = { id: cuid(), token: token(), name: clientName, skool: `sk-cl-${n}` };
  const stranger = { id: cuid(), token: token(), name: 'Stan Ger', skool: `sk-st-${n}` };
  const appointmentId = cuid();
  const roomId = `room-${n}`;
  const users = [[coach, 'coach'], [client, 'client'], [stranger, 'client']];
  const code = `vgs-test-${n}`;
  db.query(`
    INSERT INTO "User"(id,email,"displayName",role,"updatedAt","skoolUserId") VALUES
      ${users.map(([u, role]) => `(${q(u.id)},${q(`${u.skool}@test`)},${q(u.name)},${q(role)},now(),${q(u.skool)})`).join(',')};
    INSERT INTO "AuthCode"(id,code,"skoolUserId","skoolUsername","expiresAt")
      VALUES (${q(cuid())},${q(code)},${q(coach.skool)},'seed',now()+interval '1 hour');
    INSERT INTO "UserSession"(id,"sessionId","skoolUserId","skoolUsername","authCodeUsed",
        "expiresAt","ipAddress","userAgent","deviceFingerprint") VALUES
      ${users.map(([u]) => `(${q(cuid())},${q(u.token)},${q(u.skool)},'seed',${q(code)},now()+interval '1 day','127.0.0.1','test','test')`).join(',')};
    INSERT INTO "Appointment"(id,"scheduledFor","durationMin","clientId","coachId","roomId",status)
      VALUES (${q(appointmentId)}, (now() at time zone 'UTC') + make_interval(secs => ${Number(startOffsetSec)}),
              ${Number(durationMin)}, ${q(client.id)}, ${q(coach.id)}, ${q(roomId)}, ${q(status)});`);
  if (runningForSec !== null) {
    const started = `(now() at time zone 'UTC') - make_interval(secs => ${Number(runningForSec)})`;
    db.query(`
      UPDATE "Appointment" SET status = 'active' WHERE id = ${q(appointmentId)};
      INSERT INTO "Session"(id,"roomId","appointmentId","userId","startedAt","durationMinutes",status)
        VALUES ${[coach, client].map((u) => `(${q(cuid())},${q(roomId)},${q(appointmentId)},${q(u.id)},${started},${Number(durationMin)},'active')`).join(',')};`);
  }
  return { appointmentId, roomId, coach, client, stranger };
}

// A coachroom.v1 client (npm ws) authenticated by header. frames holds
// everything received; next(type) waits for the first unread frame of that
// type; none(type, ms) asserts that no such frame comes within ms.
export async function connectRoom(gw, token) {
  const { default: WebSocket } = await import('ws');
  const ws = new WebSocket(gw.wsUrl, 'coachroom.v1', {
    headers: { authorization: `Bearer ${token}` },
  });
  const frames = [];
  let seen = 0;
  const waiters = new Set();
  ws.on('message', (data) => {
    frames.push(JSON.parse(String(data)));
    for (const w of waiters) w();
  });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const find = (type, from) => frames.findIndex((f, i) => i >= from && f.type === type);
  const client = {
    frames,
    send: (obj) => ws.send(JSON.stringify(obj)),
    close: () => new Promise((r) => { ws.once('close', r); ws.close(); }),
    next(type, ms = 5000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const i = find(type, seen);
          if (i < 0) return false;
          seen = i + 1;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(frames[i]);
          return true;
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no ${type} frame within ${ms} ms; got ${JSON.stringify(frames.slice(seen))}`));
        }, ms);
        if (!check()) waiters.add(check);
      });
    },
    async none(type, ms = 400) {
      await sleep(ms);
      const i = find(type, seen);
      if (i >= 0) throw new Error(`unexpected ${type} frame: ${JSON.stringify(frames[i])}`);
    },
  };
  await client.next('welcome');
  return client;
}
