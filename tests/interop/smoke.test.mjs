import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createDatabase, startGateway, seedAppointment } from '../support/gateway.mjs';

test('support: gateway starts and a seeded token authenticates', async () => {
  const db = await createDatabase();
  const gw = await startGateway(db);
  try {
    const a = seedAppointment(db);
    const r = await fetch(`${gw.base}/api/sessions/nope`, { headers: { authorization: `Bearer ${a.coach.token}` } });
    assert.equal(r.status, 404);
  } finally {
    assert.equal(await gw.stop(), 0);
    db.drop();
  }
});
